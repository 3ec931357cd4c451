"""Signals sent to the runpsc process reach the sandboxed program (as a terminal's ^C or a
`kill` reach a native one), compared with the same program run natively; and SIGKILL of
runpsc leaves no process of the sandbox behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.leftovers import descendants
from tests.runtime.test_do import ROOT
from tests.support import native_child_setup, need_root

TRAP = ["sh", "-c", 'trap "echo caught; exit 3" TERM; echo ready; while :; do sleep 0.1; done']
PLAIN = ["sh", "-c", "echo ready; exec sleep 30"]
#: pid 1 without handlers: it echoes "ready" (sent by the test: then it runs), and after
#: the signal a second line, if the signal spared it.
READER = ["sed", "-u", "2q"]
#: Natively, the program as a pid namespace's init (what the sandbox's pid 1 is).
AS_INIT = ["unshare", "-fp", "--mount-proc"]


def _signalled(argv: list[str], sig: int, *, init: bool = False,
               then: bytes = b"") -> tuple[bytes, int]:
    """Start `argv`, wait for its "ready" line, send `sig` (with `init`, to the child of
    `argv`, the init of `unshare -fp`'s namespace, from this ancestor namespace as runpsc
    forwards it), write `then` to its stdin; return (stdout, shell status). With `then`,
    "ready" is written to the program first (it echoes it)."""
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=native_child_setup)
    try:
        if then:
            proc.stdin.write(b"ready\n")
            proc.stdin.flush()
        first = proc.stdout.readline()
        assert first == b"ready\n", (first, proc.stderr.read() if proc.poll() is not None else b"")
        target = proc.pid
        if init:
            target, = map(int, Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text()
                          .split())
        os.kill(target, sig)
        rest, _ = proc.communicate(then, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    code = proc.returncode
    return first + rest, 128 - code if code < 0 else code


def test_host_signal_reaches_the_programs_handler() -> None:
    want = _signalled(TRAP, signal.SIGTERM)
    got = _signalled([sys.executable, "-m", "runtime.cli", "do", "--", *TRAP], signal.SIGTERM)
    assert got == want == (b"ready\ncaught\n", 3)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["INT", "TERM", "HUP"])
def test_host_signal_without_a_handler_spares_init(sig: int) -> None:
    """The sandbox's first process is its pid namespace's init: a signal from outside that
    it has no handler for is dropped, as Linux drops it for `unshare -fp`'s init."""
    need_root()
    want = _signalled([*AS_INIT, *READER], sig, init=True, then=b"line\n")
    got = _signalled([sys.executable, "-m", "runtime.cli", "do", "--", *READER], sig,
                     then=b"line\n")
    assert got == want == (b"ready\nline\n", 0)


#: pid 1 signalling itself and being signalled by its child, then a handled signal.
INIT_SCRIPT = """
kill -9 $$; echo self-kill=$?
kill -TERM 1; kill -USR1 1; kill -STOP 1; kill -TSTP 1; echo after-stop
sh -c 'kill -9 1; echo child-kill=$?; kill -s SEGV 1; echo child-segv=$?'
trap 'echo got-usr2' USR2; kill -USR2 1; echo after-usr2
exit 3
"""


def test_init_spared_from_inside_as_in_a_pid_namespace() -> None:
    """Linux's SIGNAL_UNKILLABLE for the init of a pid namespace: signals from inside
    with the default action are dropped, SIGKILL and SIGSTOP too; a handler still runs.
    Compared with `unshare -fp --mount-proc` natively."""
    need_root()
    argv = ["sh", "-c", INIT_SCRIPT]
    want = subprocess.run([*AS_INIT, *argv], capture_output=True, timeout=60,
                          preexec_fn=native_child_setup)
    got = subprocess.run([sys.executable, "-m", "runtime.cli", "do", "--", *argv], cwd=ROOT,
                         capture_output=True, timeout=60, preexec_fn=native_child_setup)
    assert (want.stdout, want.returncode) == (b"self-kill=0\nafter-stop\nchild-kill=0\n"
                                              b"child-segv=0\ngot-usr2\nafter-usr2\n", 3)
    assert (got.stdout, got.returncode) == (want.stdout, want.returncode), got.stderr


def test_sigkill_of_runpsc_leaves_nothing_behind() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "do", "--", *PLAIN],
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, preexec_fn=native_child_setup)
    assert proc.stdout.readline() == b"ready\n"
    family = descendants(proc.pid)
    assert family, "runpsc should have a gofer and a stub running"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while (alive := {p for p in family if os.path.exists(f"/proc/{p}")
                     and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"}):
        assert time.monotonic() < deadline, f"left behind after SIGKILL of runpsc: {alive}"
        time.sleep(0.1)
