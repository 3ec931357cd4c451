"""Signals as Sentry state: handlers, masks, pending sets, alt stacks, and delivery.

Why the Sentry builds frames itself: the application's handlers live only here (the stub
has none), so the x86_64 rt_sigframe (return address = sa_restorer, siginfo, ucontext with
the registers, the mask and the FPU state) is written into application memory by
`deliver`, and `sigreturn` reads it back, validating everything it reads.

State lives on the Tasks: `t._sig` (`ThreadSignals`: mask, pending, alt stack) per thread
and `t.leader._sighand` (`SigHand`: actions, process-wide pending set, ITIMER_REAL) per
process. Both are created lazily, so a Task never touched by signals costs nothing.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.platform import libc
from vfs.abi import POLLIN, POLLRDNORM
from vfs.creds import CAP_KILL

from . import jobctl
from .limits import DEFAULT_RLIMITS
from .sigstate import (
    DEFAULT_IGNORE,
    DEFAULT_STOP,
    KICK,
    MASK64,
    RESTARTABLE,
    SA_NODEFER,
    SA_ONSTACK,
    SA_RESETHAND,
    SA_RESTART,
    SI_KERNEL,
    SI_USER,
    SIG_DFL,
    SIG_IGN,
    SIGCHLD,
    SIGKILL,
    SIGSEGV,
    SS_AUTODISARM,
    SS_DISABLE,
    SS_ONSTACK,
    UNBLOCKABLE,
    Dropped,
    SigHand,
    ThreadSignals,
    action,
    bit,
    hand,
    ignored,
    kick,
    siginfo,
    spared_as_init,
    ts,
)

if TYPE_CHECKING:
    from .kernel import Kernel
    from .ptrace import Tracee
    from .task import Task

RLIMIT_SIGPENDING = 11
_FPREGS_SIZE = 512
_FRAME_SIZE = 8 + 304 + 128  # pretcode, ucontext, siginfo
PTRACE_GETFPREGS, PTRACE_SETFPREGS = 14, 15



# sending -----------------------------------------------------------------------------------


def _enqueue(t: Task, pending: dict[int, list[bytes]], sig: int, info: bytes) -> bool:
    q = pending.setdefault(sig, [])
    if sig < 32 and q:
        return False  # a standard signal is pending at most once
    q.append(info)
    t.kernel.signals_queued += 1
    return True


def may_signal(sender: Task, target: Task, sig: int) -> bool:
    """Whether `sender` may send `sig` to `target` from userspace (Linux's
    check_kill_permission): its own thread group, a process whose real or saved uid is the
    sender's real or effective uid, anyone with CAP_KILL, and SIGCONT within the session."""
    if sender.tgid == target.tgid:
        return True
    c, tc = sender.creds, target.creds
    if c.euid in (tc.suid, tc.uid) or c.uid in (tc.suid, tc.uid) or c.has_cap(CAP_KILL):
        return True
    return sig == 18 and sender.sid == target.sid  # SIGCONT


def send(sender: Task | None, target: Task, sig: int, info: bytes, *,
         thread: bool = False, force: bool | None = None) -> None:
    """Send `sig` to `target`'s process (or only to thread `target` if `thread`).

    `force`: whether SIGKILL and SIGSTOP reach a pid namespace's init that has no handler
    (`spared_as_init`); by default, when `sender` is outside the target's namespace or
    None (the host, or the kernel on its own: SEND_SIG_PRIV). The kernel's signals that
    Linux does not force say False (a POSIX timer's, F_SETSIG's)."""
    if sig == 0:
        return
    if force is None:
        force = sender is None or not target.pidns.sees(sender.tgid)
    if sig in DEFAULT_STOP or sig == 18:
        jobctl.prepare(target, sig)  # each discards the other's pending instances
    if sig != 18:
        _send(sender, target, sig, info, thread=thread, force=force)
        return
    try:
        _send(sender, target, sig, info, thread=thread, force=force)
    finally:  # SIGCONT continues even when ignored or blocked; a handler runs at once
        continue_group(target.leader)
        for th in list(target.leader.threads):
            if th.ptrace is not None and th.ptrace.listening:  # left stopped by LISTEN
                th.ptrace.wake_listen(th)


