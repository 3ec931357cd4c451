"""A pseudo-terminal pair: the `Terminal` both ends share, the master's and the replica's
open files, and the job-control hook through which the Sentry decides who may use it.

Why the hook: the VFS knows no processes, yet a terminal's read, write and open depend on
who calls (a background process group reading gets SIGTTIN; a session leader opening a
terminal may acquire it as its controlling terminal; ^C signals the foreground group).
The Sentry implements `JobControl` and sets it on the `DevPts` that made the terminal.

What a terminal holds: the termios settings and window size, the line discipline (input
typed at the master, readable at the replica), the output queue (written at the replica,
readable at the master), the session and foreground process group it controls (plain
numbers the Sentry owns; 0 for none), and whether it is locked (unlockpt) or hung up.
As on Linux, the termios and window size ioctls act on the same terminal from either end,
TCSETSW and TCSBRK do not wait (a pty has no transmitter to drain), and a replica reads
end of file and writes EIO once the master is closed (hang-up).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import trio

from ...abi import (
    O_NONBLOCK,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLOUT,
    POLLRDNORM,
    POLLWRNORM,
)
from ...errors import error
from ...file import FileDescription, Memory, WaitQueue
from .linedisc import LineDiscipline
from .termios import (
    TERMIOS_SIZE,
    TOSTOP,
    VMIN,
    VSTART,
    VSTOP,
    VTIME,
    WINSIZE_SIZE,
    Termios,
    Winsize,
)

if TYPE_CHECKING:
    from ...mount import VirtualDentry

TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TCSBRK, TCXONC, TCFLSH, TIOCEXCL, TIOCNXCL = 0x5409, 0x540A, 0x540B, 0x540C, 0x540D
TIOCSCTTY, TIOCGPGRP, TIOCSPGRP, TIOCOUTQ = 0x540E, 0x540F, 0x5410, 0x5411
TIOCGWINSZ, TIOCSWINSZ, FIONREAD, TIOCNOTTY = 0x5413, 0x5414, 0x541B, 0x5422
TIOCSETD, TIOCGETD, TCSBRKP, TIOCSBRK, TIOCCBRK, TIOCGSID = (
    0x5423, 0x5424, 0x5425, 0x5427, 0x5428, 0x5429)
TCGETS2, TCSETS2, TCSETSW2, TCSETSF2 = 0x802C542A, 0x402C542B, 0x402C542C, 0x402C542D
TIOCGPTN, TIOCSPTLCK, TIOCGPTLCK, TIOCGPTPEER = 0x80045430, 0x40045431, 0x80045439, 0x5441
TCOOFF, TCOON, TCIOFF, TCION = 0, 1, 2, 3
TCIFLUSH, TCOFLUSH, TCIOFLUSH = 0, 1, 2
SIGWINCH = 28
#: Output written at the replica and not yet read at the master, at most (a writer waits).
OUTPUT_LIMIT = 65536
#: The two ends of a terminal, as indexes of its per-end state.
REPLICA, MASTER = 0, 1
#: si_code of O_ASYNC's signal (Linux's POLL_IN, POLL_OUT).
_POLL_IN, _POLL_OUT = 1, 2
_SPEEDS = struct.Struct("<II")
_BAUD_38400 = 38400


class JobControl(Protocol):
    """What the Sentry decides for a terminal (every method runs in the caller's syscall;
    the master's side outside the sandbox calls with no current task)."""

    def signal(self, term: Terminal, sig: int) -> None:
        """Send `sig` to the terminal's foreground process group (^C, ^Z, ^\\, SIGWINCH)."""

    def check_read(self, term: Terminal) -> None:
        """A replica read: a background group of the terminal's session gets SIGTTIN (the
        call raises EINTR to be restarted) or EIO."""

    def check_write(self, term: Terminal) -> None:
        """A replica write under TOSTOP: a background group gets SIGTTOU."""

    def opened(self, term: Terminal, flags: int) -> None:
        """A replica was opened (without O_NOCTTY it may become the caller's controlling
        terminal)."""

    def hangup(self, term: Terminal) -> None:
        """The master is gone: SIGHUP and SIGCONT to the session leader; the session loses
        its terminal."""


class Terminal:
    """One pty pair's shared state (Linux's tty_struct pair)."""

    def __init__(self, index: int, control: JobControl | None = None) -> None:
        self.index = index
        self.termios = Termios()
        self.winsize = Winsize()
        self.control = control
        self.out = bytearray()  # written at the replica, read at the master
        self.ld = LineDiscipline(self.termios, self._echo, self._isig)
        self.sid = 0  # the session this is the controlling terminal of
        self.pgrp = 0  # its foreground process group
        self.locked = True  # ptmx starts locked; unlockpt (TIOCSPTLCK 0) opens the replica
        self.master_open = True
        self.replicas = 0  # open replica descriptions
        self.replica_closed = False  # every replica opened so far is closed again
        self.hung_up = False
        #: Input typed at the master, and output queued for it, so far (O_ASYNC's POLL_IN
        #: for each end: `TerminalFD.fasync_reason`).
        self.typed_seq = self.out_seq = 0
        #: For each end (REPLICA, MASTER), as Linux's tty->fasync and TTY_DO_WRITE_WAKEUP:
        #: its open files with O_ASYNC, whether a write there fell short while it had some,
        #: and how many POLL_OUT wake-ups it got since (`write_fell_short`, `changed`).
        self.fasync_files = [0, 0]
        self.write_wakeup = [False, False]
        self.wakeups = [0, 0]
        self.waitq = WaitQueue()
        self._changed = trio.Event()
        self._last_input = 0.0  # trio time of the last typed byte (VTIME)
        #: called once the master is closed (devpts removes /dev/pts/N)
        self.on_master_close: Callable[[Terminal], None] | None = None

    # -- notification ------------------------------------------------------------------------

    def changed(self, mask: int = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM) -> None:
        self._changed.set()
        self._changed = trio.Event()
        self.waitq.notify(mask)
        if mask & POLLOUT:
            # n_tty_write_wakeup: an end whose write fell short gets one POLL_OUT for its
            # O_ASYNC files once it can be written again.
            for end, writable in ((REPLICA, self.replica_writable),
                                  (MASTER, self.master_writable)):
                if self.write_wakeup[end] and writable():
                    self.write_wakeup[end] = False
                    self.wakeups[end] += 1
                    self.waitq.notify(POLLOUT | POLLWRNORM)

    def write_fell_short(self, end: int) -> None:
        """A write at `end` (REPLICA, MASTER) did not take all its bytes (no room, a
        signal, a hang-up): with O_ASYNC files there, they get POLL_OUT once it has room
        again (n_tty_write's TTY_DO_WRITE_WAKEUP)."""
        if self.fasync_files[end]:
            self.write_wakeup[end] = True

    def replica_writable(self) -> bool:
        return len(self.out) < OUTPUT_LIMIT and not self.ld.stopped

    def master_writable(self) -> bool:
        return self.ld.canonical or self.ld.room() > 0

    async def wait(self, deadline: float = float("inf")) -> None:
        with trio.move_on_at(deadline):
            await self._changed.wait()

    def _echo(self, data: bytes) -> None:
        self.out += data
        self.out_seq += 1

    def _isig(self, sig: int) -> None:
        if self.control is not None:
            self.control.signal(self, sig)

    # -- the two sides -----------------------------------------------------------------------

    def typed(self, data: bytes) -> int:
        """Bytes written at the master: through the line discipline; how many were taken."""
        n = self.ld.receive(data)
        if n:
            self._last_input = trio.current_time()
            self.typed_seq += 1
            self.changed()
        return n

    def set_winsize(self, ws: Winsize) -> None:
        """TIOCSWINSZ from either end: SIGWINCH to the foreground group if it changed."""
        if ws == self.winsize:
            return
        self.winsize = ws
        if self.control is not None:
            self.control.signal(self, SIGWINCH)

    def hangup(self) -> None:
        """The master closed: the replica side hangs up (tty_vhangup)."""
        if self.hung_up:
            return
        self.hung_up = True
        if self.control is not None and self.sid:
            self.control.hangup(self)
        self.sid = self.pgrp = 0
        self.changed(POLLIN | POLLOUT | POLLHUP | POLLERR)

    def replica_readable(self, for_poll: bool) -> bool:
        ld = self.ld
        if ld.canonical:
            return ld.has_line()
        cc = self.termios.cc
        need = cc[VMIN] if for_poll and not cc[VTIME] and cc[VMIN] else 1
        return len(ld.raw) >= need

    # -- ioctls shared by both ends ------------------------------------------------------------

    def termios_ioctl(self, cmd: int, arg: int, mem: Memory) -> int | None:
        """The requests that act on the terminal whichever end is used; None if `cmd` is
        not one of them."""
        if cmd in (TCGETS, TCGETS2):
            data = self.termios.pack()
            if cmd == TCGETS2:
                data += _SPEEDS.pack(_BAUD_38400, _BAUD_38400)
            mem.mem_write(arg, data)
            return 0
        if cmd in (TCSETS, TCSETSW, TCSETSF, TCSETS2, TCSETSW2, TCSETSF2):
            new = Termios.unpack(mem.mem_read(arg, TERMIOS_SIZE))
            if cmd in (TCSETS2, TCSETSW2, TCSETSF2):
                mem.mem_read(arg + TERMIOS_SIZE, _SPEEDS.size)
            if cmd in (TCSETSF, TCSETSF2):
                self.ld.flush_input()
            self.ld.set_termios(new)
            self.changed()
            return 0
        if cmd == TIOCGWINSZ:
            mem.mem_write(arg, self.winsize.pack())
            return 0
        if cmd == TIOCSWINSZ:
            self.set_winsize(Winsize.unpack(mem.mem_read(arg, WINSIZE_SIZE)))
            return 0
        if cmd in (TCSBRK, TCSBRKP, TIOCSBRK, TIOCCBRK):
            return 0  # nothing to drain, no line to break
        if cmd == TCXONC:
            if arg == TCOOFF:
                self.ld.stopped = True
            elif arg == TCOON:
                self.ld.stopped = False
            elif arg in (TCIOFF, TCION):
                c = self.termios.cc[VSTOP if arg == TCIOFF else VSTART]
                if c:
                    self.out.append(c)
            else:
                raise error(errno.EINVAL)
            self.changed()
            return 0
        if cmd == TCFLSH:
            if arg not in (TCIFLUSH, TCOFLUSH, TCIOFLUSH):
                raise error(errno.EINVAL)
            if arg in (TCIFLUSH, TCIOFLUSH):
                self.ld.flush_input()
            if arg in (TCOFLUSH, TCIOFLUSH):
                self.out.clear()
            self.changed()
            return 0
        if cmd == TIOCGETD:
            mem.mem_write(arg, struct.pack("<i", 0))  # N_TTY
            return 0
        if cmd == TIOCSETD:
            if struct.unpack("<i", mem.mem_read(arg, 4))[0] != 0:
                raise error(errno.EINVAL)
            return 0
        if cmd in (TIOCEXCL, TIOCNXCL):
            return 0
        return None


class TerminalFD(FileDescription):
    """Either end of a terminal (what `isatty` and the Sentry's terminal ioctls look for)."""

    is_master = False

    def __init__(self, vd: VirtualDentry | None, flags: int, term: Terminal) -> None:
        super().__init__(vd, flags)
        self.term = term
        self._async_seen = -1  # the input sequence O_ASYNC last looked at
        self._async_on = False  # counted in term.fasync_files
        self._wakeups_seen = 0  # term.wakeups of this end O_ASYNC last looked at

    @property
    def end(self) -> int:
        return MASTER if self.is_master else REPLICA

    def fasync_changed(self, on: bool) -> None:
        """O_ASYNC set or cleared: this end's count of such files (tty->fasync)."""
        if on != self._async_on:
            self._async_on = on
            self.term.fasync_files[self.end] += 1 if on else -1
        if on:
            self._wakeups_seen = self.term.wakeups[self.end]

    async def _write_all(self, data: bytes) -> int:
        raise NotImplementedError

    async def do_write(self, data: bytes) -> int:
        """This end's write (`_write_all`); one that does not take every byte arms
        O_ASYNC's POLL_OUT."""
        done = 0
        try:
            done = await self._write_all(data)
        finally:
            if done < len(data):
                self.term.write_fell_short(self.end)
        return done

    def fasync_pgrp(self) -> int:
        """Whom O_ASYNC set without an owner signals: the foreground process group (0:
        none, then the caller's process)."""
        return self.term.pgrp

    def _input_seq(self) -> int:
        raise NotImplementedError

    def _readable(self) -> bool:
        return bool(self.readiness(POLLIN) & POLLIN)

    def fasync_reason(self, mask: int) -> int:
        """O_ASYNC: POLL_IN when input arrived for this end and can be read (n_tty's
        kill_fasync: a whole line in canonical mode, any byte in raw mode); POLL_OUT when
        this end can be written again after a write fell short (`Terminal.changed`)."""
        seq = self._input_seq()
        if seq != self._async_seen:
            self._async_seen = seq
            if self._readable():
                return _POLL_IN
        woke = self.term.wakeups[self.end]
        if woke != self._wakeups_seen:
            self._wakeups_seen = woke
            return _POLL_OUT
        return 0

    @property
    def waitq(self) -> WaitQueue:
        return self.term.waitq

    @property
    def nonblock(self) -> bool:
        return bool(self.flags & O_NONBLOCK)


class MasterFD(TerminalFD):
    """/dev/ptmx: reads what the replica writes (and the echoes), writes what is typed."""

    is_master = True

    def _input_seq(self) -> int:
        return self.term.out_seq

    def _readable(self) -> bool:
        return bool(self.term.out)

    async def do_read(self, n: int) -> bytes:
        term = self.term
        while True:
            if term.out:
                data = bytes(term.out[:n])
                del term.out[:n]
                term.changed(POLLOUT | POLLWRNORM)
                return data
            if term.replica_closed:
                raise error(errno.EIO)
            if self.nonblock:
                raise error(errno.EAGAIN)
            await term.wait()

    async def _write_all(self, data: bytes) -> int:
        term = self.term
        done = 0
        while done < len(data):
            n = term.typed(data[done:])
            done += n
            if done == len(data):
                break
            if self.nonblock:
                if done:
                    break
                raise error(errno.EAGAIN)
            await term.wait()
        return done

    async def do_ioctl(self, cmd: int, arg: int, mem: Memory | None) -> int:
        if mem is None:
            raise error(errno.EFAULT)
        term = self.term
        got = term.termios_ioctl(cmd, arg, mem)
        if got is not None:
            return got
        if cmd == FIONREAD:
            mem.mem_write(arg, struct.pack("<i", len(term.out)))
            return 0
        if cmd == TIOCOUTQ:
            mem.mem_write(arg, struct.pack("<i", term.ld.available()))
            return 0
        if cmd == TIOCGPTN:
            mem.mem_write(arg, struct.pack("<I", term.index))
            return 0
        if cmd == TIOCSPTLCK:
            term.locked = struct.unpack("<i", mem.mem_read(arg, 4))[0] != 0
            return 0
        if cmd == TIOCGPTLCK:
            mem.mem_write(arg, struct.pack("<i", int(term.locked)))
            return 0
        raise error(errno.ENOTTY)

    def readiness(self, mask: int) -> int:
        term = self.term
        got = 0
        if term.out:
            got |= POLLIN | POLLRDNORM
        if term.replica_closed:
            got |= POLLHUP
        if term.master_writable():
            got |= POLLOUT | POLLWRNORM
        return got & (mask | POLLHUP | POLLERR)

    async def release(self) -> None:
        self.fasync_changed(False)  # (its O_ASYNC goes with it)
        term = self.term
        term.master_open = False
        term.hangup()
        if term.on_master_close is not None:
            term.on_master_close(term)


class ReplicaFD(TerminalFD):
    """/dev/pts/N (and /dev/tty): the program's side, through the line discipline."""

    def _input_seq(self) -> int:
        return self.term.typed_seq

    def _readable(self) -> bool:
        ld = self.term.ld
        return ld.has_line() if ld.canonical else bool(ld.raw)

    def __init__(self, vd: VirtualDentry | None, flags: int, term: Terminal) -> None:
        super().__init__(vd, flags, term)
        term.replicas += 1
        term.replica_closed = False

    async def do_read(self, n: int) -> bytes:
        term = self.term
        if term.hung_up:
            return b""
        if term.control is not None:
            term.control.check_read(term)
        ld = term.ld
        start = trio.current_time()
        while True:
            if term.hung_up:
                return b""
            deadline = float("inf")
            if ld.canonical:
                if ld.has_line():
                    data = ld.take_line(n)
                    term.changed(POLLOUT | POLLWRNORM)
                    return data
            else:
                vmin, vtime = term.termios.cc[VMIN], term.termios.cc[VTIME]
                have = len(ld.raw)
                if have >= max(1, min(vmin, n)) or (vmin == 0 and vtime == 0):
                    data = ld.take_raw(n)
                    if data:
                        term.changed(POLLOUT | POLLWRNORM)
                    return data
                if vtime and (have or not vmin):
                    # MIN > 0: the timer runs between bytes; MIN = 0: from the call
                    deadline = (term._last_input if vmin else start) + vtime / 10
                    if trio.current_time() >= deadline:
                        return ld.take_raw(n)
            if self.nonblock:
                raise error(errno.EAGAIN)
            await term.wait(deadline)

    async def _write_all(self, data: bytes) -> int:
        term = self.term
        if term.hung_up:
            raise error(errno.EIO)
        if term.control is not None and term.termios.lflag & TOSTOP:
            term.control.check_write(term)
        done = 0
        while done < len(data):
            room = OUTPUT_LIMIT - len(term.out)
            if room > 0 and not term.ld.stopped:
                k = min(len(data) - done, max(1, room // 2))
                term.out += term.ld.output(data[done : done + k])
                term.out_seq += 1
                done += k
                term.changed(POLLIN | POLLRDNORM)
                continue
            if self.nonblock:
                if done:
                    break
                raise error(errno.EAGAIN)
            await term.wait()
            if term.hung_up:
                if done:
                    break
                raise error(errno.EIO)
        return done

    async def do_ioctl(self, cmd: int, arg: int, mem: Memory | None) -> int:
        if mem is None:
            raise error(errno.EFAULT)
        term = self.term
        if term.hung_up:
            raise error(errno.ENOTTY if cmd == TIOCSPGRP else errno.EIO)
        got = term.termios_ioctl(cmd, arg, mem)
        if got is not None:
            return got
        if cmd == FIONREAD:
            mem.mem_write(arg, struct.pack("<i", term.ld.available()))
            return 0
        if cmd == TIOCOUTQ:
            mem.mem_write(arg, struct.pack("<i", len(term.out)))
            return 0
        raise error(errno.ENOTTY)

    def readiness(self, mask: int) -> int:
        term = self.term
        if term.hung_up:
            return (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM) & mask | POLLHUP | POLLERR
        got = 0
        if term.replica_readable(for_poll=True):
            got |= POLLIN | POLLRDNORM
        if term.replica_writable():
            got |= POLLOUT | POLLWRNORM
        return got & mask

    async def release(self) -> None:
        self.fasync_changed(False)  # (its O_ASYNC goes with it)
        term = self.term
        term.replicas -= 1
        if term.replicas == 0:
            term.replica_closed = True
            term.changed(POLLIN | POLLHUP)
