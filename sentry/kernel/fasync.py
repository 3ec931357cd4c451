"""Signal-driven I/O: a file's owner (F_SETOWN, F_SETOWN_EX, F_SETSIG) and O_ASYNC.

Why here: Linux keeps the owner in the open file (`fown_struct`) and sends the signal from
the file's own wake-ups (`kill_fasync`), so the owner is an attribute of the Sentry's open
file (`fown`) and each kind of file says when an event happened:

- a file that knows its events itself (sockets) calls `kill(file, reason)` where Linux's
  `sk_wake_async` is, and may have `fasync_changed(on)` to start watching when O_ASYNC is
  set (a host socket, whose events only the host kernel sees);
- a file with `fasync_reason(mask)` (pipes) is followed on its `waitq`: each notification
  is mapped to a reason (POLL_IN, POLL_OUT ...) or to nothing; it may have
  `fasync_changed(on)` too (a terminal counts its ends' O_ASYNC files, as tty->fasync).

What is sent is Linux's send_sigio: SIGIO as from the kernel (si_code SI_KERNEL) by
default; the F_SETSIG signal, with si_code the reason, si_band its poll bits and si_fd the
fd O_ASYNC was set through. `sigurg` is send_sigurg: SIGURG to the owner for TCP urgent
data, with or without O_ASYNC.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sentry.errors import SyscallError
from vfs.abi import (
    O_ASYNC,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLOUT,
    POLLPRI,
    POLLRDNORM,
    POLLWRNORM,
)

from . import signals, sigstate
from .current import CURRENT_TASK

if TYPE_CHECKING:
    from .task import Task

#: si_code of SIGPOLL (Linux's POLL_* reasons).
POLL_IN, POLL_OUT, POLL_MSG, POLL_ERR, POLL_PRI, POLL_HUP = 1, 2, 3, 4, 5, 6
POLLRDBAND, POLLWRBAND, POLLMSG = 0x80, 0x200, 0x400
#: si_band for each reason (Linux's band_table).
BAND = {
    POLL_IN: POLLIN | POLLRDNORM,
    POLL_OUT: POLLOUT | POLLWRNORM | POLLWRBAND,
    POLL_MSG: POLLIN | POLLRDNORM | POLLMSG,
    POLL_ERR: POLLERR,
    POLL_PRI: POLLPRI | POLLRDBAND,
    POLL_HUP: POLLHUP | POLLERR,
}
#: struct f_owner_ex's types.
F_OWNER_TID, F_OWNER_PID, F_OWNER_PGRP = 0, 1, 2
SIGIO, SIGURG, NSIG = 29, 23, 64


@dataclass
class Owner:
    """One open file's fown_struct: whom to signal, with what, and who said so."""

    kind: int = F_OWNER_TID  # Linux's zeroed pid_type (PIDTYPE_PID)
    pid: int = 0  # 0: nobody
    uid: int = 0
    euid: int = 0
    signum: int = 0  # F_SETSIG; 0: plain SIGIO
    fd: int = -1  # the fd O_ASYNC was set through (si_fd)
    sub: Any = None  # the waitq callback of a file followed there
    kernel: Any = None  # the Kernel whose tasks the pid names


def owner(f: Any) -> Owner:
    """`f`'s owner record (made on first use)."""
    o = getattr(f, "fown", None)
    if not isinstance(o, Owner):
        o = Owner()
        setattr(f, "fown", o)  # noqa: B010 - an attribute of any open file
    return o


def set_owner(t: Task, f: Any, kind: int, pid: int) -> None:
    """F_SETOWN / F_SETOWN_EX: ESRCH for a pid nobody has (0 clears the owner); the
    setter's ids decide later whether the signal may be sent (sigio_perm)."""
    k = t.kernel
    if pid:
        pid = t.pidns.gpid(pid) or -1  # the kernel's number (-1: none in the namespace)
        found = pid in k.tasks if kind != F_OWNER_PGRP else (
            pid in k.tasks or any(p.pgid == pid for p in k.procs.values()))
        if not found:
            raise SyscallError(errno.ESRCH)
    o = owner(f)
    o.kind, o.pid = kind, pid
    o.uid, o.euid, o.kernel = t.creds.uid, t.creds.euid, k
    changed = getattr(f, "owner_changed", None)
    if changed is not None:
        changed()


def get_owner(f: Any) -> tuple[int, int]:
    """(type, pid) as F_GETOWN_EX gives them."""
    o = owner(f)
    return o.kind, o.pid


def set_signal(f: Any, sig: int) -> None:
    """F_SETSIG (the raw unsigned argument): 0 (plain SIGIO) or a valid signal, else
    EINVAL."""
    if not 0 <= sig <= NSIG:
        raise SyscallError(errno.EINVAL)
    owner(f).signum = sig


