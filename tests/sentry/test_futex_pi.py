"""Priority-inheritance futexes against Linux (progs/futex_pi.c): PTHREAD_PRIO_INHERIT
mutexes under contention, robust PI mutexes whose owner ends holding them, and the raw
FUTEX_LOCK_PI, LOCK_PI2, TRYLOCK_PI and UNLOCK_PI answers and futex words."""

from __future__ import annotations

from tests.sentry.progs.harness import build, native, sentry_run


async def test_futex_pi_matches_native(tmp_path):
    prog = build(tmp_path, "futex_pi")
    want = native([prog])
    assert want.code == 0, want.stderr
    assert b"PI mutex count 20000 (want 20000)\n" in want.stdout  # a sane oracle
    got = await sentry_run([prog])
    assert [e for e in got.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0
