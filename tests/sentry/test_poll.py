"""poll, ppoll, select, pselect6 and epoll served by the Sentry, compared with Linux: a C program
on pipes (ready, not ready, timeouts, a writer in another process, POLLHUP/POLLERR,
POLLNVAL, EBADF/EINVAL/EFAULT, EINTR from a handler, the temporary signal mask), and GNU
make -j2, whose jobserver waits in pselect6 with SIGCHLD unblocked only for the wait."""

from pathlib import Path

from tests.runtime.test_workloads import MAKE_FILES, compare
from tests.support import need_binary, need_root

from .platform_helpers import build_c, native, run_vfs
from .test_procfs import run_with_proc

PROGS = Path(__file__).resolve().parent / "progs"


async def test_poll_select_match_linux(tmp_path):
    prog = build_c(tmp_path, "poll", (PROGS / "poll.c").read_text(), "-static", "-w")
    st, out = native([prog])
    assert st == 0 and b"pselect interrupted: -1 EINTR" in out, out  # the oracle is sane
    status, got, k, _ = await run_vfs(["/poll"], {"/poll": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]


async def test_epoll_matches_linux(tmp_path):
    """epoll_create/create1/ctl/wait/pwait/pwait2 on pipes: level-triggered reports, EPOLLONESHOT
    and re-arming by MOD, errnos, a writer in another process, an epoll fd inside poll,
    EINTR, epoll_pwait's temporary mask, POLLHUP, and closing the epoll fd."""
    prog = build_c(tmp_path, "epoll", (PROGS / "epoll.c").read_text(), "-static", "-w")
    st, out = native([prog])
    assert st == 0 and b"epoll_pwait interrupted: -1 EINTR" in out, out
    status, got, k, _ = await run_vfs(["/epoll"], {"/epoll": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]


async def test_epoll_ctl_wakes_a_waiting_thread_as_linux(tmp_path):
    """A MOD adding a ready event, an ADD of a ready fd and an ADD of an fd made ready
    later (TCP sockets on loopback, pipes) wake another thread's level-triggered
    epoll_wait, as Linux's ep_modify/ep_insert do (/proc tells the program it sleeps)."""
    need_root()  # the sandbox's loopback lives in a network namespace of its own
    prog = build_c(tmp_path, "epoll_wake", (PROGS / "epoll_wake.c").read_text(), "-static",
                   "-w")
    st, out = native([prog])
    assert st == 0 and out.count(b": n=1 events") == 5 and b"timer" not in out, out  # the oracle is sane
    status, got, k = await run_with_proc(["/epoll_wake"], {"/epoll_wake": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st
    assert not [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]

def test_make_j2_two_file_program(tmp_path: Path):
    """make -j2 runs both compiles at once and reaps them through its jobserver."""
    need_binary("make")
    src = tmp_path / "src"
    src.mkdir()
    for name, text in MAKE_FILES.items():
        (src / name).write_text(text)
    compare(["bash", "-c",
             'cp -r "$SRC" "$OUT/b" && make -s -j2 -C "$OUT/b" && "$OUT/b/prog"'],
            volumes={str(src): "/src"},
            env={"SRC": (str(src), "/src"), "OUT": (str(tmp_path), "/tmp")})
