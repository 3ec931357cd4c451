"""splice, tee, vmsplice, sendfile and copy_file_range between pipes and files, compared
with Linux (progs/splice.c), errors included."""

from __future__ import annotations

from tests.sentry.progs.harness import build, native_in_scratch, sentry_run


async def test_splice_family_matches_native(tmp_path):
    prog = build(tmp_path, "splice")
    want = native_in_scratch(prog)
    assert want.code == 0, want.stderr
    got = await sentry_run([prog, "/tmp/w"], dirs=("/tmp", "/tmp/w"))
    assert [e for e in got.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0
