"""Resource limits: recorded per process; RLIMIT_NOFILE is the fd table's limit.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.table import Level, syscall

if TYPE_CHECKING:
    from sentry.kernel.task import Task



# limits -------------------------------------------------------------------------------------

RLIM_INFINITY = (1 << 64) - 1
RLIMIT_STACK, RLIMIT_CORE, RLIMIT_NOFILE, RLIMIT_NLIMITS = 3, 4, 7, 16
DEFAULT_RLIMITS = {
    0: (RLIM_INFINITY, RLIM_INFINITY),  # CPU
    1: (RLIM_INFINITY, RLIM_INFINITY),  # FSIZE
    2: (RLIM_INFINITY, RLIM_INFINITY),  # DATA
    3: (8 << 20, RLIM_INFINITY),  # STACK
    4: (0, RLIM_INFINITY),  # CORE
    5: (RLIM_INFINITY, RLIM_INFINITY),  # RSS
    6: (63704, 63704),  # NPROC
    7: (1024, 1 << 20),  # NOFILE
    8: (8 << 20, 8 << 20),  # MEMLOCK
    9: (RLIM_INFINITY, RLIM_INFINITY),  # AS
    10: (RLIM_INFINITY, RLIM_INFINITY),  # LOCKS
    11: (63704, 63704),  # SIGPENDING
    12: (819200, 819200),  # MSGQUEUE
    13: (0, 0),  # NICE
    14: (0, 0),  # RTPRIO
    15: (RLIM_INFINITY, RLIM_INFINITY),  # RTTIME
}


def _rlimit(t: Task, res: int) -> tuple[int, int]:
    if res == RLIMIT_NOFILE:
        return (t.fdtable.limit, t.rlimits.get(res, DEFAULT_RLIMITS[res])[1])
    return t.rlimits.get(res, DEFAULT_RLIMITS[res])


@syscall("prlimit64", level=Level.PARTIAL, note="limits are recorded; NOFILE is enforced")
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
        if hard > cur[1] and not t.creds.has_cap(24):  # CAP_SYS_RESOURCE
            raise SyscallError(errno.EPERM)
        if res == RLIMIT_NOFILE:
            if hard > 1 << 20:
                raise SyscallError(errno.EPERM)
            t.fdtable.limit = soft
    if old:
        t.mem_write(old, struct.pack("<QQ", *cur))
    if new:
        t.rlimits[res] = (soft, hard)
    return 0


@syscall("getrlimit")
def sys_getrlimit(t: Task, res: int, addr: int, *_: int) -> int:
    """Implements Linux syscall getrlimit(2)."""
    return sys_prlimit64(t, 0, res, 0, addr)


@syscall("setrlimit")
def sys_setrlimit(t: Task, res: int, addr: int, *_: int) -> int:
    """Implements Linux syscall setrlimit(2)."""
    return sys_prlimit64(t, 0, res, addr, 0)
