"""O_ASYNC on inotify, pty (POLL_IN, and POLL_OUT once writable after a short write) and
message-queue files, and on files without fasync (kept by neither F_SETFL nor FIOASYNC),
compared with Linux: progs/fasync_files.c (under `runpsc do`,
which has /dev/pts) and progs/fasync_none.c natively and in the sandbox."""

from __future__ import annotations

import subprocess

from tests.runtime.test_do import runpsc
from tests.support import native_child_setup

from .progs.harness import build, native, sentry_run


def test_fasync_files_match_linux(tmp_path):
    prog = build(tmp_path, "fasync_files")
    want = subprocess.run([prog], capture_output=True, stdin=subprocess.DEVNULL, timeout=60,
                          preexec_fn=native_child_setup)
    assert want.returncode == 0 and b"canonical line: rt code 1" in want.stdout, want
    assert b"replica writable again: rt code 2 band 0x304" in want.stdout, want  # POLL_OUT
    got = runpsc("do", "--volume", f"{tmp_path}:/progs:ro", "--", "/progs/fasync_files")
    assert got.stdout.decode() == want.stdout.decode(), got.stderr
    assert got.returncode == 0


async def test_o_async_without_fasync_matches_linux(tmp_path):
    prog = build(tmp_path, "fasync_none")
    want = native([prog])
    assert want.code == 0 and b"eventfd: setfl kept 0 fioasync -1 ENOTTY" in want.stdout
    got = await sentry_run([prog], dirs=("/tmp", "/dev"))
    assert got.stdout.decode() == want.stdout.decode(), got.events
    assert got.status == want.status
