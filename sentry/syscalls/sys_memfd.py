"""memfd_create and file seals (fcntl F_ADD_SEALS, F_GET_SEALS).

A memfd is an unnamed tmpfs file on the kernel's internal tmpfs mount (Linux's shm_mnt),
so it is everything a tmpfs file is: its data is a host memfd, shared mappings map those
very pages (every process mapping it sees the same bytes), and fstat, ftruncate,
fallocate, SEEK_DATA/HOLE behave as shmem's. /proc/PID/fd shows "/memfd:NAME (deleted)".

Seals are the tmpfs inode's (`TmpfsInode.seals`, which enforces them on write, truncate,
fallocate and chmod). Here: adding them (only through a writable fd, never once
F_SEAL_SEAL is set; F_SEAL_WRITE is EBUSY while a shared mapping could write the file, as
Linux's mapping_deny_writable; F_SEAL_EXEC on an executable file implies the write seals),
and refusing writable shared mappings of a file sealed against writing (sys_mmap).
MFD_HUGETLB is refused (EINVAL): there is no hugetlbfs.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from sentry.errors import SyscallError
from sentry.kernel.table import Level, syscall
from vfs.abi import O_RDWR, S_IFREG
from vfs.fs.tmpfs import (
    F_SEAL_ALL,
    F_SEAL_EXEC,
    F_SEAL_FUTURE_WRITE,
    F_SEAL_GROW,
    F_SEAL_SEAL,
    F_SEAL_SHRINK,
    F_SEAL_WRITE,
    Tmpfs,
    TmpfsFileFD,
)
from vfs.mount import Mount, VirtualDentry

if TYPE_CHECKING:
    from sentry.kernel.task import Task

MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_HUGETLB = 0x1, 0x2, 0x4
MFD_NOEXEC_SEAL, MFD_EXEC = 0x8, 0x10
MFD_ALL_FLAGS = 0x1F
MFD_NAME_MAX_LEN = 255 - len(b"memfd:")
F_ADD_SEALS, F_GET_SEALS = 1033, 1034
_O_LARGEFILE = 0o100000


def _shm_mount(t: Task) -> Mount:
    """The kernel's internal tmpfs mount for memfds (made on first use)."""
    k = t.kernel
    if k.memfd_mount is None:
        fs = Tmpfs(mode=0o1777, memory=k.memory)
        k.memfd_mount = Mount(fs, fs.root, 0, "tmpfs")
    return k.memfd_mount


@syscall("memfd_create", level=Level.PARTIAL,
         note="MFD_HUGETLB refused with EINVAL (no hugetlbfs)")
async def sys_memfd_create(t: Task, uname: int, flags: int, *_: int) -> int:
    """Implements Linux syscall memfd_create(2): MFD_CLOEXEC, MFD_ALLOW_SEALING,
    MFD_NOEXEC_SEAL, MFD_EXEC."""
    flags &= 0xFFFFFFFF
    if flags & ~MFD_ALL_FLAGS or flags & MFD_HUGETLB:
        raise SyscallError(errno.EINVAL)
    if flags & MFD_EXEC and flags & MFD_NOEXEC_SEAL:
        raise SyscallError(errno.EINVAL)
    try:
        name = t.read_cstring(uname, MFD_NAME_MAX_LEN + 1)
    except SyscallError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise SyscallError(errno.EINVAL) from None
        raise
    mount = _shm_mount(t)
    fs = mount.fs
    assert isinstance(fs, Tmpfs)
    mode = 0o666 if flags & MFD_NOEXEC_SEAL else 0o777
    d = await fs.tmpfile(fs.root, S_IFREG | mode, t.creds.fsuid, t.creds.fsgid)
    d.name = b"/memfd:%s (deleted)" % name
    f = await fs.open(d, O_RDWR | _O_LARGEFILE, t.creds)
    f.vd = VirtualDentry(mount, d)
    assert isinstance(f, TmpfsFileFD)
    if flags & MFD_NOEXEC_SEAL:
        f.inode.seals = F_SEAL_EXEC
    elif flags & MFD_ALLOW_SEALING:
        f.inode.seals = 0
    try:
        return t.fdtable.install(f, cloexec=bool(flags & MFD_CLOEXEC))
    except SyscallError:
        await f.dec_ref()
        raise


def _writable_shared_maps(t: Task, f: TmpfsFileFD) -> bool:
    """Whether any process maps the file shared through a writable open (VM_MAYWRITE)."""
    for p in t.kernel.procs.values():
        mm = p.mm
        for v in mm.vmas if mm is not None else ():
            vf: Any = v.file
            if v.shared and vf is not None and getattr(vf, "inode", None) is f.inode \
                    and vf.writable:
                return True
    return False


def seals_fcntl(t: Task, f: Any, cmd: int, arg: int) -> int:
    """fcntl's F_ADD_SEALS and F_GET_SEALS (EINVAL for a file that is not tmpfs's)."""
    if cmd == F_GET_SEALS:
        if not isinstance(f, TmpfsFileFD):
            raise SyscallError(errno.EINVAL)
        return f.inode.seals
    seals = arg & 0xFFFFFFFF
    if not f.writable:
        raise SyscallError(errno.EPERM)
    if seals & ~F_SEAL_ALL or not isinstance(f, TmpfsFileFD):
        raise SyscallError(errno.EINVAL)
    ino = f.inode
    if ino.seals & F_SEAL_SEAL:
        raise SyscallError(errno.EPERM)
    if seals & F_SEAL_WRITE and not ino.seals & F_SEAL_WRITE and _writable_shared_maps(t, f):
        raise SyscallError(errno.EBUSY)
    if seals & F_SEAL_EXEC and ino.mode & 0o111:
        seals |= F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE
    ino.seals |= seals
    return 0


def write_sealed(f: Any) -> bool:
    """Whether `f` is a tmpfs file sealed against writing (no writable shared mapping)."""
    return isinstance(f, TmpfsFileFD) and bool(
        f.inode.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE))
