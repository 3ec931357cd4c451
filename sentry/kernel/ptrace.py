"""ptrace inside the sandbox: a tracee's state and its stops, all Sentry-side.

Why no host ptrace: every application thread already is a host tracee of the Sentry, and
the Sentry holds its registers at every stop. A tracee stop is the task's service awaiting
its tracer's next request (`Tracee.stop`), with the stub held at its host stop; the
tracer's GETREGS/SETREGS read and write the Sentry's copy of the registers, which the
resume stores. The stops (Linux's names, ptrace(2)):

- syscall-entry and syscall-exit stops (PTRACE_SYSCALL) around the dispatch (`Kernel._serve`);
  under PTRACE_SYSEMU(_SINGLESTEP) only the entry stop, after which the call is not made
  (rax as the tracer left it), and an exit stop only if the tracer resumed with
  PTRACE_SYSCALL (Linux reads SYSCALL_EMU at entry, SYSCALL_TRACE at exit);
- signal-delivery stops: `signals._deliver` leaves a signal it took for a traced thread in
  `Tracee.stashed` and returns; `signal_stops` reports it, and the signal the tracer
  resumes with (`data`) is delivered past the tracer (`signals.on_return(first=)`);
- group stops: a stop signal's default action in a traced thread starts its process's group
  stop (`jobctl`); each traced thread of it reports its own stop to its tracer (with
  PTRACE_EVENT_STOP when seized; PTRACE_LISTEN waits for SIGCONT) and runs again when
  resumed, the others park until SIGCONT;
- event stops: fork/vfork/clone (and vfork-done), exec, exit, PTRACE_INTERRUPT's.

The tracer is a process (any of its threads may make requests and wait); the tracee is a
thread. State lives on the tracee's Task (`Task.ptrace`); nothing here is module state.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from . import jobctl, signals, sigstate

if TYPE_CHECKING:
    from .task import Task

SIGTRAP, SIGSTOP, SIGCONT, SIGKILL = 5, 19, 18, 9
SA_NOCLDSTOP = 1
CLD_TRAPPED = 4
PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE, PTRACE_EVENT_EXEC = 1, 2, 3, 4
PTRACE_EVENT_VFORK_DONE, PTRACE_EVENT_EXIT, PTRACE_EVENT_STOP = 5, 6, 128
PTRACE_O_TRACESYSGOOD, PTRACE_O_TRACEFORK, PTRACE_O_TRACEVFORK = 1, 2, 4
PTRACE_O_TRACECLONE, PTRACE_O_TRACEEXEC, PTRACE_O_TRACEVFORKDONE = 8, 0x10, 0x20
PTRACE_O_TRACEEXIT, PTRACE_O_TRACESECCOMP, PTRACE_O_EXITKILL = 0x40, 0x80, 0x100000
PTRACE_O_SUSPEND_SECCOMP = 0x200000
O_MASK = 0xFF | PTRACE_O_EXITKILL | PTRACE_O_SUSPEND_SECCOMP
#: how the tracee runs once resumed: to its next signal/event, or to syscall stops too,
#: or (PTRACE_SYSEMU) to syscall-entry stops whose call is then not made
RUN_CONT, RUN_SYSCALL, RUN_SYSEMU = 0, 1, 2
#: what a stop is (PTRACE_GET_SYSCALL_INFO's op: none, entry, exit)
STOP_SIGNAL, STOP_ENTRY, STOP_EXIT, STOP_EVENT, STOP_GROUP = 0, 1, 2, 3, 4
_MASK64 = (1 << 64) - 1


class Skipped(Exception):
    """The tracer skipped the call at its entry stop (orig_rax = -1): rax is the result."""

    def __init__(self, rax: int) -> None:
        super().__init__(rax)
        self.rax = rax - (1 << 64) if rax >= 1 << 63 else rax


class Tracee:
    """A traced thread's ptrace state: who traces it, how, and the stop it is in."""

    def __init__(self, tracer: Task, *, seized: bool, capable: bool, options: int = 0) -> None:
        self.tracer = tracer
        #: whether the credentials recorded at attach (ptracer_cred: the tracer's, the
        #: tracee's own for TRACEME, the parent's tracee's for an auto-attached child)
        #: have CAP_SYS_PTRACE; if not, a set-id execve is downgraded (`caps.exec_creds`)
        self.capable = capable
        self.seized = seized
        self.options = options
        self.run = RUN_CONT
        self.singlestep = False
        self.skip = False  # the entry stop set orig_rax to -1
        #: seccomp platform: a notified call (no registers) of a thread under
        #: PTRACE_SYSCALL, answered 0 and made again at its kick's host stop (-1: none)
        self.replay = -1
        #: the current stop: None while running; its wait status, whether wait took it
        self.stop_kind: int | None = None
        self.status = 0
        self.reported = True
        self.siginfo = b""
        self.event_msg = 0
        self.listening = False
        self._resumed = trio.Event()
        #: the signal the tracer resumed with (0: none)
        self.resume_sig = 0
        #: a signal `_deliver` took and left for the signal-delivery stop
        self.stashed: tuple[int, bytes] | None = None
        #: a group stop to report (the stop signal), a PTRACE_INTERRUPT trap to report
        self.group_stop = 0
        self.trap = False
        #: GET_SYSCALL_INFO at a syscall stop: (nr, args) at entry, rax at exit
        self.entry_info: tuple[int, tuple[int, ...]] = (0, (0,) * 6)

    def work(self) -> bool:
        """Whether a stop waits to be reported before the thread runs user code."""
        return self.stashed is not None or bool(self.group_stop) or self.trap

    def resume(self, sig: int) -> None:
        self.resume_sig = sig
        self.stop_kind = None
        self.listening = False
        self._resumed.set()

    def wake_listen(self, t: Task) -> None:
        """SIGCONT reached `t`, left stopped by PTRACE_LISTEN: it re-traps with
        PTRACE_EVENT_STOP and SIGTRAP, reported to the tracer again."""
        self.listening = False
        self.status = SIGTRAP << 8 | 0x7F | PTRACE_EVENT_STOP << 16
        self.reported = False
        self.stop_kind = STOP_EVENT
        notify_tracer(t, self, SIGTRAP)

    def sysgood(self) -> int:
        return 0x80 if self.options & PTRACE_O_TRACESYSGOOD else 0

    async def stop(self, t: Task, kind: int, sig: int, info: bytes, event: int = 0) -> int:
        """Stop `t` until its tracer resumes it: report wait status ``sig << 8 | 0x7f``
        (with `event` << 16) and SIGCHLD (CLD_TRAPPED) to the tracer. Returns the signal
        the tracer resumed with."""
        self.stop_kind, self.siginfo, self.reported = kind, info, False
        self.status = ((sig & 0xFF) << 8 | 0x7F | event << 16) & 0xFFFFFFFF
        self.resume_sig = 0
        self._resumed = trio.Event()
        notify_tracer(t, self, sig & 0x7F)
        await self._resumed.wait()
        return self.resume_sig


