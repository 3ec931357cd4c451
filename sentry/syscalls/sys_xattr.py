"""Extended attribute syscalls: get/set/list/remove, by path, by path without following a
final symlink (l*), by fd (f*), and by dirfd and path with AT_ flags (*xattrat). Thin layers over the vfs xattr operations, which do the
namespace and permission checks; here are the size rules of the system call interface.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from sentry.errors import SyscallError
from sentry.kernel.table import syscall

from .sys_file import dirfd_of, i32, vfs_of
from .sys_fs import path_arg

if TYPE_CHECKING:
    from sentry.kernel.task import Task

XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536
XATTR_LIST_MAX = 65536


def _name(t: Task, addr: int) -> bytes:
    try:
        name = t.read_cstring(addr, XATTR_NAME_MAX + 1)
    except SyscallError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise SyscallError(errno.ERANGE) from None
        raise
    if not name or len(name) > XATTR_NAME_MAX:
        raise SyscallError(errno.ERANGE)
    return name


def _target(t: Task, kind: str, arg: int) -> tuple[Any, bytes, bool]:
    """(dirfd, path, follow) for the path / l / f variants."""
    if kind == "f":
        f = t.fdtable.get(i32(arg))
        if f.is_path:
            raise SyscallError(errno.EBADF)
        return f, b"", True
    return None, path_arg(t, arg), kind == ""


def _give(t: Task, value: bytes, buf: int, size: int) -> int:
    """Copy `value` out: size 0 asks for the length; too small a buffer is ERANGE."""
    size &= 0xFFFFFFFFFFFFFFFF
    if size == 0:
        return len(value)
    if len(value) > size:
        raise SyscallError(errno.ERANGE)
    t.mem_write(buf, value)
    return len(value)


Target = tuple[Any, bytes, bool]


async def _get(t: Task, tgt: Target, name: int, buf: int, size: int) -> int:
    d, path, follow = tgt
    nm = _name(t, name)
    vfs, fs = vfs_of(t)
    value = await vfs.getxattr(fs, t.creds, d, path, nm, follow=follow)
    return _give(t, value, buf, min(size & 0xFFFFFFFFFFFFFFFF, XATTR_SIZE_MAX))


async def _set(t: Task, tgt: Target, name: int, value: int, size: int, flags: int) -> int:
    d, path, follow = tgt
    nm = _name(t, name)
    size &= 0xFFFFFFFFFFFFFFFF
    if size > XATTR_SIZE_MAX:
        raise SyscallError(errno.E2BIG)
    data = t.mem_read(value, size) if size else b""
    vfs, fs = vfs_of(t)
    await vfs.setxattr(fs, t.creds, d, path, nm, data, i32(flags), follow=follow)
    return 0


async def _list(t: Task, tgt: Target, buf: int, size: int) -> int:
    d, path, follow = tgt
    vfs, fs = vfs_of(t)
    names = await vfs.listxattr(fs, t.creds, d, path, follow=follow)
    data = b"".join(n + b"\0" for n in names)
    if len(data) > XATTR_LIST_MAX:
        raise SyscallError(errno.E2BIG)
    return _give(t, data, buf, min(size & 0xFFFFFFFFFFFFFFFF, XATTR_LIST_MAX))


async def _remove(t: Task, tgt: Target, name: int) -> int:
    d, path, follow = tgt
    nm = _name(t, name)
    vfs, fs = vfs_of(t)
    await vfs.removexattr(fs, t.creds, d, path, nm, follow=follow)
    return 0


@syscall("getxattr")
async def sys_getxattr(t: Task, path: int, name: int, value: int, size: int, *_: int) -> int:
    """Implements Linux syscall getxattr(2)."""
    return await _get(t, _target(t, "", path), name, value, size)


@syscall("lgetxattr")
async def sys_lgetxattr(t: Task, path: int, name: int, value: int, size: int, *_: int) -> int:
    """Implements Linux syscall lgetxattr(2)."""
    return await _get(t, _target(t, "l", path), name, value, size)


@syscall("fgetxattr")
async def sys_fgetxattr(t: Task, fd: int, name: int, value: int, size: int, *_: int) -> int:
    """Implements Linux syscall fgetxattr(2)."""
    return await _get(t, _target(t, "f", fd), name, value, size)


@syscall("setxattr")
async def sys_setxattr(t: Task, path: int, name: int, value: int, size: int, flags: int,
                       *_: int) -> int:
    """Implements Linux syscall setxattr(2)."""
    return await _set(t, _target(t, "", path), name, value, size, flags)


@syscall("lsetxattr")
async def sys_lsetxattr(t: Task, path: int, name: int, value: int, size: int, flags: int,
                        *_: int) -> int:
    """Implements Linux syscall lsetxattr(2)."""
    return await _set(t, _target(t, "l", path), name, value, size, flags)


@syscall("fsetxattr")
async def sys_fsetxattr(t: Task, fd: int, name: int, value: int, size: int, flags: int,
                        *_: int) -> int:
    """Implements Linux syscall fsetxattr(2)."""
    return await _set(t, _target(t, "f", fd), name, value, size, flags)


@syscall("listxattr")
async def sys_listxattr(t: Task, path: int, buf: int, size: int, *_: int) -> int:
    """Implements Linux syscall listxattr(2)."""
    return await _list(t, _target(t, "", path), buf, size)


@syscall("llistxattr")
async def sys_llistxattr(t: Task, path: int, buf: int, size: int, *_: int) -> int:
    """Implements Linux syscall llistxattr(2)."""
    return await _list(t, _target(t, "l", path), buf, size)


@syscall("flistxattr")
async def sys_flistxattr(t: Task, fd: int, buf: int, size: int, *_: int) -> int:
    """Implements Linux syscall flistxattr(2)."""
    return await _list(t, _target(t, "f", fd), buf, size)


@syscall("removexattr")
async def sys_removexattr(t: Task, path: int, name: int, *_: int) -> int:
    """Implements Linux syscall removexattr(2)."""
    return await _remove(t, _target(t, "", path), name)


@syscall("lremovexattr")
async def sys_lremovexattr(t: Task, path: int, name: int, *_: int) -> int:
    """Implements Linux syscall lremovexattr(2)."""
    return await _remove(t, _target(t, "l", path), name)


@syscall("fremovexattr")
async def sys_fremovexattr(t: Task, fd: int, name: int, *_: int) -> int:
    """Implements Linux syscall fremovexattr(2)."""
    return await _remove(t, _target(t, "f", fd), name)


# the *at forms (Linux 6.13): a dirfd, a path, AT_ flags, and struct xattr_args ----------

AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH = 0x100, 0x1000
#: struct xattr_args: u64 value, u32 size, u32 flags (XATTR_ARGS_SIZE_VER0)
XATTR_ARGS = struct.Struct("<QII")


def _at(t: Task, dfd: int, path: int, at_flags: int) -> Target:
    """The file an *xattrat call names: EINVAL for other AT_ flags, an empty path only
    with AT_EMPTY_PATH (ENOENT), a final symlink followed unless AT_SYMLINK_NOFOLLOW."""
    at_flags &= 0xFFFFFFFF
    if at_flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(errno.EINVAL)
    name = path_arg(t, path)
    if not name and not at_flags & AT_EMPTY_PATH:
        raise SyscallError(errno.ENOENT)
    d = dirfd_of(t, dfd)
    if not name and d is not None and d.is_path:
        raise SyscallError(errno.EBADF)
    return d, name, not at_flags & AT_SYMLINK_NOFOLLOW


def _args(t: Task, uargs: int, usize: int) -> tuple[int, int, int]:
    """copy_struct_from_user of struct xattr_args: E2BIG past a page or for non-zero bytes
    beyond the known struct, EINVAL below its first size."""
    usize &= 0xFFFFFFFFFFFFFFFF
    if usize > 4096:
        raise SyscallError(errno.E2BIG)
    if usize < XATTR_ARGS.size:
        raise SyscallError(errno.EINVAL)
    raw = t.mem_read(uargs, usize)
    if any(raw[XATTR_ARGS.size:]):
        raise SyscallError(errno.E2BIG)
    value, size, flags = XATTR_ARGS.unpack_from(raw)
    return value, size, flags


@syscall("getxattrat")
async def sys_getxattrat(t: Task, dfd: int, path: int, at_flags: int, name: int, uargs: int,
                         usize: int) -> int:
    """Implements Linux syscall getxattrat(2)."""
    tgt = _at(t, dfd, path, at_flags)
    value, size, flags = _args(t, uargs, usize)
    if flags:
        raise SyscallError(errno.EINVAL)
    return await _get(t, tgt, name, value, size)


@syscall("setxattrat")
async def sys_setxattrat(t: Task, dfd: int, path: int, at_flags: int, name: int, uargs: int,
                         usize: int) -> int:
    """Implements Linux syscall setxattrat(2) (XATTR_CREATE/XATTR_REPLACE in the args)."""
    tgt = _at(t, dfd, path, at_flags)
    value, size, flags = _args(t, uargs, usize)
    return await _set(t, tgt, name, value, size, flags)


@syscall("listxattrat")
async def sys_listxattrat(t: Task, dfd: int, path: int, at_flags: int, buf: int, size: int,
                          *_: int) -> int:
    """Implements Linux syscall listxattrat(2)."""
    return await _list(t, _at(t, dfd, path, at_flags), buf, size)


@syscall("removexattrat")
async def sys_removexattrat(t: Task, dfd: int, path: int, at_flags: int, name: int,
                            *_: int) -> int:
    """Implements Linux syscall removexattrat(2)."""
    return await _remove(t, _at(t, dfd, path, at_flags), name)
