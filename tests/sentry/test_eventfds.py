"""Event and notification descriptors served by the Sentry, compared with Linux: eventfd
and timerfd, memfd_create with seals, pidfds (poll, waitid(P_PIDFD), signals, getfd),
inotify (and fanotify's refusal) and POSIX timers. Each C program prints what it sees,
errors included; the output must be the same natively and in the sandbox."""

import shutil
import tempfile
from pathlib import Path

import pytest

from .platform_helpers import build_c, native
from .test_procfs import run_with_proc

PROGS = Path(__file__).resolve().parent / "progs"
#: Programs that take a scratch directory on a tmpfs (natively one on /dev/shm).
SCRATCH = {"inotify"}


@pytest.mark.parametrize("name", ["eventfd", "memfd", "pidfd", "inotify"])
async def test_matches_linux(tmp_path, name):
    prog = build_c(tmp_path, name, (PROGS / f"{name}.c").read_text(), "-static", "-w",
                   "-pthread")
    scratch = tempfile.mkdtemp(prefix="runpsc-native-", dir="/dev/shm")
    try:
        st, out = native([prog, scratch] if name in SCRATCH else [prog])
    finally:
        shutil.rmtree(scratch)
    assert st == 0, out
    argv = [f"/{name}", "/tmp"] if name in SCRATCH else [f"/{name}"]
    status, got, k = await run_with_proc(argv, {f"/{name}": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]