def notify_tracer(t: Task, tr: Tracee, status: int, code: int = CLD_TRAPPED) -> None:
    """SIGCHLD to the tracer's process (for a stop, not when its SIGCHLD action is ignored
    or has SA_NOCLDSTOP, as do_notify_parent_cldstop), and wake its wait."""
    k = t.kernel
    tracer = k.procs.get(tr.tracer.tgid)
    if tracer is not None:
        h, flags = sigstate.action(tracer, sigstate.SIGCHLD)[:2]
        if code != CLD_TRAPPED or not (h == sigstate.SIG_IGN or flags & SA_NOCLDSTOP):
            signals.send(None, tracer, sigstate.SIGCHLD,
                         sigstate.siginfo(sigstate.SIGCHLD, code, t.tid, t.creds.uid,
                                          status=status))
    k.notify_children_changed()


# the tracer's side ---------------------------------------------------------------------


def tracees_of(tracer: Task) -> list[Task]:
    """Every thread `tracer`'s process traces, by tid. A tracer is known by its process
    id, which an execve (even by another of its threads) keeps."""
    tgid = tracer.tgid
    return sorted((th for th in tracer.kernel.tasks.values()
                   if th.ptrace is not None and th.ptrace.tracer.tgid == tgid),
                  key=lambda th: th.tid)


