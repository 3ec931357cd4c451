"""Programs that use IPC, under `runpsc do`, compared with their native run: util-linux's
ipcmk, ipcs and ipcrm (natively in a fresh IPC namespace, `unshare --ipc`, so ids start at 0
on both sides; ipcmk picks random keys, so keys are blanked), and python's multiprocessing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.runtime.test_do import runpsc
from tests.runtime.test_workloads import WORKDIR
from tests.support import need_binary

IPC_SCRIPT = (
    "ipcmk -M 10000 -p 0640; ipcmk -S 3; ipcmk -Q -p 0600; ipcmk -M 1;"
    " ipcs; ipcs -l; ipcs -u; ipcs -c; ipcs -m -p | cut -c1-22;"
    " ipcrm -m 0; ipcrm -s 0 -q 0; ipcs; ipcrm -a; ipcs -a; ipcrm -m 9; echo $?"
)
KEYS = r"s/0x[0-9a-f]\{8\}/KEY/g"


def _run(native: bool) -> subprocess.CompletedProcess:
    script = f"( {IPC_SCRIPT} ) 2>&1 | sed '{KEYS}'"
    if native:
        return subprocess.run([need_binary("unshare", "util-linux"), "--ipc", "bash", "-c",
                               script], capture_output=True, stdin=subprocess.DEVNULL,
                              cwd=WORKDIR, timeout=60)
    return runpsc("do", f"--cwd={WORKDIR}", "--", "bash", "-c", script)


def test_ipcmk_ipcs_ipcrm_match_linux():
    for tool in ("ipcmk", "ipcs", "ipcrm"):
        need_binary(tool, "util-linux")
    want, got = _run(True), _run(False)
    assert b"Shared memory id: 0" in want.stdout, want
    assert (got.stdout.decode(), got.returncode) == (want.stdout.decode(), want.returncode), \
        got.stderr.decode(errors="replace")


PROGS = Path(__file__).resolve().parent / "progs"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_python_multiprocessing_matches_linux(method):
    """Pool, Queue, Lock, Value/Array, shared_memory and a ProcessPoolExecutor: their locks
    and semaphores are POSIX semaphores in /dev/shm (futexes in shared memory), their
    queues pipes. The forkserver method and Pipe(duplex=True) need AF_UNIX sockets."""
    python = "/usr/bin/python3"  # Debian's, which the sandbox sees at the same path
    if not os.access(python, os.X_OK):
        need_binary("/usr/bin/python3", "python3")
    want = subprocess.run([python, "mp_workloads.py", method], capture_output=True,
                          stdin=subprocess.DEVNULL, cwd=PROGS, timeout=120)
    assert b"locked counter 600" in want.stdout, want
    got = runpsc("do", f"--volume={PROGS}:/progs:ro", "--cwd=/progs", "--", python,
                 "mp_workloads.py", method)
    assert (got.stdout.decode(), got.returncode) == (want.stdout.decode(), want.returncode), \
        got.stderr.decode(errors="replace")