def send_queued(sender: Task | None, target: Task, sig: int, info: bytes, *,
                thread: bool = False, force: bool | None = None) -> None:
    """`send` for a signal a process sends (kill, tgkill, sigqueue, pidfd_send_signal),
    under Linux's RLIMIT_SIGPENDING rule (__sigqueue_alloc): every queued signal of the
    target's real user counts against the target's limit; a standard signal with a
    non-negative si_code (SI_USER) goes beyond it, another over it loses its siginfo
    (received as SI_USER from pid 0), and a real-time one with a code of its own
    (sigqueue) fails with EAGAIN. Signals the kernel raises are never limited."""
    (code,) = struct.unpack_from("<i", info, 8)
    if sig == 0 or (sig < 32 and code >= 0) or ignored(target, sig) \
            or _queued_by(target.kernel, target.creds.uid) < _sigpending_limit(target):
        send(sender, target, sig, info, thread=thread, force=force)
        return
    if sig >= 32 and code != SI_USER:
        raise SyscallError(errno.EAGAIN)
    pend = ts(target).pending if thread else hand(target).pending
    if sig >= 32 and pend.get(sig):
        return  # only the pending bit would be set, and it is: the instance is lost
    send(sender, target, sig, siginfo(sig, SI_USER, 0, 0), thread=thread, force=force)


def _sigpending_limit(t: Task) -> int:
    soft: int = t.rlimits.get(RLIMIT_SIGPENDING, DEFAULT_RLIMITS[RLIMIT_SIGPENDING])[0]
    return soft


def _queued_by(kernel: Kernel, uid: int) -> int:
    """How many signals are queued for the processes of real user `uid` (the user's
    sigpending count)."""
    n = 0
    for p in kernel.procs.values():
        if p.creds.uid != uid:
            continue
        h = p.__dict__.get("_sighand")
        if h is not None:
            n += sum(len(q) for q in h.pending.values())
        for th in p.threads:
            s = th.__dict__.get("_sig")
            if s is not None:
                n += sum(len(q) for q in s.pending.values())
    return n


def _send(sender: Task | None, target: Task, sig: int, info: bytes, *,
          thread: bool = False, force: bool = True) -> None:
    k = target.kernel
    s = ts(target)
    # A signal rt_sigtimedwait waits for counts as blocked (Linux's real_blocked): the
    # waiter unblocks it only to be woken, so it is neither ignored nor fatal.
    blocked = bool((s.mask | s.waitset) & bit(sig)) if thread else all(
        (ts(th).mask | ts(th).waitset) & bit(sig) for th in target.leader.threads)
    # a traced thread's tracer sees even ignored or fatal signals (at its delivery stop)
    tracing = any(th.ptrace is not None for th in target.leader.threads)
    if sig != SIGKILL and ignored(target, sig) and not blocked and not tracing:
        return
    if not blocked and not tracing and spared_as_init(target, sig, force=force):
        return  # sig_task_ignored: an init's SIGNAL_UNKILLABLE (a blocked one is not ignored)
    h = action(target, sig)[0]
    if sig == SIGKILL or (h == SIG_DFL and not blocked and sig not in DEFAULT_STOP
                          and not tracing
                          and not jobctl.stopped(target)):  # stopped: taken once continued
        # default action terminate: end the process now (it may be running)
        target.killed_by = sig
        for th in list(target.leader.threads):
            th.interrupt()
        if sender is None or target.leader is not sender.leader:
            k.end_process(target.leader, sig)
        return
    if thread:
        if _enqueue(target, s.pending, sig, info):
            _queued(target)
        wake(sender, target, sig)
        return
    if _enqueue(target, hand(target).pending, sig, info):
        _queued(target)
    threads = [target] + [th for th in target.leader.threads if th is not target]
    for th in threads:
        if not ts(th).mask & bit(sig) or ts(th).waitset & bit(sig):
            wake(sender, th, sig)
            return


