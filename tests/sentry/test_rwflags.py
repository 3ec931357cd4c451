"""preadv2/pwritev2's RWF_* flags served by the Sentry, compared with Linux: the flags
taken (HIPRI, DSYNC, SYNC) on a tmpfs file and a pipe, unknown bits refused with
EOPNOTSUPP, and the order of checks (EBADF and EFAULT before the flags)."""

from tests.sentry.progs.harness import build, native_in_scratch, sentry_run


async def test_rw_flags_match_linux(tmp_path):
    prog = build(tmp_path, "rwflags")
    want = native_in_scratch(prog)
    assert want.status == 0 and b"preadv2 file at 1 HIPRI            4" in want.stdout
    got = await sentry_run([prog, "/tmp"])
    assert got.stdout.decode() == want.stdout.decode(), got.events
    assert got.status == want.status
