"""signalfd and signalfd4: pending signals read as a file.

A `SignalFD` is a vfs FileDescription holding a signal mask. Like Linux's, it has no
signals of its own: a read dequeues, from the *reading* thread's private pending set and
then its process's shared one, the lowest pending signal in the mask (the same dequeue
rt_sigtimedwait uses, so the signal is gone from rt_sigpending afterwards) and returns it
as a 128-byte `struct signalfd_siginfo`. The signals must be blocked to stay pending long
enough to be read, as on Linux; an unblocked one is delivered (or kills) first.

Readiness (poll, select, epoll) is likewise the polling thread's: POLLIN while a signal in
the mask is pending for it. A blocking read, and any poll on the file, waits on a
per-process wait queue (`SigHand.readers`, Linux's `sighand->signalfd_wqh`) that
`signals` notifies whenever a signal is queued for a thread or the process; `waitq` answers that queue
for the current task, so an EPOLLET registration hears about new signals too.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from sentry.errors import SyscallError
from sentry.kernel import signals as S
from sentry.kernel import sigstate
from sentry.kernel.current import CURRENT_TASK
from sentry.kernel.table import syscall
from vfs.abi import O_NONBLOCK, O_RDWR, POLLIN, POLLRDNORM, Stat, StatFS
from vfs.errors import error
from vfs.file import FileDescription, WaitQueue

from .anon import anon_statfs
from .sys_signal import _take_from

if TYPE_CHECKING:
    from sentry.kernel.pidns import PidNamespace
    from sentry.kernel.task import Task

SFD_CLOEXEC, SFD_NONBLOCK = 0o2000000, 0o4000
#: struct signalfd_siginfo is 128 bytes.
SIGINFO_SIZE = 128
#: signo, errno, code, pid, uid, fd, tid, band, overrun, trapno, status, int, ptr, utime,
#: stime, addr, addr_lsb, pad, syscall, call_addr, arch (then 28 bytes of padding).
_SSI = struct.Struct("<IiiIIiIIIIiiQQQQHHiQI28x")
SI_USER, SI_KERNEL, SI_TIMER, SI_SIGIO = 0, 0x80, -2, -5
#: siginfo_layout's per-signal limits for kernel-made codes (include/uapi/asm-generic/
#: siginfo.h): SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV, SIGCHLD, SIGPOLL, SIGSYS.
_CODE_LIMITS = {4: ("fault", 11), 5: ("fault", 6), 7: ("fault", 5), 8: ("fault", 15),
                11: ("fault", 10), 17: ("chld", 6), 29: ("poll", 6), 31: ("sys", 2)}
_NSIGPOLL = 6

def _current() -> Task | None:
    return CURRENT_TASK.get(None)


def _layout(sig: int, code: int) -> str:
    """Linux's siginfo_layout(): which union member of a siginfo is meaningful."""
    if SI_USER < code < SI_KERNEL:
        kind = _CODE_LIMITS.get(sig)
        if kind is not None and code <= kind[1]:
            return kind[0]
        return "poll" if code <= _NSIGPOLL else "kill"
    if code == SI_TIMER:
        return "timer"
    if code == SI_SIGIO:
        return "poll"
    return "rt" if code < 0 else "kill"


def signalfd_siginfo(info: bytes) -> bytes:
    """A 128-byte siginfo_t as the struct signalfd_siginfo Linux's signalfd_copyinfo
    makes of it (only the fields of the siginfo's layout are copied)."""
    signo, err, code = struct.unpack_from("<iii", info, 0)
    f = dict(pid=0, uid=0, fd=0, tid=0, band=0, overrun=0, status=0, int_=0, ptr=0,
             utime=0, stime=0, addr=0, syscall=0, call_addr=0, arch=0)
    kind = _layout(signo, code)
    if kind in ("kill", "rt", "chld"):
        f["pid"], f["uid"] = struct.unpack_from("<iI", info, 16)
    if kind in ("rt", "timer"):
        f["int_"], f["ptr"] = struct.unpack_from("<i", info, 24)[0], struct.unpack_from(
            "<Q", info, 24)[0]
    if kind == "timer":
        f["tid"], f["overrun"] = struct.unpack_from("<iI", info, 16)
    elif kind == "chld":
        f["status"], f["utime"], f["stime"] = struct.unpack_from("<i4xqq", info, 24)
    elif kind == "poll":
        band, f["fd"] = struct.unpack_from("<qi", info, 16)
        f["band"] = band & 0xFFFFFFFF
    elif kind == "fault":
        (f["addr"],) = struct.unpack_from("<Q", info, 16)
    elif kind == "sys":
        f["call_addr"], f["syscall"], f["arch"] = struct.unpack_from("<QiI", info, 16)
    return _SSI.pack(signo & 0xFFFFFFFF, err, code, f["pid"] & 0xFFFFFFFF, f["uid"], f["fd"],
                     f["tid"] & 0xFFFFFFFF, f["band"], f["overrun"], 0, f["status"],
                     f["int_"], f["ptr"], f["utime"] & (1 << 64) - 1,
                     f["stime"] & (1 << 64) - 1, f["addr"], 0, 0, f["syscall"],
                     f["call_addr"], f["arch"])


