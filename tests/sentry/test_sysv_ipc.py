"""System V IPC served by the Sentry, compared with Linux (progs/sysv_ipc.c, run natively in
a fresh IPC namespace so ids match): shared memory shared across fork and attaches,
IPC_RMID while attached, SHM_RDONLY, /proc/PID/maps and /proc/sysvipc; semaphores blocking
and woken by other processes, SEM_UNDO at exit, EINTR, EIDRM, the counts; message queues
with every receive mode; each call's errors, another uid's EACCES/EPERM; the limits in
/proc/sys/kernel, written by root and taking effect."""

from pathlib import Path

import pytest

from tests.support import need_binary

from .platform_helpers import build_c, native
from .test_procfs import run_with_proc

PROGS = Path(__file__).resolve().parent / "progs"


@pytest.mark.parametrize("part", ["shm", "sem", "msg", "limits"])
async def test_sysv_ipc_matches_linux(tmp_path, part):
    prog = build_c(tmp_path, "sysv_ipc", (PROGS / "sysv_ipc.c").read_text(), "-static", "-w")
    st, out = native([need_binary("unshare", "util-linux"), "--ipc", prog, part])
    assert st == 0 and b" exit 0" in out, out  # a sane oracle
    status, got, k = await run_with_proc(["/sysv_ipc", part], {"/sysv_ipc": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]
    assert not len(k.ipc.shm) or part != "shm" or all(
        s.nattch == 0 for s in k.ipc.shm)  # every attachment went with its process
