"""Signals served by the Sentry (handlers, frames, masks, timers, EINTR/SA_RESTART, faults,
SIGCHLD, default actions), each run compared with the same program run natively."""

import sys
from pathlib import Path

from tests.sentry.progs import harness
from tests.support import native_child_setup, need_root

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


#: Runs argv[1:] as the init of a new pid namespace and dies as it died (`unshare -fp`
#: reports a child killed by SIGKILL as its own exit status 1).
AS_INIT = """
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).unshare(0x20000000) != 0:  # CLONE_NEWPID
    sys.exit(f"unshare: {os.strerror(ctypes.get_errno())}")
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, st = os.waitpid(pid, 0)
if os.WIFSIGNALED(st):
    os.kill(os.getpid(), os.WTERMSIG(st))
sys.exit(os.waitstatus_to_exitcode(st))
"""

TERM_PROG = r"""
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static volatile sig_atomic_t got;
static void on_term(int sig) { got = sig; }
int main(void) {
    signal(SIGTERM, on_term);
    write(1, "ready\n", 6);
    while (!got) pause();
    printf("handled %d\n", got);
    fflush(stdout);
    for (;;) pause();  /* SIGINT (default action) spares init; SIGKILL ends it */
}
"""


async def test_signal_from_outside_reaches_handler(tmp_path):
    """`signals.kill_from_host` (for the runtime's kill/Ctrl-C): a handled SIGTERM runs the
    program's handler; SIGINT, which it does not handle, is dropped (the program is pid 1,
    its namespace's init); SIGKILL from outside ends it. Natively: the program as the init
    of a new pid namespace (`AS_INIT`), signalled from this ancestor namespace."""
    import os
    import subprocess

    import trio

    import sentry.syscalls  # noqa: F401 - registers the handlers the Kernel serves
    from sentry.kernel import Kernel, signals
    from sentry.kernel.fdtable import FDTable
    from vfs import Credentials, Tmpfs, VirtualFilesystem
    from vfs.fs.host import HostFD

    prog = build_c(tmp_path, "term", TERM_PROG, "-static", "-w")
    need_root()
    # natively first: the same three signals from outside
    p = subprocess.Popen([sys.executable, "-c", AS_INIT, prog], stdout=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, preexec_fn=native_child_setup)
    native_out = p.stdout.readline()
    init, = map(int, Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split())
    os.kill(init, 15)
    native_out += p.stdout.readline()
    os.kill(init, 2)
    os.kill(init, 9)
    native_out += p.stdout.read()
    native_status = -p.wait()
    vfs = VirtualFilesystem(Tmpfs())
    ctx, creds = vfs.new_context(), Credentials.root()
    f = await vfs.open(ctx, creds, None, b"/term", os.O_CREAT | os.O_WRONLY, 0o755)
    await f.write(Path(prog).read_bytes())
    await f.dec_ref()
    r, w = os.pipe()
    fdt = FDTable()
    for fd in (os.open("/dev/null", os.O_RDONLY), w, os.dup(w)):
        fdt.install(HostFD(fd))
    k = Kernel(vfs=vfs)
    out = bytearray()
    status = None

    async def read_until(marker: bytes) -> None:
        while marker not in out:
            await trio.lowlevel.wait_readable(r)
            chunk = os.read(r, 100)
            assert chunk, (bytes(out), k.events)  # EOF: the program ended too early
            out.extend(chunk)

    async def runner() -> None:
        nonlocal status
        status = await k.run([b"/term"], [], fdt, ctx, creds)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner)
            await read_until(b"ready\n")
            assert signals.kill_from_host(k, 1, 15)
            await read_until(b"handled 15\n")
            assert signals.kill_from_host(k, 1, 2)
            assert signals.kill_from_host(k, 1, 9)
    finally:
        os.close(r)
    assert native_out == b"ready\nhandled 15\n" and native_status == 9
    assert (bytes(out), status) == (native_out, native_status)


async def test_rlimit_sigpending_matches_linux(tmp_path):
    """RLIMIT_SIGPENDING (progs/sigpending.c, as root turning itself into a uid no other
    process has, natively and in the sandbox): EAGAIN, lost siginfo and the signals that
    go beyond the limit."""
    need_root()
    prog = harness.build(tmp_path, "sigpending")
    want = harness.native([prog])
    assert want.code == 0, want.stderr
    assert b"sigqueue SIGRTMIN value 3 = -1 Resource temporarily unavailable\n" \
        in want.stdout, want.stdout  # a sane oracle
    got = await harness.sentry_run([prog])
    assert [e for e in got.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0
