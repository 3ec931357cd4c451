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
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import trio

from .target_api import ROOT, UTIME_NOW, UTIME_OMIT, Creds, Stat, Target, kind_name

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

_SYS_SETGROUPS = 116
_SYS_GETDENTS64 = 217
_SYS_RENAMEAT2 = 316
_SYS_LINKAT = 265
_SYS_FACCESSAT2 = 439
_SYS_FCHMODAT2 = 452
_AT_SYMLINK_NOFOLLOW = 0x100
_AT_EACCESS = 0x200
_AT_EMPTY_PATH = 0x1000
_F_OFD_GETLK = 36
_F_OFD_SETLK = 37
_FLOCK = struct.Struct("hhxxxxqqixxxx")  # struct flock on x86_64
_CLONE_FS = 0x200
_T = TypeVar("_T")
_local = threading.local()


def _own_fs_struct() -> None:
    """Give the calling worker thread its own umask (and cwd): unshare(CLONE_FS)."""
    if not getattr(_local, "unshared", False):
        _check(_libc.unshare(_CLONE_FS), "unshare(CLONE_FS)")
        _local.unshared = True


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

    def __init__(self, threads: int = 0) -> None:
        #: run syscalls in up to this many worker threads (0: on the trio thread)
        self.limiter = trio.CapacityLimiter(threads) if threads else None
        self.handles: dict[int, int] = {}
        self.dirbufs: dict[int, list[bytes]] = {}
        self.next = 1
        self.groups = os.getgroups()


