"""signalfd and signalfd4 served by the Sentry, compared with Linux: records for raise,
kill, sigqueue and SIGCHLD, EAGAIN and blocking reads woken by another process, mask
updates, poll/select/epoll readiness, per-thread pending signals, EINTR, fork, errors."""

from pathlib import Path

from .platform_helpers import build_c, native, run_vfs

PROGS = Path(__file__).resolve().parent / "progs"


async def test_signalfd_matches_linux(tmp_path):
    prog = build_c(tmp_path, "signalfd", (PROGS / "signalfd.c").read_text(), "-static", "-w",
                   "-pthread")
    st, out = native([prog])
    assert st == 0 and b"signo 17 code 1 pid ok uid 0 status 7" in out, out  # a sane oracle
    status, got, k, _ = await run_vfs(["/signalfd"], {"/signalfd": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]


def test_more_with_signalfd_matches_linux():
    """util-linux `more` blocks INT/QUIT/CONT/TSTP/WINCH and reads them from a signalfd."""
    from tests.runtime.test_workloads import compare
    from tests.support import need_binary

    need_binary("more", "util-linux")
    compare(["more", "/etc/hostname", "/etc/os-release"])
