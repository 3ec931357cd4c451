"""setitimer/getitimer for ITIMER_VIRTUAL and ITIMER_PROF, and RLIMIT_CPU, served by the
Sentry (CPU time sampled from the stub's host accounting), compared with Linux: signals after burning CPU,
re-arming intervals, values within what was set, sleep not counted, NULL disarms, fork,
execve, SIGVTALRM's default action. No timing is asserted."""

from pathlib import Path

from .platform_helpers import build_c, native, run_vfs

PROGS = Path(__file__).resolve().parent / "progs"


async def test_cpu_itimers_match_linux(tmp_path):
    prog = build_c(tmp_path, "itimer", (PROGS / "itimer.c").read_text(), "-static", "-w")
    st, out = native([prog])
    assert st == 0 and b"three SIGPROF arrived 1" in out, out  # the oracle is sane
    status, got, k, _ = await run_vfs(["/itimer"], {"/itimer": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]
