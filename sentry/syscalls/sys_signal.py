"""Signal syscalls: actions, masks, alt stacks, waiting for signals, interval timers, kill.

The state and delivery live in `sentry.kernel.signals`; kill, tkill and tgkill send
through `signals.send`; pause sleeps until a signal comes.
"""

from __future__ import annotations

import errno
import os
import struct
import time
from typing import TYPE_CHECKING

import trio

from sentry.errors import SyscallError
from sentry.kernel import signals as S
from sentry.kernel import sigstate
from sentry.kernel.limits import DEFAULT_RLIMITS, RLIM_INFINITY, RLIMIT_CPU
from sentry.kernel.pidns import init_of, proc_of, task_of
from sentry.kernel.table import syscall

from .sys_file import i32

if TYPE_CHECKING:
    from sentry.kernel.task import Task

SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
MINSIGSTKSZ = 2048
_NS = 1_000_000_000


def _sig(v: int) -> int:
    v &= 0xFFFFFFFF
    v = v - (1 << 32) if v >= 1 << 31 else v
    if not 1 <= v <= 64:
        raise SyscallError(errno.EINVAL)
    return v


def _sigsetsize(n: int) -> None:
    if n != 8:
        raise SyscallError(errno.EINVAL)


@syscall("rt_sigaction")
def sys_rt_sigaction(t: Task, sig: int, act: int, oact: int, size: int, *_: int) -> int:
    """Implements Linux syscall rt_sigaction(2): struct k_sigaction is (handler, flags,
    restorer, mask)."""
    _sigsetsize(size)
    sig = _sig(sig)
    new = None
    if act:
        new = struct.unpack("<QQQQ", t.mem_read(act, 32))
        if sig in (sigstate.SIGKILL, sigstate.SIGSTOP):
            raise SyscallError(errno.EINVAL)
    old = sigstate.action(t, sig)
    if oact:
        t.mem_write(oact, struct.pack("<QQQQ", *old))
    if new is not None:
        h, flags, restorer, mask = new
        acts = sigstate.hand(t).actions
        if h == sigstate.SIG_DFL and not flags and not mask:
            acts.pop(sig, None)
        else:
            acts[sig] = (h, flags & 0xFFFFFFFF, restorer, mask & ~sigstate.UNBLOCKABLE)
        if sigstate.ignored(t, sig):  # setting SIG_IGN discards what is pending (POSIX)
            for pend in [sigstate.hand(t).pending] + [sigstate.ts(th).pending for th in t.leader.threads]:
                n = len(pend.pop(sig, []))
                t.kernel.signals_queued -= n
    return 0


@syscall("rt_sigprocmask")
def sys_rt_sigprocmask(t: Task, how: int, nset: int, oset: int, size: int, *_: int) -> int:
    """Implements Linux syscall rt_sigprocmask(2) (SIGKILL and SIGSTOP stay unblocked)."""
    _sigsetsize(size)
    s = sigstate.ts(t)
    new = None
    if nset:
        (new,) = struct.unpack("<Q", t.mem_read(nset, 8))
        if how not in (SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK):
            raise SyscallError(errno.EINVAL)
    if oset:
        t.mem_write(oset, struct.pack("<Q", s.mask))
    if new is not None:
        if how == SIG_BLOCK:
            s.mask |= new
        elif how == SIG_UNBLOCK:
            s.mask &= ~new
        else:
            s.mask = new
        s.mask &= ~sigstate.UNBLOCKABLE & sigstate.MASK64
    return 0


@syscall("rt_sigreturn")
def sys_rt_sigreturn(t: Task, *_: int) -> int:
    """Implements Linux syscall rt_sigreturn(2): registers, mask and FPU state come back
    from the frame; a bad frame gives SIGSEGV."""
    return S.sigreturn(t)


