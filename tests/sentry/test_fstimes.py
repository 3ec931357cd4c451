"""atime under relatime (read, getdents; not through O_NOATIME), zero-length
writes changing no time, and getdents of a directory removed while open (ENOENT):
progs/fstimes.c natively and in the sandbox (on its tmpfs /tmp)."""

from tests.sentry.progs.harness import build, native_in_scratch, sentry_run


async def test_times_and_removed_directories_as_linux(tmp_path):
    prog = build(tmp_path, "fstimes")
    want = native_in_scratch(prog)
    assert b"read: atime changed" in want.stdout, want  # a sane oracle (relatime)
    got = await sentry_run([prog, "/tmp/fstimes"])
    assert got.stdout.decode() == want.stdout.decode(), (got.stderr, got.events)
    assert got.status == want.status, got.events
