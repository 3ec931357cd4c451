"""A blocking pipe write cut short by a signal after some bytes went returns their count,
as Linux's pipe_write (also when the Sentry moves a large writev in chunks); one that
wrote nothing is EINTR. progs/pipe_eintr.c natively and in the sandbox."""

from tests.sentry.progs.harness import build, native, sentry_run


async def test_interrupted_pipe_writes_return_their_count(tmp_path):
    prog = build(tmp_path, "pipe_eintr")
    want = native([prog])
    assert b"write of 2 x capacity: capacity\n" in want.stdout, want  # a sane oracle
    got = await sentry_run([prog])
    assert got.stdout.decode() == want.stdout.decode(), got.events
    assert got.status == want.status, got.events
    assert not [e for e in got.events if e[0] == "internal-error"]