@syscall("sigaltstack")
def sys_sigaltstack(t: Task, ss: int, oss: int, *_: int) -> int:
    """Implements Linux syscall sigaltstack(2) (SS_DISABLE, SS_AUTODISARM)."""
    s = sigstate.ts(t)
    sp, flags, size = s.altstack
    on = bool(size) and sp < t.regs.rsp <= sp + size
    if oss:
        cur = sigstate.SS_ONSTACK if on else flags
        t.mem_write(oss, struct.pack("<Qi4xQ", sp, cur, size))
    if ss:
        nsp, nflags, nsize = struct.unpack("<Qi4xQ", t.mem_read(ss, 24))
        if on:
            raise SyscallError(errno.EPERM)
        mode = nflags & ~sigstate.SS_AUTODISARM & 0xFFFFFFFF
        if mode not in (0, sigstate.SS_ONSTACK, sigstate.SS_DISABLE):
            raise SyscallError(errno.EINVAL)
        if mode == sigstate.SS_DISABLE:
            s.altstack = (0, sigstate.SS_DISABLE, 0)
        else:
            if nsize < MINSIGSTKSZ:
                raise SyscallError(errno.ENOMEM)
            s.altstack = (nsp, nflags & sigstate.SS_AUTODISARM, nsize)
    return 0


@syscall("rt_sigpending")
def sys_rt_sigpending(t: Task, addr: int, size: int, *_: int) -> int:
    """Implements Linux syscall rt_sigpending(2): pending signals that are blocked."""
    if size > 8:
        raise SyscallError(errno.EINVAL)
    t.mem_write(addr, struct.pack("<Q", S.pending_set(t) & sigstate.ts(t).mask)[:size])
    return 0


@syscall("rt_sigsuspend")
async def sys_rt_sigsuspend(t: Task, addr: int, size: int, *_: int) -> int:
    """Implements Linux syscall rt_sigsuspend(2): the mask is swapped until a handler
    runs, then restored by its sigreturn."""
    _sigsetsize(size)
    (new,) = struct.unpack("<Q", t.mem_read(addr, 8))
    s = sigstate.ts(t)
    s.saved_mask, s.mask = s.mask, new & ~sigstate.UNBLOCKABLE & sigstate.MASK64
    while not S.has_deliverable(t) and not t.killed_by:
        try:
            await t.sleep_interruptibly(trio.sleep_forever())
        except SyscallError:
            pass
    s.interrupted = False
    raise SyscallError(errno.EINTR)


@syscall("rt_sigtimedwait")
async def sys_rt_sigtimedwait(t: Task, addr: int, info: int, timeout: int, size: int,
                              *_: int) -> int:
    """Implements Linux syscall rt_sigtimedwait(2): takes a pending signal of the set."""
    _sigsetsize(size)
    (want,) = struct.unpack("<Q", t.mem_read(addr, 8))
    want &= ~sigstate.UNBLOCKABLE
    deadline = None
    if timeout:
        sec, nsec = struct.unpack("<qq", t.mem_read(timeout, 16))
        if sec < 0 or not 0 <= nsec < _NS:
            raise SyscallError(errno.EINVAL)
        deadline = trio.current_time() + sec + nsec / _NS
    s = sigstate.ts(t)
    saved = s.mask
    while True:
        got = _take_from(t, want)
        if got is not None:
            sig, si = got
            if info:
                t.mem_write(info, si)
            return sig
        if S.has_deliverable(t) or t.killed_by:
            raise SyscallError(errno.EINTR)
        if deadline is not None and trio.current_time() >= deadline:
            raise SyscallError(errno.EAGAIN)
        s.waitset = want
        s.mask = saved & ~want
        try:
            aw = trio.sleep_until(deadline) if deadline is not None else trio.sleep_forever()
            await t.sleep_interruptibly(aw)
        except SyscallError:
            pass
        finally:
            s.waitset = 0
            s.mask = saved
            s.interrupted = False


def _take_from(t: Task, want: int) -> tuple[int, bytes] | None:
    s = sigstate.ts(t)
    for pend in (s.pending, sigstate.hand(t).pending):
        while True:
            ready = [sig for sig in pend if want & sigstate.bit(sig)]
            if not ready:
                break
            sig = min(ready)
            si = pend[sig].pop(0)
            if not pend[sig]:
                del pend[sig]
            t.kernel.signals_queued -= 1
            if not isinstance(si, sigstate.Dropped):  # a stale timer signal: taken, dropped
                return sig, si
    return None


