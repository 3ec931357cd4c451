"""A small vocabulary of file operations, run against the host kernel and against the VFS.

Why: every behaviour case is a list of steps like ("mkdir", "d", 0o755); each target runs
the same steps and returns comparable, normalised results (a value, or the errno's name).
The host kernel on a real temporary directory is the oracle; tmpfs, overlay and goferfs
must give the same answers. The conformance suite can reuse `HostTarget`, `VfsTarget`,
`run_steps` and the case tables in `tests/vfs/cases/`.

Paths are relative to the target's test directory (never absolute, never climbing out with
`..`), so the host target cannot touch anything outside it. Handles: every "open" step gets
the next handle number (0, 1, ...) whether it succeeded or not; later steps name it.

Results: None → "ok"; errors → "ENOENT" etc.; stat → (mode, nlink, uid, gid, size, rdev)
with size None for directories (their size is filesystem-specific); getdents/listdir/
listxattr → sorted lists.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat as _st
from typing import Any

from vfs import Credentials, VirtualFilesystem
from vfs.abi import AT_EMPTY_PATH, O_DIRECTORY, O_PATH

_libc = ctypes.CDLL(None, use_errno=True)
SYS_RENAMEAT2 = 316
SYS_SETFSUID, SYS_SETFSGID, SYS_SETGROUPS = 122, 123, 116
SYS_UTIMENSAT = 280
SYS_FCHMODAT2 = 452
SYS_LINKAT = 265
#: ((sec, nsec), (sec, nsec)) a case sets with utimens before checking mtime_changed.
OLD_TIME = ((1, 0), (1, 0))
OLD_NS = 1_000_000_000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _syscall(*args: int | bytes | Any) -> int:
    r = _libc.syscall(*args)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def norm_stat(st: Any) -> tuple:
    """The stat fields that must match across filesystems (no ino, dev, times, blocks)."""
    mode = st.st_mode if hasattr(st, "st_mode") else st.mode
    nlink = st.st_nlink if hasattr(st, "st_nlink") else st.nlink
    uid = st.st_uid if hasattr(st, "st_uid") else st.uid
    gid = st.st_gid if hasattr(st, "st_gid") else st.gid
    size = st.st_size if hasattr(st, "st_size") else st.size
    rdev = st.st_rdev if hasattr(st, "st_rdev") else st.rdev
    return (oct(mode), nlink, uid, gid, None if _st.S_ISDIR(mode) else size, rdev)


def _b(p: str | bytes) -> bytes:
    return p if isinstance(p, bytes) else os.fsencode(p)


class HostTarget:
    """The oracle: real system calls on a real directory (relative to an O_PATH dirfd).

    "user" steps switch only this thread's fs ids and groups (raw setfsuid/setfsgid/
    setgroups, which glibc does not broadcast), which drops the fs capabilities the way a
    non-root user lacks them; "root" switches back.
    """

    name = "host"

    def __init__(self, top: str) -> None:
        self.top = top
        self.dirfd = os.open(top, os.O_PATH | os.O_DIRECTORY)
        self.handles: list[int | None] = []
        self.old_umask = os.umask(0o022)

    async def close(self) -> None:
        await self.op_root()
        for h in self.handles:
            if h is not None:
                os.close(h)
        os.close(self.dirfd)
        os.umask(self.old_umask)

    # identity
    async def op_user(self, uid: int, gid: int, groups: tuple = ()) -> None:
        arr = (ctypes.c_uint * max(1, len(groups)))(*groups)
        _syscall(SYS_SETGROUPS, len(groups), arr)
        _libc.syscall(SYS_SETFSGID, gid)
        _libc.syscall(SYS_SETFSUID, uid)

    async def op_root(self) -> None:
        _libc.syscall(SYS_SETFSUID, 0)
        _libc.syscall(SYS_SETFSGID, 0)
        arr = (ctypes.c_uint * 1)(0)
        _syscall(SYS_SETGROUPS, 0, arr)

    async def op_umask(self, mask: int) -> None:
        os.umask(mask)

    # paths
    async def op_open(self, path: str, flags: int, mode: int = 0) -> str:
        try:
            fd = os.open(path, flags, mode, dir_fd=self.dirfd)
        except OSError:
            self.handles.append(None)
            raise
        self.handles.append(fd)
        return "fd"

    async def op_mkdir(self, path: str, mode: int) -> None:
        os.mkdir(path, mode, dir_fd=self.dirfd)

    async def op_mknod(self, path: str, mode: int, dev: int = 0) -> None:
        os.mknod(path, mode, dev, dir_fd=self.dirfd)

    async def op_symlink(self, target: str, path: str) -> None:
        os.symlink(target, path, dir_fd=self.dirfd)

    async def op_readlink(self, path: str) -> bytes:
        return os.readlink(_b(path), dir_fd=self.dirfd)

    async def op_link(self, old: str, new: str, follow: bool = False) -> None:
        os.link(old, new, src_dir_fd=self.dirfd, dst_dir_fd=self.dirfd, follow_symlinks=follow)

    async def op_unlink(self, path: str) -> None:
        os.unlink(path, dir_fd=self.dirfd)

    async def op_rmdir(self, path: str) -> None:
        os.rmdir(path, dir_fd=self.dirfd)

    async def op_rename(self, old: str, new: str, flags: int = 0) -> None:
        _syscall(SYS_RENAMEAT2, self.dirfd, _b(old), self.dirfd, _b(new), flags)

    async def op_stat(self, path: str) -> tuple:
        return norm_stat(os.stat(path, dir_fd=self.dirfd))

    async def op_lstat(self, path: str) -> tuple:
        return norm_stat(os.stat(path, dir_fd=self.dirfd, follow_symlinks=False))

    async def op_chmod(self, path: str, mode: int, flags: int = 0) -> None:
        _syscall(SYS_FCHMODAT2, self.dirfd, _b(path), mode, flags)

    async def op_chown(self, path: str, uid: int, gid: int, follow: bool = True) -> None:
        os.chown(path, uid, gid, dir_fd=self.dirfd, follow_symlinks=follow)

    async def op_utimens(self, path: str, times: tuple | None, flags: int = 0) -> None:
        arg = None
        if times is not None:
            arg = (_Timespec * 2)(_Timespec(*times[0]), _Timespec(*times[1]))
        _syscall(SYS_UTIMENSAT, self.dirfd, _b(path), arg, flags)

    async def op_truncate(self, path: str, n: int) -> None:
        fd = os.open(path, os.O_PATH, dir_fd=self.dirfd)
        try:
            os.truncate(f"/proc/self/fd/{fd}", n)
        finally:
            os.close(fd)

    async def op_access(self, path: str, mode: int, follow: bool = True) -> None:
        if not os.access(path, mode, dir_fd=self.dirfd, effective_ids=True,
                         follow_symlinks=follow):
            # os.access hides the errno: ask the kernel again for it.
            flags = 0x200 | (0 if follow else 0x100)
            _syscall(439, self.dirfd, _b(path), mode, flags)  # faccessat2
        return None

    async def op_listdir(self, path: str) -> list:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.dirfd)
        try:
            return sorted(os.fsencode(n) for n in os.listdir(fd))
        finally:
            os.close(fd)

    async def op_setxattr(self, path: str, name: bytes, value: bytes, flags: int = 0) -> None:
        os.setxattr(self._p(path), name, value, flags, follow_symlinks=False)

    async def op_getxattr(self, path: str, name: bytes) -> bytes:
        return os.getxattr(self._p(path), name, follow_symlinks=False)

    async def op_listxattr(self, path: str) -> list:
        return sorted(os.fsencode(n) for n in os.listxattr(self._p(path),
                                                          follow_symlinks=False))

    async def op_removexattr(self, path: str, name: bytes) -> None:
        os.removexattr(self._p(path), name, follow_symlinks=False)

    def _p(self, path: str) -> str:
        return os.path.join(self.top, path)

    # handles
    def _h(self, h: int) -> int:
        fd = self.handles[h]
        if fd is None:
            raise OSError(errno.EBADF, "handle failed to open")
        return fd

    async def op_close(self, h: int) -> None:
        os.close(self._h(h))
        self.handles[h] = None

    async def op_read(self, h: int, n: int) -> bytes:
        return os.read(self._h(h), n)

    async def op_write(self, h: int, data: bytes) -> int:
        return os.write(self._h(h), data)

    async def op_pread(self, h: int, n: int, off: int) -> bytes:
        return os.pread(self._h(h), n, off)

    async def op_pwrite(self, h: int, data: bytes, off: int) -> int:
        return os.pwrite(self._h(h), data, off)

    async def op_seek(self, h: int, off: int, whence: int) -> int:
        return os.lseek(self._h(h), off, whence)

    async def op_fstat(self, h: int) -> tuple:
        return norm_stat(os.fstat(self._h(h)))

    async def op_ftruncate(self, h: int, n: int) -> None:
        os.ftruncate(self._h(h), n)

    async def op_fchmod(self, h: int, mode: int) -> None:
        os.fchmod(self._h(h), mode)

    async def op_fsync(self, h: int) -> None:
        os.fsync(self._h(h))

    async def op_getdents(self, h: int) -> list:
        fd = self._h(h)
        os.lseek(fd, 0, os.SEEK_SET)
        out = []
        for e in os.scandir(fd):
            out.append((os.fsencode(e.name), _st.S_IFMT(e.stat(follow_symlinks=False).st_mode)))
        return sorted(out)

    async def op_statat(self, h: int, path: str, flags: int) -> tuple:
        if path == "" and flags & AT_EMPTY_PATH:
            return norm_stat(os.fstat(self._h(h)))
        return norm_stat(os.stat(path, dir_fd=self._h(h), follow_symlinks=not flags & 0x100))

    async def op_mkdirat(self, h: int, path: str, mode: int) -> None:
        os.mkdir(path, mode, dir_fd=self._h(h))

    async def op_fallocate(self, h: int, mode: int, off: int, n: int) -> None:
        _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
        if _libc.fallocate(self._h(h), mode, off, n) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))

    async def op_mtime_changed(self, path: str) -> bool:
        """Whether mtime moved away from the OLD_TIME an earlier utimens step set."""
        return os.stat(path, dir_fd=self.dirfd, follow_symlinks=False).st_mtime_ns != OLD_NS

    async def op_linkh(self, h: int, new: str) -> None:
        """linkat(fd, "", dirfd, new, AT_EMPTY_PATH): name an open (O_TMPFILE) file."""
        _syscall(SYS_LINKAT, self._h(h), b"", self.dirfd, _b(new), AT_EMPTY_PATH)


class VfsTarget:
    """The same operations through a `VirtualFilesystem`, relative to directory `top`."""

    def __init__(self, vfs: VirtualFilesystem, top: bytes = b"/", name: str = "vfs") -> None:
        self.vfs = vfs
        self.name = name
        self.ctx = vfs.new_context()
        self.creds = Credentials.root()
        self.top = top
        self.dirfd: Any = None
        self.handles: list[Any] = []

    async def start(self) -> VfsTarget:
        self.dirfd = await self.vfs.open(self.ctx, self.creds, None, self.top,
                                         O_PATH | O_DIRECTORY)
        return self

    async def close(self) -> None:
        for h in self.handles:
            if h is not None:
                await h.dec_ref()
        await self.dirfd.dec_ref()

    async def op_user(self, uid: int, gid: int, groups: tuple = ()) -> None:
        self.creds = Credentials.user(uid, gid, groups)

    async def op_root(self) -> None:
        self.creds = Credentials.root()

    async def op_umask(self, mask: int) -> None:
        self.ctx.umask = mask

    def _a(self) -> tuple:
        return self.ctx, self.creds, self.dirfd

    async def op_open(self, path: str, flags: int, mode: int = 0) -> str:
        try:
            fd = await self.vfs.open(*self._a(), _b(path), flags, mode)
        except OSError:
            self.handles.append(None)
            raise
        self.handles.append(fd)
        return "fd"

    async def op_mkdir(self, path: str, mode: int) -> None:
        await self.vfs.mkdirat(*self._a(), _b(path), mode)

    async def op_mknod(self, path: str, mode: int, dev: int = 0) -> None:
        await self.vfs.mknodat(*self._a(), _b(path), mode, dev)

    async def op_symlink(self, target: str, path: str) -> None:
        await self.vfs.symlinkat(self.ctx, self.creds, _b(target), self.dirfd, _b(path))

    async def op_readlink(self, path: str) -> bytes:
        return await self.vfs.readlinkat(*self._a(), _b(path))

    async def op_link(self, old: str, new: str, follow: bool = False) -> None:
        await self.vfs.linkat(*self._a(), _b(old), self.dirfd, _b(new), 0x400 if follow else 0)

    async def op_unlink(self, path: str) -> None:
        await self.vfs.unlinkat(*self._a(), _b(path), 0)

    async def op_rmdir(self, path: str) -> None:
        await self.vfs.unlinkat(*self._a(), _b(path), 0x200)

    async def op_rename(self, old: str, new: str, flags: int = 0) -> None:
        await self.vfs.renameat2(*self._a(), _b(old), self.dirfd, _b(new), flags)

    async def op_stat(self, path: str) -> tuple:
        return norm_stat(await self.vfs.stat(*self._a(), _b(path), 0))

    async def op_lstat(self, path: str) -> tuple:
        return norm_stat(await self.vfs.stat(*self._a(), _b(path), 0x100))

    async def op_chmod(self, path: str, mode: int, flags: int = 0) -> None:
        await self.vfs.fchmodat(*self._a(), _b(path), mode, flags)

    async def op_chown(self, path: str, uid: int, gid: int, follow: bool = True) -> None:
        await self.vfs.fchownat(*self._a(), _b(path), uid, gid, 0 if follow else 0x100)

    async def op_utimens(self, path: str, times: tuple | None, flags: int = 0) -> None:
        await self.vfs.utimensat(*self._a(), _b(path), times, flags)

    async def op_truncate(self, path: str, n: int) -> None:
        fd = await self.vfs.open(*self._a(), _b(path), O_PATH)
        try:
            # truncate(2) resolves from the cwd; use the resolved file's absolute path
            await self.vfs.truncate(self.ctx, self.creds, self.vfs.path_of(self.ctx, fd.vd), n)
        finally:
            await fd.dec_ref()

    async def op_access(self, path: str, mode: int, follow: bool = True) -> None:
        await self.vfs.faccessat(*self._a(), _b(path), mode, 0x200 | (0 if follow else 0x100))

    async def op_listdir(self, path: str) -> list:
        fd = await self.vfs.open(*self._a(), _b(path), os.O_RDONLY | O_DIRECTORY)
        try:
            return sorted(n for n, _ in await _dents(fd) if n not in (b".", b".."))
        finally:
            await fd.dec_ref()

    async def op_setxattr(self, path: str, name: bytes, value: bytes, flags: int = 0) -> None:
        await self.vfs.setxattr(*self._a(), _b(path), name, value, flags, follow=False)

    async def op_getxattr(self, path: str, name: bytes) -> bytes:
        return await self.vfs.getxattr(*self._a(), _b(path), name, follow=False)

    async def op_listxattr(self, path: str) -> list:
        return sorted(await self.vfs.listxattr(*self._a(), _b(path), follow=False))

    async def op_removexattr(self, path: str, name: bytes) -> None:
        await self.vfs.removexattr(*self._a(), _b(path), name, follow=False)

    def _h(self, h: int) -> Any:
        fd = self.handles[h]
        if fd is None:
            raise OSError(errno.EBADF, "handle failed to open")
        return fd

    async def op_close(self, h: int) -> None:
        fd = self._h(h)
        self.handles[h] = None
        await fd.dec_ref()

    async def op_read(self, h: int, n: int) -> bytes:
        return await self._h(h).read(n)

    async def op_write(self, h: int, data: bytes) -> int:
        return await self._h(h).write(data)

    async def op_pread(self, h: int, n: int, off: int) -> bytes:
        return await self._h(h).pread(n, off)

    async def op_pwrite(self, h: int, data: bytes, off: int) -> int:
        return await self._h(h).pwrite(data, off)

    async def op_seek(self, h: int, off: int, whence: int) -> int:
        return await self._h(h).seek(off, whence)

    async def op_fstat(self, h: int) -> tuple:
        return norm_stat(await self._h(h).stat())

    async def op_ftruncate(self, h: int, n: int) -> None:
        await self.vfs.ftruncate(self._h(h), n)

    async def op_fchmod(self, h: int, mode: int) -> None:
        await self.vfs.fchmodat(self.ctx, self.creds, self._h(h), None, mode)

    async def op_fsync(self, h: int) -> None:
        await self._h(h).fsync()

    async def op_getdents(self, h: int) -> list:
        fd = self._h(h)
        await fd.seek(0, os.SEEK_SET)
        return sorted((n, t << 12) for n, t in await _dents(fd) if n not in (b".", b".."))

    async def op_statat(self, h: int, path: str, flags: int) -> tuple:
        return norm_stat(await self.vfs.stat(self.ctx, self.creds, self._h(h), _b(path), flags))

    async def op_mkdirat(self, h: int, path: str, mode: int) -> None:
        await self.vfs.mkdirat(self.ctx, self.creds, self._h(h), _b(path), mode)

    async def op_fallocate(self, h: int, mode: int, off: int, n: int) -> None:
        await self._h(h).fallocate(mode, off, n)

    async def op_mtime_changed(self, path: str) -> bool:
        st = await self.vfs.stat(self.ctx, self.creds, self.dirfd, _b(path), 0x100)
        return st.mtime_ns != OLD_NS

    async def op_linkh(self, h: int, new: str) -> None:
        await self.vfs.linkat(self.ctx, self.creds, self._h(h), b"", self.dirfd, _b(new),
                              AT_EMPTY_PATH)


async def _dents(fd: Any) -> list[tuple[bytes, int]]:
    from vfs import parse_dirents64

    out = []
    while chunk := await fd.getdents64(4096):
        out += [(name, t) for _, _, t, name in parse_dirents64(chunk)]
    return out


async def run_steps(target: Any, steps: list[tuple]) -> list[Any]:
    """Run `steps` on `target`; one normalised result per step."""
    results = []
    for step in steps:
        name, *args = step
        fn = getattr(target, "op_" + name)
        try:
            r = await fn(*args)
            results.append("ok" if r is None else r)
        except OSError as e:
            if e.errno is None:
                raise
            results.append(errno.errorcode.get(e.errno, str(e.errno)))
    return results
