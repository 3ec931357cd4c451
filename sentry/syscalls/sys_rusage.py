"""Accounting: getrusage and times (the process's CPU time is its stub's host CPU time).
"""

from __future__ import annotations

import errno
import os
import struct
import time
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel import usage
from sentry.kernel.table import Level, syscall

from .sys_file import i32
from .sys_wait import rusage_bytes

if TYPE_CHECKING:
    from sentry.kernel.task import Task



@syscall("getrusage", level=Level.PARTIAL,
         note="CPU times and max RSS (RUSAGE_CHILDREN: the reaped children's); other fields 0")
def sys_getrusage(t: Task, who: int, addr: int, *_: int) -> int:
    """Implements Linux syscall getrusage(2) from the stub's host accounting; the
    children's figures are those added up as they were reaped."""
    who = i32(who)
    if who not in (0, -1, 1):
        raise SyscallError(errno.EINVAL)
    if who == -1:
        used = t.leader.child_usage
    else:
        c = usage.cpu_times(t.stub.pid, thread=who == 1)
        used = usage.Totals(c.utime, c.stime, usage.resident(t.stub.pid).peak_kb)
    t.mem_write(addr, rusage_bytes(used))
    return 0


@syscall("times", level=Level.SUPPORTED,
         note="the process's CPU time and its reaped children's, in clock ticks")
def sys_times(t: Task, buf: int, *_: int) -> int:
    """Implements Linux syscall times(2): the process's CPU time in clock ticks."""
    tck = os.sysconf("SC_CLK_TCK")
    if buf:
        c = usage.cpu_times(t.stub.pid)
        kids = t.leader.child_usage
        t.mem_write(buf, struct.pack("<4q", c.utime, c.stime, kids.utime, kids.stime))
    return int((time.monotonic() - t.kernel.start_monotonic) * tck) + 1
