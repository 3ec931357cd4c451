"""What the random-syscall fuzzer (test_syscall_fuzz.py) found, each compared with Linux
(progs/fuzz_found.c): shmget of a segment larger than any file failed inside the Sentry
(a host ftruncate overflowed) instead of answering EINVAL; fallocate modes beyond the
supported mask; creat and openat2 of a FIFO with no peer, flock and F_OFD_SETLKW waiting
for a lock held elsewhere could not be cut short by a handled signal (a hang where Linux
answers EINTR: they were missing from the interruptible calls)."""

from __future__ import annotations

from tests.sentry.progs.harness import build, native_in_scratch, sentry_run


async def test_fuzz_findings_match_native(tmp_path):
    prog = build(tmp_path, "fuzz_found")
    want = native_in_scratch(prog)
    assert want.code == 0, want.stderr
    got = await sentry_run([prog, "/tmp/w"], dirs=("/tmp", "/tmp/w"))
    assert [e for e in got.events if e[0] == "internal-error"] == []
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0
