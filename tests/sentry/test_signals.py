"""Signals served by the Sentry (handlers, frames, masks, timers, EINTR/SA_RESTART, faults,
SIGCHLD, default actions), each run compared with the same program run natively."""

from pathlib import Path

from .platform_helpers import build_c, native, run_vfs

PROGS = Path(__file__).resolve().parent / "progs"


async def test_signal_semantics_match_linux(tmp_path):
    prog = build_c(tmp_path, "signals", (PROGS / "signals.c").read_text(), "-static", "-w")
    st, out = native([prog])
    assert st == 0 and b"pause: -1 EINTR ran=1" in out, out  # the oracle itself is sane
    status, got, k, _ = await run_vfs(["/signals"], {"/signals": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events


async def test_more_signal_semantics_match_linux(tmp_path):
    """A garbage rt_sigreturn frame (SIGSEGV, the Sentry unharmed), queued real-time
    signals with values, sigsuspend's mask, SIGPIPE to a handler, SIGFPE's si_code, and
    glibc's set*id broadcast to every thread."""
    prog = build_c(tmp_path, "signals_more", (PROGS / "signals_more.c").read_text(),
                   "-static", "-w", "-pthread")
    st, out = native([prog])
    assert st == 0 and b"setgid with threads: 0" in out, out
    status, got, k, _ = await run_vfs(["/signals_more"], {"/signals_more": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] == "internal-error"]