def _queued(target: Task) -> None:
    """A signal was queued for `target`: wake its process's signalfd readers and pollers
    (they look again at their own pending sets)."""
    q = hand(target).readers
    if q is not None:
        q.notify(POLLIN | POLLRDNORM)


def wake(sender: Task | None, t: Task, sig: int) -> None:
    """Make `t` notice a signal: cut a blocking syscall short, or stop a running thread."""
    s = t.__dict__.get("_sig")
    if s is not None and sig and s.mask & bit(sig) and not s.waitset & bit(sig):
        return
    if sender is t:
        return  # delivered on the way out of the current syscall
    if jobctl.held(t):
        return  # a stopped process takes its signals once continued (jobctl.wake_pending)
    if t._sleeps:
        ts(t).interrupted = True
        t.interrupt()
        return
    kick(t)


def should_interrupt(t: Task) -> bool:
    """For a syscall about to sleep: is a signal already waiting to be delivered, or is
    the process stopping (then a call that restarts is cut short and restarted once
    continued; any other sleeps on and counts as stopped)?"""
    if not t.kernel.signals_queued:
        return False
    if jobctl.held(t):
        if t.stub.regs.orig_rax in RESTARTABLE:
            ts(t).interrupted = True
            return True
        jobctl.asleep(t)
        announce_stop(t.leader)
        return False
    if t.__dict__.get("_sig") is None:
        return False
    if has_deliverable(t):
        t._sig.interrupted = True
        return True
    return False


# delivery ----------------------------------------------------------------------------------


def _take(t: Task) -> tuple[int, bytes] | None:
    """Dequeue the lowest-numbered deliverable signal (thread's own first)."""
    s = ts(t)
    for pend in (s.pending, hand(t).pending):
        if not pend:
            continue
        while True:
            ready = [sig for sig in pend if not s.mask & bit(sig)]
            if not ready:
                break
            sig = min(ready)
            info = pend[sig].pop(0)
            if not pend[sig]:
                del pend[sig]
            t.kernel.signals_queued -= 1
            if not isinstance(info, Dropped):
                return sig, info
    return None


def pending_set(t: Task) -> int:
    s = ts(t)
    out = 0
    for sig in list(s.pending) + list(hand(t).pending):
        out |= bit(sig)
    return out


def has_deliverable(t: Task) -> bool:
    s = ts(t)
    return bool(pending_set(t) & ~s.mask)


def on_return(t: Task, res: int, first: tuple[int, bytes] | None = None) -> int:
    """Called before `t` returns to user mode with syscall result `res`: deliver pending
    signals (frames, default actions, SA_RESTART). Returns the rax to resume with. In a
    stopped process the thread kicks itself, so that it parks before running (jobctl).
    `first`: a signal (and siginfo) a tracer resumed its tracee with, delivered first,
    past the tracer."""
    res, stopping = _deliver(t, res, first)
    if stopping:
        kick(t)
    return res


def return_work(t: Task) -> bool:
    """Whether `on_return` has anything to do for `t`: a signal to deliver, a stop, a
    call cut short (restart or EINTR), a mask to restore. The seccomp platform, which has
    no registers at a notified call, stops the thread at the call's return only then."""
    s = ts(t)
    return bool(s.interrupted or s.no_restart or s.saved_mask is not None
                or jobctl.held(t) or pending_set(t) & ~s.mask)


