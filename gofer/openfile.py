"""OpenFile: an open descriptor for a node (what a fid holds after Tlopen/Tlcreate): I/O,
open-file-description locks, and directory listings served from a snapshot."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .hostcalls import fallocate, pread_into
from .hosttypes import QTDIR, QTFILE, QTSYMLINK, DirEntry

if TYPE_CHECKING:
    from .host import Node

#: A directory entry as `entries` keeps it: `DirEntry`'s fields, in a plain tuple.
_Row = tuple[int, int, int, int, bytes]

_FLOCK = struct.Struct("hhqqi4x")


def _flock(ltype: int, start: int, length: int) -> bytes:
    """A struct flock from Tlock/Tgetlock's fields. 9P carries the client's signed l_start
    and l_len as u64 (a negative length, the bytes before start, is a valid lock): they go
    back to signed, and the kernel judges them (EINVAL for a negative start) as it would
    the client's own; a type beyond a short is no lock type (EINVAL)."""
    if not 0 <= ltype < 1 << 15:
        raise OSError(errno.EINVAL, f"lock type {ltype}")
    start -= (start >> 63) << 64
    length -= (length >> 63) << 64
    return _FLOCK.pack(ltype, os.SEEK_SET, start, length, 0)

LOCK_SUCCESS = 0
LOCK_BLOCKED = 1
LOCK_ERROR = 2


class OpenFile:
    """An open descriptor for a node (what a fid holds after Tlopen/Tlcreate)."""

    __slots__ = ("fd", "node", "mode", "_dir")

    def __init__(self, fd: int, node: Node, mode: int) -> None:
        self.fd = fd
        self.node = node
        self.mode = mode
        self._dir: list[_Row] | None = None

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self._dir = None

    def read(self, offset: int, count: int) -> bytes:
        """pread(2)."""
        if stat.S_ISDIR(self.mode):
            raise OSError(errno.EISDIR, "read of a directory")
        if stat.S_ISFIFO(self.mode) or stat.S_ISCHR(self.mode):
            return os.read(self.fd, count)
        return os.pread(self.fd, count, offset)

    def readinto(self, offset: int, buf: memoryview) -> int:
        """pread(2) into the writable `buf` (what `read` does, without allocating a result)."""
        if stat.S_ISDIR(self.mode):
            raise OSError(errno.EISDIR, "read of a directory")
        if stat.S_ISFIFO(self.mode) or stat.S_ISCHR(self.mode):
            return os.readv(self.fd, [buf])
        n = len(buf)
        if n == 0:
            return 0
        if not 0 <= offset < 1 << 63:
            raise OSError(errno.EINVAL, f"read offset {offset} beyond loff_t")
        return pread_into(self.fd, buf, offset)

    def write(self, offset: int, data: bytes | memoryview) -> int:
        """pwrite(2) (which appends on an O_APPEND descriptor, as Linux does)."""
        if stat.S_ISFIFO(self.mode) or stat.S_ISCHR(self.mode):
            return os.write(self.fd, data)
        if not 0 <= offset < 1 << 63:
            raise OSError(errno.EINVAL, f"write offset {offset} beyond loff_t")
        return os.pwrite(self.fd, data, offset)

    def fsync(self, datasync: bool = False) -> None:
        """fsync(2) or fdatasync(2)."""
        (os.fdatasync if datasync else os.fsync)(self.fd)

    def fallocate(self, mode: int, offset: int, length: int) -> None:
        """fallocate(2) with its mode bits (KEEP_SIZE, PUNCH_HOLE, ...)."""
        self.node.export.mutating()
        fallocate(self.fd, mode, offset, length)

    def lock(self, ltype: int, start: int, length: int) -> int:
        """Set or clear a byte-range lock without waiting; returns LOCK_SUCCESS/BLOCKED.

        Open-file-description locks (F_OFD_SETLK), so two fids conflict with each other as two
        processes' POSIX locks would, although the gofer is one process. A client asking to
        block is answered LOCK_BLOCKED and retries, as 9P2000.L intends.
        """
        try:
            fcntl.fcntl(self.fd, fcntl.F_OFD_SETLK, _flock(ltype, start, length))
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                return LOCK_BLOCKED
            raise
        return LOCK_SUCCESS

    def getlock(self, ltype: int, start: int, length: int) -> tuple[int, int, int, int]:
        """F_OFD_GETLK: (type, start, length, pid) of a conflicting lock, or F_UNLCK."""
        out = fcntl.fcntl(self.fd, fcntl.F_OFD_GETLK, _flock(ltype, start, length))
        t, _w, s, ln, pid = _FLOCK.unpack(out)
        return t, s, ln, pid

    def entries(self, offset: int) -> list[_Row]:
        """The directory snapshot to serve `offset` from (offset 0 takes a fresh one).

        Offsets are positions in a snapshot taken when a client starts reading at 0, so they
        stay stable across calls whatever happens to the directory meanwhile, and each call
        costs only what it returns. '.' and '..' come first, as getdents(2) gives them. Entry
        i (0-based) has offset i + 1, the cookie of the entry after it. Rows are plain tuples
        in `DirEntry`'s field order (building 100,000 named tuples costs measurably more).
        """
        if not stat.S_ISDIR(self.mode):
            raise OSError(errno.ENOTDIR, "readdir of a non-directory")
        if offset < 0:
            raise OSError(errno.EINVAL, f"bad readdir offset {offset}")
        if offset == 0 or self._dir is None:
            self._dir = self._snapshot()
        return self._dir

    def readdir(self, offset: int) -> Iterator[DirEntry]:
        """The entries from `offset` on (see `entries`)."""
        d = self.entries(offset)
        return (DirEntry._make(d[i]) for i in range(offset, len(d)))

    def _snapshot(self) -> list[_Row]:
        node = self.node
        exp = node.export
        entries: list[_Row] = []
        for name, n in ((b".", node), (b"..", node.parent or node)):
            st = os.stat(n.fd)
            entries.append((QTDIR, exp.qid_path(st), len(entries) + 1, 4, name))
        idx = exp.dev_tag(os.stat(node.fd).st_dev)
        append = entries.append
        # A bytes path gives bytes names (no re-encoding per entry); the path names this
        # open directory through our fd directory, so nothing is resolved on the host.
        off = len(entries)
        with os.scandir(os.fsencode(node.procfd.path(self.fd))) as it:
            for e in it:
                off += 1
                # Regular files first: the common case costs one cached d_type check.
                if e.is_file(follow_symlinks=False):
                    append((QTFILE, e.inode() ^ idx, off, 8, e.name))
                elif e.is_dir(follow_symlinks=False):
                    append((QTDIR, e.inode() ^ idx, off, 4, e.name))
                elif e.is_symlink():
                    append((QTSYMLINK, e.inode() ^ idx, off, 10, e.name))
                else:
                    append((QTFILE, e.inode() ^ idx, off, _dtype(e), e.name))
        return entries


def _dtype(e: os.DirEntry) -> int:
    # os.DirEntry caches d_type; these calls do not stat unless d_type was DT_UNKNOWN.
    if e.is_symlink():
        return 10
    if e.is_dir(follow_symlinks=False):
        return 4
    if e.is_file(follow_symlinks=False):
        return 8
    try:
        m = e.stat(follow_symlinks=False).st_mode
    except OSError:
        return 0
    return {stat.S_IFIFO: 1, stat.S_IFCHR: 2, stat.S_IFBLK: 6, stat.S_IFSOCK: 12}.get(stat.S_IFMT(m), 0)
