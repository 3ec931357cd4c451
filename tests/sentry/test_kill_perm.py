"""Who may signal whom (Linux's check_kill_permission), compared with a native run:
progs/killperm.c's child drops to uid 65534 and signals root processes (EPERM; SIGCONT
within its session allowed) and processes of its own uid, by kill, a process group,
tgkill and rt_sigqueueinfo."""

from pathlib import Path

from tests.support import need_root

from .platform_helpers import build_c, native, run_vfs

PROGS = Path(__file__).resolve().parent / "progs"


async def test_kill_permissions_match_linux(tmp_path):
    need_root()
    prog = build_c(tmp_path, "killperm", (PROGS / "killperm.c").read_text(), "-static", "-w")
    st, out = native([prog])
    assert b"kill parent SIGUSR1: Operation not permitted" in out, out  # a sane oracle
    status, got, k, _ = await run_vfs(["/killperm"], {"/killperm": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] == "internal-error"]