class SignalFD(FileDescription):
    """A signalfd: reads dequeue the reader's pending signals that are in `mask`."""

    anon_name = b"anon_inode:[signalfd]"  # /proc/PID/fd

    async def read_upto(self, n: int, fits: int) -> bytes:
        """Linux dequeues the signal, then fails to copy it (EFAULT, the signal gone)."""
        return await self.read(n)

    def __init__(self, mask: int, flags: int, anon_stat: Callable[[], Stat]) -> None:
        super().__init__(None, O_RDWR | (flags & O_NONBLOCK))
        self.mask = mask
        self._anon_stat = anon_stat

    @property
    def waitq(self) -> WaitQueue:
        """The current task's process queue (Linux's poll_wait on current's sighand)."""
        t = _current()
        return sigstate.readers(t) if t is not None else super().waitq

    async def statfs(self) -> StatFS:
        return anon_statfs(await self.stat())

    async def stat(self) -> Stat:
        return self._anon_stat()

    def _pending(self, t: Task) -> int:
        return S.pending_set(t) & self.mask

    def readiness(self, mask: int) -> int:
        t = _current()
        if t is None or not self._pending(t):
            return 0
        return mask & POLLIN

    async def wait_ready(self, mask: int) -> int:
        t = _current()
        if t is None:
            await trio.sleep_forever()
        return await sigstate.readers(t).wait_for(lambda: self.readiness(mask))

    async def do_read(self, n: int) -> bytes:
        count = n // SIGINFO_SIZE
        if not count:
            raise error(errno.EINVAL)
        t = _current()
        if t is None:
            raise error(errno.EAGAIN)
        out: list[bytes] = []
        while len(out) < count:
            got = _take_from(t, self.mask)
            if got is not None:
                out.append(signalfd_siginfo(got[1]))
                continue
            if out:
                break
            if self.flags & O_NONBLOCK:
                raise error(errno.EAGAIN)
            await self.wait_ready(POLLIN)  # a handled signal cancels it: EINTR/restart
        return b"".join(out)

    def fdinfo(self, pidns: PidNamespace) -> bytes:
        """signalfd_show_fdinfo: the mask (SIGKILL and SIGSTOP never in it)."""
        return b"sigmask:\t%016x\n" % self.mask

    def __repr__(self) -> str:
        return f"<SignalFD mask={self.mask:#x} flags={self.flags:#o}>"


def _signalfd(t: Task, ufd: int, addr: int, size: int, flags: int) -> int:
    if size != 8:
        raise SyscallError(errno.EINVAL)
    (mask,) = struct.unpack("<Q", t.mem_read(addr, 8))
    if flags & ~(SFD_CLOEXEC | SFD_NONBLOCK):
        raise SyscallError(errno.EINVAL)
    mask &= ~sigstate.UNBLOCKABLE & sigstate.MASK64
    ufd &= 0xFFFFFFFF
    ufd = ufd - (1 << 32) if ufd & 0x80000000 else ufd
    if ufd == -1:
        return t.fdtable.install(SignalFD(mask, flags, t.kernel.anon_inode_stat), cloexec=bool(flags & SFD_CLOEXEC))
    f = t.fdtable.get(ufd)
    if not isinstance(f, SignalFD):
        raise SyscallError(errno.EINVAL)
    f.mask = mask
    sigstate.readers(t).notify(POLLIN | POLLRDNORM)  # a waiter may now have something to read
    return ufd


@syscall("signalfd")
def sys_signalfd(t: Task, ufd: int, mask: int, size: int, *_: int) -> int:
    """Implements Linux syscall signalfd(2): signalfd4 without flags."""
    return _signalfd(t, ufd, mask, size, 0)


@syscall("signalfd4")
def sys_signalfd4(t: Task, ufd: int, mask: int, size: int, flags: int, *_: int) -> int:
    """Implements Linux syscall signalfd4(2): a new signalfd (ufd -1) or a new mask for an
    existing one; SFD_CLOEXEC and SFD_NONBLOCK apply to a new one only."""
    return _signalfd(t, ufd, mask, size, flags & 0xFFFFFFFF)