@syscall("rt_sigqueueinfo")
def sys_rt_sigqueueinfo(t: Task, pid: int, sig: int, info: int, *_: int) -> int:
    """Implements Linux syscall rt_sigqueueinfo(2) (to one's own process; others EPERM
    unless si_code is SI_QUEUE and positive codes are refused, as Linux)."""
    sig = _sig(sig)
    si = bytearray(t.mem_read(info, 128))
    (code,) = struct.unpack_from("<i", si, 8)
    target = proc_of(t, pid & 0xFFFFFFFF)
    if target is None:
        raise SyscallError(errno.ESRCH)
    if (code >= 0 or code == sigstate.SI_TKERNEL) and target.leader is not t.leader:
        raise SyscallError(errno.EPERM)
    if not S.may_signal(t, target, sig):
        raise SyscallError(errno.EPERM)
    struct.pack_into("<i", si, 0, sig)
    S.send_queued(t, target, sig, bytes(si))
    return 0


@syscall("rt_tgsigqueueinfo")
def sys_rt_tgsigqueueinfo(t: Task, tgid: int, tid: int, sig: int, info: int, *_: int) -> int:
    """Implements Linux syscall rt_tgsigqueueinfo(2): rt_sigqueueinfo to one thread."""
    sig = _sig(sig)
    si = bytearray(t.mem_read(info, 128))
    (code,) = struct.unpack_from("<i", si, 8)
    target = task_of(t, tid & 0xFFFFFFFF)
    if target is None or t.pidns.vpid(target.tgid) != tgid & 0xFFFFFFFF:
        raise SyscallError(errno.ESRCH)
    if (code >= 0 or code == sigstate.SI_TKERNEL) and target.leader is not t.leader:
        raise SyscallError(errno.EPERM)
    if not S.may_signal(t, target, sig):
        raise SyscallError(errno.EPERM)
    struct.pack_into("<i", si, 0, sig)
    S.send_queued(t, target, sig, bytes(si), thread=True)
    return 0


# ITIMER_REAL and alarm ----------------------------------------------------------------------


async def _alarm_task(leader: Task, delay: float, interval: float,
                      scope: trio.CancelScope) -> None:
    with scope:
        await trio.sleep(delay)
        while True:
            if leader.exit_status is not None or leader.ended.is_set():
                return
            S.send(None, leader, 14, sigstate.siginfo(14, sigstate.SI_KERNEL))
            if not interval:
                break
            h = sigstate.hand(leader)
            h.alarm_deadline = trio.current_time() + interval
            await trio.sleep(interval)
    h = sigstate.hand(leader)
    if h.alarm is scope:
        h.alarm = None


def _timer_get(t: Task) -> tuple[float, float]:
    h = sigstate.hand(t)
    if h.alarm is None:
        return 0.0, 0.0
    return max(h.alarm_deadline - trio.current_time(), 1e-6), h.alarm_interval


def _timer_set(t: Task, value: float, interval: float) -> tuple[float, float]:
    old = _timer_get(t)
    h = sigstate.hand(t)
    if h.alarm is not None:
        h.alarm.cancel()
        h.alarm = None
    if value > 0:
        scope = trio.CancelScope()
        h.alarm, h.alarm_deadline, h.alarm_interval = scope, trio.current_time() + value, interval
        t.kernel.start_soon(_alarm_task, t.leader, value, interval, scope)
    return old


@syscall("alarm")
def sys_alarm(t: Task, secs: int, *_: int) -> int:
    """Implements Linux syscall alarm(2): SIGALRM after `secs` seconds (ITIMER_REAL)."""
    left = _timer_set(t, float(secs & 0xFFFFFFFF), 0.0)[0]
    return int(left + 0.5) if left else 0


