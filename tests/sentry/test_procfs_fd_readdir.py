"""Reading /proc/self/fd while closing what it lists (CPython's subprocess does this in
the child before exec): no fd skipped, each entry's d_off as Linux's, compared with the
native run."""

from tests.sentry.progs.harness import build
from tests.sentry.test_procfs import native, run_with_proc


async def test_closing_fds_while_listing_proc_self_fd_matches_linux(tmp_path):
    prog = build(tmp_path, "procfd_readdir")
    st, want = native([prog], executable=prog, env={})
    assert st == 0 and b"open after the loop: 0 1 2\n" in want, want
    status, got, k = await run_with_proc(["/procfd_readdir"], {"/procfd_readdir": prog})
    assert got.decode() == want.decode(), k.events
    assert status == st