def exits_of(tracer: Task) -> dict[int, tuple[int, Task]]:
    """Exits of tracees that are not the tracer's children (wait status, the ended
    thread), kept for its wait (on its process's leader)."""
    lead = tracer.kernel.procs.get(tracer.tgid, tracer.leader)
    got: dict[int, tuple[int, Task]] | None = lead.__dict__.get("_ptrace_exits")
    if got is None:
        got = {}
        lead.__dict__["_ptrace_exits"] = got
    return got


def attach(tracer: Task, tracee: Task, *, seized: bool, capable: bool,
           options: int = 0) -> Tracee:
    tr = Tracee(tracer, seized=seized, capable=capable, options=options)
    tracee.ptrace = tr
    return tr


def detach(t: Task, sig: int = 0) -> None:
    """End tracing of `t` (PTRACE_DETACH, the tracer's exit): a stopped tracee runs on,
    with `sig` delivered."""
    tr = t.ptrace
    if tr is None:
        return
    t.ptrace = None
    # in a group stop still in effect it stops again, untraced
    jobctl.rejoin(t, running=tr.stop_kind is None)
    tr.resume(sig)


def tracer_gone(tracer: Task) -> None:
    """exit_ptrace: the tracer's process ended: each tracee is detached (and killed under
    PTRACE_O_EXITKILL)."""
    for th in tracees_of(tracer):
        tr = th.ptrace
        assert tr is not None
        if tr.options & PTRACE_O_EXITKILL:
            signals.send(None, th, SIGKILL, sigstate.siginfo(SIGKILL, sigstate.SI_USER))
        detach(th)
    held = tracer.leader.__dict__.pop("_ptrace_exits", None)  # `tracer`: the ended leader
    for _, ended in (held or {}).values():
        _release(ended)


def wait_report(tracer: Task, matches: Callable[[int], bool], consume: bool
                ) -> tuple[int, int, int, int] | None:
    """An exit or stop of a tracee of `tracer` for wait: (tid, wait status, si_code,
    si_status), consumed unless not `consume`; None if none. `matches(tid)` says whether a
    tracee is one the wait asks for. Exits come first: a stop may be the SIGCHLD of one."""
    exits = exits_of(tracer)
    for tid in sorted(exits):
        if matches(tid):
            st, ended = exits.pop(tid) if consume else exits[tid]
            if consume:
                _release(ended)
            if st & 0x7F:
                return tid, st, (3 if st & 0x80 else 2), st & 0x7F
            return tid, st, 1, (st >> 8) & 0xFF
    for th in tracees_of(tracer):
        tr = th.ptrace
        assert tr is not None
        if tr.stop_kind is not None and not tr.reported and matches(th.tid):
            if consume:
                tr.reported = True
            return th.tid, tr.status, CLD_TRAPPED, (tr.status >> 8) & 0xFF
    return None


def waitable(tracer: Task) -> list[int]:
    """The tids `tracer`'s wait may report on besides its children (ECHILD otherwise)."""
    return [th.tid for th in tracees_of(tracer)] + list(exits_of(tracer))


# the tracee's side: hooks of the run loop, exit and clone/exec ---------------------------


async def syscall_entry(t: Task, tr: Tracee) -> None:
    """The syscall-entry stop (rax = -ENOSYS, as Linux shows it there)."""
    regs = t.stub.regs
    regs.rax = -38 & _MASK64
    tr.entry_info = (regs.orig_rax, (regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9))
    await _stop_and_take(t, tr, STOP_ENTRY, SIGTRAP | tr.sysgood())


async def syscall_exit(t: Task, tr: Tracee, res: int) -> int:
    """The syscall-exit stop: the tracer sees `res` in rax and may change it."""
    regs = t.stub.regs
    regs.rax = res & _MASK64
    await _stop_and_take(t, tr, STOP_EXIT, SIGTRAP | tr.sysgood())
    rax = regs.rax
    return rax - (1 << 64) if rax >= 1 << 63 else rax


async def _stop_and_take(t: Task, tr: Tracee, kind: int, sig: int, info: bytes = b"",
                         event: int = 0) -> None:
    """A stop whose resume signal, if any, is sent to the thread as a new signal from the
    kernel (Linux's ptrace_notify: a syscall or event stop resumed with a signal). Its
    siginfo (GETSIGINFO) names the tracee, with si_code the stop's signal or event."""
    info = info or _notify_info(t, sig)
    got = await tr.stop(t, kind, sig, info, event)
    if got:
        signals.send(None, t, got, sigstate.siginfo(got, sigstate.SI_KERNEL), thread=True)


