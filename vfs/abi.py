"""Linux x86_64 ABI constants and the binary records the VFS hands to the Sentry.

Why here: the Sentry passes raw flag integers from the application straight to the VFS, and
writes `struct stat`, `struct statx`, `struct statfs` and `linux_dirent64` bytes back into
application memory. Keeping the numbers and layouts in one module means every filesystem and
the syscall layer agree on them. Values are Linux's (include/uapi), not the host Python's.
"""

from __future__ import annotations

import os
import stat as _st
import struct
from dataclasses import dataclass

# -- open(2) flags --------------------------------------------------------------------------
O_RDONLY = 0o0
O_WRONLY = 0o1
O_RDWR = 0o2
O_ACCMODE = 0o3
O_CREAT = 0o100
O_EXCL = 0o200
O_NOCTTY = 0o400
O_TRUNC = 0o1000
O_APPEND = 0o2000
O_NONBLOCK = 0o4000
O_DSYNC = 0o10000
O_ASYNC = 0o20000
O_DIRECT = 0o40000
O_LARGEFILE = 0o100000
O_DIRECTORY = 0o200000
O_NOFOLLOW = 0o400000
O_NOATIME = 0o1000000
O_CLOEXEC = 0o2000000
O_SYNC = 0o4010000
O_PATH = 0o10000000
O_TMPFILE = 0o20200000  # includes O_DIRECTORY
#: Flags that stay with the open file description and F_GETFL reports.
STATUS_FLAGS = O_APPEND | O_NONBLOCK | O_DSYNC | O_ASYNC | O_DIRECT | O_NOATIME | O_SYNC
#: Flags F_SETFL may change (Linux's SETFL_MASK).
SETFL_MASK = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME

# -- *at(2) flags ---------------------------------------------------------------------------
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_EACCESS = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_NO_AUTOMOUNT = 0x800
AT_EMPTY_PATH = 0x1000
AT_STATX_SYNC_TYPE = 0x6000
AT_STATX_FORCE_SYNC = 0x2000
AT_STATX_DONT_SYNC = 0x4000

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2

# access(2)
F_OK, X_OK, W_OK, R_OK = 0, 1, 2, 4
MAY_EXEC, MAY_WRITE, MAY_READ = 1, 2, 4

SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE = 0, 1, 2, 3, 4

# fallocate(2)
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10

# poll(2) events
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND, POLLRDHUP = 0x40, 0x80, 0x100, 0x200, 0x2000

# -- file types -----------------------------------------------------------------------------
S_IFMT = 0o170000
S_IFSOCK = 0o140000
S_IFLNK = 0o120000
S_IFREG = 0o100000
S_IFBLK = 0o060000
S_IFDIR = 0o040000
S_IFCHR = 0o020000
S_IFIFO = 0o010000
S_ISUID = 0o4000
S_ISGID = 0o2000
S_ISVTX = 0o1000
S_IALLUGO = 0o7777  # every permission bit, with set-id and sticky
S_IXGRP = 0o010

DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK = 0, 1, 2, 4, 6, 8, 10, 12


def dtype_of(mode: int) -> int:
    """d_type for a mode (what getdents64 reports)."""
    return (mode & S_IFMT) >> 12


# -- statx ----------------------------------------------------------------------------------
STATX_TYPE = 0x1
STATX_MODE = 0x2
STATX_NLINK = 0x4
STATX_UID = 0x8
STATX_GID = 0x10
STATX_ATIME = 0x20
STATX_MTIME = 0x40
STATX_CTIME = 0x80
STATX_INO = 0x100
STATX_SIZE = 0x200
STATX_BLOCKS = 0x400
STATX_BASIC_STATS = 0x7FF
STATX_BTIME = 0x800
STATX_MNT_ID = 0x1000
STATX__RESERVED = 0x80000000

STATX_ATTR_IMMUTABLE = 0x10
STATX_ATTR_APPEND = 0x20
STATX_ATTR_NODUMP = 0x40
STATX_ATTR_AUTOMOUNT = 0x1000
STATX_ATTR_MOUNT_ROOT = 0x2000
STATX_ATTR_DAX = 0x200000
#: stx_attributes_mask as Linux reports it for tmpfs (the VFS's AUTOMOUNT, MOUNT_ROOT, DAX
#: plus shmem's IMMUTABLE, APPEND, NODUMP).
STATX_ATTRIBUTES_MASK = (STATX_ATTR_IMMUTABLE | STATX_ATTR_APPEND | STATX_ATTR_NODUMP
                         | STATX_ATTR_AUTOMOUNT | STATX_ATTR_MOUNT_ROOT | STATX_ATTR_DAX)

NAME_MAX = 255
PATH_MAX = 4096
MAXSYMLINKS = 40
PIPE_BUF = 4096

_STAT = struct.Struct("<QQQIIIiQqqqqqqqqq24x")
_STATX_HEAD = struct.Struct("<IIQIIIHHQQQQ")
_STATX_TS = struct.Struct("<qIi")
_STATX_TAIL = struct.Struct("<IIIIQ")
_STATFS = struct.Struct("<qqQQQQQQqqq32x")  # f_fsid: two u32 words, whatever their top bit
_DIRENT_HEAD = struct.Struct("<QqHB")


