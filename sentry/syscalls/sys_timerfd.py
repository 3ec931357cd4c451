"""timerfd_create, timerfd_settime, timerfd_gettime: timer expirations read as a file.

A `TimerFD` holds a `KTimer` on CLOCK_REALTIME, CLOCK_MONOTONIC or CLOCK_BOOTTIME (the
*_ALARM clocks count the same; waking a suspended machine has no meaning here). A read
returns, as 8 bytes, the expirations counted since the last read or settime and resets
the count; with none it waits, or fails with EAGAIN under O_NONBLOCK. POLLIN while the
count is non-zero, notified on the file's wait queue when the timer fires.

TFD_TIMER_CANCEL_ON_SET is accepted with an absolute CLOCK_REALTIME timer and never
cancels: the sandbox cannot set the clock (clock_settime and settimeofday are refused), so
no discontinuous change ever happens for a read to report as ECANCELED.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.ktimer import (
    CLOCK_BOOTTIME,
    CLOCK_BOOTTIME_ALARM,
    CLOCK_MONOTONIC,
    CLOCK_REALTIME,
    CLOCK_REALTIME_ALARM,
    NS,
    KTimer,
)
from sentry.kernel.table import Level, syscall
from vfs.abi import O_NONBLOCK, POLLIN, POLLRDNORM
from vfs.errors import error

from .anon import AnonFile

if TYPE_CHECKING:
    from sentry.kernel.pidns import PidNamespace
    from sentry.kernel.task import Task

TFD_CLOEXEC, TFD_NONBLOCK = 0o2000000, 0o4000
TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET = 1, 2
_CLOCKS = (CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM,
           CLOCK_BOOTTIME_ALARM)
ITIMERSPEC = struct.Struct("<qqqq")  # it_interval, it_value (each tv_sec, tv_nsec)


def read_itimerspec(t: Task, addr: int) -> tuple[int, int]:
    """(interval ns, value ns) of a struct itimerspec; EINVAL for a bad timespec."""
    isec, insec, vsec, vnsec = ITIMERSPEC.unpack(t.mem_read(addr, ITIMERSPEC.size))
    for sec, nsec in ((isec, insec), (vsec, vnsec)):
        if sec < 0 or not 0 <= nsec < NS:
            raise SyscallError(errno.EINVAL)
    return isec * NS + insec, vsec * NS + vnsec


def pack_itimerspec(interval: int, value: int) -> bytes:
    return ITIMERSPEC.pack(interval // NS, interval % NS, value // NS, value % NS)


class TimerFD(AnonFile):
    """A timerfd: `ticks` expirations not yet read."""

    anon_name = b"anon_inode:[timerfd]"

    def __init__(self, t: Task, clockid: int, flags: int) -> None:
        super().__init__(t.kernel.anon_inode_stat, flags)
        self.timer = KTimer(t.kernel, clockid, self._fired)
        self.ticks = 0
        self.settime_flags = 0

    def _fired(self, n: int) -> None:
        self.ticks += n
        self.waitq.notify(POLLIN | POLLRDNORM)

    def readiness(self, mask: int) -> int:
        self.timer.collect()
        return mask & (POLLIN | POLLRDNORM) if self.ticks else 0

    async def do_read(self, n: int) -> bytes:
        if n < 8:
            raise error(errno.EINVAL)
        while True:
            self.timer.collect()
            if self.ticks:
                break
            if self.flags & O_NONBLOCK:
                raise error(errno.EAGAIN)
            await self.wait_ready(POLLIN)
        ticks, self.ticks = self.ticks, 0
        return struct.pack("<Q", ticks)

    def settime(self, flags: int, interval: int, value: int) -> tuple[int, int]:
        """Arm (value 0 disarms); returns the old (interval, value left)."""
        self.timer.collect()
        old = self.timer.remaining()
        self.ticks = 0
        self.settime_flags = flags
        deadline = 0
        if value:
            deadline = value if flags & TFD_TIMER_ABSTIME else self.timer.now() + value
            deadline = max(deadline, 1)
        self.timer.arm(deadline, interval)
        if not value:
            self.timer.interval = interval
        return old[1], old[0]

    def gettime(self) -> tuple[int, int]:
        """(interval, value left)."""
        self.timer.collect()
        value, interval = self.timer.remaining()
        return interval, value

    async def release(self) -> None:
        self.timer.disarm()

    def fdinfo(self, pidns: PidNamespace) -> bytes:
        interval, value = self.gettime()
        return (b"clockid: %d\nticks: %d\nsettime flags: 0%o\nit_value: (%d, %d)\n"
                b"it_interval: (%d, %d)\n" % (
                    self.timer.clockid, self.ticks, self.settime_flags, value // NS,
                    value % NS, interval // NS, interval % NS))


def _timerfd(t: Task, fd: int) -> TimerFD:
    f = t.fdtable.get(_s32(fd))
    if not isinstance(f, TimerFD):
        raise SyscallError(errno.EINVAL)
    return f


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


@syscall("timerfd_create")
def sys_timerfd_create(t: Task, clockid: int, flags: int, *_: int) -> int:
    """Implements Linux syscall timerfd_create(2): CLOCK_REALTIME, CLOCK_MONOTONIC,
    CLOCK_BOOTTIME and their *_ALARM forms; TFD_CLOEXEC, TFD_NONBLOCK."""
    clockid, flags = _s32(clockid), _s32(flags)
    if flags & ~(TFD_CLOEXEC | TFD_NONBLOCK) or clockid not in _CLOCKS:
        raise SyscallError(errno.EINVAL)
    return t.fdtable.install(TimerFD(t, clockid, flags), cloexec=bool(flags & TFD_CLOEXEC))


@syscall("timerfd_settime", level=Level.PARTIAL,
         note="TFD_TIMER_CANCEL_ON_SET is accepted and never cancels: the sandbox cannot "
         "set the clock")
def sys_timerfd_settime(t: Task, fd: int, flags: int, new: int, old: int, *_: int) -> int:
    """Implements Linux syscall timerfd_settime(2): relative or TFD_TIMER_ABSTIME, with
    an interval; TFD_TIMER_CANCEL_ON_SET is accepted (the sandbox's clock never jumps)."""
    flags = _s32(flags)
    interval, value = read_itimerspec(t, new)
    if flags & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET):
        raise SyscallError(errno.EINVAL)
    f = _timerfd(t, fd)
    prev = f.settime(flags, interval, value)
    if old:
        t.mem_write(old, pack_itimerspec(*prev))
    return 0


@syscall("timerfd_gettime")
def sys_timerfd_gettime(t: Task, fd: int, cur: int, *_: int) -> int:
    """Implements Linux syscall timerfd_gettime(2)."""
    f = _timerfd(t, fd)
    t.mem_write(cur, pack_itimerspec(*f.gettime()))
    return 0