def _deliver(t: Task, res: int, first: tuple[int, bytes] | None = None) -> tuple[int, bool]:
    """on_return's work; also returns whether `t`'s process is stopping (then nothing is
    delivered until it is continued). A traced thread stops for its tracer instead of
    taking a signal (`Tracee.stashed`, a group stop): then the call's state is kept for
    the delivery after the stop (`ptrace.signal_stops`)."""
    s = ts(t)
    interrupted, s.interrupted = s.interrupted, False
    if s.no_restart:
        s.no_restart = False
        interrupted = False  # EINTR stays EINTR: no restart, with or without a handler
    regs = t.stub.regs
    delivered = False
    stopping = jobctl.held(t)
    tr = t.ptrace
    if stopping and tr is not None:  # its process stops: it reports that to its tracer
        _traced_group_stop(t, tr)
        s.interrupted = interrupted
        return res, False
    while not stopping:
        passed = first is not None  # past the tracer
        got, first = (first, None) if first is not None else (_take(t), None)
        if got is None:
            break
        sig, info = got
        if tr is not None and not passed and sig != SIGKILL and tr.stashed is None:
            tr.stashed = got  # a signal-delivery stop first
            s.interrupted = interrupted
            return res, False
        h, flags, restorer, amask = action(t, sig)
        if h == SIG_IGN or (h == SIG_DFL and sig in DEFAULT_IGNORE):
            continue
        if h == SIG_DFL and spared_as_init(t, sig, force=True):
            continue  # get_signal: init takes no default action but SIGKILL's and SIGSTOP's
        if h == SIG_DFL and sig in DEFAULT_STOP and tr is not None:
            if not jobctl.begin_stop(t, sig):
                continue  # discarded (an orphaned process group)
            _traced_group_stop(t, tr)  # the others stop (and report, if traced) in turn
            s.interrupted = interrupted
            return res, False
        if h == SIG_DFL and sig in DEFAULT_STOP:
            stopping = jobctl.begin_stop(t, sig)
            announce_stop(t.leader)
            continue
        if h == SIG_DFL:
            t.killed_by = sig
            return res, False
        if not delivered:
            regs.rax = res & MASK64
            if interrupted and res == -errno.EINTR:
                if flags & SA_RESTART and regs.orig_rax in RESTARTABLE:
                    regs.rax = regs.orig_rax
                    regs.rip -= 2
        framed = _setup_frame(t, sig, info, h, flags, restorer, amask)
        delivered = True
        if framed is None:
            return -errno.EFAULT, False
        res = framed
        break  # one frame at a time; the rest after this handler's sigreturn or next stop
    if not delivered:
        if interrupted and res == -errno.EINTR and regs.orig_rax in RESTARTABLE:
            # cut short, but no handler runs (a stop, or the signal went elsewhere): the
            # call restarts, as Linux's -ERESTARTSYS does without a handler
            res = regs.orig_rax
            regs.rip -= 2
        if s.saved_mask is not None and not stopping:
            s.mask, s.saved_mask = s.saved_mask, None
    return res, stopping


def deliver_parked(t: Task, rax: int) -> tuple[int, bool]:
    """For a thread at a signal stop (unsigned `rax` from its registers): deliver what is
    pending. Returns the unsigned rax to resume with and whether its process stops."""
    res, stopping = _deliver(t, rax - (1 << 64) if rax >= 1 << 63 else rax)
    return res & MASK64, stopping


