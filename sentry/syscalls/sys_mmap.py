"""Memory syscalls: mmap, munmap, mprotect, mremap, brk, madvise, msync, mincore.

Thin layers over sentry.mm.MemoryManager, which decides and injects the host effects.
"""

from __future__ import annotations

import errno
import stat as st
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.table import Level, syscall
from sentry.kernel.task import READ_IMPLIES_EXEC
from sentry.mm.vma import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    PAGE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    page_up,
)
from vfs.mount import MS_NOEXEC

from .sys_memfd import write_sealed

if TYPE_CHECKING:
    from sentry.kernel.task import Task

_PROT_KNOWN = 0x7 | 0x1000000 | 0x2000000
# Flags MAP_SHARED_VALIDATE accepts (Linux's LEGACY_MAP_MASK plus the newer ones we honour).
_MAP_KNOWN = 0x3 | 0x10 | 0x20 | 0x100 | 0x800 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 \
    | 0x20000 | 0x40000 | 0x80000 | 0x100000 | 0xFC000000


@syscall("mmap", level=Level.PARTIAL,
         note="shared mappings of non-tmpfs files are copies written back on msync/munmap/exit")
async def sys_mmap(t: Task, addr: int, length: int, prot: int, flags: int, fd: int,
                   offset: int) -> int:
    """Implements Linux syscall mmap(2): the Sentry picks the address and records the
    mapping; file contents come from the VFS."""
    typ = flags & 3
    if typ not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
        raise SyscallError(errno.EINVAL)
    if typ == MAP_SHARED_VALIDATE and flags & ~_MAP_KNOWN:
        raise SyscallError(errno.EOPNOTSUPP)
    if offset & (PAGE - 1) or length == 0 or prot & ~_PROT_KNOWN:
        raise SyscallError(errno.EINVAL)
    if page_up(length) < length or length >= 1 << 47:
        raise SyscallError(errno.ENOMEM)
    prot &= 7
    fixed = bool(flags & MAP_FIXED)
    noreplace = bool(flags & MAP_FIXED_NOREPLACE) and not fixed
    file = None
    vd = None
    name = b""
    if not flags & MAP_ANONYMOUS:
        fd = fd & 0xFFFFFFFF
        fd = fd - (1 << 32) if fd >= 1 << 31 else fd
        fdesc = t.fdtable.get(fd)
        s = await fdesc.stat()
        if st.S_ISDIR(s.mode) or not (st.S_ISREG(s.mode) or st.S_ISCHR(s.mode)):
            raise SyscallError(errno.ENODEV)
        if not fdesc.readable:
            raise SyscallError(errno.EACCES)
        if typ != MAP_PRIVATE and prot & PROT_WRITE and not fdesc.writable:
            raise SyscallError(errno.EACCES)
        if typ != MAP_PRIVATE and prot & PROT_WRITE and write_sealed(fdesc):
            raise SyscallError(errno.EPERM)
        file = fdesc
        vd = getattr(fdesc, "vd", None)
        if vd is not None and t.kernel.vfs is not None and t.fs is not None:
            try:
                name = t.kernel.vfs.path_of(t.fs, vd)
            except (OSError, AttributeError):
                name = b""
    if prot & PROT_READ and t.personality & READ_IMPLIES_EXEC and not (
            file is not None and vd is not None and vd.mount.flags & MS_NOEXEC):
        prot |= PROT_EXEC  # do_mmap, unless the file is on a noexec mount
    return await t.mm.mmap(addr, length, prot, flags,
                           file, offset, name=name, fixed=fixed, noreplace=noreplace,
                           growsdown=bool(flags & MAP_GROWSDOWN))


@syscall("munmap")
async def sys_munmap(t: Task, addr: int, length: int, *_: int) -> int:
    """Implements Linux syscall munmap(2)."""
    await t.mm.munmap(addr, length)
    return 0


