"""struct termios and struct winsize as Linux's ioctls carry them, and the flag bits the
line discipline reads.

Why a record of its own: the application's TCGETS/TCSETS*, the host side's window size and
the line discipline all speak these 36 and 8 bytes; the numbers are Linux's x86_64 ones
(include/uapi/asm-generic/termbits.h), not the host Python's `termios` module's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

# c_iflag
IGNBRK, BRKINT, IGNPAR, PARMRK, INPCK, ISTRIP = 0o1, 0o2, 0o4, 0o10, 0o20, 0o40
INLCR, IGNCR, ICRNL, IUCLC, IXON, IXANY, IXOFF, IMAXBEL, IUTF8 = (
    0o100, 0o200, 0o400, 0o1000, 0o2000, 0o4000, 0o10000, 0o20000, 0o40000)
# c_oflag
OPOST, OLCUC, ONLCR, OCRNL, ONOCR, ONLRET = 0o1, 0o2, 0o4, 0o10, 0o20, 0o40
TABDLY, XTABS = 0o14000, 0o14000
# c_cflag
B38400, CS8, CREAD, HUPCL, CLOCAL = 0o17, 0o60, 0o200, 0o2000, 0o4000
# c_lflag
ISIG, ICANON, XCASE, ECHO, ECHOE, ECHOK, ECHONL, NOFLSH, TOSTOP = (
    0o1, 0o2, 0o4, 0o10, 0o20, 0o40, 0o100, 0o200, 0o400)
ECHOCTL, ECHOPRT, ECHOKE, FLUSHO, PENDIN, IEXTEN, EXTPROC = (
    0o1000, 0o2000, 0o4000, 0o10000, 0o40000, 0o100000, 0o200000)
# c_cc indices
VINTR, VQUIT, VERASE, VKILL, VEOF, VTIME, VMIN, VSWTC = range(8)
VSTART, VSTOP, VSUSP, VEOL, VREPRINT, VDISCARD, VWERASE, VLNEXT, VEOL2 = range(8, 17)
NCCS = 19
#: Linux's INIT_C_CC: ^C ^\ DEL ^U ^D, TIME 0, MIN 1, ^Q ^S ^Z, ^R ^O ^W ^V.
INIT_C_CC = b"\x03\x1c\x7f\x15\x04\x00\x01\x00\x11\x13\x1a\x00\x12\x0f\x17\x16\x00\x00\x00"

_TERMIOS = struct.Struct("<4IB19s")
_WINSIZE = struct.Struct("<4H")
TERMIOS_SIZE = _TERMIOS.size  # 36
WINSIZE_SIZE = _WINSIZE.size  # 8


@dataclass
class Termios:
    """The kernel's struct termios (what TCGETS returns; no separate speeds)."""

    iflag: int = ICRNL | IXON
    oflag: int = OPOST | ONLCR
    cflag: int = B38400 | CS8 | CREAD
    lflag: int = ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN
    line: int = 0
    cc: bytearray = field(default_factory=lambda: bytearray(INIT_C_CC))

    def pack(self) -> bytes:
        return _TERMIOS.pack(self.iflag, self.oflag, self.cflag, self.lflag, self.line,
                             bytes(self.cc))

    @classmethod
    def unpack(cls, data: bytes) -> Termios:
        i, o, c, lf, line, cc = _TERMIOS.unpack(data)
        return cls(i, o, c, lf, line, bytearray(cc))

    def copy(self) -> Termios:
        return Termios(self.iflag, self.oflag, self.cflag, self.lflag, self.line,
                       bytearray(self.cc))


@dataclass
class Winsize:
    """struct winsize: rows and columns (and pixels, which nobody here interprets)."""

    rows: int = 0
    cols: int = 0
    xpixel: int = 0
    ypixel: int = 0

    def pack(self) -> bytes:
        return _WINSIZE.pack(self.rows, self.cols, self.xpixel, self.ypixel)

    @classmethod
    def unpack(cls, data: bytes) -> Winsize:
        return cls(*_WINSIZE.unpack(data))