def _tv(v: float) -> bytes:
    us = int(round(v * 1e6))
    return struct.pack("<qq", us // 1_000_000, us % 1_000_000)


def _read_tv(t: Task, addr: int) -> float:
    sec, usec = struct.unpack("<qq", t.mem_read(addr, 16))
    if sec < 0 or not 0 <= usec < 1_000_000:
        raise SyscallError(errno.EINVAL)
    return sec + usec / 1e6


ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
SIGVTALRM, SIGPROF = 26, 27
#: How often (wall seconds) an armed CPU-time timer samples the process's CPU time, at
#: least and at most.
_CPU_POLL_MIN, _CPU_POLL_MAX = 0.005, 0.1


class CpuTimer:
    """ITIMER_VIRTUAL or ITIMER_PROF of one process: CPU nanoseconds left and the interval.

    Why sampled: the application's CPU time is its stub's host CPU time, which only the
    host kernel counts. An armed timer has a Sentry task that reads it (the host's
    process CPU clock of the stub: user time for VIRTUAL, user+system for PROF, the clocks
    Linux's own timers count) at most every `_CPU_POLL_MAX` seconds and sooner when little
    is left, subtracts what was used since the last sample, and sends the signal when
    nothing is left.
    """

    __slots__ = ("which", "left_ns", "interval_ns", "base", "scope")

    def __init__(self, which: int, left_ns: int, interval_ns: int, base: tuple[int, int],
                 scope: trio.CancelScope) -> None:
        self.which, self.left_ns, self.interval_ns = which, left_ns, interval_ns
        self.base, self.scope = base, scope


#: Linux's CPUCLOCK_PROF and CPUCLOCK_VIRT: the clocks its own ITIMER_PROF/VIRTUAL count.
_CPUCLOCK = {ITIMER_PROF: 0, ITIMER_VIRTUAL: 1}


def _cpu_sample(leader: Task, which: int) -> tuple[int, int]:
    """(host pid, CPU ns) of `leader`'s process: user time, plus system time for PROF.

    Read from the host's process CPU clock of the stub (MAKE_PROCESS_CPUCLOCK(pid, VIRT or
    PROF), nanoseconds), else from /proc/<pid>/stat in clock ticks."""
    pid = leader.stub.pid
    try:
        return pid, time.clock_gettime_ns((~pid << 3) | _CPUCLOCK[which])
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + (int(fields[12]) if which == ITIMER_PROF else 0)
    except (OSError, IndexError, ValueError):
        return pid, -1
    return pid, ticks * _NS // os.sysconf("SC_CLK_TCK")


def _cpu_advance(leader: Task, tm: CpuTimer) -> None:
    """Charge the CPU time used since the last sample to the timer. A new stub (after
    execve) starts its count from zero."""
    pid, now = _cpu_sample(leader, tm.which)
    if now < 0:
        return
    used = now - tm.base[1] if pid == tm.base[0] else now
    tm.left_ns -= max(0, used)
    tm.base = (pid, now)


def _cpu_timers(t: Task) -> dict[int, CpuTimer]:
    return t.leader.__dict__.setdefault("_cpu_itimers", {})


async def _cpu_timer_task(leader: Task, tm: CpuTimer) -> None:
    sig = SIGVTALRM if tm.which == ITIMER_VIRTUAL else SIGPROF
    with tm.scope:
        while True:
            # CPU time runs at most (threads) times as fast as the wall clock.
            ahead = tm.left_ns / _NS / max(1, len(leader.threads))
            await trio.sleep(min(max(ahead, _CPU_POLL_MIN), _CPU_POLL_MAX))
            if leader.exit_status is not None or leader.ended.is_set():
                return
            _cpu_advance(leader, tm)
            if tm.left_ns > 0:
                continue
            S.send(None, leader, sig, sigstate.siginfo(sig, sigstate.SI_KERNEL))
            if not tm.interval_ns:
                break
            while tm.left_ns <= 0:  # missed periods are dropped, as Linux counts overruns
                tm.left_ns += tm.interval_ns
    timers = _cpu_timers(leader)
    if timers.get(tm.which) is tm:
        del timers[tm.which]


def _cpu_get(t: Task, which: int) -> tuple[float, float]:
    tm = _cpu_timers(t).get(which)
    if tm is None:
        return 0.0, 0.0
    _cpu_advance(t.leader, tm)
    # expired but not yet signalled: "about to fire", as Linux reports it
    return max(tm.left_ns, 1000) / _NS, tm.interval_ns / _NS


def _cpu_set(t: Task, which: int, value: float, interval: float) -> tuple[float, float]:
    old = _cpu_get(t, which)
    timers = _cpu_timers(t)
    tm = timers.pop(which, None)
    if tm is not None:
        tm.scope.cancel()
    if value > 0:
        leader = t.leader
        tm = CpuTimer(which, round(value * _NS), round(interval * _NS),
                      _cpu_sample(leader, which), trio.CancelScope())
        timers[which] = tm
        t.kernel.start_soon(_cpu_timer_task, leader, tm)
    return old


SIGXCPU, SIGKILL = 24, 9


class CpuLimit:
    """RLIMIT_CPU's watch on one process: the CPU time (user+system) it has used.

    Sampled as the CPU timers are; Linux's check_process_timers compares the process's
    CPU time with the limits: at the hard limit SIGKILL, at the soft limit SIGXCPU and the
    soft limit raised by one second (so once per further second of CPU)."""

    __slots__ = ("used_ns", "base", "scope")

    def __init__(self, base: tuple[int, int], scope: trio.CancelScope) -> None:
        self.used_ns, self.base, self.scope = max(0, base[1]), base, scope


async def _cpu_limit_loop(leader: Task, w: CpuLimit) -> None:
    with w.scope:
        while leader.exit_status is None and not leader.ended.is_set():
            soft, hard = leader.rlimits.get(RLIMIT_CPU, DEFAULT_RLIMITS[RLIMIT_CPU])
            if soft == RLIM_INFINITY:
                break
            pid, now = _cpu_sample(leader, ITIMER_PROF)
            if now >= 0:  # a new stub (after execve) counts from zero
                w.used_ns += max(0, now - w.base[1] if pid == w.base[0] else now)
                w.base = (pid, now)
            if hard != RLIM_INFINITY and w.used_ns >= hard * _NS:
                S.send(None, leader, SIGKILL, sigstate.siginfo(SIGKILL, sigstate.SI_KERNEL))
                break
            if w.used_ns >= soft * _NS:
                S.send(None, leader, SIGXCPU, sigstate.siginfo(SIGXCPU, sigstate.SI_KERNEL))
                leader.rlimits[RLIMIT_CPU] = (soft + 1, hard)
                continue
            ahead = (soft * _NS - w.used_ns) / _NS / max(1, len(leader.threads))
            await trio.sleep(min(max(ahead, _CPU_POLL_MIN), _CPU_POLL_MAX))
    if leader.__dict__.get("_cpu_limit") is w:
        del leader.__dict__["_cpu_limit"]


def watch_cpu_limit(t: Task) -> None:
    """Start enforcing RLIMIT_CPU on `t`'s process when its soft limit is finite and no
    watch runs yet (after setrlimit/prlimit, and in a forked child, which inherits it)."""
    leader = t.leader
    soft = leader.rlimits.get(RLIMIT_CPU, DEFAULT_RLIMITS[RLIMIT_CPU])[0]
    if soft == RLIM_INFINITY or "_cpu_limit" in leader.__dict__:
        return
    w = CpuLimit(_cpu_sample(leader, ITIMER_PROF), trio.CancelScope())
    leader.__dict__["_cpu_limit"] = w
    t.kernel.start_soon(_cpu_limit_loop, leader, w)


def _itimer_get(t: Task, which: int) -> tuple[float, float]:
    if which == ITIMER_REAL:
        return _timer_get(t)
    if which in (ITIMER_VIRTUAL, ITIMER_PROF):
        return _cpu_get(t, which)
    raise SyscallError(errno.EINVAL)


@syscall("getitimer")
def sys_getitimer(t: Task, which: int, addr: int, *_: int) -> int:
    """Implements Linux syscall getitimer(2): ITIMER_REAL (wall clock), ITIMER_VIRTUAL
    (user CPU time) and ITIMER_PROF (user and system CPU time) of the process."""
    value, interval = _itimer_get(t, _s32(which))
    t.mem_write(addr, _tv(interval) + _tv(value))
    return 0


@syscall("setitimer")
def sys_setitimer(t: Task, which: int, new: int, old: int, *_: int) -> int:
    """Implements Linux syscall setitimer(2) for ITIMER_REAL, ITIMER_VIRTUAL and
    ITIMER_PROF; a NULL new value disarms the timer, as Linux still accepts."""
    which = _s32(which)
    interval = value = 0.0
    if new:
        interval = _read_tv(t, new)
        value = _read_tv(t, new + 16)
    if which == ITIMER_REAL:
        prev = _timer_set(t, value, interval)
    elif which in (ITIMER_VIRTUAL, ITIMER_PROF):
        prev = _cpu_set(t, which, value, interval)
    else:
        raise SyscallError(errno.EINVAL)
    if old:
        t.mem_write(old, _tv(prev[1]) + _tv(prev[0]))
    return 0


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


# kill, tkill, tgkill, pause ------------------------------------------------------------------


@syscall("pause")
async def sys_pause(t: Task, *_: int) -> int:
    """Implements Linux syscall pause(2): sleeps until a signal arrives."""
    await t.sleep_interruptibly(trio.sleep_forever())
    return 0


def _send(t: Task, target: Task, sig: int, *, thread: bool = False) -> None:
    """Send `sig` (to one thread for tgkill/tkill): see sentry.kernel.signals."""
    uid = t.creds.uid
    info = sigstate.siginfo(sig, sigstate.SI_TKERNEL if thread else sigstate.SI_USER,
                            target.pidns.vpid(t.tgid), uid)
    S.send_queued(t, target, sig, info, thread=thread)


def _check_sig(sig: int) -> int:
    sig = i32(sig)
    if not 0 <= sig <= 64:
        raise SyscallError(errno.EINVAL)
    return sig


@syscall("kill")
def sys_kill(t: Task, pid: int, sig: int, *_: int) -> int:
    """Implements Linux syscall kill(2): handlers, masks and default actions. pid -1 is
    every process of the caller's pid namespace but its init (the sandbox's pid 1) and the
    caller's own thread group, ESRCH when that is nobody (Linux's kill_something_info).
    Only the processes the caller may signal get it (`may_signal`); EPERM when that is
    none of a pid or group's, while -1 ignores them."""
    sig = _check_sig(sig)
    pid = i32(pid)
    k, ns = t.kernel, t.pidns
    if pid > 0:
        one = proc_of(t, pid)
        targets = [one] if one is not None else []
    elif pid == 0:
        targets = [p for p in k.procs.values() if p.pgid == t.pgid]
    elif pid == -1:
        targets = [p for p in k.procs.values()
                   if ns.sees(p.tgid) and p.tgid not in (init_of(ns), t.tgid)]
    else:
        pgid = ns.gpid(-pid)
        targets = [p for p in k.procs.values() if p.pgid == pgid and ns.sees(p.tgid)]
    if not targets:
        raise SyscallError(errno.ESRCH)
    allowed = [p for p in targets if S.may_signal(t, p, sig)]
    if not allowed and pid != -1:  # -1 ignores EPERM (kill_something_info)
        raise SyscallError(errno.EPERM)
    for target in allowed:
        _send(t, target, sig)
    return 0


@syscall("tgkill")
def sys_tgkill(t: Task, tgid: int, tid: int, sig: int, *_: int) -> int:
    """Implements Linux syscall tgkill(2) (one thread per process)."""
    sig = _check_sig(sig)
    tgid, tid = i32(tgid), i32(tid)
    if tgid <= 0 or tid <= 0:
        raise SyscallError(errno.EINVAL)
    target = task_of(t, tid)
    if target is None or t.pidns.vpid(target.tgid) != tgid:
        raise SyscallError(errno.ESRCH)
    if not S.may_signal(t, target, sig):
        raise SyscallError(errno.EPERM)
    _send(t, target, sig, thread=True)
    return 0


@syscall("tkill")
def sys_tkill(t: Task, tid: int, sig: int, *_: int) -> int:
    """Implements Linux syscall tkill(2)."""
    return sys_tgkill(t, tid, tid, sig)


@syscall("restart_syscall")
def sys_restart_syscall(t: Task, *_: int) -> int:
    """Implements Linux syscall restart_syscall(2): a call cut short here never leaves a
    restart block (nanosleep, poll, futex waits return EINTR instead of
    ERESTART_RESTARTBLOCK), so as Linux's do_no_restart_syscall it answers EINTR."""
    raise SyscallError(errno.EINTR)
