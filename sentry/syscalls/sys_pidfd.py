"""pidfd_open, pidfd_send_signal, pidfd_getfd: processes named by file descriptors.

A `PidFD` names one process of the sandbox (or, with PIDFD_THREAD, one thread) by its
pid, which the sandbox never reuses. It is readable (poll, select, epoll) once the process
has exited, and also hangs up (POLLHUP) once it has been reaped, as Linux's pidfd_poll
says; the Kernel's `exits` queue announces every exit, so EPOLLET sees the edge.
waitid(P_PIDFD) (sys_wait) waits for the process through it.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel import signals as S
from sentry.kernel import sigstate
from sentry.kernel.pidns import ns_ids
from sentry.kernel.table import syscall
from vfs.abi import O_NONBLOCK, POLLHUP, POLLIN, POLLRDNORM
from vfs.creds import CAP_SYS_PTRACE
from vfs.file import WaitQueue
from vfs.fs.procfs import Procfs

from .anon import AnonFile

if TYPE_CHECKING:
    from sentry.kernel.kernel import Kernel
    from sentry.kernel.pidns import PidNamespace
    from sentry.kernel.task import Task

PIDFD_NONBLOCK, PIDFD_THREAD = O_NONBLOCK, 0o200
PIDFD_SIGNAL_THREAD, PIDFD_SIGNAL_THREAD_GROUP, PIDFD_SIGNAL_PROCESS_GROUP = 1, 2, 4
_O_CLOEXEC = 0o2000000


class PidFD(AnonFile):
    """A pidfd for process (or thread, `thread`) `pid`."""

    anon_name = b"anon_inode:[pidfd]"

    def __init__(self, t: Task, pid: int, flags: int) -> None:
        super().__init__(t.kernel.anon_inode_stat, flags)
        self.flags |= flags & PIDFD_THREAD
        self.kernel: Kernel = t.kernel
        self.pid = pid
        self.thread = bool(flags & PIDFD_THREAD)

    @property
    def waitq(self) -> WaitQueue:
        return self.kernel.exits

    def task(self) -> Task | None:
        """The live thread or process named, None once it has exited."""
        k = self.kernel
        return k.tasks.get(self.pid) if self.thread else k.procs.get(self.pid)

    def reaped(self) -> bool:
        k = self.kernel
        return self.task() is None and self.pid not in k.zombies

    def readiness(self, mask: int) -> int:
        if self.task() is not None:
            return 0
        ready = POLLIN | POLLRDNORM
        if self.reaped():
            ready |= POLLHUP
        return ready & (mask | POLLHUP)

    def fdinfo(self, pidns: PidNamespace) -> bytes:
        """pidfd_show_fdinfo: Pid and NSpid as the read proc's namespace numbers the
        process (0 when it is not in it, -1 once reaped), NSpid then its number in each
        namespace below down to its own."""
        if self.reaped():
            return b"Pid:\t-1\nNSpid:\t-1\n"
        home = pidns.home(self.pid)
        if not pidns.is_ancestor_of(home):
            return b"Pid:\t0\nNSpid:\t0\n"
        ids = ns_ids(pidns, home, self.pid)
        return b"Pid:\t%d\nNSpid:\t%s\n" % (ids[0], b"\t".join(b"%d" % i for i in ids))


def _proc_pid_dir(t: Task, f: object) -> int | None:
    """The pid of an open /proc/PID directory (which pidfd_send_signal takes as a
    pidfd, as Linux's pidfd_to_pid does), else None."""
    vd = getattr(f, "vd", None)
    if vd is None or not isinstance(vd.mount.fs, Procfs):
        return None
    d = vd.dentry
    if d.parent is not vd.mount.fs.root or not d.name.isdigit() or not d.inode.is_dir:
        return None
    ns = getattr(vd.mount.fs.provider, "pidns", None)  # the numbers of that proc's namespace
    return int(d.name) if ns is None else ns.gpid(int(d.name))


def pidfd_of(t: Task, fd: int) -> PidFD:
    """The pidfd at `fd`: EBADF if it is not open or not a pidfd (pidfd_get_pid)."""
    f = t.fdtable.get(_s32(fd))
    if not isinstance(f, PidFD):
        raise SyscallError(errno.EBADF)
    return f


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


@syscall("pidfd_open")
def sys_pidfd_open(t: Task, pid: int, flags: int, *_: int) -> int:
    """Implements Linux syscall pidfd_open(2): PIDFD_NONBLOCK, PIDFD_THREAD; the fd is
    always close-on-exec."""
    pid, flags = _s32(pid), flags & 0xFFFFFFFF
    if flags & ~(PIDFD_NONBLOCK | PIDFD_THREAD) or pid <= 0:
        raise SyscallError(errno.EINVAL)
    k = t.kernel
    pid = t.pidns.gpid(pid) or 0  # the kernel's number (0: none in the namespace)
    if pid not in k.tasks and pid not in k.procs and pid not in k.zombies:
        raise SyscallError(errno.ESRCH)
    if not flags & PIDFD_THREAD and pid not in k.procs and pid not in k.zombies:
        raise SyscallError(errno.ENOENT)  # a thread that does not lead its group
    return t.fdtable.install(PidFD(t, pid, flags), cloexec=True)


@syscall("pidfd_send_signal")
def sys_pidfd_send_signal(t: Task, fd: int, sig: int, info: int, flags: int, *_: int) -> int:
    """Implements Linux syscall pidfd_send_signal(2): to the process, the thread or the
    process group (PIDFD_SIGNAL_*), with a siginfo of the caller's (only to itself with a
    kernel's si_code); an open /proc/PID directory names a process too."""
    flags &= 0xFFFFFFFF
    every = PIDFD_SIGNAL_THREAD | PIDFD_SIGNAL_THREAD_GROUP | PIDFD_SIGNAL_PROCESS_GROUP
    if flags & ~every or bin(flags).count("1") > 1:
        raise SyscallError(errno.EINVAL)
    f = t.fdtable.get(_s32(fd))
    if not isinstance(f, PidFD):
        pid = _proc_pid_dir(t, f)
        if pid is None:
            raise SyscallError(errno.EBADF)
        f = PidFD(t, pid, 0)  # for this call only
    sig = _s32(sig)
    if not flags:
        flags = PIDFD_SIGNAL_THREAD if f.thread else PIDFD_SIGNAL_THREAD_GROUP
    if info:
        si = bytearray(t.mem_read(info, 128))
        signo, _err, code = struct.unpack_from("<iii", si, 0)
        if signo != sig:
            raise SyscallError(errno.EINVAL)
        if (f.pid != t.tgid or flags == PIDFD_SIGNAL_PROCESS_GROUP) and (
                code >= 0 or code == sigstate.SI_TKERNEL):
            raise SyscallError(errno.EPERM)
        siginfo = bytes(si)
    else:
        siginfo = sigstate.siginfo(sig, sigstate.SI_USER, t.pidns.vpid(t.tgid), t.creds.uid)
    if not 0 <= sig <= 64:
        raise SyscallError(errno.EINVAL)
    k = t.kernel
    target = f.task()
    if flags == PIDFD_SIGNAL_PROCESS_GROUP:
        group = target.pgid if target is not None else k.zombie_pgid.get(f.pid)
        members = [p for p in k.procs.values() if p.pgid == group] if group else []
        if not members:
            raise SyscallError(errno.ESRCH)
        allowed = [p for p in members if S.may_signal(t, p, sig)]
        if not allowed:
            raise SyscallError(errno.EPERM)
        for p in allowed:
            S.send_queued(t, p, sig, siginfo)
        return 0
    if target is None:
        if f.pid in k.zombies:
            return 0  # a zombie takes (and ignores) any signal
        raise SyscallError(errno.ESRCH)
    if not S.may_signal(t, target, sig):
        raise SyscallError(errno.EPERM)
    if flags == PIDFD_SIGNAL_THREAD:
        S.send_queued(t, target, sig, siginfo, thread=True)
    else:
        S.send_queued(t, target.leader, sig, siginfo)
    return 0


@syscall("pidfd_getfd")
def sys_pidfd_getfd(t: Task, fd: int, targetfd: int, flags: int, *_: int) -> int:
    """Implements Linux syscall pidfd_getfd(2): a close-on-exec duplicate, in the caller,
    of another process's open file (the same uid, or CAP_SYS_PTRACE)."""
    f = pidfd_of(t, fd)
    if flags & 0xFFFFFFFF:
        raise SyscallError(errno.EINVAL)
    target = f.task()
    if target is None:
        raise SyscallError(errno.ESRCH)
    if target.creds.uid != t.creds.uid and not t.creds.has_cap(CAP_SYS_PTRACE):
        raise SyscallError(errno.EPERM)
    if target.fdtable is None:
        raise SyscallError(errno.ESRCH)
    got = target.fdtable.get(_s32(targetfd))
    new = t.fdtable.install(got, cloexec=True)
    got.inc_ref()
    return new
