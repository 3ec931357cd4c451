"""Job control: group stop and continue, and what the parent sees of them.

A stop signal (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) whose action is the default is queued
like any signal; the thread that takes it on its way back to user mode starts a *group
stop* of its process. Every thread then parks: it is left at a host signal-delivery stop
that the Sentry does not resume (a thread in user code is kicked into one; a thread that
finishes a syscall kicks itself), so no application instruction runs and no syscall of
the process progresses. A thread asleep in a call Linux restarts (read, wait4, futex …)
is cut short and restarted once continued; one asleep in a call that is not restarted
(nanosleep, pause, poll …) simply counts as stopped and parks when the call ends, so
timers keep running through a stop as on Linux. When every thread is parked or asleep
the stop is complete: the parent gets SIGCHLD with CLD_STOPPED (unless its SIGCHLD
action has SA_NOCLDSTOP) and wait(WUNTRACED) reports the child.

A traced thread does not park: it reports the stop to its tracer (`participate`, through
`signals`/`ptrace`) and counts as stopped; it runs again when the tracer resumes it, the
stop notwithstanding, as on Linux (`released`, `held`).

SIGCONT, whatever its action and even blocked, continues the process when it is sent
(Linux's prepare_signal): pending stop signals are discarded, parked threads resumed, the
parent told CLD_CONTINUED, and wait(WCONTINUED) reports it once. A stop signal discards a
pending SIGCONT. SIGKILL and fatal signals end a stopped process at once (signals.send).

The state is per process (`JobState` on the thread-group leader, created lazily);
`Kernel.signals_queued` counts each process in a group stop, so the run loop calls
`signals.on_return` after every syscall while one exists.

This module keeps the books and never sends a signal: what a stop or a continue sends
(CLD_STOPPED once a stop completes, `continue_group`, SIGHUP and SIGCONT to a newly
orphaned group) is in `signals`, which uses this module; both use `sigstate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import sigstate
from .current import CURRENT_TASK

if TYPE_CHECKING:
    from .kernel import Kernel
    from .task import Task

SIGHUP, SIGCHLD, SIGCONT, SIGSTOP = 1, 17, 18, 19
STOP_SIGNALS = frozenset({19, 20, 21, 22})  # SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU
CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLD_TRAPPED, CLD_STOPPED, CLD_CONTINUED = range(1, 7)
SA_NOCLDSTOP = 1
WUNTRACED, WCONTINUED = 2, 8
_STOP_BITS = sum(1 << (s - 1) for s in STOP_SIGNALS)


@dataclass
class GroupStop:
    """A group stop in effect: `waiting` threads have yet to park; `parked` ones sit at a
    host signal-delivery stop the Sentry does not resume."""

    sig: int
    waiting: set[Task] = field(default_factory=set)
    parked: set[Task] = field(default_factory=set)
    complete: bool = False
    announced: bool = False  # the parent was told (signals.announce_stop)
    #: traced threads that reported the stop to their tracer instead of parking (Linux's
    #: participation in a group stop through ptrace_stop): they run again when the tracer
    #: resumes them, the group stop notwithstanding, as on Linux
    released: set[Task] = field(default_factory=set)


@dataclass
class JobState:
    """Per process: the group stop in effect, and what wait may still report
    (Linux's group_exit_code and SIGNAL_STOP_CONTINUED)."""

    stop: GroupStop | None = None
    stopped_code: int = 0
    continued: bool = False


def job(t: Task) -> JobState:
    lead = t.leader
    j = lead.__dict__.get("_job")
    if j is None:
        j = lead._job = JobState()
    return j


def stopped(t: Task) -> bool:
    """Whether `t`'s process is in a group stop (started, not yet continued)."""
    j = t.leader.__dict__.get("_job")
    return j is not None and j.stop is not None


def held(t: Task) -> bool:
    """Whether thread `t` is to stop: its process is in a group stop that `t` has not
    reported to a tracer (`released`)."""
    j = t.leader.__dict__.get("_job")
    return j is not None and j.stop is not None and t not in j.stop.released


def participate(t: Task) -> bool:
    """Traced thread `t` reports the group stop to its tracer instead of parking: it
    counts as stopped. Returns whether that completed the stop."""
    st = job(t).stop
    if st is None:
        return False
    st.waiting.discard(t)
    st.parked.discard(t)
    st.released.add(t)
    was = st.complete
    _check_complete(t.leader)
    return st.complete and not was


def rejoin(t: Task, *, running: bool) -> None:
    """`t` is no longer traced: in a group stop still in effect it stops again (Linux's
    __ptrace_unlink sets JOBCTL_STOP_PENDING and wakes it). `running`: not held at a
    trace stop (one that is goes through its delivery, and stops, when resumed)."""
    j = t.leader.__dict__.get("_job")
    if j is not None and j.stop is not None and t in j.stop.released:
        j.stop.released.discard(t)
        if running:
            _stop_thread(j.stop, t)
        else:
            j.stop.waiting.add(t)


# stopping ---------------------------------------------------------------------------------


def begin_stop(t: Task, sig: int) -> bool:
    """`t` took stop signal `sig` (default action): stop its whole process. Returns False
    when the signal is discarded instead: SIGTSTP/SIGTTIN/SIGTTOU in an orphaned process
    group, as Linux's get_signal does."""
    if sig != SIGSTOP and orphaned_pgrp(t.kernel, t.pgid):
        return False
    j = job(t)
    if j.stop is not None:
        return True
    leader = t.leader
    st = j.stop = GroupStop(sig)
    j.stopped_code, j.continued = sig, False
    t.kernel.signals_queued += 1  # the run loop now calls on_return after every syscall
    for th in list(leader.threads):
        if th is t:
            st.waiting.add(th)  # parks on its way back to user mode
        else:
            _stop_thread(st, th)
    _check_complete(leader)
    return True


def _stop_thread(st: GroupStop, th: Task) -> None:
    """Make another thread of a stopping process stop: a sleeper in a call that restarts
    is cut short (restarted once continued), one in a call that does not counts as
    stopped already, a running one is kicked into a stop."""
    if th._sleeps:
        if th.stub.regs.orig_rax in sigstate.RESTARTABLE:
            st.waiting.add(th)
            sigstate.ts(th).interrupted = True
            th.interrupt()
    else:
        st.waiting.add(th)
        sigstate.kick(th)


def asleep(t: Task) -> None:
    """`t` starts sleeping in a syscall that a stop does not interrupt: while its process
    stops, it counts as stopped (it parks when the call ends)."""
    j = t.leader.__dict__.get("_job")
    if j is not None and j.stop is not None and t in j.stop.waiting:
        j.stop.waiting.discard(t)
        _check_complete(t.leader)


def park(t: Task) -> None:
    """`t` sits at a host signal-delivery stop and is left there until SIGCONT."""
    st = job(t).stop
    if st is None:
        return
    st.waiting.discard(t)
    st.parked.add(t)
    _check_complete(t.leader)


def thread_gone(t: Task) -> None:
    """A thread ended during a group stop: the stop no longer waits for it."""
    j = t.leader.__dict__.get("_job")
    if j is None or j.stop is None:
        return
    j.stop.waiting.discard(t)
    j.stop.parked.discard(t)
    if t.leader.threads:
        _check_complete(t.leader)


def _check_complete(leader: Task) -> None:
    """Every thread is parked or asleep: the stop is complete (signals.announce_stop then
    tells the parent)."""
    st = job(leader).stop
    if st is None or st.complete or st.waiting:
        return
    st.complete = True


def end_stop(leader: Task) -> GroupStop | None:
    """SIGCONT was sent: the group stop (if any) is over; return it, so that the caller
    resumes its parked threads and tells the parent."""
    j = leader.__dict__.get("_job")
    if j is None or j.stop is None:
        return None
    st, j.stop = j.stop, None
    leader.kernel.signals_queued -= 1
    j.stopped_code, j.continued = 0, True
    return st


# continuing ---------------------------------------------------------------------------------


def prepare(target: Task, sig: int) -> None:
    """What sending `sig` does before anything else (Linux's prepare_signal): a stop
    signal discards a pending SIGCONT; SIGCONT discards pending stop signals and
    continues a stopped process."""
    if sig in STOP_SIGNALS:
        _flush(target.leader, 1 << (SIGCONT - 1))
    elif sig == SIGCONT:
        _flush(target.leader, _STOP_BITS)


def _flush(leader: Task, bits: int) -> None:
    pends = [sigstate.hand(leader).pending] + [sigstate.ts(th).pending for th in leader.threads]
    for pend in pends:
        for s in [s for s in pend if bits >> (s - 1) & 1]:
            leader.kernel.signals_queued -= len(pend.pop(s))


def exited(leader: Task) -> None:
    """The process ended: its group stop (if any) is over."""
    j = leader.__dict__.get("_job")
    if j is not None and j.stop is not None:
        j.stop = None
        leader.kernel.signals_queued -= 1


# wait ---------------------------------------------------------------------------------------


def wait_report(child: Task, options: int, *, consume: bool) -> tuple[int, int, int] | None:
    """What wait may report about live `child`: (wait status, si_code, si_status) for a
    completed stop (WUNTRACED/WSTOPPED: ``sig << 8 | 0x7f``) or a continue (WCONTINUED:
    0xffff), consumed unless WNOWAIT; None if nothing. A stop is not reported while the
    leader is traced: it is then in a trace stop or running, not stopped (Linux's
    task_stopped_code), and its tracer reports it."""
    j = child.leader.__dict__.get("_job")
    if j is None:
        return None
    if options & WUNTRACED and j.stop is not None and j.stop.complete and j.stopped_code \
            and child.leader.ptrace is None:
        sig = j.stopped_code
        if consume:
            j.stopped_code = 0
        return sig << 8 | 0x7F, CLD_STOPPED, sig
    if options & WCONTINUED and j.continued:
        if consume:
            j.continued = False
        return 0xFFFF, CLD_CONTINUED, SIGCONT
    return None


# orphaned process groups --------------------------------------------------------------------


def orphaned_pgrp(kernel: Kernel, pgid: int) -> bool:
    """will_become_orphaned_pgrp: no member has a parent in another group of the same
    session. The sandbox's pid 1 has no parent inside, as a container's init."""
    procs = kernel.procs
    for p in procs.values():
        if p.pgid != pgid:
            continue
        parent = procs.get(p.ppid)
        if parent is None:
            continue
        if parent.pgid != pgid and parent.sid == p.sid:
            return False
    return True


def has_stopped_jobs(kernel: Kernel, pgid: int) -> bool:
    return any(p.pgid == pgid and stopped(p)
               for p in kernel.procs.values())


def state_letter(t: Task) -> str:
    """/proc/PID/status's State: T stopped, S when every thread sleeps in a syscall (the
    thread reading the file is running), R otherwise."""
    if stopped(t):
        return "T (stopped)"
    me = CURRENT_TASK.get(None)
    if all(th._sleeps and th is not me for th in t.leader.threads):
        return "S (sleeping)"
    return "R (running)"
