"""timer_create, timer_settime, timer_gettime, timer_getoverrun, timer_delete.

POSIX per-process interval timers (`sentry.kernel.posix_timers`) on CLOCK_REALTIME,
CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_TAI, the *_ALARM clocks (counted like their
base clocks) and CPU-time clocks (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID and
the ids clock_getcpuclockid gives), notifying by SIGEV_SIGNAL, SIGEV_THREAD_ID or
SIGEV_NONE (SIGEV_THREAD is the C library's, over SIGEV_THREAD_ID). The coarse and raw
clocks have no timers (EOPNOTSUPP), as in Linux.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.ktimer import HOST_CLOCK
from sentry.kernel.pidns import task_of
from sentry.kernel.posix_timers import (
    SIGEV_NONE,
    SIGEV_SIGNAL,
    SIGEV_THREAD,
    SIGEV_THREAD_ID,
    PosixTimer,
    cpu_clock,
    timers_of,
)
from sentry.kernel.table import Level, syscall

from .sys_file import i32
from .sys_timerfd import pack_itimerspec, read_itimerspec

if TYPE_CHECKING:
    from sentry.kernel.task import Task

TIMER_ABSTIME = 1
SIGALRM = 14
SIGEVENT = struct.Struct("<Qiii")  # sigev_value, sigev_signo, sigev_notify, _tid
_NO_TIMERS = (4, 5, 6)  # CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE


def _timer(t: Task, tid: int) -> PosixTimer:
    tm = timers_of(t).timers.get(i32(tid))
    if tm is None:
        raise SyscallError(errno.EINVAL)
    return tm


@syscall("timer_create", level=Level.PARTIAL,
         note="timers on CPU-time clocks look at the clock every 10 ms, so they may fire up "
         "to 10 ms late")
def sys_timer_create(t: Task, clockid: int, sevp: int, timerid: int, *_: int) -> int:
    """Implements Linux syscall timer_create(2): SIGEV_SIGNAL, SIGEV_THREAD_ID and
    SIGEV_NONE (NULL: SIGALRM with the timer id as value); wall and CPU-time clocks."""
    event = SIGEVENT.unpack_from(t.mem_read(sevp, 64)) if sevp else None  # sigevent
    clockid = i32(clockid)
    clock = None
    if clockid in _NO_TIMERS:
        raise SyscallError(errno.EOPNOTSUPP)
    if clockid not in HOST_CLOCK:
        clock = cpu_clock(t, clockid)
        if clock is None:
            raise SyscallError(errno.EINVAL)
    table = timers_of(t)
    new_id = table.new_id()  # taken even if what follows fails, as in Linux
    target = t.leader
    if event is None:
        notify, signo, value = SIGEV_SIGNAL, SIGALRM, new_id
    else:
        value, signo, notify, thread = event
        if notify == SIGEV_THREAD_ID:
            found = task_of(t, thread)
            if found is None or found.leader is not t.leader:
                raise SyscallError(errno.EINVAL)
            target = found
        elif notify not in (SIGEV_SIGNAL, SIGEV_THREAD, SIGEV_NONE):
            raise SyscallError(errno.EINVAL)
        if notify != SIGEV_NONE and not 1 <= signo <= 64:
            raise SyscallError(errno.EINVAL)
    tm = PosixTimer(t, new_id, clockid, clock, notify, signo, value, target)
    t.mem_write(timerid, struct.pack("<i", new_id))
    table.timers[new_id] = tm
    return 0


@syscall("timer_settime")
def sys_timer_settime(t: Task, tid: int, flags: int, new: int, old: int, *_: int) -> int:
    """Implements Linux syscall timer_settime(2): relative or TIMER_ABSTIME, with an
    interval; a zero value disarms."""
    if not new:
        raise SyscallError(errno.EINVAL)
    interval, value = read_itimerspec(t, new)
    tm = _timer(t, tid)
    kt = tm.timer
    kt.collect()
    left, prev_interval = kt.remaining()
    deadline = 0
    if value:
        deadline = max(value if flags & TIMER_ABSTIME else kt.now() + value, 1)
    kt.arm(deadline, interval)  # a zero value disarms and forgets the interval
    tm.retire_queued()
    tm.overrun_last = 0
    if old:
        t.mem_write(old, pack_itimerspec(prev_interval, left))
    return 0


@syscall("timer_gettime")
def sys_timer_gettime(t: Task, tid: int, cur: int, *_: int) -> int:
    """Implements Linux syscall timer_gettime(2): the time left and the interval."""
    kt = _timer(t, tid).timer
    kt.collect()
    left, interval = kt.remaining()
    t.mem_write(cur, pack_itimerspec(interval, left))
    return 0


@syscall("timer_getoverrun")
def sys_timer_getoverrun(t: Task, tid: int, *_: int) -> int:
    """Implements Linux syscall timer_getoverrun(2): the overruns of the last signal
    delivered."""
    return _timer(t, tid).getoverrun()


@syscall("timer_delete")
def sys_timer_delete(t: Task, tid: int, *_: int) -> int:
    """Implements Linux syscall timer_delete(2)."""
    tm = _timer(t, tid)
    tm.delete()
    del timers_of(t).timers[tm.id]
    return 0

