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


async def test_epoll_edge_triggered_on_tcp_sockets_matches_linux(tmp_path):
    """EPOLLET on connected loopback TCP sockets (CPython's test_epoll
    test_control_and_wait): one EPOLLOUT edge after ADD, none while nothing changes, one
    EPOLLIN|EPOLLOUT once data arrives; natively in a fresh network namespace with lo up,
    as the sandbox's default network mode."""
    from tests.sentry.progs.harness import build, sentry_run
    from tests.sentry.progs.harness import native as native_run
    from tests.sentry.test_socket_inet import _in_fresh_netns
    from tests.support import need_root

    need_root()
    prog = build(tmp_path, "epoll_et_inet")
    want = native_run(_in_fresh_netns(prog))
    assert want.code == 0 and b"again, nothing new: n=0" in want.stdout, want.stderr
    got = await sentry_run([prog])
    assert got.stdout.decode() == want.stdout.decode(), got.events
    assert got.status == want.status
    assert not [e for e in got.events if e[0] in ("internal-error", "unsupported-syscall")]
