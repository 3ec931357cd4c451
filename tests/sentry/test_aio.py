"""Linux AIO (io_setup, io_submit, io_getevents, io_pgetevents, io_cancel, io_destroy)
compared with Linux (progs/aio.c), errors included."""

from __future__ import annotations

from tests.sentry.progs.harness import build, native_in_scratch, sentry_run


async def test_aio_matches_native(tmp_path):
    prog = build(tmp_path, "aio")
    want = native_in_scratch(prog)
    assert want.code == 0, want.stderr
    got = await sentry_run([prog, "/tmp/w"], dirs=("/tmp", "/tmp/w"))
    assert [e for e in got.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0
