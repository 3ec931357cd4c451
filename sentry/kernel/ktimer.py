"""Kernel timers on a clock: what timerfd and POSIX interval timers count with.

A `KTimer` is one-shot or periodic (Linux's hrtimer plus the forwarding of
hrtimer_forward): armed with an absolute deadline on its clock and an interval. Its
expirations are counted when looked at (`collect`), so a reader always sees the
number a Linux timer would have counted by now, and a trio task sleeping until the
deadline collects them as they happen and passes them to the owner's `fire` callback
(which queues a signal or wakes a timerfd's readers).

A timer may count another clock (`clock`, e.g. a process's CPU time, which only the host
counts): its task then looks at the clock at least every `CPU_POLL` seconds, since that
clock may run faster than the wall clock (several threads) or slower (a sleeper).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from .kernel import Kernel

CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME = 0, 1, 7
CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM, CLOCK_TAI = 8, 9, 11
#: The host clock each timer clock reads (the *_ALARM clocks count like their base).
HOST_CLOCK = {CLOCK_REALTIME: time.CLOCK_REALTIME, CLOCK_MONOTONIC: time.CLOCK_MONOTONIC,
              CLOCK_BOOTTIME: time.CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM: time.CLOCK_REALTIME,
              CLOCK_BOOTTIME_ALARM: time.CLOCK_BOOTTIME, CLOCK_TAI: time.CLOCK_TAI}
NS = 1_000_000_000
#: How often (wall seconds, at most) a timer on a CPU-time clock looks at its clock.
CPU_POLL = 0.01
#: The shortest time between two wake-ups of a periodic timer's task (1 ms).
MIN_WAKE_NS = 1_000_000


def clock_now(clockid: int) -> int:
    """Nanoseconds on timer clock `clockid` (a key of HOST_CLOCK)."""
    return time.clock_gettime_ns(HOST_CLOCK[clockid])


class KTimer:
    """A timer on `clockid`: `deadline` (absolute ns, 0 when disarmed) and `interval`."""

    __slots__ = ("kernel", "clockid", "clock", "deadline", "interval", "fire", "_scope")

    def __init__(self, kernel: Kernel, clockid: int, fire: Callable[[int], None], *,
                 clock: Callable[[], int] | None = None) -> None:
        self.kernel = kernel
        self.clockid = clockid
        self.clock = clock
        self.deadline = 0
        self.interval = 0
        self.fire = fire
        self._scope: trio.CancelScope | None = None

    @property
    def armed(self) -> bool:
        return self.deadline != 0

    def now(self) -> int:
        return self.clock() if self.clock is not None else clock_now(self.clockid)

    def arm(self, deadline: int, interval: int) -> None:
        """Arm at absolute `deadline` (0 disarms), then every `interval` ns (0: once)."""
        self.disarm()
        if deadline <= 0:
            return
        self.deadline, self.interval = deadline, interval
        scope = self._scope = trio.CancelScope()
        self.kernel.start_soon(self._run, scope)

    def disarm(self) -> None:
        self.deadline = self.interval = 0
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None

    def remaining(self) -> tuple[int, int]:
        """(ns until the next expiration, interval), as timer_gettime reports them: an
        armed timer whose expiration is due but not collected reports 1 ns."""
        if not self.armed:
            return 0, self.interval
        return max(self.deadline - self.now(), 1), self.interval

    def collect(self) -> int:
        """Count the expirations up to now, move the deadline past them (or disarm a
        one-shot timer), and pass a non-zero count to `fire`."""
        if not self.armed:
            return 0
        now = self.now()
        if now < self.deadline:
            return 0
        if self.interval:
            n = 1 + (now - self.deadline) // self.interval
            self.deadline += n * self.interval
        else:
            n = 1
            self.deadline = 0
        self.fire(n)
        return n

    async def _run(self, scope: trio.CancelScope) -> None:
        with scope:
            while self.armed and self._scope is scope:
                left = self.deadline - self.now()
                if left > 0:
                    await trio.sleep(left / NS if self.clock is None
                                     else min(left / NS, CPU_POLL))
                if self.collect() and 0 < self.interval < MIN_WAKE_NS:
                    # a very short period: wake at most every MIN_WAKE_NS; the missed
                    # expirations are counted all the same by the next collect
                    await trio.sleep(MIN_WAKE_NS / NS)
