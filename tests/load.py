"""A load generator, so the suite can be run on a machine as busy as a user's or a CI's.

`Load` starts one pure CPU spinner per CPU plus a few "churners" that do syscalls and forks
(they preempt the spinners and each other the way a busy build does), each in a session of
its own with PR_SET_PDEATHSIG, and kills them all in `stop`: a run that dies still leaves
none behind. The suite turns it on with RUNPSC_TEST_LOAD=1 or `pytest --load` (see
tests/conftest.py); `python tests/load.py` runs it alone until ^C.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from types import TracebackType

PR_SET_PDEATHSIG = 1
ENV = "RUNPSC_TEST_LOAD"


def requested(option: bool = False) -> bool:
    """Whether the load is asked for: the pytest option, or RUNPSC_TEST_LOAD set to yes."""
    return option or os.environ.get(ENV, "").lower() in ("1", "true", "yes")


def _die_with_parent() -> None:
    """`preexec_fn` of a worker: SIGKILL when the process that started it ends."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spin(parent: int) -> None:
    """Pure CPU, no syscalls but a parent check every few million steps."""
    n = 0
    while True:
        n += 1
        if n % 5_000_000 == 0 and os.getppid() != parent:
            return


def churn(parent: int) -> None:
    """Syscalls and short-lived forks: the scheduler, the page allocator and wait."""
    while os.getppid() == parent:
        for _ in range(200):
            os.stat("/")
            os.close(os.open("/dev/null", os.O_RDONLY))
            os.sched_yield()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)


class Load:
    """`spinners` CPU spinners (one per CPU by default) and `churners` syscall/fork loops."""

    def __init__(self, spinners: int | None = None, churners: int = 1) -> None:
        self.spinners = spinners if spinners is not None else (os.cpu_count() or 1)
        self.churners = churners
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        """Start the workers (each checks it still has this process as its parent)."""
        me = str(os.getpid())
        kinds = ["spin"] * self.spinners + ["churn"] * self.churners
        for kind in kinds:
            self.procs.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), kind, me],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent))

    def stop(self) -> None:
        """Kill every worker with its session (a churner's fork included) and reap it."""
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        self.procs.clear()

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


if __name__ == "__main__":
    if len(sys.argv) == 3:
        {"spin": spin, "churn": churn}[sys.argv[1]](int(sys.argv[2]))
    else:
        with Load():
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