def _notify_info(t: Task, code: int) -> bytes:
    """ptrace_do_notify's siginfo: SIGTRAP, si_code `code`, the tracee's pid and uid."""
    return sigstate.siginfo(SIGTRAP, code, t.tid, t.creds.uid)


async def event(t: Task, option: int, ev: int, msg: int) -> None:
    """An event stop if the tracer asked for it (`option`): PTRACE_EVENT_* `ev` with
    GETEVENTMSG's `msg`."""
    tr = t.ptrace
    if tr is None or not tr.options & option:
        return
    tr.event_msg = msg
    await _stop_and_take(t, tr, STOP_EVENT, SIGTRAP, _notify_info(t, ev << 8 | SIGTRAP), ev)


async def after_exec(t: Task, old_tid: int) -> None:
    """execve succeeded: PTRACE_EVENT_EXEC (GETEVENTMSG: the former tid), or for a tracee
    attached without PTRACE_SEIZE and without the option, a SIGTRAP."""
    tr = t.ptrace
    if tr is None:
        return
    if tr.options & PTRACE_O_TRACEEXEC:
        await event(t, PTRACE_O_TRACEEXEC, PTRACE_EVENT_EXEC, old_tid)
    elif not tr.seized:
        signals.send(None, t, SIGTRAP, sigstate.siginfo(SIGTRAP, sigstate.SI_USER, t.tgid,
                                                        t.creds.uid), thread=True)


def clone_event(parent: Task, flags: int) -> tuple[int, int] | None:
    """The event (PTRACE_EVENT_*, its option) a clone with `flags` reports in a traced
    `parent`, if the tracer asked for it (and CLONE_UNTRACED is not set): the child is then
    traced too (`attach_child`)."""
    tr = parent.ptrace
    if tr is None or flags & 0x800000:  # CLONE_UNTRACED
        return None
    if flags & 0x4000:  # CLONE_VFORK
        ev, opt = PTRACE_EVENT_VFORK, PTRACE_O_TRACEVFORK
    elif flags & 0xFF == sigstate.SIGCHLD and not flags & 0x10000:  # not CLONE_THREAD
        ev, opt = PTRACE_EVENT_FORK, PTRACE_O_TRACEFORK
    else:
        ev, opt = PTRACE_EVENT_CLONE, PTRACE_O_TRACECLONE
    return (ev, opt) if tr.options & opt else None


def attach_child(parent: Task, child: Task) -> None:
    """The new thread or process is traced by `parent`'s tracer with the same options,
    its first stop pending (SIGSTOP, or PTRACE_EVENT_STOP when seized) and noticed before
    it runs (a kick of its stub, still stopped)."""
    tr = parent.ptrace
    assert tr is not None
    ctr = attach(tr.tracer, child, seized=tr.seized, capable=tr.capable, options=tr.options)
    if tr.seized:
        ctr.trap = True
    else:
        ctr.stashed = (SIGSTOP, sigstate.siginfo(SIGSTOP, sigstate.SI_USER))
    sigstate.kick(child)


async def clone_events(parent: Task, child: Task, got: tuple[int, int] | None,
                       vfork: bool) -> None:
    """After the clone: the parent's event stop (GETEVENTMSG: the child's pid); for a
    vfork, the parent waits for the child's exec or exit, then PTRACE_EVENT_VFORK_DONE."""
    if got is not None:
        await event(parent, got[1], got[0], child.tid)
    if vfork:
        await child.vfork_done.wait()
        await event(parent, PTRACE_O_TRACEVFORKDONE, PTRACE_EVENT_VFORK_DONE, child.tid)


async def exit_stop(t: Task, status: int) -> None:
    """PTRACE_EVENT_EXIT before the thread goes (GETEVENTMSG: the wait status)."""
    await event(t, PTRACE_O_TRACEEXIT, PTRACE_EVENT_EXIT, status)


