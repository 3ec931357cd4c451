"""Files on the kernel's one anonymous inode (Linux's anon_inodefs): eventfd, timerfd,
inotify and pidfd files share what fstat, fstatfs, /proc/PID/fd and /proc/PID/fdinfo show
of them (epoll and signalfd files answer fstat and fstatfs the same way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from vfs.abi import NAME_MAX, O_NONBLOCK, O_RDWR, ST_VALID, Stat, StatFS
from vfs.file import FileDescription

if TYPE_CHECKING:
    from sentry.kernel.pidns import PidNamespace


ANON_INODE_FS_MAGIC = 0x09041934


def anon_statfs(st: Stat) -> StatFS:
    """fstatfs of a file on the anonymous inode: anon_inodefs's simple_statfs (its fsid
    the inode's device, as Linux reports)."""
    return StatFS(ANON_INODE_FS_MAGIC, fsid=st.dev, namelen=NAME_MAX, flags=ST_VALID)


class AnonFile(FileDescription):
    """A file with no name: fstat answers the kernel's anonymous inode, /proc/PID/fd shows
    `anon_name` ("anon_inode:[eventfd]" ...), and /proc/PID/fdinfo adds `fdinfo(pidns)`."""

    anon_name = b"anon_inode:[unknown]"

    def __init__(self, anon_stat: Callable[[], Stat], flags: int = 0, *,
                 mode: int = O_RDWR) -> None:
        super().__init__(None, mode | (flags & O_NONBLOCK))
        self._anon_stat = anon_stat

    async def stat(self) -> Stat:
        return self._anon_stat()

    async def statfs(self) -> StatFS:
        return anon_statfs(self._anon_stat())

    async def read_upto(self, n: int, fits: int) -> bytes:
        """These files hand out whole records (a counter, an expiry count, events): Linux
        checks the size, takes the record, and only then fails to copy it (EFAULT, the
        record gone), so the read is of the whole buffer whatever fits."""
        return await self.read(n)

    def fdinfo(self, pidns: PidNamespace) -> bytes:
        """The lines /proc/PID/fdinfo/N adds after pos, flags, mnt_id and ino (pids in
        `pidns`, the namespace of the proc mount read)."""
        return b""
