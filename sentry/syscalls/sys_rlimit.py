"""Resource limits: recorded per process; RLIMIT_NOFILE is the fd table's limit.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.limits import (
    DEFAULT_RLIMITS,
    RLIMIT_CPU,
    RLIMIT_NLIMITS,
    RLIMIT_NOFILE,
)
from sentry.kernel.table import Level, syscall
from vfs.creds import CAP_SYS_RESOURCE

from .sys_signal import watch_cpu_limit

if TYPE_CHECKING:
    from sentry.kernel.task import Task



# limits -------------------------------------------------------------------------------------



def _rlimit(t: Task, res: int) -> tuple[int, int]:
    if res == RLIMIT_NOFILE:
        return (t.fdtable.limit, t.rlimits.get(res, DEFAULT_RLIMITS[res])[1])
    return t.rlimits.get(res, DEFAULT_RLIMITS[res])


@syscall("prlimit64", level=Level.PARTIAL, note="limits are recorded; NOFILE and CPU are enforced")
def sys_prlimit64(t: Task, pid: int, res: int, new: int, old: int, *_: int) -> int:
    """Implements Linux syscall prlimit64(2) for the calling process."""
    if pid not in (0, t.tgid):
        raise SyscallError(errno.ESRCH)
    if res >= RLIMIT_NLIMITS:
        raise SyscallError(errno.EINVAL)
    cur = _rlimit(t, res)
    if new:
        soft, hard = struct.unpack("<QQ", t.mem_read(new, 16))
        if soft > hard:
            raise SyscallError(errno.EINVAL)
        if hard > cur[1] and not t.creds.has_cap(CAP_SYS_RESOURCE):
            raise SyscallError(errno.EPERM)
        if res == RLIMIT_NOFILE:
            if hard > 1 << 20:
                raise SyscallError(errno.EPERM)
            t.fdtable.limit = soft
    if old:
        t.mem_write(old, struct.pack("<QQ", *cur))
    if new:
        t.rlimits[res] = (soft, hard)
        if res == RLIMIT_CPU:
            watch_cpu_limit(t)
    return 0


@syscall("getrlimit")
def sys_getrlimit(t: Task, res: int, addr: int, *_: int) -> int:
    """Implements Linux syscall getrlimit(2)."""
    return sys_prlimit64(t, 0, res, 0, addr)


@syscall("setrlimit")
def sys_setrlimit(t: Task, res: int, addr: int, *_: int) -> int:
    """Implements Linux syscall setrlimit(2)."""
    return sys_prlimit64(t, 0, res, addr, 0)