def exited(t: Task, status: int, parent_tgid: int) -> bool:
    """A traced thread ended with wait status `status`: a tracer that is not its parent
    (`parent_tgid`, 0 for a thread) learns it by wait first. Returns True when a process's
    end is so held from its parent (no SIGCHLD, wait does not report it) until the tracer
    waited for it or ended (`_release`), as Linux's exit_notify and wait_task_zombie."""
    tr = t.ptrace
    if tr is None:
        return False
    tracer = tr.tracer
    if tracer.tgid == parent_tgid or tracer.tgid not in t.kernel.procs:
        t.ptrace = None
        return False
    exits_of(tracer)[t.tid] = (status, t)
    notify_tracer(t, tr, status & 0x7F if status & 0x7F else (status >> 8) & 0xFF,
                  (3 if status & 0x80 else 2) if status & 0x7F else 1)
    if not parent_tgid:
        t.ptrace = None
        return False
    return True  # t.ptrace stays set while held: `held`


def held(zombie: Task) -> bool:
    """Whether an ended process's exit waits for its tracer before its parent hears it."""
    return zombie.ptrace is not None


def _release(t: Task) -> None:
    """The tracer is done with ended `t`: its parent may now wait for it (SIGCHLD)."""
    if t.ptrace is None:
        return
    t.ptrace = None
    k = t.kernel
    z = k.zombies.get(t.tgid)
    if t.tid == t.tgid and z is not None:
        signals.notify_exit(k.procs.get(z[0]), t.tgid, t.creds.uid, z[1])
        k.notify_children_changed()


async def signal_stops(t: Task, tr: Tracee, res: int) -> int:
    """What `signals._deliver` left for the tracer, in order: a signal-delivery stop
    (resumed with a signal: that one is delivered past the tracer), a group stop, an
    INTERRUPT trap. `res` is the syscall result (or rax) to resume with; returns it as the
    delivery leaves it."""
    while True:
        injected: tuple[int, bytes] | None = None
        if tr.stashed is not None:
            sig, info = tr.stashed
            tr.stashed = None
            got = await tr.stop(t, STOP_SIGNAL, sig, info)
            if got:
                if got != sig:
                    info = sigstate.siginfo(got, sigstate.SI_USER, tr.tracer.tgid,
                                            tr.tracer.creds.uid)
                injected = (got, info)
        elif tr.group_stop:
            sig, tr.group_stop = tr.group_stop, 0
            await _group_stop(t, tr, sig)
        elif tr.trap:
            tr.trap = False
            await tr.stop(t, STOP_EVENT, SIGTRAP, _notify_info(
                t, PTRACE_EVENT_STOP << 8 | SIGTRAP), PTRACE_EVENT_STOP)
        else:
            return res
        res = signals.on_return(t, res, injected)
        if t.killed_by:  # a fatal signal's end: PTRACE_EVENT_EXIT first (not SIGKILL's)
            if t.killed_by != SIGKILL:
                await exit_stop(t, t.killed_by)
            return res
        if t.ptrace is not tr or not tr.work():
            return res


async def _group_stop(t: Task, tr: Tracee, sig: int) -> None:
    """A traced thread's group stop: reported as a stop with the stop signal (and
    PTRACE_EVENT_STOP when seized). PTRACE_LISTEN keeps it there until SIGCONT."""
    info = sigstate.siginfo(sig, sigstate.SI_USER)
    await tr.stop(t, STOP_GROUP, sig, info, PTRACE_EVENT_STOP if tr.seized else 0)


def syscall_info(t: Task, tr: Tracee) -> bytes:
    """struct ptrace_syscall_info for PTRACE_GET_SYSCALL_INFO."""
    regs = t.stub.regs
    head = (0xC000003E, regs.rip, regs.rsp)  # AUDIT_ARCH_X86_64
    if tr.stop_kind == STOP_ENTRY:
        nr, args = tr.entry_info
        return struct.pack("<B3xIQQ", 1, *head) + struct.pack("<Q6Q", nr, *args)
    if tr.stop_kind == STOP_EXIT:
        rax = regs.rax - (1 << 64) if regs.rax >= 1 << 63 else regs.rax
        return struct.pack("<B3xIQQ", 2, *head) + struct.pack("<qB7x", rax,
                                                               int(-4095 <= rax < 0))
    return struct.pack("<B3xIQQ", 0, *head)
