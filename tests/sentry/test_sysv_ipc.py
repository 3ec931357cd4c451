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


@pytest.mark.parametrize("part", ["shm", "sem", "msg", "limits", "ids"])
async def test_sysv_ipc_matches_linux(tmp_path, part):
    prog = build_c(tmp_path, "sysv_ipc", (PROGS / "sysv_ipc.c").read_text(), "-static", "-w")
    st, out = native([need_binary("unshare", "util-linux"), "--ipc", prog, part])
    assert st == 0 and (b" exit 0" in out or part == "ids"), out  # a sane oracle
    status, got, k = await run_with_proc(["/sysv_ipc", part], {"/sysv_ipc": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]
    # every attachment went with its process; the sandbox's end freed what was left
    assert all(s.nattch == 0 and s.memfd == -1 for s in k.ipc.shm)


async def test_shared_futexes_match_linux(tmp_path):
    """A futex without FUTEX_PRIVATE_FLAG in shared memory is one futex in every process
    mapping it (a tmpfs file mapped at another address, a shared anonymous mapping across
    fork, a System V segment attached twice); a private wake does not reach it."""
    from .progs.harness import native_in_scratch

    prog = build_c(tmp_path, "futex_shared", (PROGS / "futex_shared.c").read_text(),
                   "-static", "-w")
    want = native_in_scratch(prog, timeout=60)
    assert want.status == 0 and b"child woken 0" in want.stdout, want
    status, got, k = await run_with_proc(["/futex_shared", "/tmp"], {"/futex_shared": prog})
    assert got.decode() == want.stdout.decode(), k.events
    assert status == want.status, k.events
