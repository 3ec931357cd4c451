"""System V shared memory: shmget, shmat, shmdt, shmctl over the kernel's IPC namespace
(`ipc_of(t)`, sentry/kernel/ipc/shm.py). shmat maps the segment's memfd shared through
the MemoryManager, as mmap does for a tmpfs file."""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.ipc import ipc_of
from sentry.kernel.ipc.perm import (
    IPC_64,
    IPC_INFO,
    IPC_RMID,
    IPC_SET,
    IPC_STAT,
    PERM64,
    new_perm,
    now,
)
from sentry.kernel.ipc.shm import (
    SHM_EXEC,
    SHM_INFO,
    SHM_LOCK,
    SHM_LOCKED,
    SHM_RDONLY,
    SHM_REMAP,
    SHM_RND,
    SHM_STAT,
    SHM_STAT_ANY,
    SHM_UNLOCK,
    Attachment,
    Segment,
)
from sentry.kernel.table import Level, syscall
from sentry.mm.vma import MAP_SHARED, PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, page_up
from vfs.creds import CAP_IPC_LOCK

if TYPE_CHECKING:
    from sentry.kernel.task import Task

SHMLBA = PAGE
#: The largest file (shmem_file_setup refuses a larger segment with EINVAL).
_MAX_LFS_FILESIZE = (1 << 63) - 1
_SHMINFO = struct.Struct("<9Q")  # shmmax, shmmin, shmmni, shmseg, shmall, 4 unused
_SHM_INFO = struct.Struct("<i4xQQQQQ")  # used_ids, shm_tot, shm_rss, shm_swp, 2 unused


