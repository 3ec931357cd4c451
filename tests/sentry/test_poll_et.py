"""EPOLLET served edge-triggered by the Sentry, compared with Linux: one report per
readiness notification (new data in a pipe, space freed in a full pipe, hang-up, a new
signal for a signalfd), not again while the file stays ready; ADD and MOD of a ready file;
EPOLLET|EPOLLONESHOT; a blocked epoll_wait woken by another process; an epoll fd inside
another epoll."""

from pathlib import Path

from .platform_helpers import build_c, native, run_vfs

PROGS = Path(__file__).resolve().parent / "progs"


async def test_epoll_edge_triggered_matches_linux(tmp_path):
    prog = build_c(tmp_path, "epoll_et", (PROGS / "epoll_et.c").read_text(), "-static", "-w")
    st, out = native([prog])
    assert st == 0 and b"again, still readable: 0" in out, out  # the oracle is sane
    status, got, k, _ = await run_vfs(["/epoll_et"], {"/epoll_et": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]


PY_EPOLLET = """
import os, select
r, w = os.pipe()
os.set_blocking(r, False)
ep = select.epoll()
ep.register(r, select.EPOLLIN | select.EPOLLET)
show = lambda: print([(fd == r, ev) for fd, ev in ep.poll(0)])
show()
os.write(w, b"a"); show(); show()
os.write(w, b"b"); show()
print(os.read(r, 1)); show()
print(os.read(r, 10)); show()
os.close(w); show(); show()
"""


def test_python_epollet_matches_linux():
    """python3's select.epoll with EPOLLET on a pipe: one event per write, none while
    the data merely stays, one for the hang-up."""
    from tests.runtime.test_workloads import compare
    from tests.support import need_binary

    need_binary("python3")
    compare(["python3", "-c", PY_EPOLLET])
