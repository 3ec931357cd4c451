"""The caller's terminal while a sandbox with its own pty runs: raw mode, its guardian,
and the pump between the host terminal and the sandbox's pty master.

Why raw mode: the sandbox's terminal (devpts in the Sentry) does the line editing, echo
and ^C/^Z itself, so the host terminal must pass every key through untouched and print
what the sandbox's terminal sends. Why a guardian: raw mode must not outlive `runpsc do`
on any exit path, including SIGKILL, which no handler sees. Before switching, `runpsc do`
forks a small process that keeps the saved settings and a pipe whose only writer is
`runpsc do`; if the pipe reaches end of file without the word "done" (the Sentry died),
the guardian writes the saved settings back (it ignores SIGTTOU, so it may from the
background too, and the job-control keys) and exits. A normal exit restores the settings
itself, says "done" and reaps the guardian, so the guardian never touches a terminal the
caller's shell already uses again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import struct
import termios
import tty
from typing import Any

_IGNORED = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
            signal.SIGHUP, signal.SIGTERM, signal.SIGWINCH)
_CHUNK = 4096


class HostTerminal:
    """The caller's terminal in raw mode for the life of a `runpsc do`, with its guardian.

    Use `HostTerminal.enter(fd)` (fd: the terminal runpsc reads keys from) and always
    `leave()`; `leave` is idempotent.
    """

    def __init__(self, fd: int, saved: list[Any], guardian: int, pipe_w: int) -> None:
        self.fd = fd
        self.saved = saved
        self.guardian = guardian
        self._pipe_w = pipe_w

    @classmethod
    def enter(cls, fd: int) -> HostTerminal:
        saved = termios.tcgetattr(fd)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the guardian
            code = 0
            try:
                for sig in _IGNORED:
                    signal.signal(sig, signal.SIG_IGN)
                os.close(w)
                lo = 3
                for k in sorted({fd, r}):
                    if k >= lo:
                        os.closerange(lo, k)
                        lo = k + 1
                os.closerange(lo, 1 << 20)
                word = b""
                while True:
                    try:
                        got = os.read(r, 16)
                    except InterruptedError:
                        continue
                    if not got:
                        break
                    word += got
                if word != b"done":
                    termios.tcsetattr(fd, termios.TCSANOW, saved)
            except BaseException:  # noqa: BLE001 - a guardian never raises into the CLI
                code = 1
            finally:
                os._exit(code)
        os.close(r)
        tty.setraw(fd, termios.TCSANOW)
        return cls(fd, saved, pid, w)

    def leave(self) -> None:
        """Restore the saved settings, dismiss the guardian and reap it."""
        if self._pipe_w < 0:
            return
        with contextlib.suppress(OSError):
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        with contextlib.suppress(OSError):
            os.write(self._pipe_w, b"done")
        os.close(self._pipe_w)
        self._pipe_w = -1
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.guardian, 0)


def host_winsize(fd: int) -> tuple[int, int, int, int]:
    """The terminal's (rows, cols, xpixel, ypixel)."""
    out = fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8))
    rows, cols, x, y = struct.unpack("<4H", out)
    return rows, cols, x, y


async def pump(master: Any, fd_in: int | None, fd_out: int) -> None:
    """Copy keys from the host terminal `fd_in` to the sandbox's pty `master`, its output to
    `fd_out`, and host window changes (SIGWINCH) to the pty, until cancelled. End of file or
    an error on the host terminal hangs the sandbox's terminal up (SIGHUP to its session
    leader)."""
    import trio

    from vfs.abi import POLLOUT, POLLWRNORM
    from vfs.fs.devpts import Winsize

    term = master.term

    def resize() -> None:
        with contextlib.suppress(OSError):
            term.set_winsize(Winsize(*host_winsize(fd_out)))

    async def keys() -> None:
        assert fd_in is not None
        while True:
            await trio.lowlevel.wait_readable(fd_in)
            try:
                data = os.read(fd_in, _CHUNK)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                term.hangup()
                return
            await master.write(data)

    async def screen() -> None:
        # Bytes leave the pty's queue only once written, so that a cancelled pump loses
        # nothing: `drain` writes what is left.
        out = term.out
        while True:
            if not out:
                if term.replica_closed:
                    return
                await term.wait()
                continue
            await trio.lowlevel.wait_writable(fd_out)
            try:
                n = os.write(fd_out, out[:_CHUNK])
            except BlockingIOError:
                continue
            except OSError:
                return  # the host terminal is gone
            del out[:n]
            term.changed(POLLOUT | POLLWRNORM)

    async def winch() -> None:
        with trio.open_signal_receiver(signal.SIGWINCH) as got:
            async for _ in got:
                resize()

    resize()
    async with trio.open_nursery() as nursery:
        if fd_in is not None:
            nursery.start_soon(keys)
        nursery.start_soon(screen)
        nursery.start_soon(winch)


def drain(master: Any, fd_out: int) -> None:
    """What the sandbox wrote and the pump did not copy yet (its last words), at the end."""
    out = master.term.out
    data, out[:] = bytes(out), b""
    with contextlib.suppress(OSError):
        view = memoryview(data)
        while view:
            view = view[os.write(fd_out, view):]
