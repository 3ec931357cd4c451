"""Numbers of 9P2000.L that are not message layouts: masks, flags, special values."""

from __future__ import annotations

import enum

NOTAG = 0xFFFF
NOFID = 0xFFFFFFFF
NONUNAME = 0xFFFFFFFF

#: Bytes of a Tread/Rread/Twrite header that do not carry data (size+type+tag+fid+off+count).
IOHDRSZ = 24
#: The smallest msize either side of this package accepts.
MIN_MSIZE = 4096


class QidType(enum.IntFlag):
    """The type byte of a qid."""

    FILE = 0x00
    LINK = 0x01
    SYMLINK = 0x02
    TMP = 0x04
    AUTH = 0x08
    MOUNT = 0x10
    EXCL = 0x20
    APPEND = 0x40
    DIR = 0x80


class GetattrMask(enum.IntFlag):
    """P9_GETATTR_* bits of Tgetattr.request_mask and Rgetattr.valid."""

    MODE = 0x0001
    NLINK = 0x0002
    UID = 0x0004
    GID = 0x0008
    RDEV = 0x0010
    ATIME = 0x0020
    MTIME = 0x0040
    CTIME = 0x0080
    INO = 0x0100
    SIZE = 0x0200
    BLOCKS = 0x0400
    BTIME = 0x0800
    GEN = 0x1000
    DATA_VERSION = 0x2000
    BASIC = 0x07FF
    ALL = 0x3FFF


class SetattrMask(enum.IntFlag):
    """P9_SETATTR_* bits of Tsetattr.valid.

    ATIME/MTIME without the matching *_SET bit mean "set to the server's current time";
    with it, the given seconds and nanoseconds are used.
    """

    MODE = 0x0001
    UID = 0x0002
    GID = 0x0004
    SIZE = 0x0008
    ATIME = 0x0010
    MTIME = 0x0020
    CTIME = 0x0040
    ATIME_SET = 0x0080
    MTIME_SET = 0x0100


class LockType(enum.IntEnum):
    """Tlock/Tgetlock type byte."""

    RDLCK = 0
    WRLCK = 1
    UNLCK = 2


class LockStatus(enum.IntEnum):
    """Rlock status byte."""

    SUCCESS = 0
    BLOCKED = 1
    ERROR = 2
    GRACE = 3


class LockFlags(enum.IntFlag):
    """Tlock flags."""

    BLOCK = 1
    RECLAIM = 2


#: Tunlinkat flag: remove a directory (Linux AT_REMOVEDIR).
AT_REMOVEDIR = 0x200
