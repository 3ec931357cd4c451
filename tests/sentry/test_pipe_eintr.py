"""A blocking pipe write cut short by a signal after some bytes went returns their count,
as Linux's pipe_write (also when the Sentry moves a large writev in chunks); one that
wrote nothing is EINTR. progs/pipe_eintr.c natively and in the sandbox."""

from pathlib import Path

from .platform_helpers import build_c, native, run_vfs

PROGS = Path(__file__).resolve().parent / "progs"


async def test_interrupted_pipe_writes_return_their_count(tmp_path):
    prog = build_c(tmp_path, "pipe_eintr", (PROGS / "pipe_eintr.c").read_text(), "-static", "-w")
    st, out = native([prog])
    assert b"write of 2 x capacity: capacity\n" in out, out  # a sane oracle
    status, got, k, _ = await run_vfs(["/pipe_eintr"], {"/pipe_eintr": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] == "internal-error"]
