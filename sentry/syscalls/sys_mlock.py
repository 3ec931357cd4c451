"""Memory locking: mlock, mlock2, munlock, mlockall, munlockall.

Locks are recorded on the mappings (`Vma.locked`) and accounted as Linux's mm/mlock.c does
against RLIMIT_MEMLOCK (CAP_IPC_LOCK lifts it; a zero limit without it is EPERM), and shown
as VmLck in /proc/PID/status. The host's pages are not pinned: the stub's own
RLIMIT_MEMLOCK is the host's business, and a locked page here is as resident as any other.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.limits import DEFAULT_RLIMITS
from sentry.kernel.table import Level, syscall
from sentry.mm.vma import PAGE, page_down, page_up
from vfs.creds import CAP_IPC_LOCK

if TYPE_CHECKING:
    from sentry.kernel.task import Task

RLIMIT_MEMLOCK = 8
MLOCK_ONFAULT = 1
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
_NOTE = "accounted against RLIMIT_MEMLOCK and shown as VmLck; host pages are not pinned"


def _limit(t: Task) -> int:
    return t.rlimits.get(RLIMIT_MEMLOCK, DEFAULT_RLIMITS[RLIMIT_MEMLOCK])[0]


def _range(addr: int, length: int) -> tuple[int, int]:
    """mlock's page range: the start rounded down, the length up from its page offset."""
    start = page_down(addr)
    end = page_up(addr + length)
    if end < start or end > 1 << 64:
        raise SyscallError(errno.ENOMEM)
    return start, end


def _can_lock(t: Task) -> bool:
    """can_do_mlock: a non-zero limit, or CAP_IPC_LOCK."""
    return _limit(t) != 0 or t.creds.has_cap(CAP_IPC_LOCK)


def _lock(t: Task, addr: int, length: int) -> int:
    if not _can_lock(t):
        raise SyscallError(errno.EPERM)
    start, end = _range(addr, length)
    mm = t.mm
    if not t.creds.has_cap(CAP_IPC_LOCK):
        # Linux rounds the limit down to pages and does not count pages already locked
        limit = _limit(t) // PAGE * PAGE
        wanted = (end - start) + mm.locked_bytes() - mm.locked_bytes(start, end)
        if wanted > limit:
            raise SyscallError(errno.ENOMEM)
    mm.set_locked(start, end, True)
    return 0


@syscall("mlock", level=Level.PARTIAL, note=_NOTE)
def sys_mlock(t: Task, addr: int, length: int, *_: int) -> int:
    """Implements Linux syscall mlock(2)."""
    return _lock(t, addr, length)


@syscall("mlock2", level=Level.PARTIAL, note=_NOTE)
def sys_mlock2(t: Task, addr: int, length: int, flags: int, *_: int) -> int:
    """Implements Linux syscall mlock2(2) (MLOCK_ONFAULT locks the same way here)."""
    if flags & 0xFFFFFFFF & ~MLOCK_ONFAULT:
        raise SyscallError(errno.EINVAL)
    return _lock(t, addr, length)


@syscall("munlock")
def sys_munlock(t: Task, addr: int, length: int, *_: int) -> int:
    """Implements Linux syscall munlock(2): ENOMEM unless the whole range is mapped."""
    start, end = _range(addr, length)
    t.mm.set_locked(start, end, False)
    return 0


@syscall("mlockall", level=Level.PARTIAL, note=_NOTE)
def sys_mlockall(t: Task, flags: int, *_: int) -> int:
    """Implements Linux syscall mlockall(2): MCL_CURRENT locks every mapping (if the whole
    address space fits the limit), MCL_FUTURE every later one."""
    flags &= 0xFFFFFFFF
    if not flags or flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) or flags == MCL_ONFAULT:
        raise SyscallError(errno.EINVAL)
    if not _can_lock(t):
        raise SyscallError(errno.EPERM)
    mm = t.mm
    if flags & MCL_CURRENT and not t.creds.has_cap(CAP_IPC_LOCK) and \
            mm.total_bytes() > _limit(t) // PAGE * PAGE:
        raise SyscallError(errno.ENOMEM)
    mm.lock_future = bool(flags & MCL_FUTURE)
    if flags & MCL_CURRENT:
        for v in mm.vmas:
            v.locked = True
    return 0


@syscall("munlockall")
def sys_munlockall(t: Task, *_: int) -> int:
    """Implements Linux syscall munlockall(2)."""
    mm = t.mm
    mm.lock_future = False
    for v in mm.vmas:
        v.locked = False
    return 0
