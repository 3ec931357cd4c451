"""prctl's capability options (bounding set, securebits, the ambient set) and its EFAULT and
EINVAL answers, compared with Linux (progs/prctl_caps.c) as root with the default sets."""

from __future__ import annotations

from tests.sentry.progs.harness import build, native, sentry_run
from tests.support import need_root


async def test_prctl_capability_options_match_native(tmp_path):
    need_root()
    prog = build(tmp_path, "prctl_caps")
    want = native([prog])
    assert want.code == 0, want.stderr
    assert b"PR_GET_SECUREBITS 0 0 0 0 = 0\n" in want.stdout, want.stdout  # a sane oracle
    got = await sentry_run([prog])
    assert [e for e in got.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0
