"""The host kernel interfaces the gofer needs and Python's os module lacks or gets wrong
for it, through ctypes: openat2(2) with RESOLVE_* flags, statx(2) (btime, mount id),
fstatfs(2), utimensat(2) on a descriptor path, fallocate(2), and pread(2) into a caller's
buffer (os.preadv would issue preadv2, which the confined gofer's seccomp allow-list does
not include)."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from typing import Any

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_pread = _libc.pread
_pread.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long)
_pread.restype = ctypes.c_ssize_t


def _raise_errno() -> None:
    e = ctypes.get_errno()
    raise OSError(e, os.strerror(e))


# --- openat2 -----------------------------------------------------------------------------

_SYS_OPENAT2 = 437
_RESOLVE_NO_XDEV = 0x01
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


#: How a node is reached: an O_PATH descriptor of the name itself, never following it.
O_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
#: openat2's lookup of one name: no symlinks, no magic links, beneath the directory, and
#: (`HOW_XDEV`) no mount point crossed.
HOW_XDEV = _OpenHow(
    O_PATH_FLAGS, 0, _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS | _RESOLVE_BENEATH | _RESOLVE_NO_XDEV
)
HOW_SUBMOUNTS = _OpenHow(
    O_PATH_FLAGS, 0, _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS | _RESOLVE_BENEATH
)
_HOW_SIZE = ctypes.sizeof(_OpenHow)


def openat2(dirfd: int, name: str, how: _OpenHow) -> int:
    """openat2(2) of `name` below `dirfd`; the errno is raised as OSError (EXDEV: a mount
    point RESOLVE_NO_XDEV refused)."""
    fd = _libc.syscall(_SYS_OPENAT2, dirfd, os.fsencode(name), ctypes.byref(how), _HOW_SIZE)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{os.strerror(e)}: {name!r}")
    return int(fd)


def _probe_openat2() -> bool:
    root = os.open("/", os.O_PATH | os.O_CLOEXEC)
    try:
        fd = _libc.syscall(_SYS_OPENAT2, root, b".", ctypes.byref(HOW_SUBMOUNTS), _HOW_SIZE)
    finally:
        os.close(root)
    if fd >= 0:
        os.close(fd)
        return True
    return False


HAVE_OPENAT2 = _probe_openat2()

# --- statx ---------------------------------------------------------------------------------

_SYS_STATX = 332
_AT_EMPTY_PATH = 0x1000
_AT_SYMLINK_NOFOLLOW = 0x100
STATX_BASIC = 0x7FF
STATX_BTIME = 0x800
STATX_MNT_ID = 0x1000
_STATX = struct.Struct("=IIQIIIHxxQQQQ16s16s16s16sIIIIQ")
_STATX_SIZE = 256
#: struct statx_timestamp
STATX_TS = struct.Struct("=qIi")


def statx(fd: int, mask: int, name: bytes = b"") -> tuple[Any, ...]:
    """statx(2) of the descriptor itself, or of its entry `name` (one component, never
    followed if a symlink): the fields of struct statx in order (the timestamps as raw
    `STATX_TS` bytes; the last one stx_mnt_id)."""
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    flags = _AT_SYMLINK_NOFOLLOW if name else _AT_EMPTY_PATH | _AT_SYMLINK_NOFOLLOW
    if _libc.syscall(_SYS_STATX, fd, name, flags, mask, buf) < 0:
        _raise_errno()
    return _STATX.unpack_from(buf.raw)


def mnt_id(fd: int) -> int:
    """The id of the mount holding `fd` (statx's stx_mnt_id)."""
    return int(statx(fd, STATX_MNT_ID)[-1])


# --- fstatfs -------------------------------------------------------------------------------

_STATFS = struct.Struct("=qqQQQQQiiq")


def fstatfs(fd: int) -> tuple[int, ...]:
    """fstatfs(2): (type, bsize, blocks, bfree, bavail, files, ffree, fsid0, fsid1,
    namelen)."""
    buf = ctypes.create_string_buffer(120)
    if _libc.fstatfs(fd, buf) < 0:
        _raise_errno()
    return _STATFS.unpack_from(buf.raw)


# Kernel interfaces that are never served, even from an export with `submounts` (say "/"):
# procfs (other processes' memory, environment and magic links), sysfs, devpts, debugfs,
# tracefs, securityfs, cgroup v1/v2, bpffs, efivarfs, pstore, configfs, fusectl, binfmt_misc,
# selinuxfs, mqueue, nsfs.
PSEUDO_FS_TYPES = frozenset({
    0x9FA0, 0x62656572, 0x1CD1, 0x64626720, 0x74726163, 0x73636673, 0x27E0EB, 0x63677270,
    0xCAFE4A11, 0xDE5E81E4, 0x6165676C, 0x62656570, 0x65735543, 0x42494E4D, 0xF97CFF8C,
    0x19800202, 0x6E736673,
})


def refuse_pseudo_fs(fd: int, name: str) -> None:
    """Close `fd` and raise ENOENT if it is on a kernel pseudo filesystem."""
    try:
        ftype = fstatfs(fd)[0]
    except BaseException:
        os.close(fd)
        raise
    if ftype in PSEUDO_FS_TYPES:
        os.close(fd)
        raise OSError(errno.ENOENT, f"{name!r} is a kernel pseudo filesystem ({ftype:#x}), not exported")


# --- utimensat, fallocate, pread -------------------------------------------------------------


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(Timespec), ctypes.c_int]
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def utimensat(dirfd: int, name: str, times: ctypes.Array[Timespec]) -> None:
    """utimensat(2) of `name` in `dirfd` (atime and mtime, UTIME_NOW/UTIME_OMIT allowed)."""
    if _libc.utimensat(dirfd, name.encode(), times, 0) < 0:
        _raise_errno()


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) with its mode bits (KEEP_SIZE, PUNCH_HOLE, ...)."""
    if _libc.fallocate(fd, mode, offset, length) < 0:
        _raise_errno()


def pread_into(fd: int, buf: memoryview, offset: int) -> int:
    """pread(2) into the writable `buf`."""
    r = _pread(fd, ctypes.addressof(ctypes.c_char.from_buffer(buf)), len(buf), offset)
    if r < 0:
        _raise_errno()
    return int(r)
