"""Clocks and sleeps: clock_gettime/getres, gettimeofday, time, nanosleep,
clock_nanosleep (process and thread CPU clocks are the stub's host CPU time).
"""

from __future__ import annotations

import errno
import os
import struct
import time
from typing import TYPE_CHECKING

import trio

from sentry.errors import SyscallError
from sentry.kernel.table import syscall

from .sys_file import i32

if TYPE_CHECKING:
    from sentry.kernel.task import Task


# time ---------------------------------------------------------------------------------------

_CLOCKS = {0: time.CLOCK_REALTIME, 1: time.CLOCK_MONOTONIC, 4: time.CLOCK_MONOTONIC_RAW,
           5: 5, 6: 6, 7: time.CLOCK_BOOTTIME, 8: 8, 9: 9, 11: 11}
CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 2, 3


def cpu_ns(t: Task) -> int:
    """CPU time (user+system) of the application, from its stub's /proc stat."""
    try:
        fields = open(f"/proc/{t.stub.pid}/stat").read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _now_ns(t: Task, clk: int) -> int:
    clk = i32(clk)
    if clk in (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID):
        return cpu_ns(t)
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
    """Implements Linux syscall clock_getres(2)."""
    _now_ns(t, clk)
    if tp:
        t.mem_write(tp, _timespec(4_000_000 if i32(clk) in (5, 6) else 1))
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