def _int(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


@syscall("shmget", level=Level.PARTIAL, note="SHM_HUGETLB and SHM_NORESERVE are accepted "
         "and ignored")
def sys_shmget(t: Task, key: int, size: int, flags: int, *_: int) -> int:
    """Implements Linux syscall shmget(2): find or create a segment of the sandbox's IPC
    namespace."""
    ns = ipc_of(t)
    key, flags = _int(key), _int(flags)
    lim = ns.limits

    def existing(seg: Segment) -> None:
        if seg.size < size:
            raise SyscallError(errno.EINVAL)

    def create() -> Segment:
        if size < 1 or size > lim.shmmax or size > _MAX_LFS_FILESIZE:
            raise SyscallError(errno.EINVAL)
        pages = (size + PAGE - 1) // PAGE
        if ns.shm_pages + pages < ns.shm_pages or ns.shm_pages + pages > lim.shmall:
            raise SyscallError(errno.ENOSPC)
        if ns.memory is not None:  # Linux's strict accounting of a segment (shmem_acct_size)
            ns.memory.check(pages * PAGE)
        seg = Segment(ns, new_perm(key, flags, t.creds), size, t.tgid)
        try:
            ns.shm.add(seg, lim.shmmni)
        except OSError:
            seg.free_memory()
            raise
        ns.shm_pages += pages
        if ns.memory is not None:
            ns.memory.charge("shm", pages * PAGE)
        return seg

    return ns.shm.get(key, flags, t.creds, existing, create)


@syscall("shmat")
async def sys_shmat(t: Task, shmid: int, addr: int, flags: int, *_: int) -> int:
    """Implements Linux syscall shmat(2): map the whole segment shared, at `addr` (rounded
    down with SHM_RND) or where the Sentry chooses."""
    ns = ipc_of(t)
    shmid, flags = _int(shmid), _int(flags)
    if shmid < 0:
        raise SyscallError(errno.EINVAL)
    if addr:
        if addr & (SHMLBA - 1):
            if not flags & SHM_RND:
                raise SyscallError(errno.EINVAL)
            addr &= ~(SHMLBA - 1)
            if addr == 0:
                raise SyscallError(errno.EINVAL)
    elif flags & SHM_REMAP:
        raise SyscallError(errno.EINVAL)
    seg = ns.shm.find(shmid)
    prot = PROT_READ if flags & SHM_RDONLY else PROT_READ | PROT_WRITE
    want = 4 if flags & SHM_RDONLY else 6
    if flags & SHM_EXEC:
        prot |= PROT_EXEC
        want |= 1
    seg.perm.check(t.creds, want)
    length = page_up(seg.size)
    mm = t.mm
    if addr and not flags & SHM_REMAP and mm._overlaps(addr, addr + length):
        raise SyscallError(errno.EINVAL)
    att = Attachment(seg)  # its first reference is the mapping's
    return await mm.mmap(addr, length, prot, MAP_SHARED, att, 0, name=att.maps_name[1],
                         fixed=bool(addr))


@syscall("shmdt")
async def sys_shmdt(t: Task, addr: int, *_: int) -> int:
    """Implements Linux syscall shmdt(2): unmap the attachment mapped at `addr` (every
    piece of it left in the segment's range)."""
    if addr & (SHMLBA - 1):
        raise SyscallError(errno.EINVAL)
    mm = t.mm
    # A piece of an attachment made at `addr`: it starts `offset` bytes after it.
    v = next((p for p in mm.vmas if p.start >= addr and isinstance(p.file, Attachment)
              and p.start - p.offset == addr), None)
    if v is None:
        raise SyscallError(errno.EINVAL)
    att = v.file
    end = addr + page_up(att.seg.size)
    for piece in [p for p in mm.vmas if p.file is att and addr <= p.start < end]:
        await mm.munmap(piece.start, piece.end - piece.start)
    return 0


def _stat(t: Task, seg: Segment, buf: int) -> None:
    seg.perm.check(t.creds, 4)
    t.mem_write(buf, seg.pack(t.pidns))


@syscall("shmctl", level=Level.PARTIAL, note="SHM_LOCK/SHM_UNLOCK only set the flag")
def sys_shmctl(t: Task, shmid: int, cmd: int, buf: int, *_: int) -> int:
    """Implements Linux syscall shmctl(2): IPC_STAT, IPC_SET, IPC_RMID (the segment goes
    when the last attachment does), IPC_INFO, SHM_INFO, SHM_STAT(_ANY), SHM_(UN)LOCK."""
    ns = ipc_of(t)
    shmid, cmd = _int(shmid), _int(cmd) & ~IPC_64
    lim = ns.limits
    if cmd == IPC_INFO:
        t.mem_write(buf, _SHMINFO.pack(lim.shmmax, 1, lim.shmmni, lim.shmmni, lim.shmall,
                                       0, 0, 0, 0))
        return ns.shm.max_index()
    if cmd == SHM_INFO:
        rss = sum(s.rss() for s in ns.shm) // PAGE
        t.mem_write(buf, _SHM_INFO.pack(len(ns.shm), ns.shm_pages, rss, 0, 0, 0))
        return ns.shm.max_index()
    if cmd in (SHM_STAT, SHM_STAT_ANY):
        seg = ns.shm.at_index(shmid, t.creds if cmd == SHM_STAT else None)
        t.mem_write(buf, seg.pack(t.pidns))
        return seg.perm.id
    if cmd not in (IPC_STAT, IPC_SET, IPC_RMID, SHM_LOCK, SHM_UNLOCK):
        raise SyscallError(errno.EINVAL)
    if shmid < 0:
        raise SyscallError(errno.EINVAL)
    seg = ns.shm.find(shmid)
    if cmd == IPC_STAT:
        _stat(t, seg, buf)
        return 0
    if cmd in (SHM_LOCK, SHM_UNLOCK):
        if not t.creds.has_cap(CAP_IPC_LOCK) and not seg.perm.is_owner(t.creds):
            raise SyscallError(errno.EPERM)
        if cmd == SHM_LOCK:
            seg.perm.mode |= SHM_LOCKED
        else:
            seg.perm.mode &= ~SHM_LOCKED
        return 0
    if cmd == IPC_SET:
        raw = t.mem_read(buf, PERM64.size)
        _, uid, gid, _, _, mode, *_rest = PERM64.unpack(raw)
    if not seg.perm.is_owner(t.creds):
        raise SyscallError(errno.EPERM)
    if cmd == IPC_SET:
        seg.perm.set_from(uid, gid, mode)
        seg.ctime = now()
    else:
        seg.mark_destroyed()
    return 0