def _setup_frame(t: Task, sig: int, info: bytes, h: int, flags: int, restorer: int,
                 amask: int) -> int | None:
    """Write an rt_sigframe and point the registers at handler `h`. Returns the new rax;
    None when the frame cannot be written (then SIGSEGV ends the process, as Linux's
    force_sigsegv does)."""
    s = ts(t)
    regs = t.stub.regs
    old_mask = s.saved_mask if s.saved_mask is not None else s.mask
    s.saved_mask = None
    sp = regs.rsp
    ss_sp, ss_flags, ss_size = s.altstack
    on_alt = ss_size and ss_sp < sp <= ss_sp + ss_size
    if flags & SA_ONSTACK and not ss_flags & SS_DISABLE and not on_alt:
        sp = ss_sp + ss_size
    else:
        sp -= 128  # the red zone
    fpimage = _get_fpu(t)
    sp = (sp - len(fpimage)) & ~63
    fpstate = sp if fpimage else 0
    sp = ((sp - _FRAME_SIZE) & ~15) - 8
    frame = sp
    uc_flags = 2 | (1 if len(fpimage) > _FPREGS_SIZE else 0)  # SIGCONTEXT_SS, FP_XSTATE
    uc = struct.pack("<QQQi4xQ", uc_flags, 0, ss_sp, (SS_ONSTACK if on_alt else
                                              ss_flags & SS_DISABLE), ss_size)
    mc = struct.pack("<18Q4H4QQ8Q", regs.r8, regs.r9, regs.r10, regs.r11, regs.r12,
                     regs.r13, regs.r14, regs.r15, regs.rdi, regs.rsi, regs.rbp, regs.rbx,
                     regs.rdx, regs.rax, regs.rcx, regs.rsp, regs.rip, regs.eflags,
                     regs.cs & 0xFFFF, regs.gs & 0xFFFF, regs.fs & 0xFFFF, regs.ss & 0xFFFF,
                     0, 0, old_mask & MASK64, _fault_addr(info, sig), fpstate, *[0] * 8)
    data = struct.pack("<Q", restorer) + uc + mc + struct.pack("<Q", old_mask) + info
    try:
        if fpstate:
            t.mem_write(fpstate, fpimage)
        t.mem_write(frame, data)
    except OSError:
        t.killed_by = SIGSEGV
        return None
    if flags & SA_ONSTACK and s.altstack[1] & SS_AUTODISARM:
        s.altstack = (0, SS_DISABLE, 0)
    if flags & SA_RESETHAND:
        hand(t).actions.pop(sig, None)
    s.mask |= amask
    if not flags & SA_NODEFER:
        s.mask |= bit(sig)
    s.mask &= ~UNBLOCKABLE
    regs.rsp = frame
    regs.rip = h
    regs.rdi = sig
    regs.rsi = frame + 8 + 304
    regs.rdx = frame + 8
    regs.eflags &= ~(0x100 | 0x400 | 0x10000)  # TF, DF, RF
    if fpstate:  # the handler starts with a clean FPU, as on Linux
        clean = bytearray(_FPREGS_SIZE)
        struct.pack_into("<H", clean, 0, 0x37F)  # fcw
        struct.pack_into("<II", clean, 24, 0x1F80, 0xFFFF)  # mxcsr, mxcsr_mask
        _setfp(t, bytes(clean))
    return 0


FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2 = 0x46505853, 0x46505845
NT_X86_XSTATE, PTRACE_GETREGSET, PTRACE_SETREGSET = 0x202, 0x4204, 0x4205
_XSTATE = {"size": -1}


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def _xstate_size() -> int:
    return _XSTATE["size"]


def _get_fpu(t: Task) -> bytes:
    """The thread's FPU image for a frame: the whole xsave area (AVX and later state
    included) with Linux's sw_reserved bytes and trailing magic, else the fxsave image;
    b"" if neither can be read."""
    buf = ctypes.create_string_buffer(16384)
    iov = _IoVec(ctypes.addressof(buf), len(buf))
    try:
        libc.ptrace(PTRACE_GETREGSET, t.stub.pid, NT_X86_XSTATE, ctypes.addressof(iov))
        n = iov.len
    except OSError:
        n = 0
    if n > _FPREGS_SIZE:
        _XSTATE["size"] = n
        img = bytearray(buf.raw[:n])
        (xfeatures,) = struct.unpack_from("<Q", img, 512)
        struct.pack_into("<IIQI", img, 464, FP_XSTATE_MAGIC1, n + 4, xfeatures, n)
        return bytes(img) + struct.pack("<I", FP_XSTATE_MAGIC2)
    fp = ctypes.create_string_buffer(_FPREGS_SIZE)
    try:
        libc.ptrace(PTRACE_GETFPREGS, t.stub.pid, 0, ctypes.addressof(fp))
    except OSError:
        return b""
    return fp.raw


def _set_fpu(t: Task, img: bytes) -> bool:
    """Load an FPU image read back from a frame (xsave area or fxsave); False if the host
    refuses it (a corrupted header)."""
    if len(img) > _FPREGS_SIZE:
        buf = ctypes.create_string_buffer(img, len(img))
        iov = _IoVec(ctypes.addressof(buf), len(img))
        try:
            libc.ptrace(PTRACE_SETREGSET, t.stub.pid, NT_X86_XSTATE, ctypes.addressof(iov))
            return True
        except OSError:
            return False
    buf = ctypes.create_string_buffer(img, _FPREGS_SIZE)
    try:
        libc.ptrace(PTRACE_SETFPREGS, t.stub.pid, 0, ctypes.addressof(buf))
        return True
    except OSError:
        return False


