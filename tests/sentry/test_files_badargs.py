"""File syscalls given bad pointers, lengths, counts and fds answer Linux's errno (EFAULT,
EINVAL, EBADF, ENAMETOOLONG ...) and never make the Sentry fail internally."""

from __future__ import annotations

from tests.sentry.progs.harness import build, native_in_scratch, sentry_run


async def test_bad_arguments_match_native(tmp_path):
    prog = build(tmp_path, "badargs")
    want = native_in_scratch(prog)
    assert want.code == 0, want.stderr
    got = await sentry_run([prog, "/tmp/w"], dirs=("/tmp", "/tmp/w"))
    assert [e for e in got.events if e[0] == "internal-error"] == []
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0
