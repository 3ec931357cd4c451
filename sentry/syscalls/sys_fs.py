"""Filesystem syscalls: the stat family, namespace changes, attributes, cwd, umask, statfs.

Thin layers over `vfs.VirtualFilesystem`: decode paths and structs from application
memory, call the vfs operation with the Task's FSContext and Credentials, and write the
x86_64 result structs (`vfs.abi.Stat.pack_stat`, `pack_statx`, `StatFS.pack`) back.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.table import Level, syscall
from vfs.abi import (
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_REMOVEDIR,
    AT_SYMLINK_NOFOLLOW,
    PATH_MAX,
    UTIME_NOW,
)

from .sys_file import dirfd_of, i32, i64, vfs_of

if TYPE_CHECKING:
    from sentry.kernel.task import Task

TIMESPEC2 = struct.Struct("<qqqq")
TIMEVAL2 = struct.Struct("<qqqq")
UTIMBUF = struct.Struct("<qq")


def path_arg(t: Task, addr: int) -> bytes:
    """A path argument: EFAULT for a bad pointer, ENAMETOOLONG past PATH_MAX."""
    return t.read_cstring(addr, PATH_MAX)


# -- stat family -----------------------------------------------------------------------------


_STAT_FLAGS = AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800  # AT_NO_AUTOMOUNT


async def _stat_of(t: Task, dirfd: int, path: int, flags: int, *, statx_mask: int | None = None):
    """The Stat an fstatat/statx call names. An empty path with AT_EMPTY_PATH is the open
    file itself, whatever kind (host fds and pipes have no path to resolve)."""
    name = b"" if path == 0 and flags & AT_EMPTY_PATH else t.read_cstring(path, PATH_MAX)
    d = dirfd_of(t, dirfd)
    if not name and flags & AT_EMPTY_PATH and d is not None:
        if flags & ~(_STAT_FLAGS | 0x6000) or flags & 0x6000 == 0x6000:
            raise SyscallError(errno.EINVAL)
        if statx_mask is not None and statx_mask & 0x80000000:
            raise SyscallError(errno.EINVAL)
        return await d.stat()
    if statx_mask is not None:
        vfs, fs = vfs_of(t)
        return await vfs.statx(fs, t.creds, d, name, flags, statx_mask)
    vfs, fs = vfs_of(t)
    return await vfs.stat(fs, t.creds, d, name, flags)


@syscall("newfstatat")
async def sys_newfstatat(t: Task, dirfd: int, path: int, buf: int, flags: int, *_: int) -> int:
    """Implements Linux syscall newfstatat(2) (fstatat; what glibc's stat and lstat make,
    so the body of the stat family is here, not a layer below)."""
    st = await _stat_of(t, dirfd, path, i32(flags))
    t.mem_write(buf, st.pack_stat())
    return 0


@syscall("stat")
async def sys_stat(t: Task, path: int, buf: int, *_: int) -> int:
    """Implements Linux syscall stat(2)."""
    return await sys_newfstatat(t, AT_FDCWD, path, buf, 0)


@syscall("lstat")
async def sys_lstat(t: Task, path: int, buf: int, *_: int) -> int:
    """Implements Linux syscall lstat(2)."""
    return await sys_newfstatat(t, AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW)


@syscall("fstat")
async def sys_fstat(t: Task, fd: int, buf: int, *_: int) -> int:
    """Implements Linux syscall fstat(2)."""
    f = t.fdtable.get(i32(fd))
    st = await f.stat()
    t.mem_write(buf, st.pack_stat())
    return 0


@syscall("statx")
async def sys_statx(t: Task, dirfd: int, path: int, flags: int, mask: int, buf: int,
                    *_: int) -> int:
    """Implements Linux syscall statx(2) (no btime from filesystems that lack it)."""
    mask &= 0xFFFFFFFF
    st = await _stat_of(t, dirfd, path, i32(flags), statx_mask=mask)
    t.mem_write(buf, st.pack_statx(mask))
    return 0


# -- creating and removing names -------------------------------------------------------------


@syscall("mkdir")
async def sys_mkdir(t: Task, path: int, mode: int, *_: int) -> int:
    """Implements Linux syscall mkdir(2)."""
    vfs, fs = vfs_of(t)
    await vfs.mkdirat(fs, t.creds, None, path_arg(t, path), mode & 0o7777)
    return 0


@syscall("mkdirat")
async def sys_mkdirat(t: Task, dirfd: int, path: int, mode: int, *_: int) -> int:
    """Implements Linux syscall mkdirat(2)."""
    name = path_arg(t, path)
    vfs, fs = vfs_of(t)
    await vfs.mkdirat(fs, t.creds, dirfd_of(t, dirfd), name, mode & 0o7777)
    return 0


def _decode_dev(dev: int) -> int:
    """new_decode_dev: a 32-bit dev_t from the application → (major, minor) as os.makedev."""
    import os

    dev &= 0xFFFFFFFF
    major = (dev & 0xFFF00) >> 8
    minor = (dev & 0xFF) | ((dev >> 12) & 0xFFF00)
    return os.makedev(major, minor)


@syscall("mknod")
async def sys_mknod(t: Task, path: int, mode: int, dev: int, *_: int) -> int:
    """Implements Linux syscall mknod(2)."""
    vfs, fs = vfs_of(t)
    await vfs.mknodat(fs, t.creds, None, path_arg(t, path), mode & 0xFFFF,
                          _decode_dev(dev))
    return 0


@syscall("mknodat")
async def sys_mknodat(t: Task, dirfd: int, path: int, mode: int, dev: int, *_: int) -> int:
    """Implements Linux syscall mknodat(2)."""
    name = path_arg(t, path)
    vfs, fs = vfs_of(t)
    await vfs.mknodat(fs, t.creds, dirfd_of(t, dirfd), name, mode & 0xFFFF,
                          _decode_dev(dev))
    return 0


@syscall("rmdir")
async def sys_rmdir(t: Task, path: int, *_: int) -> int:
    """Implements Linux syscall rmdir(2)."""
    vfs, fs = vfs_of(t)
    await vfs.unlinkat(fs, t.creds, None, path_arg(t, path), AT_REMOVEDIR)
    return 0


@syscall("unlink")
async def sys_unlink(t: Task, path: int, *_: int) -> int:
    """Implements Linux syscall unlink(2)."""
    vfs, fs = vfs_of(t)
    await vfs.unlinkat(fs, t.creds, None, path_arg(t, path), 0)
    return 0


@syscall("unlinkat")
async def sys_unlinkat(t: Task, dirfd: int, path: int, flags: int, *_: int) -> int:
    """Implements Linux syscall unlinkat(2)."""
    name = path_arg(t, path)
    vfs, fs = vfs_of(t)
    await vfs.unlinkat(fs, t.creds, dirfd_of(t, dirfd), name, i32(flags))
    return 0


@syscall("rename")
async def sys_rename(t: Task, old: int, new: int, *_: int) -> int:
    """Implements Linux syscall rename(2)."""
    vfs, fs = vfs_of(t)
    await vfs.renameat2(fs, t.creds, None, path_arg(t, old), None, path_arg(t, new), 0)
    return 0


@syscall("renameat")
async def sys_renameat(t: Task, olddirfd: int, old: int, newdirfd: int, new: int,
                       *_: int) -> int:
    """Implements Linux syscall renameat(2)."""
    return await sys_renameat2(t, olddirfd, old, newdirfd, new, 0)


@syscall("renameat2")
async def sys_renameat2(t: Task, olddirfd: int, old: int, newdirfd: int, new: int, flags: int,
                        *_: int) -> int:
    """Implements Linux syscall renameat2(2) (RENAME_NOREPLACE, RENAME_EXCHANGE)."""
    oldname, newname = path_arg(t, old), path_arg(t, new)
    od, nd = dirfd_of(t, olddirfd), dirfd_of(t, newdirfd)
    vfs, fs = vfs_of(t)
    await vfs.renameat2(fs, t.creds, od, oldname, nd, newname, flags & 0xFFFFFFFF)
    return 0


@syscall("link")
async def sys_link(t: Task, old: int, new: int, *_: int) -> int:
    """Implements Linux syscall link(2)."""
    vfs, fs = vfs_of(t)
    await vfs.linkat(fs, t.creds, None, path_arg(t, old), None, path_arg(t, new), 0)
    return 0


@syscall("linkat")
async def sys_linkat(t: Task, olddirfd: int, old: int, newdirfd: int, new: int, flags: int,
                     *_: int) -> int:
    """Implements Linux syscall linkat(2)."""
    flags = i32(flags)
    oldname = b"" if old == 0 and flags & AT_EMPTY_PATH else path_arg(t, old)
    newname = path_arg(t, new)
    od, nd = dirfd_of(t, olddirfd), dirfd_of(t, newdirfd)
    vfs, fs = vfs_of(t)
    await vfs.linkat(fs, t.creds, od, oldname, nd, newname, flags)
    return 0


@syscall("symlink")
async def sys_symlink(t: Task, target: int, path: int, *_: int) -> int:
    """Implements Linux syscall symlink(2)."""
    vfs, fs = vfs_of(t)
    await vfs.symlinkat(fs, t.creds, path_arg(t, target), None, path_arg(t, path))
    return 0


@syscall("symlinkat")
async def sys_symlinkat(t: Task, target: int, dirfd: int, path: int, *_: int) -> int:
    """Implements Linux syscall symlinkat(2)."""
    tgt, name = path_arg(t, target), path_arg(t, path)
    vfs, fs = vfs_of(t)
    await vfs.symlinkat(fs, t.creds, tgt, dirfd_of(t, dirfd), name)
    return 0


async def _readlink(t: Task, dirfd: int, path: int, buf: int, size: int) -> int:
    size = i32(size)
    if size <= 0:
        raise SyscallError(errno.EINVAL)
    name = path_arg(t, path)
    vfs, fs = vfs_of(t)
    target = await vfs.readlinkat(fs, t.creds, dirfd_of(t, dirfd), name)
    data = target[:size]
    t.mem_write(buf, data)
    return len(data)


@syscall("readlink")
async def sys_readlink(t: Task, path: int, buf: int, size: int, *_: int) -> int:
    """Implements Linux syscall readlink(2)."""
    return await _readlink(t, AT_FDCWD, path, buf, size)


@syscall("readlinkat")
async def sys_readlinkat(t: Task, dirfd: int, path: int, buf: int, size: int, *_: int) -> int:
    """Implements Linux syscall readlinkat(2)."""
    return await _readlink(t, dirfd, path, buf, size)


# -- attributes ------------------------------------------------------------------------------


@syscall("chmod")
async def sys_chmod(t: Task, path: int, mode: int, *_: int) -> int:
    """Implements Linux syscall chmod(2)."""
    vfs, fs = vfs_of(t)
    await vfs.fchmodat(fs, t.creds, None, path_arg(t, path), mode & 0o7777, 0)
    return 0


@syscall("fchmod")
async def sys_fchmod(t: Task, fd: int, mode: int, *_: int) -> int:
    """Implements Linux syscall fchmod(2)."""
    f = t.fdtable.get(i32(fd))
    vfs, fs = vfs_of(t)
    if f.vd is None and not f.is_path:  # a host fd: its own file or pipe
        await f.chmod(t.creds, mode & 0o7777)
        return 0
    await vfs.fchmodat(fs, t.creds, f, None, mode & 0o7777, 0)
    return 0


@syscall("fchmodat")
async def sys_fchmodat(t: Task, dirfd: int, path: int, mode: int, *_: int) -> int:
    """Implements Linux syscall fchmodat(2) (the syscall has no flags argument)."""
    name = path_arg(t, path)
    vfs, fs = vfs_of(t)
    await vfs.fchmodat(fs, t.creds, dirfd_of(t, dirfd), name, mode & 0o7777, 0)
    return 0


@syscall("fchmodat2")
async def sys_fchmodat2(t: Task, dirfd: int, path: int, mode: int, flags: int, *_: int) -> int:
    """Implements Linux syscall fchmodat2(2) (AT_SYMLINK_NOFOLLOW gives EOPNOTSUPP on links)."""
    flags = i32(flags)
    name = b"" if path == 0 and flags & AT_EMPTY_PATH else t.read_cstring(path, PATH_MAX)
    vfs, fs = vfs_of(t)
    await vfs.fchmodat(fs, t.creds, dirfd_of(t, dirfd), name, mode & 0o7777, flags)
    return 0


def _id(v: int) -> int:
    v &= 0xFFFFFFFF
    return -1 if v == 0xFFFFFFFF else v


@syscall("chown")
async def sys_chown(t: Task, path: int, uid: int, gid: int, *_: int) -> int:
    """Implements Linux syscall chown(2)."""
    vfs, fs = vfs_of(t)
    await vfs.fchownat(fs, t.creds, None, path_arg(t, path), _id(uid), _id(gid), 0)
    return 0


@syscall("lchown")
async def sys_lchown(t: Task, path: int, uid: int, gid: int, *_: int) -> int:
    """Implements Linux syscall lchown(2)."""
    vfs, fs = vfs_of(t)
    await vfs.fchownat(fs, t.creds, None, path_arg(t, path), _id(uid), _id(gid),
                           AT_SYMLINK_NOFOLLOW)
    return 0


@syscall("fchown")
async def sys_fchown(t: Task, fd: int, uid: int, gid: int, *_: int) -> int:
    """Implements Linux syscall fchown(2)."""
    f = t.fdtable.get(i32(fd))
    vfs, fs = vfs_of(t)
    await vfs.fchownat(fs, t.creds, f, None, _id(uid), _id(gid), 0)
    return 0


@syscall("fchownat")
async def sys_fchownat(t: Task, dirfd: int, path: int, uid: int, gid: int, flags: int,
                       *_: int) -> int:
    """Implements Linux syscall fchownat(2)."""
    flags = i32(flags)
    name = b"" if path == 0 and flags & AT_EMPTY_PATH else t.read_cstring(path, PATH_MAX)
    vfs, fs = vfs_of(t)
    await vfs.fchownat(fs, t.creds, dirfd_of(t, dirfd), name, _id(uid), _id(gid), flags)
    return 0


@syscall("utimensat")
async def sys_utimensat(t: Task, dirfd: int, path: int, times: int, flags: int,
                        *_: int) -> int:
    """Implements Linux syscall utimensat(2) (a NULL path is futimens on dirfd)."""
    flags = i32(flags)
    tv = None
    if times:
        a, an, m, mn = TIMESPEC2.unpack(t.mem_read(times, TIMESPEC2.size))
        tv = ((a, an), (m, mn))
    if path == 0:  # futimens(fd, times)
        if i32(dirfd) == AT_FDCWD:
            raise SyscallError(errno.EFAULT)
        f = t.fdtable.get(i32(dirfd))
        if flags:
            raise SyscallError(errno.EINVAL)
        vfs, fs = vfs_of(t)
        await vfs.utimensat(fs, t.creds, f, None, tv, 0)
        return 0
    name = path_arg(t, path)
    vfs, fs = vfs_of(t)
    await vfs.utimensat(fs, t.creds, dirfd_of(t, dirfd), name, tv, flags)
    return 0


def _timeval_pair(t: Task, addr: int) -> tuple[tuple[int, int], tuple[int, int]] | None:
    if not addr:
        return None
    a, au, m, mu = TIMEVAL2.unpack(t.mem_read(addr, TIMEVAL2.size))
    if not (0 <= au < 1_000_000 and 0 <= mu < 1_000_000):
        raise SyscallError(errno.EINVAL)
    return ((a, au * 1000), (m, mu * 1000))


@syscall("utimes")
async def sys_utimes(t: Task, path: int, times: int, *_: int) -> int:
    """Implements Linux syscall utimes(2) (microsecond times)."""
    tv = _timeval_pair(t, times)
    vfs, fs = vfs_of(t)
    await vfs.utimensat(fs, t.creds, None, path_arg(t, path), tv, 0)
    return 0


@syscall("futimesat")
async def sys_futimesat(t: Task, dirfd: int, path: int, times: int, *_: int) -> int:
    """Implements Linux syscall futimesat(2)."""
    tv = _timeval_pair(t, times)
    if path == 0:
        vfs, fs = vfs_of(t)
        await vfs.utimensat(fs, t.creds, t.fdtable.get(i32(dirfd)), None, tv, 0)
        return 0
    vfs, fs = vfs_of(t)
    await vfs.utimensat(fs, t.creds, dirfd_of(t, dirfd), path_arg(t, path), tv, 0)
    return 0


@syscall("utime")
async def sys_utime(t: Task, path: int, times: int, *_: int) -> int:
    """Implements Linux syscall utime(2) (whole-second times; NULL means now)."""
    tv = None
    if times:
        a, m = UTIMBUF.unpack(t.mem_read(times, UTIMBUF.size))
        tv = ((a, 0), (m, 0))
    else:
        tv = ((0, UTIME_NOW), (0, UTIME_NOW))
    vfs, fs = vfs_of(t)
    await vfs.utimensat(fs, t.creds, None, path_arg(t, path), tv, 0)
    return 0


@syscall("truncate")
async def sys_truncate(t: Task, path: int, length: int, *_: int) -> int:
    """Implements Linux syscall truncate(2)."""
    vfs, fs = vfs_of(t)
    await vfs.truncate(fs, t.creds, path_arg(t, path), i64(length))
    return 0


@syscall("ftruncate")
async def sys_ftruncate(t: Task, fd: int, length: int, *_: int) -> int:
    """Implements Linux syscall ftruncate(2)."""
    f = t.fdtable.get(i32(fd))
    await vfs_of(t)[0].ftruncate(f, i64(length))
    return 0


@syscall("fallocate")
async def sys_fallocate(t: Task, fd: int, mode: int, offset: int, length: int, *_: int) -> int:
    """Implements Linux syscall fallocate(2) (what each filesystem supports)."""
    f = t.fdtable.get(i32(fd))
    await f.fallocate(i32(mode), i64(offset), i64(length))
    return 0


async def _access(t: Task, dirfd: int, path: int, mode: int, flags: int) -> int:
    flags = i32(flags)
    name = b"" if path == 0 and flags & AT_EMPTY_PATH else t.read_cstring(path, PATH_MAX)
    vfs, fs = vfs_of(t)
    await vfs.faccessat(fs, t.creds, dirfd_of(t, dirfd), name, i32(mode), flags)
    return 0


@syscall("access")
async def sys_access(t: Task, path: int, mode: int, *_: int) -> int:
    """Implements Linux syscall access(2)."""
    return await _access(t, AT_FDCWD, path, mode, 0)


@syscall("faccessat")
async def sys_faccessat(t: Task, dirfd: int, path: int, mode: int, *_: int) -> int:
    """Implements Linux syscall faccessat(2) (the syscall has no flags argument)."""
    return await _access(t, dirfd, path, mode, 0)


@syscall("faccessat2")
async def sys_faccessat2(t: Task, dirfd: int, path: int, mode: int, flags: int,
                         *_: int) -> int:
    """Implements Linux syscall faccessat2(2) (AT_EACCESS, AT_SYMLINK_NOFOLLOW,
    AT_EMPTY_PATH)."""
    return await _access(t, dirfd, path, mode, flags)


# -- working directory, umask, statfs --------------------------------------------------------


@syscall("getcwd")
def sys_getcwd(t: Task, buf: int, size: int, *_: int) -> int:
    """Implements Linux syscall getcwd(2): returns the length including the NUL."""
    vfs, fs = vfs_of(t)
    path = vfs.getcwd(fs) + b"\0"
    if len(path) > size & 0xFFFFFFFFFFFFFFFF:
        raise SyscallError(errno.ERANGE)
    t.mem_write(buf, path)
    return len(path)


@syscall("chdir")
async def sys_chdir(t: Task, path: int, *_: int) -> int:
    """Implements Linux syscall chdir(2)."""
    vfs, fs = vfs_of(t)
    await vfs.chdir(fs, t.creds, None, path_arg(t, path))
    return 0


@syscall("fchdir")
async def sys_fchdir(t: Task, fd: int, *_: int) -> int:
    """Implements Linux syscall fchdir(2)."""
    f = t.fdtable.get(i32(fd))
    vfs, fs = vfs_of(t)
    await vfs.chdir(fs, t.creds, f, b"")
    return 0


@syscall("chroot")
async def sys_chroot(t: Task, path: int, *_: int) -> int:
    """Implements Linux syscall chroot(2) (needs CAP_SYS_CHROOT in the sandbox)."""
    vfs, fs = vfs_of(t)
    await vfs.chroot(fs, t.creds, path_arg(t, path))
    return 0


@syscall("umask")
def sys_umask(t: Task, mask: int, *_: int) -> int:
    """Implements Linux syscall umask(2)."""
    fs = vfs_of(t)[1]
    old = fs.umask
    fs.umask = mask & 0o777
    return old


@syscall("statfs")
async def sys_statfs(t: Task, path: int, buf: int, *_: int) -> int:
    """Implements Linux syscall statfs(2)."""
    vfs, fs = vfs_of(t)
    sf = await vfs.statfs(fs, t.creds, None, path_arg(t, path))
    t.mem_write(buf, sf.pack())
    return 0


@syscall("fstatfs")
async def sys_fstatfs(t: Task, fd: int, buf: int, *_: int) -> int:
    """Implements Linux syscall fstatfs(2)."""
    f = t.fdtable.get(i32(fd))
    if f.vd is None:  # a file without a dentry of ours (a host fd) answers for itself
        t.mem_write(buf, (await f.statfs()).pack())
        return 0
    sf = await vfs_of(t)[0].statfs_at(f.vd)
    t.mem_write(buf, sf.pack())
    return 0


@syscall("sync_file_range", level=Level.PARTIAL, note="flushes the whole file (fdatasync)")
async def sys_sync_file_range(t: Task, fd: int, offset: int, nbytes: int, flags: int,
                              *_: int) -> int:
    """Implements Linux syscall sync_file_range(2) as an fdatasync of the file."""
    if i64(offset) < 0 or i64(nbytes) < 0 or flags & ~7:
        raise SyscallError(errno.EINVAL)
    await t.fdtable.get(i32(fd)).fsync(True)
    return 0
