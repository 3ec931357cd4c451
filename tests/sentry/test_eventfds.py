"""Event and notification descriptors served by the Sentry, compared with Linux: eventfd
and timerfd, memfd_create with seals, pidfds (poll, waitid(P_PIDFD), signals, getfd),
inotify, POSIX timers and fanotify's refusal. Each C program prints what it sees, errors
included; the output must be the same natively and in the sandbox."""

from pathlib import Path

import pytest

from .platform_helpers import build_c, native
from .test_procfs import run_with_proc

PROGS = Path(__file__).resolve().parent / "progs"


@pytest.mark.parametrize("name", ["eventfd", "memfd", "pidfd"])
async def test_matches_linux(tmp_path, name):
    prog = build_c(tmp_path, name, (PROGS / f"{name}.c").read_text(), "-static", "-w",
                   "-pthread")
    st, out = native([prog])
    assert st == 0, out
    status, got, k = await run_with_proc([f"/{name}"], {f"/{name}": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]