def _setfp(t: Task, data: bytes) -> None:
    buf = ctypes.create_string_buffer(data, _FPREGS_SIZE)
    try:
        libc.ptrace(PTRACE_SETFPREGS, t.stub.pid, 0, ctypes.addressof(buf))
    except OSError:
        pass


def _fault_addr(info: bytes, sig: int) -> int:
    if sig in (4, 5, 7, 8, 11):
        return struct.unpack_from("<Q", info, 16)[0]
    return 0


def sigreturn(t: Task) -> int:
    """rt_sigreturn: restore registers, mask and FPU state from the frame at rsp - 8.
    A frame that cannot be read or holds impossible values ends the process with SIGSEGV
    (as Linux's force_sig); the Sentry itself never trusts it."""
    regs = t.stub.regs
    frame = (regs.rsp - 8) & MASK64
    try:
        raw = t.mem_read(frame + 8, 304)
        v = struct.unpack_from("<18Q4H4QQ8Q", raw, 40)
        (mask,) = struct.unpack_from("<Q", raw, 296)
        fpstate = v[26]
        fp = t.mem_read(fpstate, _FPREGS_SIZE) if fpstate else None
        if fp is not None:
            magic1, _, _, xsize = struct.unpack_from("<IIQI", fp, 464)
            if magic1 == FP_XSTATE_MAGIC1 and xsize == _xstate_size() > _FPREGS_SIZE:
                fp = t.mem_read(fpstate, xsize + 4)
                if struct.unpack_from("<I", fp, xsize)[0] != FP_XSTATE_MAGIC2:
                    fp = fp[:_FPREGS_SIZE]
                else:
                    fp = fp[:xsize]
    except OSError:
        return _segv(t)
    rip, rsp = v[16], v[15]
    if rip >= 1 << 47 or rsp >= 1 << 47:
        return _segv(t)
    if fp is not None and struct.unpack_from("<I", fp, 24)[0] & ~0xFFFF:
        return _segv(t)  # reserved MXCSR bits set: fxrstor would fault
    (regs.r8, regs.r9, regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15, regs.rdi,
     regs.rsi, regs.rbp, regs.rbx, regs.rdx, rax, regs.rcx) = v[:15]
    regs.rsp, regs.rip = rsp, rip
    regs.eflags = (regs.eflags & ~0x40DD5) | (v[17] & 0x40DD5)  # FIX_EFLAGS
    regs.orig_rax = MASK64
    ts(t).mask = mask & ~UNBLOCKABLE
    if fp is not None and not _set_fpu(t, fp):
        return _segv(t)  # an xsave header the CPU would refuse
    return rax


def _segv(t: Task) -> int:
    force(t, SIGSEGV, siginfo(SIGSEGV, SI_KERNEL, addr=0))
    return 0


def force(t: Task, sig: int, info: bytes) -> None:
    """force_sig: a synchronous signal; blocked or ignored means the default action."""
    s = ts(t)
    h = action(t, sig)[0]
    if s.mask & bit(sig) or h == SIG_IGN:
        hand(t).actions.pop(sig, None)
        s.mask &= ~bit(sig)
    if action(t, sig)[0] == SIG_DFL:
        hand(t).forced_default = True  # even init dies of it (force_sig_info_to_task)
    _enqueue(t, s.pending, sig, info)


