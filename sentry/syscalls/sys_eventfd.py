"""eventfd and eventfd2: a 64-bit counter read and written as a file.

A write adds to the counter (at most 0xfffffffffffffffe: a write that would pass it
waits, or fails with EAGAIN under O_NONBLOCK; the value 2**64-1 is EINVAL). A read
returns the counter and zeroes it, or in semaphore mode (EFD_SEMAPHORE) returns 1 and
decrements it; a read of a zero counter waits or fails with EAGAIN. Reads take at least
8 bytes, writes exactly 8 (else EINVAL). POLLIN while the counter is non-zero, POLLOUT
while another 1 can be added, both notified on the file's wait queue (EPOLLET works).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.table import syscall
from vfs.abi import O_NONBLOCK, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM
from vfs.errors import error

from .anon import AnonFile

if TYPE_CHECKING:
    from sentry.kernel.pidns import PidNamespace
    from sentry.kernel.task import Task

EFD_SEMAPHORE, EFD_CLOEXEC, EFD_NONBLOCK = 1, 0o2000000, 0o4000
ULLONG_MAX = (1 << 64) - 1


class EventFD(AnonFile):
    """An eventfd: `count` is Linux's eventfd_ctx count."""

    anon_name = b"anon_inode:[eventfd]"

    def __init__(self, t: Task, count: int, flags: int) -> None:
        super().__init__(t.kernel.anon_inode_stat, flags)
        self.count = count
        self.semaphore = bool(flags & EFD_SEMAPHORE)
        self.id = t.kernel.next_anon_id("eventfd")

    def readiness(self, mask: int) -> int:
        ready = 0
        if self.count:
            ready |= POLLIN | POLLRDNORM
        if self.count < ULLONG_MAX - 1:
            ready |= POLLOUT | POLLWRNORM
        return ready & mask

    async def do_read(self, n: int) -> bytes:
        if n < 8:
            raise error(errno.EINVAL)
        while not self.count:
            if self.flags & O_NONBLOCK:
                raise error(errno.EAGAIN)
            await self.wait_ready(POLLIN)
        value = 1 if self.semaphore else self.count
        self.count -= value
        self.waitq.notify(POLLOUT | POLLWRNORM)
        return struct.pack("<Q", value)

    async def do_write(self, data: bytes) -> int:
        if len(data) != 8:
            raise error(errno.EINVAL)
        (value,) = struct.unpack_from("<Q", data)
        if value == ULLONG_MAX:
            raise error(errno.EINVAL)
        while ULLONG_MAX - self.count <= value:
            if self.flags & O_NONBLOCK:
                raise error(errno.EAGAIN)
            await self.waitq.wait_for(lambda: ULLONG_MAX - self.count > value)
        self.count += value
        if value:
            self.waitq.notify(POLLIN | POLLRDNORM)
        return 8

    def signal(self) -> None:
        """eventfd_signal (the kernel's side, as AIO's completion): one more, unless the
        counter is at its very top; never waits."""
        if self.count < ULLONG_MAX:
            self.count += 1
            self.waitq.notify(POLLIN | POLLRDNORM)

    def fdinfo(self, pidns: PidNamespace) -> bytes:
        return b"eventfd-count: %16x\neventfd-id: %d\neventfd-semaphore: %d\n" % (
            self.count, self.id, self.semaphore)

    def __repr__(self) -> str:
        return f"<EventFD count={self.count} flags={self.flags:#o}>"


def _eventfd(t: Task, initval: int, flags: int) -> int:
    if flags & ~(EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK):
        raise SyscallError(errno.EINVAL)
    f = EventFD(t, initval & 0xFFFFFFFF, flags)
    return t.fdtable.install(f, cloexec=bool(flags & EFD_CLOEXEC))


@syscall("eventfd")
def sys_eventfd(t: Task, initval: int, *_: int) -> int:
    """Implements Linux syscall eventfd(2): eventfd2 without flags."""
    return _eventfd(t, initval, 0)


@syscall("eventfd2")
def sys_eventfd2(t: Task, initval: int, flags: int, *_: int) -> int:
    """Implements Linux syscall eventfd2(2): EFD_SEMAPHORE, EFD_CLOEXEC, EFD_NONBLOCK."""
    return _eventfd(t, initval, flags & 0xFFFFFFFF)
