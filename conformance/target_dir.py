"""`dir:PATH` — the host kernel on a real directory: the oracle, or any mounted filesystem.

Why this shape: every operation is one host syscall made relative to an O_PATH descriptor of
the case directory, so the host kernel alone decides the outcome. Credentials other than
root are applied per operation on the calling thread only (setfsuid/setfsgid and the raw
setgroups syscall are per-thread in Linux; glibc's wrappers would broadcast setgroups to
every thread), and restored before the next await, so nothing else in the process runs
with borrowed credentials. Switching the fsuid away from 0 drops the filesystem
capabilities (CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_CHOWN …), exactly what an unprivileged
caller lacks; switching back restores them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import struct
from collections.abc import Iterator

from .target import ROOT, UTIME_NOW, UTIME_OMIT, Creds, Stat, Target

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

_SYS_SETGROUPS = 116
_SYS_GETDENTS64 = 217
_SYS_RENAMEAT2 = 316
_AT_SYMLINK_NOFOLLOW = 0x100
_F_OFD_GETLK = 36
_F_OFD_SETLK = 37
_FLOCK = struct.Struct("hhxxxxqqixxxx")  # struct flock on x86_64


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return ret


def _to_stat(st: os.stat_result) -> Stat:
    return Stat(mode=st.st_mode, ino=st.st_ino, nlink=st.st_nlink, uid=st.st_uid,
                gid=st.st_gid, size=st.st_size, atime_ns=st.st_atime_ns,
                mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, rdev=st.st_rdev,
                blocks=st.st_blocks)


class _Shared:
    """State shared by every view (root and credentials) of one dir target."""

    def __init__(self) -> None:
        self.handles: dict[int, int] = {}
        self.dirbufs: dict[int, list[bytes]] = {}
        self.next = 1
        self.groups = os.getgroups()


class DirTarget(Target):
    """A host directory; operations are host syscalls relative to `path`."""

    features = frozenset({"fifo-io", "unpriv", "xattr", "locks", "mknod-dev"})

    def __init__(self, path: bytes | str, *, creds: Creds = ROOT,
                 _shared: _Shared | None = None, _fd: int | None = None,
                 _mask: list[int] | None = None) -> None:
        self.path = os.path.abspath(os.fsencode(path))
        self.creds = creds
        self._sh = _shared or _Shared()
        # The umask belongs to one case: views with other credentials share it, a view
        # rooted elsewhere (another case) gets its own.
        self._mask = _mask if _mask is not None else [0o022]
        if _fd is None:
            _fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._fd = _fd
        self._own: set[int] = set()

    def __repr__(self) -> str:
        return f"DirTarget({self.path!r}, creds={self.creds})"

    def derive(self, *, root: bytes | None = None, creds: Creds | None = None) -> DirTarget:
        # Opened relative to this root, so trees deeper than PATH_MAX stay reachable.
        fd = os.open(b"." if root is None else root,
                     os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self._fd)
        path = self.path if root is None else os.path.join(self.path, root)
        return DirTarget(path, creds=creds or self.creds, _shared=self._sh, _fd=fd,
                         _mask=self._mask if root is None else None)

    def abspath(self, path: bytes) -> bytes:
        return os.path.join(self.path, path)

    async def aclose(self) -> None:
        for h in sorted(self._own):
            fd = self._sh.handles.pop(h, None)
            if fd is not None:
                os.close(fd)
        self._own.clear()
        os.close(self._fd)

    # -- credentials -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _as(self, *, mask: bool = False) -> Iterator[None]:
        """Run the enclosed (synchronous) syscalls as self.creds, with the target's umask."""
        c = self.creds
        switched = c != ROOT
        old_mask = os.umask(self._mask[0]) if mask else None
        if switched:
            groups = (ctypes.c_uint * max(1, len(c.groups)))(*c.groups)
            _check(_libc.syscall(_SYS_SETGROUPS, len(c.groups), groups), "setgroups")
            _libc.setfsgid(c.gid)
            _libc.setfsuid(c.uid)
        try:
            yield
        finally:
            if switched:
                _libc.setfsuid(0)
                _libc.setfsgid(0)
                g = self._sh.groups
                arr = (ctypes.c_uint * max(1, len(g)))(*g)
                _libc.syscall(_SYS_SETGROUPS, len(g), arr)
            if old_mask is not None:
                os.umask(old_mask)

    def umask(self, mask: int) -> int:
        old, self._mask[0] = self._mask[0], mask
        return old

    def _h(self, h: int) -> int:
        try:
            return self._sh.handles[h]
        except KeyError:
            raise OSError(errno.EBADF, f"bad handle {h}") from None

    def _new(self, fd: int) -> int:
        h = self._sh.next
        self._sh.next += 1
        self._sh.handles[h] = fd
        self._own.add(h)
        return h

    # -- files -------------------------------------------------------------------------------
    async def open(self, path: bytes, flags: int, mode: int = 0o666) -> int:
        with self._as(mask=True):
            fd = os.open(path, flags | os.O_CLOEXEC, mode, dir_fd=self._fd)
        return self._new(fd)

    async def close(self, h: int) -> None:
        fd = self._h(h)
        del self._sh.handles[h]
        self._sh.dirbufs.pop(h, None)
        self._own.discard(h)
        os.close(fd)

    async def read(self, h: int, n: int) -> bytes:
        with self._as():
            return os.read(self._h(h), n)

    async def write(self, h: int, data: bytes) -> int:
        with self._as():
            return os.write(self._h(h), data)

    async def pread(self, h: int, n: int, off: int) -> bytes:
        with self._as():
            return os.pread(self._h(h), n, off)

    async def pwrite(self, h: int, data: bytes, off: int) -> int:
        with self._as():
            return os.pwrite(self._h(h), data, off)

    async def lseek(self, h: int, off: int, whence: int) -> int:
        return os.lseek(self._h(h), off, whence)

    async def ftruncate(self, h: int, size: int) -> None:
        with self._as():
            os.ftruncate(self._h(h), size)

    async def truncate(self, path: bytes, size: int) -> None:
        with self._as():
            os.truncate(os.path.join(self.path, path), size)

    async def fsync(self, h: int) -> None:
        os.fsync(self._h(h))

    async def fstat(self, h: int) -> Stat:
        return _to_stat(os.fstat(self._h(h)))

    async def stat(self, path: bytes, follow: bool = True) -> Stat:
        with self._as():
            return _to_stat(os.stat(path, dir_fd=self._fd, follow_symlinks=follow))

    # -- namespace ---------------------------------------------------------------------------
    async def mkdir(self, path: bytes, mode: int = 0o777) -> None:
        with self._as(mask=True):
            os.mkdir(path, mode, dir_fd=self._fd)

    async def rmdir(self, path: bytes) -> None:
        with self._as():
            os.rmdir(path, dir_fd=self._fd)

    async def unlink(self, path: bytes) -> None:
        with self._as():
            os.unlink(path, dir_fd=self._fd)

    async def rename(self, old: bytes, new: bytes, flags: int = 0) -> None:
        with self._as():
            if flags == 0:
                os.rename(old, new, src_dir_fd=self._fd, dst_dir_fd=self._fd)
            else:
                _check(_libc.syscall(_SYS_RENAMEAT2, self._fd, old, self._fd, new, flags),
                       "renameat2")

    async def link(self, old: bytes, new: bytes) -> None:
        with self._as():
            os.link(old, new, src_dir_fd=self._fd, dst_dir_fd=self._fd, follow_symlinks=False)

    async def symlink(self, target: bytes, path: bytes) -> None:
        with self._as():
            os.symlink(target, path, dir_fd=self._fd)

    async def readlink(self, path: bytes) -> bytes:
        with self._as():
            return os.readlink(path, dir_fd=self._fd)

    async def mknod(self, path: bytes, mode: int, dev: int = 0) -> None:
        with self._as(mask=True):
            os.mknod(path, mode, dev, dir_fd=self._fd)

    async def listdir(self, path: bytes) -> list[bytes]:
        with self._as():
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self._fd)
        try:
            return [os.fsencode(n) for n in os.listdir(fd)]
        finally:
            os.close(fd)

    async def opendir(self, path: bytes) -> int:
        with self._as():
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self._fd)
        return self._new(fd)

    async def getdents(self, h: int, count: int) -> list[bytes]:
        fd = self._h(h)
        out: list[bytes] = []
        buf = ctypes.create_string_buffer(64 * 1024)
        while True:
            # Small reads so that a directory changing between calls is observable.
            size = max(64, min(len(buf), 40 * count))
            n = _check(_libc.syscall(_SYS_GETDENTS64, fd, buf, size), "getdents64")
            if n == 0:
                return out
            raw = buf.raw[:n]
            pos = 0
            while pos < n:
                reclen = struct.unpack_from("H", raw, pos + 16)[0]
                name = raw[pos + 19:pos + reclen].split(b"\0", 1)[0]
                if name not in (b".", b".."):
                    out.append(name)
                pos += reclen
            if out:
                return out

    # -- attributes --------------------------------------------------------------------------
    async def chmod(self, path: bytes, mode: int) -> None:
        with self._as():
            os.chmod(path, mode, dir_fd=self._fd)

    async def fchmod(self, h: int, mode: int) -> None:
        with self._as():
            os.fchmod(self._h(h), mode)

    async def chown(self, path: bytes, uid: int, gid: int, follow: bool = True) -> None:
        with self._as():
            os.chown(path, uid, gid, dir_fd=self._fd, follow_symlinks=follow)

    async def utimens(self, path: bytes, atime_ns: int, mtime_ns: int,
                      follow: bool = True) -> None:
        def ts(v: int) -> _Timespec:
            if v in (UTIME_NOW, UTIME_OMIT):
                return _Timespec(0, v)
            return _Timespec(v // 1_000_000_000, v % 1_000_000_000)

        times = (_Timespec * 2)(ts(atime_ns), ts(mtime_ns))
        with self._as():
            _check(_libc.utimensat(self._fd, path, times, 0 if follow else _AT_SYMLINK_NOFOLLOW),
                   "utimensat")

    def _full(self, path: bytes) -> bytes:
        return os.path.join(self.path, path)

    async def setxattr(self, path: bytes, name: bytes, value: bytes, flags: int = 0) -> None:
        with self._as():
            os.setxattr(self._full(path), name, value, flags, follow_symlinks=False)

    async def getxattr(self, path: bytes, name: bytes) -> bytes:
        with self._as():
            return os.getxattr(self._full(path), name, follow_symlinks=False)

    async def listxattr(self, path: bytes) -> list[bytes]:
        with self._as():
            return [os.fsencode(n) for n in os.listxattr(self._full(path),
                                                          follow_symlinks=False)]

    async def removexattr(self, path: bytes, name: bytes) -> None:
        with self._as():
            os.removexattr(self._full(path), name, follow_symlinks=False)

    # -- locks -------------------------------------------------------------------------------
    async def setlk(self, h: int, kind: int, start: int, length: int) -> None:
        fcntl.fcntl(self._h(h), _F_OFD_SETLK, _FLOCK.pack(kind, os.SEEK_SET, start, length, 0))

    async def getlk(self, h: int, kind: int, start: int,
                    length: int) -> tuple[int, int, int] | None:
        raw = fcntl.fcntl(self._h(h), _F_OFD_GETLK,
                          _FLOCK.pack(kind, os.SEEK_SET, start, length, 0))
        k, _, s, n, _ = _FLOCK.unpack(raw)
        return None if k == 2 else (k, s, n)
