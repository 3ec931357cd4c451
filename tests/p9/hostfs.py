"""A simple host-directory file model for tests and benchmarks of the p9 server framework.

It maps fids to host paths and calls the host directly. It is NOT safe against symlink
races or hostile clients (that is the Gofer's job); it exists so p9's server can be proven
against real clients (diod's tools, p9fs) before the Gofer lands, and so bench/ can measure
the framework. `..` never climbs above the export root.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
import time
from collections.abc import Sequence

import p9

_FLOCK = struct.Struct("hhqqi4x")


def qid_of(st: os.stat_result) -> p9.Qid:
    if stat.S_ISDIR(st.st_mode):
        t = p9.QidType.DIR
    elif stat.S_ISLNK(st.st_mode):
        t = p9.QidType.SYMLINK
    else:
        t = p9.QidType.FILE
    return p9.Qid(int(t), 0, st.st_ino)


def attr_of(st: os.stat_result) -> p9.Attr:
    return p9.Attr(
        mode=st.st_mode, uid=st.st_uid, gid=st.st_gid, nlink=st.st_nlink, rdev=st.st_rdev,
        size=st.st_size, blksize=st.st_blksize, blocks=st.st_blocks,
        atime_sec=int(st.st_atime), atime_nsec=st.st_atime_ns % 10**9,
        mtime_sec=int(st.st_mtime), mtime_nsec=st.st_mtime_ns % 10**9,
        ctime_sec=int(st.st_ctime), ctime_nsec=st.st_ctime_ns % 10**9,
    )


class HostFile(p9.File):
    def __init__(self, root: bytes, path: bytes) -> None:
        self.root = root
        self.path = path
        self.fd: int | None = None
        self.dir_entries: list[p9.Dirent] | None = None

    def _child(self, name: bytes) -> bytes:
        if b"/" in name or not name:
            raise OSError(errno.EINVAL, f"bad name {name!r}")
        if name == b"..":
            return self.root if self.path == self.root else os.path.dirname(self.path)
        return os.path.join(self.path, name)

    async def walk(self, names: Sequence[bytes]) -> tuple[list[p9.Qid], p9.File | None]:
        path = self.path
        qids: list[p9.Qid] = []
        for name in names:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                if not qids:
                    raise OSError(errno.ENOTDIR, path)
                return qids, None
            path = HostFile(self.root, path)._child(name)
            try:
                st = os.lstat(path)
            except OSError:
                if not qids:
                    raise
                return qids, None
            qids.append(qid_of(st))
        return qids, type(self)(self.root, path)

    async def getattr(self, mask: int) -> tuple[p9.Qid, int, p9.Attr]:
        st = os.fstat(self.fd) if self.fd is not None else os.lstat(self.path)
        return qid_of(st), int(p9.GetattrMask.BASIC), attr_of(st)

    async def setattr(self, valid: int, a: p9.SetAttr) -> None:
        V = p9.SetattrMask
        if valid & V.MODE:
            os.chmod(self.path, stat.S_IMODE(a.mode), follow_symlinks=False)
        if valid & (V.UID | V.GID):
            os.chown(self.path, a.uid if valid & V.UID else -1, a.gid if valid & V.GID else -1,
                     follow_symlinks=False)
        if valid & V.SIZE:
            os.truncate(self.path, a.size)
        if valid & (V.ATIME | V.MTIME):
            st = os.lstat(self.path)
            now = time.time_ns()
            at = st.st_atime_ns
            mt = st.st_mtime_ns
            if valid & V.ATIME:
                at = a.atime_sec * 10**9 + a.atime_nsec if valid & V.ATIME_SET else now
            if valid & V.MTIME:
                mt = a.mtime_sec * 10**9 + a.mtime_nsec if valid & V.MTIME_SET else now
            os.utime(self.path, ns=(at, mt), follow_symlinks=False)

    async def open(self, flags: int) -> tuple[p9.Qid, int]:
        flags &= ~(os.O_CREAT | os.O_EXCL | os.O_NOCTTY)
        self.fd = os.open(self.path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
        return qid_of(os.fstat(self.fd)), 0

    async def create(self, name, flags, mode, gid, uid):
        path = self._child(name)
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, stat.S_IMODE(mode))
        new = type(self)(self.root, path)
        new.fd = fd
        return new, qid_of(os.fstat(fd)), 0

    async def read(self, offset: int, count: int) -> bytes:
        if self.fd is None:
            raise OSError(errno.EBADF, "not open")
        return os.pread(self.fd, count, offset)

    async def write(self, offset: int, data: bytes) -> int:
        if self.fd is None:
            raise OSError(errno.EBADF, "not open")
        return os.pwrite(self.fd, data, offset)

    async def readdir(self, offset: int, count: int) -> Sequence[p9.Dirent]:
        if self.dir_entries is None or offset == 0:
            ents = []
            for name in (b".", b".."):
                st = os.lstat(self._child(name) if name == b".." else self.path)
                ents.append((name, st))
            for de in os.scandir(self.path):
                try:
                    ents.append((de.name, de.stat(follow_symlinks=False)))
                except FileNotFoundError:
                    continue
            self.dir_entries = [
                p9.Dirent(qid_of(st), i + 1, stat.S_IFMT(st.st_mode) >> 12, name)
                for i, (name, st) in enumerate(ents)
            ]
        return self.dir_entries[offset:]

    async def mkdir(self, name, mode, gid, uid):
        path = self._child(name)
        os.mkdir(path, stat.S_IMODE(mode))
        return qid_of(os.lstat(path))

    async def symlink(self, name, target, gid, uid):
        path = self._child(name)
        os.symlink(target, path)
        return qid_of(os.lstat(path))

    async def mknod(self, name, mode, major, minor, gid, uid):
        path = self._child(name)
        os.mknod(path, mode, os.makedev(major, minor))
        return qid_of(os.lstat(path))

    async def link(self, target: p9.File, name: bytes) -> None:
        assert isinstance(target, HostFile)
        os.link(target.path, self._child(name), follow_symlinks=False)

    async def rename(self, newdir: p9.File, name: bytes) -> None:
        assert isinstance(newdir, HostFile)
        new = newdir._child(name)
        os.rename(self.path, new)
        self.path = new

    async def renameat(self, oldname, newdir, newname) -> None:
        assert isinstance(newdir, HostFile)
        os.rename(self._child(oldname), newdir._child(newname))

    async def unlinkat(self, name: bytes, flags: int) -> None:
        if flags & p9.AT_REMOVEDIR:
            os.rmdir(self._child(name))
        else:
            os.unlink(self._child(name))

    async def remove(self) -> None:
        if stat.S_ISDIR(os.lstat(self.path).st_mode):
            os.rmdir(self.path)
        else:
            os.unlink(self.path)

    async def readlink(self) -> bytes:
        return os.readlink(self.path)

    async def statfs(self) -> p9.Rstatfs:
        s = os.statvfs(self.path)
        return p9.Rstatfs(0x01021997, s.f_bsize, s.f_blocks, s.f_bfree, s.f_bavail, s.f_files,
                          s.f_ffree, s.f_fsid, s.f_namemax)

    async def fsync(self, datasync: bool) -> None:
        if self.fd is not None:
            (os.fdatasync if datasync else os.fsync)(self.fd)

    async def lock(self, lock_type, flags, start, length, proc_id, client_id) -> int:
        if self.fd is None:
            raise OSError(errno.EBADF, "not open")
        kind = {0: fcntl.F_RDLCK, 1: fcntl.F_WRLCK, 2: fcntl.F_UNLCK}[lock_type]
        try:
            fcntl.fcntl(self.fd, fcntl.F_SETLK, _FLOCK.pack(kind, 0, start, length, 0))
        except (BlockingIOError, PermissionError):
            return p9.LockStatus.BLOCKED
        return p9.LockStatus.SUCCESS

    async def getlock(self, lock_type, start, length, proc_id, client_id) -> p9.Rgetlock:
        if self.fd is None:
            raise OSError(errno.EBADF, "not open")
        kind = {0: fcntl.F_RDLCK, 1: fcntl.F_WRLCK, 2: fcntl.F_UNLCK}[lock_type]
        res = fcntl.fcntl(self.fd, fcntl.F_GETLK, _FLOCK.pack(kind, 0, start, length, 0))
        t, _, s, ln, pid = _FLOCK.unpack(res)
        back = {fcntl.F_RDLCK: 0, fcntl.F_WRLCK: 1, fcntl.F_UNLCK: 2}[t]
        return p9.Rgetlock(back, s, ln, pid, client_id)

    async def getxattr(self, name: bytes, size: int) -> bytes:
        v = os.getxattr(self.path, name, follow_symlinks=False)
        if size and len(v) > size:
            raise OSError(errno.ERANGE, "xattr value too large")
        return v

    async def setxattr(self, name: bytes, value: bytes, flags: int) -> None:
        os.setxattr(self.path, name, value, flags, follow_symlinks=False)

    async def listxattr(self, size: int) -> list[bytes]:
        return [n.encode() for n in os.listxattr(self.path, follow_symlinks=False)]

    async def removexattr(self, name: bytes) -> None:
        os.removexattr(self.path, name, follow_symlinks=False)

    async def allocate(self, mode: int, offset: int, length: int) -> None:
        if self.fd is None or mode:
            raise OSError(errno.EOPNOTSUPP, "allocate: only mode 0 on an open file")
        os.posix_fallocate(self.fd, offset, length)

    async def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class FastHostFile(HostFile):
    """A HostFile that opts into p9's Tread fast path (`inline_io`, `data_fd`)."""

    inline_io = True  # nothing here waits (regular files and directories only)

    def data_fd(self) -> int | None:
        if self.fd is None or not stat.S_ISREG(os.fstat(self.fd).st_mode):
            return None
        return self.fd


class HostFS(p9.Filesystem):
    """Export one host directory under any aname (`fast`: with FastHostFile)."""

    def __init__(self, root: str | bytes, *, fast: bool = False) -> None:
        self.root = os.path.realpath(os.fsencode(root))
        self.file_class = FastHostFile if fast else HostFile

    async def attach(self, aname: bytes, uname: bytes, uid: int) -> p9.File:
        return self.file_class(self.root, self.root)