class DirTarget(Target):
    """A host directory; operations are host syscalls relative to `path`."""

    features = frozenset({"fifo-io", "unpriv", "xattr", "locks", "mknod-dev", "at-handle",
                          "dtype", "access", "fallocate"})

    def __init__(self, path: bytes | str, *, creds: Creds = ROOT, threads: int = 0,
                 _shared: _Shared | None = None, _fd: int | None = None,
                 _mask: list[int] | None = None) -> None:
        """`threads` > 0 runs each syscall in a worker thread (each with its own umask and
        credentials), so that cases can overlap on a slow filesystem (a FUSE or network
        mount); 0 runs them on the trio thread, the fastest for a local filesystem."""
        self.path = os.path.abspath(os.fsencode(path))
        self.creds = creds
        self._sh = _shared or _Shared(threads)
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

    async def _do(self, fn: Callable[[], _T], *, mask: bool = False, here: bool = False) -> _T:
        """Run `fn` (syscalls) as this view's credentials, on the trio thread or a worker.

        `here`: run with the working directory at this view's root, for calls that take
        no dirfd (truncate, the xattr family): a full path would need search permission on
        every directory above the target, which the cases do not control.
        """
        threaded = self._sh.limiter is not None

        def call() -> _T:
            if threaded:
                _own_fs_struct()
            if not here:
                with self._as(mask=mask):
                    return fn()
            saved = os.open(".", os.O_PATH | os.O_CLOEXEC)
            try:
                os.fchdir(self._fd)
                with self._as(mask=mask):
                    return fn()
            finally:
                os.fchdir(saved)
                os.close(saved)

        if not threaded:
            return call()
        return await trio.to_thread.run_sync(call, limiter=self._sh.limiter)

    # -- files -------------------------------------------------------------------------------
    async def open(self, path: bytes, flags: int, mode: int = 0o666) -> int:
        fd = await self._do(lambda: os.open(path, flags | os.O_CLOEXEC, mode, dir_fd=self._fd),
                            mask=True)
        return self._new(fd)

    async def close(self, h: int) -> None:
        fd = self._h(h)
        del self._sh.handles[h]
        self._own.discard(h)
        await self._do(lambda: os.close(fd))

    async def read(self, h: int, n: int) -> bytes:
        fd = self._h(h)
        return await self._do(lambda: os.read(fd, n))

    async def write(self, h: int, data: bytes) -> int:
        fd = self._h(h)
        return await self._do(lambda: os.write(fd, data))

    async def pread(self, h: int, n: int, off: int) -> bytes:
        fd = self._h(h)
        return await self._do(lambda: os.pread(fd, n, off))

    async def pwrite(self, h: int, data: bytes, off: int) -> int:
        fd = self._h(h)
        return await self._do(lambda: os.pwrite(fd, data, off))

    async def lseek(self, h: int, off: int, whence: int) -> int:
        fd = self._h(h)
        return await self._do(lambda: os.lseek(fd, off, whence))

    async def ftruncate(self, h: int, size: int) -> None:
        fd = self._h(h)
        await self._do(lambda: os.ftruncate(fd, size))

    async def truncate(self, path: bytes, size: int) -> None:
        await self._do(lambda: os.truncate(path, size), here=True)

    async def fsync(self, h: int) -> None:
        fd = self._h(h)
        await self._do(lambda: os.fsync(fd))

    async def fstat(self, h: int) -> Stat:
        fd = self._h(h)
        return _to_stat(await self._do(lambda: os.fstat(fd)))

    async def stat(self, path: bytes, follow: bool = True) -> Stat:
        return _to_stat(await self._do(
            lambda: os.stat(path, dir_fd=self._fd, follow_symlinks=follow)))

    # -- namespace ---------------------------------------------------------------------------
    async def mkdir(self, path: bytes, mode: int = 0o777) -> None:
        await self._do(lambda: os.mkdir(path, mode, dir_fd=self._fd), mask=True)

    async def rmdir(self, path: bytes) -> None:
        await self._do(lambda: os.rmdir(path, dir_fd=self._fd))

    async def unlink(self, path: bytes) -> None:
        await self._do(lambda: os.unlink(path, dir_fd=self._fd))

    async def rename(self, old: bytes, new: bytes, flags: int = 0) -> None:
        def run() -> None:
            if flags == 0:
                os.rename(old, new, src_dir_fd=self._fd, dst_dir_fd=self._fd)
            else:
                _check(_libc.syscall(_SYS_RENAMEAT2, self._fd, old, self._fd, new, flags),
                       "renameat2")
        await self._do(run)

    async def link(self, old: bytes, new: bytes, follow: bool = False) -> None:
        await self._do(lambda: os.link(old, new, src_dir_fd=self._fd, dst_dir_fd=self._fd,
                                       follow_symlinks=follow))

    async def symlink(self, target: bytes, path: bytes) -> None:
        await self._do(lambda: os.symlink(target, path, dir_fd=self._fd))

    async def readlink(self, path: bytes) -> bytes:
        return await self._do(lambda: os.readlink(path, dir_fd=self._fd))

    async def mknod(self, path: bytes, mode: int, dev: int = 0) -> None:
        await self._do(lambda: os.mknod(path, mode, dev, dir_fd=self._fd), mask=True)

    async def listdir(self, path: bytes) -> list[bytes]:
        def run() -> list[bytes]:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self._fd)
            try:
                return [os.fsencode(n) for n in os.listdir(fd)]
            finally:
                os.close(fd)
        return await self._do(run)

    async def opendir(self, path: bytes) -> int:
        fd = await self._do(lambda: os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC,
                                            dir_fd=self._fd))
        return self._new(fd)

    async def getdents(self, h: int, count: int) -> list[bytes]:
        fd = self._h(h)

        def run() -> list[bytes]:
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
        return await self._do(run)

    # -- attributes --------------------------------------------------------------------------
    async def chmod(self, path: bytes, mode: int, follow: bool = True) -> None:
        if follow:
            await self._do(lambda: os.chmod(path, mode, dir_fd=self._fd))
            return
        await self._do(lambda: _check(_libc.syscall(_SYS_FCHMODAT2, self._fd, path, mode,
                                                    _AT_SYMLINK_NOFOLLOW), "fchmodat2"))

    async def fchmod(self, h: int, mode: int) -> None:
        fd = self._h(h)
        await self._do(lambda: os.fchmod(fd, mode))

    async def chown(self, path: bytes, uid: int, gid: int, follow: bool = True) -> None:
        await self._do(lambda: os.chown(path, uid, gid, dir_fd=self._fd, follow_symlinks=follow))

    async def utimens(self, path: bytes, atime_ns: int, mtime_ns: int,
                      follow: bool = True) -> None:
        def ts(v: int) -> _Timespec:
            if v in (UTIME_NOW, UTIME_OMIT):
                return _Timespec(0, v)
            return _Timespec(v // 1_000_000_000, v % 1_000_000_000)

        times = (_Timespec * 2)(ts(atime_ns), ts(mtime_ns))
        flags = 0 if follow else _AT_SYMLINK_NOFOLLOW
        await self._do(lambda: _check(_libc.utimensat(self._fd, path, times, flags),
                                      "utimensat"))

    async def setxattr(self, path: bytes, name: bytes, value: bytes, flags: int = 0) -> None:
        await self._do(lambda: os.setxattr(path, name, value, flags, follow_symlinks=False),
                       here=True)

    async def getxattr(self, path: bytes, name: bytes) -> bytes:
        return await self._do(lambda: os.getxattr(path, name, follow_symlinks=False),
                              here=True)

    async def listxattr(self, path: bytes) -> list[bytes]:
        names = await self._do(lambda: os.listxattr(path, follow_symlinks=False), here=True)
        return [os.fsencode(n) for n in names]

    async def removexattr(self, path: bytes, name: bytes) -> None:
        await self._do(lambda: os.removexattr(path, name, follow_symlinks=False), here=True)

    # -- calls relative to an open handle, access, allocation ---------------------------------
    async def statat(self, h: int, path: bytes, follow: bool = True,
                     empty_path: bool = False) -> Stat:
        fd = self._h(h)
        if empty_path and not path:
            return _to_stat(await self._do(lambda: os.fstat(fd)))
        return _to_stat(await self._do(lambda: os.stat(path, dir_fd=fd, follow_symlinks=follow)))

    async def mkdirat(self, h: int, path: bytes, mode: int = 0o777) -> None:
        fd = self._h(h)
        await self._do(lambda: os.mkdir(path, mode, dir_fd=fd), mask=True)

    async def flink(self, h: int, new: bytes) -> None:
        fd = self._h(h)
        await self._do(lambda: _check(_libc.syscall(_SYS_LINKAT, fd, b"", self._fd, new,
                                                    _AT_EMPTY_PATH), "linkat"))

    async def readdir_kinds(self, h: int) -> list[tuple[bytes, str]]:
        fd = self._h(h)

        def run() -> list[tuple[bytes, str]]:
            os.lseek(fd, 0, os.SEEK_SET)
            out: list[tuple[bytes, str]] = []
            buf = ctypes.create_string_buffer(64 * 1024)
            while n := _check(_libc.syscall(_SYS_GETDENTS64, fd, buf, len(buf)), "getdents64"):
                raw, pos = buf.raw[:n], 0
                while pos < n:
                    reclen = struct.unpack_from("H", raw, pos + 16)[0]
                    name = raw[pos + 19:pos + reclen].split(b"\0", 1)[0]
                    if name not in (b".", b".."):
                        out.append((name, kind_name(raw[pos + 18] << 12)))
                    pos += reclen
            return out
        return await self._do(run)

    async def access(self, path: bytes, mode: int, follow: bool = True) -> None:
        flags = _AT_EACCESS | (0 if follow else _AT_SYMLINK_NOFOLLOW)
        await self._do(lambda: _check(_libc.syscall(_SYS_FACCESSAT2, self._fd, path, mode,
                                                    flags), "faccessat2"))

    async def fallocate(self, h: int, mode: int, off: int, length: int) -> None:
        fd = self._h(h)
        await self._do(lambda: _check(_libc.fallocate(fd, mode, ctypes.c_long(off),
                                                      ctypes.c_long(length)), "fallocate"))

    # -- locks -------------------------------------------------------------------------------
    async def setlk(self, h: int, kind: int, start: int, length: int) -> None:
        fd = self._h(h)
        await self._do(lambda: fcntl.fcntl(fd, _F_OFD_SETLK,
                                           _FLOCK.pack(kind, os.SEEK_SET, start, length, 0)))

    async def getlk(self, h: int, kind: int, start: int,
                    length: int) -> tuple[int, int, int] | None:
        fd = self._h(h)
        raw = await self._do(lambda: fcntl.fcntl(
            fd, _F_OFD_GETLK, _FLOCK.pack(kind, os.SEEK_SET, start, length, 0)))
        k, _, s, n, _ = _FLOCK.unpack(raw)
        return None if k == 2 else (k, s, n)
