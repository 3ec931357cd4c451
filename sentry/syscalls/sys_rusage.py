"""Accounting: getrusage and times (the process's CPU time is its stub's host CPU time).
"""

from __future__ import annotations

import errno
import os
import struct
import time
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.table import Level, syscall

from .sys_file import i32
from .sys_time import cpu_ns

if TYPE_CHECKING:
    from sentry.kernel.task import Task



@syscall("getrusage", level=Level.PARTIAL, note="CPU times and max RSS; other fields 0")
def sys_getrusage(t: Task, who: int, addr: int, *_: int) -> int:
    """Implements Linux syscall getrusage(2) from the stub's host accounting."""
    who = i32(who)
    if who not in (0, -1, 1):
        raise SyscallError(errno.EINVAL)
    utime = stime = maxrss = 0
    if who != -1:
        try:
            fields = open(f"/proc/{t.stub.pid}/stat").read().rsplit(")", 1)[1].split()
            tck = os.sysconf("SC_CLK_TCK")
            utime, stime = int(fields[11]) * 1_000_000 // tck, int(fields[12]) * 1_000_000 // tck
            for line in open(f"/proc/{t.stub.pid}/status"):
                if line.startswith("VmHWM:"):
                    maxrss = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
    ru = struct.pack("<qqqq", utime // 1_000_000, utime % 1_000_000, stime // 1_000_000,
                     stime % 1_000_000) + struct.pack("<14q", maxrss, *([0] * 13))
    t.mem_write(addr, ru)
    return 0



@syscall("times", level=Level.PARTIAL, note="children's times are 0")
def sys_times(t: Task, buf: int, *_: int) -> int:
    """Implements Linux syscall times(2): the process's CPU time in clock ticks."""
    tck = os.sysconf("SC_CLK_TCK")
    cpu = cpu_ns(t) * tck // 1_000_000_000
    if buf:
        t.mem_write(buf, struct.pack("<4q", cpu, 0, 0, 0))
    return int((time.monotonic() - t.kernel.start_monotonic) * tck) + 1
