"""kill(-1, sig) compared with Linux inside a PID namespace (issue 19, finding 6;
progs/killall.c natively under `unshare -fp --mount-proc` and as the sandbox's pid 1):
the caller's whole thread group and init are skipped, ESRCH when nobody else is left,
and SIGKILL sent to -1 from pid 1 or from a child leaves the sender and pid 1 running."""

from pathlib import Path

from tests.support import need_binary, need_root

from .platform_helpers import build_c, native, run_vfs

PROGS = Path(__file__).resolve().parent / "progs"


async def test_kill_minus_one_matches_a_pid_namespace(tmp_path):
    need_root()
    unshare = need_binary("unshare", "util-linux")
    prog = build_c(tmp_path, "killall", (PROGS / "killall.c").read_text(), "-static", "-w",
                   "-pthread")
    st, out = native([unshare, "-fp", "--mount-proc", prog])
    assert st == 0 and out.endswith(b"pid 1 still runs\n"), out  # a sane oracle
    status, got, k, _ = await run_vfs(["/killall"], {"/killall": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] == "internal-error"]
