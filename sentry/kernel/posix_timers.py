"""POSIX interval timers (timer_create): each process's table of them, and delivery.

A `PosixTimer` counts on a `KTimer` and, at each expiration, queues its signal for the
process (SIGEV_SIGNAL) or one of its threads (SIGEV_THREAD_ID), or nothing (SIGEV_NONE),
with an SI_TIMER siginfo (timer id, overrun, the sigevent's value). While its signal is
still queued, later expirations are counted as overruns in that very siginfo (the
queued one is replaced, so the count is right when it is delivered), and timer_getoverrun
answers the count of the last signal delivered, as Linux's it_overrun_last.

Ids are the process's, given in sequence from 0 as Linux does. Timers end with the
process and at execve (`on_exec`); they are not inherited by fork.

A signal still queued when its timer is deleted or re-armed stays pending and is dropped
when it is taken, as Linux (6.13 on) does (`PosixTimer.retire_queued`, `sigstate.Dropped`).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import signals, sigstate
from .ktimer import KTimer

if TYPE_CHECKING:
    from .task import Task

SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID = 0, 1, 2, 4
SI_TIMER = -2
DELAYTIMER_MAX = 0x7FFFFFFF
CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 2, 3
_CPUCLOCK_SCHED, _CPUCLOCK_PERTHREAD = 2, 4


def cpu_clock(t: Task, clockid: int) -> Callable[[], int] | None:
    """The CPU-time clock `clockid` names for `t` (2, 3, or a clock_getcpuclockid /
    pthread_getcpuclockid id of a sandboxed process or of one of `t`'s threads), read
    from the host's CPU clock of its stub; None if it names none."""
    if clockid == CLOCK_PROCESS_CPUTIME_ID:
        target, thread = t.leader, False
    elif clockid == CLOCK_THREAD_CPUTIME_ID:
        target, thread = t, True
    elif clockid < 0 and clockid & 3 <= _CPUCLOCK_SCHED:
        pid = ~(clockid >> 3)
        thread = bool(clockid & _CPUCLOCK_PERTHREAD)
        k = t.kernel
        found = (k.tasks.get(pid) if thread else k.procs.get(pid)) if pid else (
            t if thread else t.leader)
        if found is None or thread and found.leader is not t.leader:
            return None
        target = found
    else:
        return None
    hostid = target.stub.pid
    if thread:  # the host lets only a thread's own process read its CPU clock
        def thread_now() -> int:
            try:
                with open(f"/proc/{hostid}/schedstat") as f:
                    return int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                return 0
        return thread_now
    host = (~hostid << 3) | _CPUCLOCK_SCHED

    def now() -> int:
        try:
            return time.clock_gettime_ns(host)
        except OSError:
            return 0
    return now


class PosixTimer:
    """One timer of a process."""

    def __init__(self, owner: Task, tid: int, clockid: int, clock: Callable[[], int] | None,
                 notify: int, signo: int, value: int, target: Task) -> None:
        self.owner = owner.leader
        self.id = tid
        self.notify = notify
        self.signo = signo
        self.value = value
        self.target = target  # the thread for SIGEV_THREAD_ID, else the leader
        self.timer = KTimer(owner.kernel, clockid, self._fired, clock=clock)
        self.queued: bytes | None = None  # the siginfo queued and not yet delivered
        self.overrun = 0  # of the queued siginfo
        self.overrun_last = 0  # of the last siginfo delivered

    def _info(self) -> bytes:
        b = bytearray(128)
        struct.pack_into("<iii4xiiQ", b, 0, self.signo, 0, SI_TIMER, self.id,
                         min(self.overrun, DELAYTIMER_MAX), self.value & sigstate.MASK64)
        return bytes(b)

    def _pending_list(self) -> list[bytes]:
        pend = (sigstate.ts(self.target) if self.notify == SIGEV_THREAD_ID
                else sigstate.hand(self.owner)).pending
        return pend.get(self.signo, [])

    def _settle(self) -> None:
        """Notice the delivery of the queued siginfo (it left the pending queue)."""
        if self.queued is not None and not any(i is self.queued for i in self._pending_list()):
            self.overrun_last = min(self.overrun, DELAYTIMER_MAX)
            self.queued = None

    def _fired(self, n: int) -> None:
        owner = self.owner
        if owner.exit_status is not None or owner.ended.is_set():
            self.timer.disarm()
            return
        if self.notify == SIGEV_NONE:
            return
        self._settle()
        if self.queued is not None:  # still pending: count overruns in it
            self.overrun += n
            q = self._pending_list()
            for i, info in enumerate(q):
                if info is self.queued:
                    q[i] = self.queued = self._info()
                    break
            return
        self.overrun = n - 1
        info = self._info()
        target = self.target if self.notify == SIGEV_THREAD_ID else owner
        if target.kernel.tasks.get(target.tid) is not target:
            return  # the thread is gone: no signal, as Linux's posix_timer_event
        # send_sigqueue's prepare_signal(force=false): an init's SIGKILL/SIGSTOP is dropped
        signals.send(None, target, self.signo, info, thread=self.notify == SIGEV_THREAD_ID,
                     force=False)
        if any(i is info for i in self._pending_list()):
            self.queued = info
        else:  # delivered or dropped at once
            self.overrun_last = min(self.overrun, DELAYTIMER_MAX)

    def getoverrun(self) -> int:
        self._settle()
        return self.overrun_last

    def retire_queued(self) -> None:
        """timer_settime and timer_delete: a signal still queued stays pending but is
        dropped when taken (`sigstate.Dropped`)."""
        self._settle()
        if self.queued is None:
            return
        q = self._pending_list()
        for i, info in enumerate(q):
            if info is self.queued:
                q[i] = sigstate.Dropped(info)
        self.queued = None

    def delete(self) -> None:
        self.timer.disarm()
        self.retire_queued()


class ProcessTimers:
    """A process's POSIX timers by id, and the next id to give."""

    def __init__(self) -> None:
        self.timers: dict[int, PosixTimer] = {}
        self.next_id = 0

    def new_id(self) -> int:
        while self.next_id in self.timers:
            self.next_id = (self.next_id + 1) & 0x7FFFFFFF
        tid = self.next_id
        self.next_id = (tid + 1) & 0x7FFFFFFF
        return tid


def timers_of(t: Task) -> ProcessTimers:
    """`t`'s process's timers (made on first use)."""
    lead = t.leader
    pt = lead.__dict__.get("_posix_timers")
    if pt is None:
        pt = lead._posix_timers = ProcessTimers()
    return pt


def on_exec(t: Task) -> None:
    """execve deletes the process's timers (Linux's exit_itimers)."""
    pt = t.leader.__dict__.get("_posix_timers")
    if pt is not None:
        for tm in pt.timers.values():
            tm.delete()
        pt.timers.clear()