def on_host_signal(t: Task, sig: int) -> int:
    """A signal-delivery stop of the stub thread. A kick is suppressed; a fault (SIGSEGV,
    SIGBUS, SIGFPE, SIGILL, SIGTRAP) goes to the application's handler with si_addr.
    Returns 0 when the thread was resumed, else the signal that ends the process."""
    regs = t.stub.regs
    if sig in DEFAULT_IGNORE and sig != KICK or sig in DEFAULT_STOP:
        t.stub.resume()
        return 0
    if sig in (4, 5, 7, 8, 11):
        si = ctypes.create_string_buffer(128)
        try:
            libc.ptrace(0x4202, t.stub.pid, 0, ctypes.addressof(si))  # PTRACE_GETSIGINFO
        except OSError:
            pass
        raw = si.raw
        if struct.unpack_from("<i", raw, 8)[0] > 0:  # kernel-made (a fault): keep si_addr
            info = raw
        else:
            info = siginfo(sig, SI_KERNEL, addr=0)
        if action(t, sig)[0] <= SIG_IGN and t.ptrace is None:
            return sig
        force(t, sig, info)
    elif sig != KICK:
        return sig  # any other host signal: its default action, terminate
    rax, stopping = _deliver(t, regs.rax - (1 << 64) if regs.rax >= 1 << 63 else regs.rax)
    if t.killed_by:
        return t.killed_by
    regs.rax = rax & MASK64
    if stopping:
        jobctl.park(t)  # left stopped: SIGCONT resumes it (continue_group)
        announce_stop(t.leader)
        return 0
    if t.ptrace is not None and t.ptrace.work():
        return 0  # not resumed: the run loop reports the stop (ptrace.signal_stops)
    t.stub.resume()
    return 0


# job control: what a stop or continue sends ------------------------------------------------


def _traced_group_stop(t: Task, tr: Tracee) -> None:
    """Traced `t` enters its process's group stop: it reports it to its tracer
    (`ptrace.signal_stops`) rather than parking. If that completes the stop, the parent
    is told (CLD_STOPPED) unless it is the tracer, which hears of the trap (ptrace_stop's
    gstop_done rule)."""
    st = jobctl.job(t).stop
    assert st is not None
    tr.group_stop = st.sig
    if jobctl.participate(t) and not st.announced:
        st.announced = True
        if tr.tracer.tgid != t.leader.ppid:
            notify_parent(t.leader, jobctl.CLD_STOPPED, st.sig)


def announce_stop(leader: Task) -> None:
    """A group stop that just completed: tell the parent (CLD_STOPPED), once."""
    j = leader.__dict__.get("_job")
    st = j.stop if j is not None else None
    if st is not None and st.complete and not st.announced:
        st.announced = True
        notify_parent(leader, jobctl.CLD_STOPPED, st.sig)


def thread_gone(t: Task) -> None:
    """A thread ended: a group stop no longer waits for it (and may now be complete)."""
    jobctl.thread_gone(t)
    announce_stop(t.leader)


def continue_group(leader: Task) -> None:
    """SIGCONT was sent (and queued if handled): end the group stop. Each parked thread
    first takes what is pending for it, as Linux's get_signal does right after the stop,
    so a handler (SIGCONT's own included) runs before any other instruction; then it is
    resumed."""
    st = jobctl.end_stop(leader)
    if st is None:
        return
    for th in sorted(st.parked, key=lambda th: th.tid):
        regs = th.stub.regs
        rax, _ = deliver_parked(th, regs.rax)
        if th.killed_by:  # a fatal signal came during the stop: it ends the process now
            leader.kernel.end_process(leader, th.killed_by)
            break
        regs.rax = rax
        try:
            th.stub.resume()
        except OSError:
            pass  # the thread is gone (killed from outside); its task sees it
    wake_pending(leader)
    # A stop that had not completed counts as finished and continued; SIGCHLD does not
    # queue, so the parent hears only CLD_STOPPED (with status 0), as on Linux.
    if st.complete:
        notify_parent(leader, jobctl.CLD_CONTINUED, jobctl.SIGCONT)
    else:
        notify_parent(leader, jobctl.CLD_STOPPED, 0)


def wake_pending(leader: Task) -> None:
    """After a stop: make threads notice the signals queued meanwhile (one thread per
    process-wide signal, as send does)."""
    threads = sorted(leader.threads, key=lambda th: th.tid)
    for th in threads:
        s = th.__dict__.get("_sig")
        if s is not None and any(not s.mask & bit(sig) for sig in s.pending):
            wake(None, th, 0)
    for sig in list(hand(leader).pending):
        for th in threads:
            if not ts(th).mask & bit(sig):
                wake(None, th, sig)
                break