@dataclass(slots=True)
class Stat:
    """File attributes in Linux's units (times in nanoseconds since the epoch).

    One record serves stat(2), fstatat(2) and statx(2): `pack_stat` and `pack_statx` turn it
    into the x86_64 bytes the Sentry writes into application memory.
    """

    mode: int
    ino: int = 0
    dev: int = 0
    nlink: int = 1
    uid: int = 0
    gid: int = 0
    rdev: int = 0
    size: int = 0
    blksize: int = 4096
    blocks: int = 0
    atime_ns: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    btime_ns: int | None = None
    mnt_id: int = 0
    attributes: int = 0

    @property
    def type(self) -> int:
        return self.mode & S_IFMT

    def pack_stat(self) -> bytes:
        """The x86_64 `struct stat` (144 bytes)."""
        a, an = divmod(self.atime_ns, 1_000_000_000)
        m, mn = divmod(self.mtime_ns, 1_000_000_000)
        c, cn = divmod(self.ctime_ns, 1_000_000_000)
        return _STAT.pack(
            self.dev, self.ino, self.nlink, self.mode, self.uid, self.gid, 0, self.rdev,
            self.size, self.blksize, self.blocks, a, an, m, mn, c, cn,
        )

    def pack_statx(self, mask: int = STATX_BASIC_STATS) -> bytes:
        """The `struct statx` (256 bytes); `stx_mask` says which fields are filled.

        Linux fills every basic field whatever the caller asked for and reports them in the
        mask; btime only where the filesystem has it; mnt_id always.
        """
        got = STATX_BASIC_STATS | STATX_MNT_ID
        btime = self.btime_ns
        if btime is not None:
            got |= STATX_BTIME
        else:
            btime = 0
        out = bytearray(256)
        _STATX_HEAD.pack_into(
            out, 0, got, self.blksize, self.attributes, self.nlink, self.uid, self.gid,
            self.mode & 0xFFFF, 0, self.ino, self.size, self.blocks, STATX_ATTRIBUTES_MASK,
        )
        for off, ns in ((64, self.atime_ns), (80, btime), (96, self.ctime_ns),
                        (112, self.mtime_ns)):
            s, n = divmod(ns, 1_000_000_000)
            _STATX_TS.pack_into(out, off, s, n, 0)
        _STATX_TAIL.pack_into(
            out, 128, os.major(self.rdev), os.minor(self.rdev), os.major(self.dev),
            os.minor(self.dev), self.mnt_id,
        )
        return bytes(out)

    def is_dir(self) -> bool:
        return _st.S_ISDIR(self.mode)


@dataclass(slots=True)
class StatFS:
    """statfs(2) fields; `pack` gives the x86_64 `struct statfs` (120 bytes)."""

    type: int
    bsize: int = 4096
    blocks: int = 0
    bfree: int = 0
    bavail: int = 0
    files: int = 0
    ffree: int = 0
    fsid: int = 0
    namelen: int = NAME_MAX
    frsize: int = 4096
    flags: int = 0

    def pack(self) -> bytes:
        return _STATFS.pack(
            self.type, self.bsize, self.blocks, self.bfree, self.bavail, self.files,
            self.ffree, self.fsid & 0xFFFFFFFFFFFFFFFF, self.namelen, self.frsize, self.flags,
        )


# statfs f_type magic numbers
TMPFS_MAGIC = 0x01021994
PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
PIPEFS_MAGIC = 0x50495045
V9FS_MAGIC = 0x01021997
OVERLAYFS_SUPER_MAGIC = 0x794C7630
DEVPTS_SUPER_MAGIC = 0x1CD1
# statfs f_flags (ST_*)
ST_RDONLY, ST_NOSUID, ST_NODEV, ST_NOEXEC, ST_VALID = 0x1, 0x2, 0x4, 0x8, 0x20
ST_RELATIME = 0x1000


def pack_dirent64(ino: int, next_off: int, dtype: int, name: bytes) -> bytes:
    """One `linux_dirent64` record, padded to 8 bytes like Linux."""
    reclen = (19 + len(name) + 1 + 7) & ~7
    return _DIRENT_HEAD.pack(ino, next_off, reclen, dtype) + name + b"\0" * (reclen - 19 - len(name))


def pack_dirents64(ents: list[tuple[int, int, int, bytes]], size: int) -> tuple[bytes, int]:
    """(the `linux_dirent64` records of the first entries of `ents` ((next_off, ino,
    d_type, name) each) that fit in `size` bytes, how many): one buffer for the batch,
    each record packed into it in place (its padding is the buffer's zeros)."""
    buf = bytearray(min(size, 32768))
    pack_into = _DIRENT_HEAD.pack_into
    pos = n = 0
    for next_off, ino, dtype, name in ents:
        ln = len(name)
        end = pos + ((27 + ln) & ~7)  # 19 bytes of head, the name, its NUL, 8-aligned
        if end > len(buf):
            if end > size:
                break
            buf.extend(bytes(min(size, max(end, 2 * len(buf))) - len(buf)))
        pack_into(buf, pos, ino, next_off, end - pos, dtype)
        buf[pos + 19:pos + 19 + ln] = name
        pos = end
        n += 1
    return bytes(buf[:pos]), n


def parse_dirents64(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """Decode getdents64 output into (ino, off, type, name) tuples (for tests and tools)."""
    out = []
    pos = 0
    while pos < len(data):
        ino, off, reclen, dtype = _DIRENT_HEAD.unpack_from(data, pos)
        name = data[pos + 19 : pos + reclen].split(b"\0", 1)[0]
        out.append((ino, off, dtype, name))
        pos += reclen
    return out
