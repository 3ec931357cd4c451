"""Advisory locks between two processes, compared with Linux: POSIX record locks (conflicts,
F_GETLK, F_SETLKW waiting, release when the owner closes any fd of the file or exits) and
flock (per open description, inherited across fork, blocking waits)."""

from __future__ import annotations

from tests.sentry.progs.harness import build, native_in_scratch, sentry_run


async def test_locks_between_processes_match_native(tmp_path):
    prog = build(tmp_path, "locks")
    want = native_in_scratch(prog, timeout=60)
    assert want.code == 0, want.stderr
    got = await sentry_run([prog, "/tmp/w"], dirs=("/tmp", "/tmp/w"))
    assert [e for e in got.events if e[0] == "internal-error"] == []
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0
