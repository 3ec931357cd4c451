"""Robust futexes released at their owner thread's end, get_robust_list, futex_waitv and
the futex2 calls, compared with Linux (progs/futex2.c). futex_wake/futex_wait/futex_requeue
are compared only where the host kernel has them (Linux 6.7)."""

from __future__ import annotations

from tests.sentry.progs.harness import build, native, sentry_run


async def test_futex2_matches_native(tmp_path):
    prog = build(tmp_path, "futex2")
    mode = "futex2" if native([prog, "probe"]).stdout == b"futex2\n" else "basic"
    want = native([prog, mode])
    assert want.code == 0, want.stderr
    got = await sentry_run([prog, mode])
    assert [e for e in got.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0
