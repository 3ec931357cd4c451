"""Job control (stop signals, SIGCONT, wait's WUNTRACED/WCONTINUED/WNOWAIT, SIGCHLD's
CLD_STOPPED/CLD_CONTINUED, orphaned process groups) and reparenting to a child subreaper,
each compared with the same program run natively."""

from pathlib import Path

from .platform_helpers import build_c, native
from .test_procfs import run_with_proc

PROGS = Path(__file__).resolve().parent / "progs"


async def test_job_control_and_subreaper_match_linux(tmp_path):
    prog = build_c(tmp_path, "jobctl", (PROGS / "jobctl.c").read_text(), "-static", "-w",
                   "-pthread")
    st, want = native([prog])
    assert st == 0 and want.endswith(b"done\n"), want
    assert b"State:\tT (stopped)" in want and b"counter 3 still while stopped: 1" in want
    status, got, k = await run_with_proc(["/jobctl"], {"/jobctl": prog})
    assert got.decode() == want.decode(), k.events
    assert status == st
    assert not [e for e in k.events if e[0] == "internal-error"]