def notify_parent(leader: Task, why: int, status: int) -> None:
    """do_notify_parent_cldstop: SIGCHLD with CLD_STOPPED/CLD_CONTINUED to the parent
    (unless its SIGCHLD action has SA_NOCLDSTOP), and wake its wait."""
    k = leader.kernel
    parent = k.procs.get(leader.ppid)
    if parent is not None and not action(parent, SIGCHLD)[1] & jobctl.SA_NOCLDSTOP:
        uid = leader.creds.uid
        send(None, parent, SIGCHLD,
             siginfo(SIGCHLD, why, parent.pidns.vpid(leader.tgid), uid, status=status))
    k.notify_children_changed()


def kill_orphaned_pgrp(kernel: Kernel, member: Task, outside: Task | None) -> None:
    """Linux's kill_orphaned_pgrp: when an exit leaves `member`'s process group orphaned
    with stopped processes in it, every member gets SIGHUP then SIGCONT. `outside` is the
    process that was the group's link to the session (the exiting parent of a reparented
    child; None for the exiting `member` itself, whose parent is then the link)."""
    procs = kernel.procs
    link = outside if outside is not None else procs.get(member.ppid)
    pgid = member.pgid
    if link is None or link.pgid == pgid or link.sid != member.sid:
        return
    if not jobctl.orphaned_pgrp(kernel, pgid) or not jobctl.has_stopped_jobs(kernel, pgid):
        return
    for sig in (jobctl.SIGHUP, jobctl.SIGCONT):
        for p in [p for p in procs.values() if p.pgid == pgid]:
            send(None, p, sig, siginfo(sig, SI_KERNEL))


# process life ------------------------------------------------------------------------------


def inherit(parent: Task | None, child: Task, *, thread: bool = False) -> None:
    """fork/clone: a child process copies the actions; a thread shares them. Both get the
    parent thread's mask, and no pending signals."""
    if parent is None or parent.__dict__.get("_sig") is None and \
            parent.leader.__dict__.get("_sighand") is None:
        return
    child._sig = ThreadSignals(mask=ts(parent).mask)
    if not thread:  # a thread shares its leader's SigHand
        child._sighand = SigHand(actions=dict(hand(parent).actions))


def on_exec(t: Task) -> None:
    """execve: handled signals go back to SIG_DFL (ignored stay ignored); no alt stack."""
    h = t.leader.__dict__.get("_sighand")
    if h is not None:
        h.actions = {sig: a for sig, a in h.actions.items() if a[0] == SIG_IGN}
    s = t.__dict__.get("_sig")
    if s is not None:
        s.altstack = (0, SS_DISABLE, 0)


def process_exited(parent: Task | None, child: Task, status: int) -> None:
    """A process ended: drop what was pending for it (so the run loop's cheap test goes
    back to zero) and send SIGCHLD to its parent (CLD_EXITED / CLD_KILLED / CLD_DUMPED)."""
    pends = [ts(th).pending for th in child.leader.threads | {child}]
    for pend in [hand(child).pending, *pends]:
        child.kernel.signals_queued -= sum(len(q) for q in pend.values())
        pend.clear()
    jobctl.exited(child.leader)
    uid = child.creds.uid
    notify_exit(parent, child.tgid, uid, status)


def notify_exit(parent: Task | None, pid: int, uid: int, status: int) -> None:
    """SIGCHLD to `parent` for the end of process `pid` (owned by `uid`) with wait status
    `status`; also what the new parent of a reparented zombie gets."""
    if parent is None:
        return
    if status & 0x7F:
        code, value = (3 if status & 0x80 else 2), status & 0x7F
    else:
        code, value = 1, (status >> 8) & 0xFF
    send(None, parent, SIGCHLD,
         siginfo(SIGCHLD, code, parent.pidns.vpid(pid), uid, status=value))


def kill_from_host(kernel: Kernel, pid: int, sig: int) -> bool:
    """Send `sig` to sandbox process `pid` as if from outside the sandbox (si_pid 0,
    SI_USER): what `runpsc kill` or a forwarded Ctrl-C uses. False if no such process."""
    target = kernel.procs.get(pid)
    if target is None or not 1 <= sig <= 64:
        return False
    send(None, target, sig, siginfo(sig, SI_USER, 0, 0))
    return True
