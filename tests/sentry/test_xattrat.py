"""setxattrat, getxattrat, listxattrat and removexattrat compared with Linux
(progs/xattrat.c), where the host kernel has them (Linux 6.13)."""

from __future__ import annotations

import pytest

from tests.sentry.progs.harness import build, native, native_in_scratch, sentry_run


async def test_xattrat_matches_native(tmp_path):
    prog = build(tmp_path, "xattrat")
    if native([prog, "probe"]).stdout != b"xattrat\n":
        pytest.skip("the host kernel has no *xattrat calls to compare with (Linux < 6.13)")
    want = native_in_scratch(prog)
    assert want.code == 0, want.stderr
    got = await sentry_run([prog, "/tmp/w"], dirs=("/tmp", "/tmp/w"))
    assert [e for e in got.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0