def set_async(t: Task, f: Any, fd: int, on: bool) -> bool:
    """O_ASYNC turned on or off through `fd` (F_SETFL, FIOASYNC): start or stop following
    the file's events, as its fasync operation does. False for a file without one
    (regular files, directories, eventfd, timerfd, signalfd, message queues ...): Linux
    then keeps no O_ASYNC (F_SETFL) or answers ENOTTY (FIOASYNC), and never signals.
    A terminal given O_ASYNC without an owner takes its foreground process group, or
    else the caller's process (__tty_fasync)."""
    o = owner(f)
    if on:
        o.fd = fd
    changed = getattr(f, "fasync_changed", None)
    if changed is not None:
        changed(on)
    reason_of = getattr(f, "fasync_reason", None)
    if reason_of is None:
        return changed is not None
    default_pgrp = getattr(f, "fasync_pgrp", None)
    if on and default_pgrp is not None and not o.pid:
        pgrp = default_pgrp()
        o.kind, o.pid = (F_OWNER_PGRP, pgrp) if pgrp else (F_OWNER_PID, t.tgid)
        o.uid, o.euid, o.kernel = t.creds.uid, t.creds.euid, t.kernel
    if on and o.sub is None:
        def sub(mask: int) -> None:
            if f.refs <= 0:  # closed: Linux drops the file's fasync entry then
                f.waitq.unsubscribe(sub)
                o.sub = None
                return
            reason = reason_of(mask)
            if reason:
                kill(f, reason)

        o.sub = sub
        f.waitq.subscribe(sub)
    elif not on and o.sub is not None:
        f.waitq.unsubscribe(o.sub)
        o.sub = None
    return True


def _targets(kernel: Any, o: Owner) -> list[tuple[Task, bool]]:
    """(task, to that thread only) for each task the owner names."""
    if o.kind == F_OWNER_TID:
        th = kernel.tasks.get(o.pid)
        return [(th, True)] if th is not None else []
    if o.kind == F_OWNER_PGRP:
        return [(p, False) for p in list(kernel.procs.values()) if p.pgid == o.pid]
    p = kernel.procs.get(o.pid)
    return [(p, False)] if p is not None else []


def _may_signal(o: Owner, target: Task) -> bool:
    """Linux's sigio_perm: the owner's setter may signal `target`."""
    c = target.creds
    return o.euid == 0 or o.euid in (c.suid, c.uid) or o.uid in (c.suid, c.uid)


def _send(kernel: Any, o: Owner, sig: int, info: bytes, watched: bool, *,
          queued: bool = False) -> None:
    """`sig` to each target the owner may signal. `queued`: F_SETSIG's signal, limited
    as a sent one (RLIMIT_SIGPENDING); a real-time one the limit refuses falls back to a
    plain SIGIO, as send_sigio_to_task does."""
    # From a watch (a trio task of its own, whose context names the task that started
    # it), nobody sends: the target is woken wherever it sleeps.
    sender = None if watched else CURRENT_TASK.get(None)
    for target, thread in _targets(kernel, o):
        if not target.killed_by and _may_signal(o, target):
            if not queued:
                signals.send(sender, target, sig, info, thread=thread)
                continue
            try:
                # its si_code is the POLL_* reason, no SI_KERNEL: not forced on an init
                signals.send_queued(sender, target, sig, info, thread=thread, force=False)
            except SyscallError:  # the queue is full: the old plain SIGIO
                signals.send(sender, target, SIGIO,
                             sigstate.siginfo(SIGIO, sigstate.SI_KERNEL), thread=thread)


def kill(f: Any, reason: int, *, watched: bool = False) -> None:
    """An event of kind `reason` (POLL_IN ...) on `f`: signal its owner if O_ASYNC is set
    and `f` is still open (close drops the file's registration, as Linux's __fput).
    `watched`: seen by a watch of a host fd rather than during a task's syscall."""
    if not f.flags & O_ASYNC or f.refs <= 0:
        return
    o = getattr(f, "fown", None)
    if isinstance(o, Owner):
        send_sigio(o, reason, o.fd, watched=watched)


def send_sigio(o: Owner, reason: int, fd: int, *, watched: bool = False) -> None:
    """send_sigio: SIGIO from the kernel to what `o` names, or its F_SETSIG signal with
    si_code `reason`, its band and si_fd `fd`."""
    if not o.pid:
        return
    kernel = o.kernel
    if o.signum:
        info = bytearray(sigstate.siginfo(o.signum, reason))
        struct.pack_into("<qi", info, 16, BAND.get(reason, -1), fd)
        _send(kernel, o, o.signum, bytes(info), watched, queued=True)
    else:
        _send(kernel, o, SIGIO, sigstate.siginfo(SIGIO, sigstate.SI_KERNEL), watched)


def sigurg(f: Any, *, watched: bool = False) -> None:
    """TCP urgent data arrived on `f`: SIGURG to its owner (send_sigurg: without O_ASYNC
    too), then POLL_PRI as any event."""
    o = getattr(f, "fown", None)
    if not isinstance(o, Owner) or not o.pid:
        return
    if f.refs > 0:
        _send(o.kernel, o, SIGURG, sigstate.siginfo(SIGURG, sigstate.SI_KERNEL), watched)
        kill(f, POLL_PRI, watched=watched)