def _may_write(t: Task, addr: int, length: int, prot: int) -> None:
    """mprotect's permission rule (Linux's VM_MAYWRITE): a shared mapping of a file opened
    without write access, or sealed against writing, can never be made writable (EACCES;
    Linux decides the seal when the mapping is made, here when mprotect is called). A
    private mapping always can: its pages are copies."""
    if prot & PROT_WRITE:
        end = addr + page_up(length)
        for v in t.mm.vmas:
            if v.start < end and v.end > addr and v.shared and v.file is not None \
                    and (not v.file.writable or write_sealed(v.file)):
                raise SyscallError(errno.EACCES)


@syscall("mprotect")
def sys_mprotect(t: Task, addr: int, length: int, prot: int, *_: int) -> int:
    """Implements Linux syscall mprotect(2); under READ_IMPLIES_EXEC a readable range is
    made executable too."""
    if prot & PROT_READ and t.personality & READ_IMPLIES_EXEC:
        prot |= PROT_EXEC
    _may_write(t, addr, length, prot)
    t.mm.mprotect(addr, length, prot)
    return 0


@syscall("mremap", level=Level.PARTIAL, note="MREMAP_DONTUNMAP is refused with EINVAL")
async def sys_mremap(t: Task, old: int, old_size: int, new_size: int, flags: int,
                     new_addr: int, *_: int) -> int:
    """Implements Linux syscall mremap(2): shrink, grow in place, move (MAYMOVE/FIXED)."""
    return await t.mm.mremap(old, old_size, new_size, flags, new_addr)


@syscall("brk")
async def sys_brk(t: Task, addr: int, *_: int) -> int:
    """Implements Linux syscall brk(2): returns the new break, or the old one on failure."""
    return await t.mm.set_brk(addr)


@syscall("madvise", level=Level.PARTIAL, note="DONTNEED drops pages; other advice is a no-op")
async def sys_madvise(t: Task, addr: int, length: int, advice: int, *_: int) -> int:
    """Implements Linux syscall madvise(2)."""
    await t.mm.madvise(addr, length, advice)
    return 0


@syscall("msync")
async def sys_msync(t: Task, addr: int, length: int, flags: int, *_: int) -> int:
    """Implements Linux syscall msync(2): writes shared file mappings back to the file."""
    await t.mm.msync(addr, length, flags)
    return 0


@syscall("mincore")
def sys_mincore(t: Task, addr: int, length: int, vec: int, *_: int) -> int:
    """Implements Linux syscall mincore(2), answered by the host for the stub's pages."""
    t.mem_write(vec, t.mm.mincore(addr, length))
    return 0


# memory protection keys: none to give (the stub's PKRU is not the application's to set) --

PKEY_DISABLE_ACCESS, PKEY_DISABLE_WRITE = 1, 2
_PKEY_NOTE = "no keys are handed out (ENOSPC, as on a CPU without PKU); pkey -1 is mprotect"


@syscall("pkey_alloc", level=Level.PARTIAL, note=_PKEY_NOTE)
def sys_pkey_alloc(t: Task, flags: int, rights: int, *_: int) -> int:
    """Implements Linux syscall pkey_alloc(2): argument checks, then ENOSPC."""
    if flags & 0xFFFFFFFF or rights & 0xFFFFFFFF & ~(PKEY_DISABLE_ACCESS | PKEY_DISABLE_WRITE):
        raise SyscallError(errno.EINVAL)
    raise SyscallError(errno.ENOSPC)


@syscall("pkey_free", level=Level.PARTIAL, note=_PKEY_NOTE)
def sys_pkey_free(t: Task, pkey: int, *_: int) -> int:
    """Implements Linux syscall pkey_free(2): no key was allocated, so EINVAL."""
    raise SyscallError(errno.EINVAL)


@syscall("pkey_mprotect", level=Level.PARTIAL, note=_PKEY_NOTE)
def sys_pkey_mprotect(t: Task, addr: int, length: int, prot: int, pkey: int, *_: int) -> int:
    """Implements Linux syscall pkey_mprotect(2): key -1 is mprotect(2); any other was never
    allocated (EINVAL)."""
    if pkey & 0xFFFFFFFF != 0xFFFFFFFF:
        raise SyscallError(errno.EINVAL)
    _may_write(t, addr, length, prot)
    t.mm.mprotect(addr, length, prot)
    return 0
