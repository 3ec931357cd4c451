"""The line discipline (Linux's n_tty): what happens to bytes between the two ends of a
terminal.

Input (bytes the master writes, i.e. keys typed) goes through `receive`: ISTRIP, IGNCR,
ICRNL and INLCR; ISIG's INTR, QUIT and SUSP become signals for the foreground process group
(the caller's `signal` hook) and flush what was typed unless NOFLSH (output already
queued for the master stays, as a pty's does); IXON's STOP and START hold
and release output; in canonical mode (ICANON) the line is edited (ERASE, WERASE, KILL,
LNEXT, REPRINT) and becomes readable at NL, EOL, EOL2 or EOF (EOF itself is not part of
the data; an EOF on an empty line reads as end of file); otherwise bytes are readable at
once, and VMIN/VTIME (the terminal's read) decide when a read returns. ECHO, ECHOE, ECHOK,
ECHOKE, ECHONL and ECHOCTL decide what is echoed; echoes go through output processing.

Output (bytes the replica writes) goes through `output`: with OPOST, ONLCR, OCRNL, ONOCR,
ONLRET, OLCUC and XTABS, with the column kept for tabs and ONOCR.

Why pure: no waiting and no files here, so the rules can be read (and tested) on their
own; `terminal.py` does the waiting and the job control around it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .termios import (
    ECHO,
    ECHOCTL,
    ECHOE,
    ECHOK,
    ECHOKE,
    ECHONL,
    ICANON,
    ICRNL,
    IEXTEN,
    IGNCR,
    INLCR,
    ISIG,
    ISTRIP,
    IXANY,
    IXON,
    NOFLSH,
    OCRNL,
    OLCUC,
    ONLCR,
    ONLRET,
    ONOCR,
    OPOST,
    TABDLY,
    VEOF,
    VEOL,
    VEOL2,
    VERASE,
    VINTR,
    VKILL,
    VLNEXT,
    VQUIT,
    VREPRINT,
    VSTART,
    VSTOP,
    VSUSP,
    VWERASE,
    XTABS,
    Termios,
)

#: N_TTY_BUF_SIZE: at most this many bytes wait to be read (a canonical line keeps one
#: byte free for its terminator).
BUF_SIZE = 4096
SIGINT, SIGQUIT, SIGTSTP = 2, 3, 20
_DISABLED = 0  # _POSIX_VDISABLE: a c_cc slot holding 0 matches nothing


def _ctl(c: int) -> bool:
    return c < 0x20 or c == 0x7F


class LineDiscipline:
    """One terminal's n_tty state.

    Args:
        termios: the terminal's settings (shared with the terminal; `set_termios` changes
            them).
        emit: takes bytes for the master to read (echoes, after output processing).
        signal: takes a signal number for the foreground process group (INTR, QUIT, SUSP).
    """

    def __init__(self, termios: Termios, emit: Callable[[bytes], None],
                 signal: Callable[[int], None]) -> None:
        self.termios = termios
        self._emit = emit
        self._signal = signal
        self.lines: deque[bytes] = deque()  # canonical: complete lines (b"" is an EOF)
        self.edit = bytearray()  # canonical: the line being typed
        self.raw = bytearray()  # non-canonical: readable bytes
        self.column = 0  # output column (tabs, ONOCR, erasing)
        self.stopped = False  # IXON: STOP typed, output held until START
        self._lnext = False

    # -- what a read sees ----------------------------------------------------------------------

    @property
    def canonical(self) -> bool:
        return bool(self.termios.lflag & ICANON)

    def available(self) -> int:
        """Bytes a read could return now (FIONREAD): complete lines, or the raw queue."""
        if self.canonical:
            return sum(len(x) for x in self.lines)
        return len(self.raw)

    def has_line(self) -> bool:
        return bool(self.lines)

    def take_line(self, n: int) -> bytes:
        """Canonical read: up to `n` bytes of the first complete line (b"" for an EOF)."""
        line = self.lines[0]
        if len(line) <= n:
            self.lines.popleft()
            return line
        self.lines[0] = line[n:]
        return line[:n]

    def take_raw(self, n: int) -> bytes:
        out = bytes(self.raw[:n])
        del self.raw[:n]
        return out

    def room(self) -> int:
        """How many more input bytes fit before the writer must wait (non-canonical)."""
        return BUF_SIZE - len(self.raw) - sum(len(x) for x in self.lines)

    def flush_input(self) -> None:
        self.lines.clear()
        self.edit.clear()
        self.raw.clear()
        self._lnext = False

    def set_termios(self, new: Termios) -> None:
        """TCSETS*: switching ICANON makes what was typed readable as Linux does (all of it
        at once when canonical mode ends; as one pushed line when it starts)."""
        was = self.canonical
        self.termios.iflag, self.termios.oflag = new.iflag, new.oflag
        self.termios.cflag, self.termios.lflag = new.cflag, new.lflag
        self.termios.line, self.termios.cc[:] = new.line, new.cc
        if was and not self.canonical:
            self.raw += b"".join(self.lines) + self.edit
            self.lines.clear()
            self.edit.clear()
        elif not was and self.canonical and self.raw:
            self.lines.append(bytes(self.raw))
            self.raw.clear()
        if not self.termios.iflag & IXON:
            self.stopped = False

    # -- input ---------------------------------------------------------------------------------

    def receive(self, data: bytes) -> int:
        """Process typed bytes; returns how many were taken (fewer when the non-canonical
        queue is full: the writer waits for a reader)."""
        tio = self.termios
        iflag, lflag, cc = tio.iflag, tio.lflag, tio.cc
        for i, c in enumerate(data):
            if not self.canonical and len(self.raw) >= BUF_SIZE:
                return i
            if iflag & ISTRIP:
                c &= 0x7F
            if self._lnext:
                self._lnext = False
                self._literal(c)
                continue
            if iflag & IXON:
                if c == cc[VSTART] != _DISABLED or (self.stopped and iflag & IXANY):
                    self.stopped = False
                    if c == cc[VSTART]:
                        continue
                elif c == cc[VSTOP] != _DISABLED:
                    self.stopped = True
                    continue
            if lflag & ISIG and c != _DISABLED and c in (cc[VINTR], cc[VQUIT], cc[VSUSP]):
                sig = SIGINT if c == cc[VINTR] else SIGQUIT if c == cc[VQUIT] else SIGTSTP
                if not lflag & NOFLSH:
                    self.flush_input()
                if lflag & ECHO:
                    self._echo_char(c)
                self._signal(sig)
                continue
            if c == 0x0D:
                if iflag & IGNCR:
                    continue
                if iflag & ICRNL:
                    c = 0x0A
            elif c == 0x0A and iflag & INLCR:
                c = 0x0D
            if self.canonical:
                self._canon(c)
            else:
                self.raw.append(c)
                if lflag & ECHO:
                    self._echo_char(c)
        return len(data)

    def _literal(self, c: int) -> None:
        if self.canonical:
            if self.termios.lflag & ECHO:
                self._out(b"\b\b" if self.termios.lflag & ECHOCTL else b"\b")
            self._append(c)
        else:
            self.raw.append(c)
            if self.termios.lflag & ECHO:
                self._echo_char(c)

    def _canon(self, c: int) -> None:
        tio = self.termios
        lflag, cc = tio.lflag, tio.cc
        ext = lflag & IEXTEN
        if c == _DISABLED:
            self._append(c)
        elif c == cc[VERASE] or (ext and c == cc[VWERASE]) or c == cc[VKILL]:
            self._erase(c)
        elif ext and c == cc[VLNEXT]:
            self._lnext = True
            if lflag & ECHO:
                self._out(b"^\b" if lflag & ECHOCTL else b"")
        elif ext and c == cc[VREPRINT] and lflag & ECHO:
            self._echo_char(c)
            self._out(b"\n" + bytes(self.edit))
        elif c == 0x0A or c == cc[VEOL] or (ext and c == cc[VEOL2]):
            if lflag & ECHO or (c == 0x0A and lflag & ECHONL):
                if c == 0x0A:
                    self._out(b"\n")
                else:
                    self._echo_char(c)
            self.edit.append(c)
            self._push()
        elif c == cc[VEOF]:
            self._push()
        else:
            self._append(c)

    def _append(self, c: int) -> None:
        if len(self.edit) >= BUF_SIZE - 1:
            return  # a full line takes nothing but its end (n_tty discards)
        self.edit.append(c)
        if self.termios.lflag & ECHO:
            self._echo_char(c)

    def _push(self) -> None:
        self.lines.append(bytes(self.edit))
        self.edit.clear()

    def _erase(self, c: int) -> None:
        tio = self.termios
        lflag, cc = tio.lflag, tio.cc
        if not self.edit:
            return
        if c == cc[VKILL]:
            if not lflag & ECHO:
                self.edit.clear()
                return
            if not (lflag & ECHOK and lflag & ECHOKE and lflag & ECHOE):
                self.edit.clear()
                self._echo_char(c)
                if lflag & ECHOK:
                    self._out(b"\n")
                return
            count = len(self.edit)
        elif c == cc[VERASE]:
            count = 1
        else:  # WERASE: trailing blanks, then the word (BSD's ALTWERASE)
            count, seen = 0, False
            for ch in reversed(self.edit):
                word = chr(ch).isalnum() or ch == 0x5F
                if word:
                    seen = True
                elif seen:
                    break
                count += 1
        gone = self.edit[-count:]
        del self.edit[-count:]
        if not lflag & ECHO:
            return
        if not lflag & ECHOE:
            self._echo_char(c)
            return
        for ch in reversed(gone):
            width = 2 if lflag & ECHOCTL and _ctl(ch) and ch != 0x09 else 1
            self._out(b"\b \b" * width)

    # -- echo and output -----------------------------------------------------------------------

    def _echo_char(self, c: int) -> None:
        if self.termios.lflag & ECHOCTL and _ctl(c) and c != 0x09:
            self._out(bytes((0x5E, c ^ 0x40)))
        else:
            self._out(bytes((c,)))

    def _out(self, data: bytes) -> None:
        if data:
            self._emit(self.output(data))

    def output(self, data: bytes) -> bytes:
        """Output processing of bytes written to the terminal (and of echoes)."""
        oflag = self.termios.oflag
        if not oflag & OPOST:
            return data
        if not oflag & (ONLCR | OCRNL | ONOCR | ONLRET | OLCUC | TABDLY):
            nl = data.rfind(b"\n")
            self.column = len(data) - nl - 1 if nl >= 0 else self.column + len(data)
            return data
        out = bytearray()
        for c in data:
            if c == 0x0A:
                if oflag & (ONLRET | ONLCR):
                    self.column = 0
                out += b"\r\n" if oflag & ONLCR else b"\n"
            elif c == 0x0D:
                if oflag & ONOCR and self.column == 0:
                    continue
                if oflag & OCRNL:
                    if oflag & ONLRET:
                        self.column = 0
                    out.append(0x0A)
                else:
                    self.column = 0
                    out.append(0x0D)
            elif c == 0x09:
                spaces = 8 - self.column % 8
                self.column += spaces
                out += b" " * spaces if oflag & TABDLY == XTABS else b"\t"
            elif c == 0x08:
                self.column = max(0, self.column - 1)
                out.append(c)
            else:
                if oflag & OLCUC and 0x61 <= c <= 0x7A:
                    c -= 0x20
                if not _ctl(c):
                    self.column += 1
                out.append(c)
        return bytes(out)
