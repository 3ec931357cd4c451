"""System V shared memory segments.

A segment's pages are a host memfd; shmat maps it MAP_SHARED through the MemoryManager, the
same path as a shared mapping of a tmpfs file, so every process attaching it (and every
forked child, whose stub inherits the host mapping) shares the pages. Each shmat makes an
`Attachment`, the mapping's file: the address space holds one reference per attachment
(forks add theirs), so the segment's attach count is the sum of its attachments'
references, and a segment removed while attached goes when the last one drops.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

from sentry.kernel.current import CURRENT_TASK

from .perm import IpcPerm, now

if TYPE_CHECKING:
    from sentry.kernel.pidns import PidNamespace

    from .namespace import IpcNamespace

SHM_RDONLY, SHM_RND, SHM_REMAP, SHM_EXEC = 0o10000, 0o20000, 0o40000, 0o100000
SHM_LOCK, SHM_UNLOCK, SHM_STAT, SHM_INFO, SHM_STAT_ANY = 11, 12, 13, 14, 15
SHM_DEST, SHM_LOCKED = 0o1000, 0o2000
#: struct shmid64_ds after its perm: segsz, atime, dtime, ctime, cpid, lpid, nattch.
SHMID_TAIL = struct.Struct("<QqqqiiQQQ")


class Segment:
    """One segment: its perm record, size, times, pids and host memfd."""

    def __init__(self, ns: IpcNamespace, perm: IpcPerm, size: int, pid: int) -> None:
        self.ns = ns
        self.perm = perm
        self.size = size
        self.atime = self.dtime = 0
        self.ctime = now()
        self.cpid = pid
        self.lpid = 0
        self.nattch = 0
        self.name = b"/SYSV%08x" % (perm.key & 0xFFFFFFFF)  # the key it was made with
        self.memfd = os.memfd_create(self.name[1:].decode(), os.MFD_CLOEXEC)
        os.ftruncate(self.memfd, size)

    def pages(self) -> int:
        return (self.size + 4095) // 4096

    def rss(self) -> int:
        """Bytes of the segment the host holds in memory (touched pages)."""
        return os.fstat(self.memfd).st_blocks * 512 if self.memfd >= 0 else 0

    def pack(self, pidns: PidNamespace) -> bytes:
        """struct shmid64_ds, the pids as `pidns` (the caller's) numbers them."""
        return self.perm.pack() + SHMID_TAIL.pack(self.size, self.atime, self.dtime,
                                                  self.ctime, pidns.vpid(self.cpid),
                                                  pidns.vpid(self.lpid),
                                                  self.nattch, 0, 0)

    def mark_destroyed(self) -> None:
        """IPC_RMID: gone now if nothing is attached, else when the last detach comes."""
        self.perm.mode |= SHM_DEST
        self.ns.shm.forget_key(self)
        self._maybe_free()

    def _maybe_free(self) -> None:
        if self.nattch == 0 and self.perm.mode & SHM_DEST and not self.perm.deleted:
            self.ns.shm.remove(self)
            self.ns.shm_pages -= self.pages()
            if self.ns.memory is not None:
                self.ns.memory.charge("shm", -self.pages() * 4096)
            self.free_memory()

    def free_memory(self) -> None:
        if self.memfd >= 0:
            os.close(self.memfd)
            self.memfd = -1

    def opened(self) -> None:
        """An address space took hold of an attachment (shmat, fork): shm_open."""
        self.nattch += 1
        self.atime, self.lpid = now(), _pid()

    def closed(self) -> None:
        """An address space's hold on an attachment went (shmdt, munmap, exit, exec)."""
        self.nattch -= 1
        self.dtime, self.lpid = now(), _pid()
        self._maybe_free()


def _pid() -> int:
    t = CURRENT_TASK.get(None)
    return t.tgid if t is not None else 0


class Attachment:
    """What one shmat mapped: the mapping's `file` as the MemoryManager sees it (a host
    memfd to map shared, and references: one per address space holding it, the first
    taken by the mapping itself)."""

    def __init__(self, seg: Segment) -> None:
        self.seg = seg
        self.refs = 0

    @property
    def memfd(self) -> int:
        return self.seg.memfd

    @property
    def maps_name(self) -> tuple[int, bytes]:
        """/proc/PID/maps' inode (the shmid) and name of the mapping."""
        return self.seg.perm.id, self.seg.name + b" (deleted)"

    def inc_ref(self) -> Attachment:
        self.refs += 1
        self.seg.opened()
        return self

    async def dec_ref(self) -> None:
        self.refs -= 1
        self.seg.closed()
