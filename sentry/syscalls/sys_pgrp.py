"""Process groups and sessions: getpgrp, getpgid, getsid, setpgid, setsid.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.pidns import proc_of
from sentry.kernel.table import syscall

from .sys_file import i32

if TYPE_CHECKING:
    from sentry.kernel.task import Task


# process groups and sessions -----------------------------------------------------------


@syscall("getpgrp")
def sys_getpgrp(t: Task, *_: int) -> int:
    """Implements Linux syscall getpgrp(2) (0 for a group outside the caller's pid
    namespace, as a namespace's init sees its inherited one)."""
    return t.pidns.vpid(t.pgid)


@syscall("getpgid")
def sys_getpgid(t: Task, pid: int, *_: int) -> int:
    """Implements Linux syscall getpgid(2)."""
    pid = i32(pid)
    target = t if pid == 0 else proc_of(t, pid)
    if target is None:
        raise SyscallError(errno.ESRCH)
    return t.pidns.vpid(target.pgid)


@syscall("getsid")
def sys_getsid(t: Task, pid: int, *_: int) -> int:
    """Implements Linux syscall getsid(2)."""
    pid = i32(pid)
    target = t if pid == 0 else proc_of(t, pid)
    if target is None:
        raise SyscallError(errno.ESRCH)
    return t.pidns.vpid(target.sid)


@syscall("setpgid")
def sys_setpgid(t: Task, pid: int, pgid: int, *_: int) -> int:
    """Implements Linux syscall setpgid(2) for the caller or its children."""
    pid, pgid = i32(pid), i32(pgid)
    if pgid < 0:
        raise SyscallError(errno.EINVAL)
    target = t if pid == 0 else proc_of(t, pid)
    if target is None or (target is not t and target.ppid != t.tgid):
        raise SyscallError(errno.ESRCH)
    if target.sid != t.sid:
        raise SyscallError(errno.EPERM)
    if target.sid == target.tgid:
        raise SyscallError(errno.EPERM)  # a session leader cannot move
    if pgid:
        pgid = t.pidns.gpid(pgid) or -1  # a group outside the namespace: none of the session
    pgid = pgid or target.tgid
    if pgid != target.tgid and not any(p.pgid == pgid and p.sid == t.sid
                                       for p in t.kernel.procs.values()):
        raise SyscallError(errno.EPERM)
    target.pgid = pgid
    return 0


@syscall("setsid")
def sys_setsid(t: Task, *_: int) -> int:
    """Implements Linux syscall setsid(2)."""
    if any(p.pgid == t.tgid for p in t.kernel.procs.values()):
        raise SyscallError(errno.EPERM)
    t.sid = t.pgid = t.tgid
    return t.pidns.vpid(t.tgid)
