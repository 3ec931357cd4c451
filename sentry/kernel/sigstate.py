"""Signal state and its primitives: what a process and a thread hold, and how to read it.

Why a module of its own: job control (`jobctl`) and delivery (`signals`) both work on this
state; keeping it below both lets `signals` use `jobctl` without `jobctl` using `signals`.

State lives on the Tasks: `t._sig` (`ThreadSignals`: mask, pending, alt stack) per thread
and `t.leader._sighand` (`SigHand`: actions, process-wide pending set, ITIMER_REAL, the
signalfd readers' wait queue) per process. Both are created lazily, so a Task never
touched by signals costs nothing. What the whole sandbox counts (`Kernel.signals_queued`)
is the kernel's.
"""

from __future__ import annotations

import ctypes
import signal as _signal
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from vfs.file import WaitQueue

from .pidns import init_of

if TYPE_CHECKING:
    from .task import Task

SIG_DFL, SIG_IGN = 0, 1
SA_SIGINFO, SA_ONSTACK, SA_RESTART = 0x4, 0x08000000, 0x10000000
SA_NODEFER, SA_RESETHAND, SA_RESTORER = 0x40000000, 0x80000000, 0x04000000
SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
SIGKILL, SIGSTOP, SIGCHLD, SIGSEGV = 9, 19, 17, 11
SI_USER, SI_TKERNEL, SI_QUEUE, SI_KERNEL = 0, -6, -1, 0x80
MASK64 = (1 << 64) - 1
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))

DEFAULT_IGNORE = {17, 18, 23, 28}  # SIGCHLD, SIGCONT, SIGURG, SIGWINCH
DEFAULT_STOP = {19, 20, 21, 22}  # default action: stop the process (jobctl.py)
#: The host signal that makes a running stub thread stop so a signal can be delivered.
KICK = _signal.SIGURG
#: Syscalls restarted after a handler when it has SA_RESTART (Linux's -ERESTARTSYS; ioctl
#: for a terminal's SIGTTOU);
#: the others interrupted here (nanosleep, pause, poll …) return EINTR.
RESTARTABLE = frozenset({0, 1, 2, 16, 17, 18, 19, 20, 42, 43, 44, 45, 46, 47, 61, 202, 242, 243,
                         247, 257, 288, 295, 296, 299, 307})
RESTARTABLE |= {40, 275, 276, 278, 449, 455}  # sendfile, splice family, futex2 waits
# creat and openat2 (a fifo's open waits), preadv2/pwritev2, fcntl (F_SETLKW, F_OFD_SETLKW)
# and flock waiting for a lock
RESTARTABLE |= {72, 73, 85, 327, 328, 437}
#: Blocking syscalls that sleep through `Task.sleep_interruptibly` themselves, with a check
#: of what they wait for after the signal: wait4 and waitid (a child's exit both wakes the
#: wait and sends SIGCHLD; Linux reports the child and runs the handler afterwards).
SLEEPS_ITSELF = frozenset({61, 247})
#: Blocking syscalls that a handled signal cuts short (trio cancellation of the handler by
#: the dispatcher): the restartable ones plus poll/select/epoll_wait, which return EINTR.
INTERRUPTIBLE = (RESTARTABLE | frozenset({7, 23, 232, 270, 271, 281, 441})) - SLEEPS_ITSELF

_syscall = ctypes.CDLL(None, use_errno=True).syscall
_syscall.restype = ctypes.c_long


@dataclass
class SigHand:
    """Per process: the actions (handler, flags, restorer, mask) and the shared pending set."""

    actions: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    pending: dict[int, list[bytes]] = field(default_factory=dict)
    alarm: trio.CancelScope | None = None
    alarm_deadline: float = 0.0
    alarm_interval: float = 0.0
    #: Where the process's signalfd readers and pollers wait (Linux's signalfd_wqh):
    #: notified whenever a signal is queued for the process or one of its threads.
    readers: WaitQueue | None = None
    #: A forced signal (a fault, a bad frame) took its default action: the process is no
    #: longer spared as the sandbox's init (Linux clears SIGNAL_UNKILLABLE there).
    forced_default: bool = False


