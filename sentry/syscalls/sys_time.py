"""Clocks and sleeps: clock_gettime/getres, gettimeofday, time, nanosleep,
clock_nanosleep (process and thread CPU clocks, also named by the dynamic clock ids of
clock_getcpuclockid and pthread_getcpuclockid, are the stubs' host CPU time).
"""

from __future__ import annotations

import errno
import os
import struct
import time
from typing import TYPE_CHECKING

import trio

from sentry.errors import SyscallError
from sentry.kernel.pidns import task_of
from sentry.kernel.table import syscall

from .sys_file import i32

if TYPE_CHECKING:
    from sentry.kernel.task import Task


# time ---------------------------------------------------------------------------------------

_CLOCKS = {0: time.CLOCK_REALTIME, 1: time.CLOCK_MONOTONIC, 4: time.CLOCK_MONOTONIC_RAW,
           5: 5, 6: 6, 7: time.CLOCK_BOOTTIME, 8: 8, 9: 9, 11: 11}
CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 2, 3


def cpu_ns(t: Task, *, thread: bool = False, user_only: bool = False) -> int:
    """CPU time (user+system, or user only) of the application's process, or of the one
    thread `t` with `thread`, from its stub's /proc stat."""
    pid = t.stub.pid
    path = f"/proc/{pid}/task/{pid}/stat" if thread else f"/proc/{pid}/stat"
    try:
        fields = open(path).read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + (0 if user_only else int(fields[12]))
    except (OSError, IndexError, ValueError):
        return 0
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


# A dynamic CPU clock id (Linux's posix-cpu-timers): ~pid << 3 | which, bit 2 set for a
# thread's clock; which is PROF (user+system), VIRT (user) or SCHED (user+system).
CPUCLOCK_VIRT, CPUCLOCK_SCHED, CPUCLOCK_MAX, CPUCLOCK_PERTHREAD = 1, 2, 3, 4


def _cpu_clock(t: Task, clk: int, *, gettime: bool) -> tuple[Task, bool, int]:
    """(task, a thread's clock?, which) named by CPU clock id `clk`, or EINVAL, with
    Linux's rules (pid_for_clock): a thread's clock only in the caller's thread group, a
    process's only by a thread-group id (or, for clock_gettime, the caller's own tid)."""
    if clk in (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID):
        return t, clk == CLOCK_THREAD_CPUTIME_ID, CPUCLOCK_SCHED
    which, thread, pid = clk & 3, bool(clk & CPUCLOCK_PERTHREAD), ~(clk >> 3)
    if which >= CPUCLOCK_MAX:
        raise SyscallError(errno.EINVAL)
    if pid == 0:
        return t, thread, which
    target = task_of(t, pid)
    if target is None or (thread and target.tgid != t.tgid):
        raise SyscallError(errno.EINVAL)
    if not thread and t.pidns.vpid(target.tgid) != pid and not (gettime and target is t):
        raise SyscallError(errno.EINVAL)
    return target, thread, which


def _now_ns(t: Task, clk: int) -> int:
    clk = i32(clk)
    if clk < 0 or clk in (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID):
        target, thread, which = _cpu_clock(t, clk, gettime=True)
        return cpu_ns(target, thread=thread, user_only=which == CPUCLOCK_VIRT)
    if clk not in _CLOCKS:
        raise SyscallError(errno.EINVAL)
    return time.clock_gettime_ns(_CLOCKS[clk])


def _timespec(ns: int) -> bytes:
    return struct.pack("<qq", ns // 1_000_000_000, ns % 1_000_000_000)


@syscall("clock_gettime")
def sys_clock_gettime(t: Task, clk: int, tp: int, *_: int) -> int:
    """Implements Linux syscall clock_gettime(2) (the vDSO answers most calls without us)."""
    t.mem_write(tp, _timespec(_now_ns(t, clk)))
    return 0


@syscall("clock_getres")
def sys_clock_getres(t: Task, clk: int, tp: int, *_: int) -> int:
    """Implements Linux syscall clock_getres(2): a CPU clock's PROF and VIRT kinds tick
    at the host's HZ, as the caller's own clock of that kind on the host says."""
    clk = i32(clk)
    if clk < 0:
        _owner, thread, which = _cpu_clock(t, clk, gettime=False)
        own = ~0 << 3 | which | (CPUCLOCK_PERTHREAD if thread else 0)
        res = 1 if which == CPUCLOCK_SCHED else round(time.clock_getres(own) * 1e9)
    else:
        _now_ns(t, clk)
        res = 4_000_000 if clk in (5, 6) else 1
    if tp:
        t.mem_write(tp, _timespec(res))
    return 0


@syscall("gettimeofday")
def sys_gettimeofday(t: Task, tv: int, tz: int, *_: int) -> int:
    """Implements Linux syscall gettimeofday(2); the timezone is UTC."""
    ns = time.time_ns()
    if tv:
        t.mem_write(tv, struct.pack("<qq", ns // 1_000_000_000, ns % 1_000_000_000 // 1000))
    if tz:
        t.mem_write(tz, struct.pack("<ii", 0, 0))
    return 0


@syscall("time")
def sys_time(t: Task, tloc: int, *_: int) -> int:
    """Implements Linux syscall time(2)."""
    now = time.time_ns() // 1_000_000_000
    if tloc:
        t.mem_write(tloc, struct.pack("<q", now))
    return now


def _read_timespec(t: Task, addr: int) -> int:
    sec, nsec = struct.unpack("<qq", t.mem_read(addr, 16))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise SyscallError(errno.EINVAL)
    return sec * 1_000_000_000 + nsec


@syscall("nanosleep")
async def sys_nanosleep(t: Task, req: int, rem: int, *_: int) -> int:
    """Implements Linux syscall nanosleep(2); other tasks run meanwhile."""
    ns = _read_timespec(t, req)
    await t.sleep_interruptibly(trio.sleep(ns / 1e9))
    return 0


@syscall("clock_nanosleep")
async def sys_clock_nanosleep(t: Task, clk: int, flags: int, req: int, rem: int,
                              *_: int) -> int:
    """Implements Linux syscall clock_nanosleep(2), relative or TIMER_ABSTIME."""
    clk = i32(clk)
    if clk in (CLOCK_THREAD_CPUTIME_ID,):
        raise SyscallError(errno.EINVAL)
    if clk not in (0, 1, 7, 8, 9, CLOCK_PROCESS_CPUTIME_ID):
        raise SyscallError(errno.EINVAL if clk in _CLOCKS else errno.EINVAL)
    ns = _read_timespec(t, req)
    if flags & 1:  # TIMER_ABSTIME
        ns -= _now_ns(t, clk)
    if ns > 0:
        await t.sleep_interruptibly(trio.sleep(ns / 1e9))
    return 0