@dataclass
class ThreadSignals:
    """Per thread: blocked mask, private pending set, alt stack, sigsuspend's saved mask."""

    mask: int = 0
    pending: dict[int, list[bytes]] = field(default_factory=dict)
    altstack: tuple[int, int, int] = (0, SS_DISABLE, 0)  # sp, flags, size
    saved_mask: int | None = None
    interrupted: bool = False
    #: The interrupted call must not be restarted, even under SA_RESTART (a socket call
    #: with a timeout: Linux's sock_intr_errno); consumed with `interrupted`.
    no_restart: bool = False
    waitset: int = 0  # rt_sigtimedwait's set: these wake the thread even when blocked


def hand(t: Task) -> SigHand:
    lead = t.leader
    h = lead.__dict__.get("_sighand")
    if h is None:
        h = lead._sighand = SigHand()
    return h


def ts(t: Task) -> ThreadSignals:
    s = t.__dict__.get("_sig")
    if s is None:
        s = t._sig = ThreadSignals()
    return s


def bit(sig: int) -> int:
    return 1 << (sig - 1)


def action(t: Task, sig: int) -> tuple[int, int, int, int]:
    return hand(t).actions.get(sig, (SIG_DFL, 0, 0, 0))


def spared_as_init(t: Task, sig: int, *, force: bool) -> bool:
    """Whether the default action of `sig` is dropped because `t` is the init of its pid
    namespace (the sandbox's pid 1, or a nested namespace's: Linux's SIGNAL_UNKILLABLE):
    an init takes no signal it has no handler for, except SIGKILL and SIGSTOP when `force`
    (send_signal_locked's: sent from an ancestor namespace or the host, or raised by the
    kernel as SEND_SIG_PRIV / SI_KERNEL; not a timer's, an F_SETSIG one, or an mqueue
    notification caused inside the namespace)."""
    return (t.tgid == init_of(t.pidns) and action(t, sig)[0] == SIG_DFL
            and not hand(t).forced_default and not (force and sig in (SIGKILL, SIGSTOP)))


def ignored(t: Task, sig: int) -> bool:
    """Whether `sig` is dropped at once (SIG_IGN, or a default action of ignore)."""
    h = action(t, sig)[0]
    return h == SIG_IGN or (h == SIG_DFL and sig in DEFAULT_IGNORE)


class Dropped(bytes):
    """A queued siginfo whose signal is dropped when it is taken: a POSIX timer's signal
    left pending when the timer was re-armed or deleted (Linux's posixtimer_deliver_signal
    finding the timer's sequence changed). It stays pending until then."""


def siginfo(sig: int, code: int = SI_USER, pid: int = 0, uid: int = 0, *,
            addr: int | None = None, status: int | None = None, value: int = 0) -> bytes:
    """A 128-byte siginfo_t: kill's (pid, uid), SIGCHLD's (pid, uid, status) or a fault's
    (si_addr)."""
    b = bytearray(128)
    struct.pack_into("<iii", b, 0, sig, 0, code)
    if addr is not None:
        struct.pack_into("<Q", b, 16, addr & MASK64)
    else:
        struct.pack_into("<iI", b, 16, pid, uid)
        if status is not None:
            struct.pack_into("<i", b, 24, status)
        elif value:
            struct.pack_into("<Q", b, 24, value & MASK64)
    return bytes(b)


def readers(t: Task) -> WaitQueue:
    """The wait queue of `t`'s process's signalfd readers (created on first use)."""
    h = hand(t)
    if h.readers is None:
        h.readers = WaitQueue()
    return h.readers


def kick(t: Task) -> None:
    """Make a thread in user code stop at once: tgkill a host KICK, whose signal stop
    on_host_signal turns into the delivery (a failure means the thread is gone). A thread
    at a syscall stop gets the signal stop as soon as it is resumed, before running."""
    _syscall(ctypes.c_long(234), ctypes.c_long(t.leader.stub.pid), ctypes.c_long(t.stub.pid),
             ctypes.c_long(KICK))
