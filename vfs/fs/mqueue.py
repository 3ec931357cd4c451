"""mqueue: POSIX message queues as files (Linux's ipc/mqueue.c filesystem).

One `MqueueFS` per IPC namespace: the Sentry's mq_open/mq_unlink name queues in it, and it
can be mounted (at /dev/mqueue) where `ls`, `cat` (the QSIZE/NOTIFY line), `rm` and
open(O_CREAT) work on the same queues. A queue holds messages by priority (highest first,
FIFO within one), bounded by its `maxmsg` and `msgsize`; its open files are pollable
(POLLIN when a message waits, POLLOUT when there is room). The directory is flat: mkdir,
links, symlinks and renames are refused with EPERM as in Linux.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import trio

from ..abi import (
    O_NONBLOCK,
    POLLIN,
    POLLOUT,
    POLLRDNORM,
    POLLWRNORM,
    S_IFMT,
    S_IFREG,
    Stat,
    StatFS,
)
from ..creds import Credentials
from ..dentry import Dentry
from ..errors import error
from ..file import FileDescription, WaitQueue
from .tmpfs import Tmpfs, TmpfsInode

MQUEUE_MAGIC = 0x19800202
FILENT_SIZE = 80  # what stat says of a queue's size (Linux's mqueue inode)
MQ_PRIO_MAX = 32768


class MessageQueue:
    """A queue's messages and its notification registration (mq_notify)."""

    def __init__(self, maxmsg: int, msgsize: int) -> None:
        self.maxmsg = maxmsg
        self.msgsize = msgsize
        self.messages: list[tuple[int, int, bytes]] = []  # (-prio, seq, data), sorted
        self.qsize = 0
        self._seq = 0
        self.waitq = WaitQueue()
        self._changed = trio.Event()
        self.receivers = 0  # receivers blocked now (a send to them notifies no one)
        #: (owner tgid, sigev_notify, signo, fire, removed): `fire(sender_pid, sender_uid)`
        #: is called once, when a message arrives in an empty queue with no receiver
        #: waiting; `removed()` when the registration goes otherwise (remove_notification).
        self.notify: tuple[int, int, int, Callable[[int, int], None],
                           Callable[[], None]] | None = None

    @property
    def full(self) -> bool:
        return len(self.messages) >= self.maxmsg

    def _changed_now(self, mask: int) -> None:
        self._changed.set()
        self._changed = trio.Event()
        self.waitq.notify(mask)

    async def changed(self) -> None:
        await self._changed.wait()

    def put(self, data: bytes, prio: int, pid: int, uid: int) -> None:
        self._seq += 1
        entry = (-prio, self._seq, data)
        i = len(self.messages)
        while i > 0 and self.messages[i - 1] > entry:
            i -= 1
        self.messages.insert(i, entry)
        self.qsize += len(data)
        if self.notify is not None and len(self.messages) == 1 and not self.receivers:
            fire = self.notify[3]
            self.notify = None
            fire(pid, uid)
        self._changed_now(POLLIN | POLLRDNORM)

    def unregister(self) -> None:
        """remove_notification: the registration goes; its owner is told if it asked to be
        (SIGEV_THREAD's NOTIFY_REMOVED)."""
        if self.notify is not None:
            removed = self.notify[4]
            self.notify = None
            removed()

    def take(self) -> tuple[bytes, int]:
        neg_prio, _, data = self.messages.pop(0)
        self.qsize -= len(data)
        self._changed_now(POLLOUT | POLLWRNORM)
        return data, -neg_prio

    def readiness(self, mask: int) -> int:
        r = 0
        if self.messages:
            r |= POLLIN | POLLRDNORM
        if not self.full:
            r |= POLLOUT | POLLWRNORM
        return r & mask

    def status(self) -> bytes:
        """What reading the queue's file gives."""
        owner, how, signo = (self.notify[0], self.notify[1], self.notify[2]) \
            if self.notify is not None else (0, 0, 0)
        return b"QSIZE:%-10d NOTIFY:%-5d SIGNO:%-5d NOTIFY_PID:%-6d\n" % (
            self.qsize, how, signo, owner)


class MqueueInode(TmpfsInode):
    __slots__ = ("queue",)

    def __init__(self, ino: int, mode: int, uid: int, gid: int, queue: MessageQueue) -> None:
        super().__init__(ino, mode, uid, gid)
        self.queue = queue
        self.size = FILENT_SIZE


class MqueueFS(Tmpfs):
    """The queues of one IPC namespace, and the limits of /proc/sys/fs/mqueue."""

    fstype = "mqueue"
    magic = MQUEUE_MAGIC

    def __init__(self) -> None:
        super().__init__(mode=0o1777)
        self.queues_max = 256
        self.msg_max = 10
        self.msgsize_max = 8192
        self.msg_default = 10
        self.msgsize_default = 8192
        self.queues = 0

    def create(self, name: bytes, mode: int, uid: int, gid: int, maxmsg: int,
               msgsize: int) -> Dentry:
        """A new queue `name` in the root (the caller checked it does not exist)."""
        self.inodes += 1
        ino = MqueueInode(self._ino(), S_IFREG | (mode & 0o777), uid, gid,
                          MessageQueue(maxmsg, msgsize))
        d = Dentry(self, name, self.root, ino)
        self._add(self.root, d)
        self.queues += 1
        return d

    async def mknod(self, parent: Dentry, name: bytes, mode: int, rdev: int, uid: int,
                    gid: int) -> Dentry:
        """open(O_CREAT) in a mounted mqueue: a queue with the default limits."""
        if mode & S_IFMT != S_IFREG:
            raise error(errno.EINVAL)
        return self.create(name, mode, uid, gid, min(self.msg_max, self.msg_default),
                           min(self.msgsize_max, self.msgsize_default))

    async def mkdir(self, parent: Dentry, name: bytes, mode: int, uid: int, gid: int) -> Dentry:
        raise error(errno.EPERM)

    async def symlink(self, parent: Dentry, name: bytes, target: bytes, uid: int,
                      gid: int) -> Dentry:
        raise error(errno.EPERM)

    async def link(self, parent: Dentry, name: bytes, target: Dentry) -> Dentry:
        raise error(errno.EPERM)

    async def rename(self, old_parent: Dentry, child: Dentry, new_parent: Dentry,
                     new_name: bytes, replaced: Dentry | None, flags: int) -> None:
        raise error(errno.EPERM)

    async def unlink(self, parent: Dentry, child: Dentry) -> None:
        await super().unlink(parent, child)
        self.queues -= 1

    async def stat(self, d: Dentry) -> Stat:
        return d.inode.to_stat(self.dev)

    async def statfs(self) -> StatFS:
        return StatFS(type=MQUEUE_MAGIC, bsize=4096, namelen=255)

    async def open(self, d: Dentry, flags: int, creds: Credentials) -> FileDescription:
        ino = d.inode
        if isinstance(ino, MqueueInode):
            return MqueueFD(flags, ino.queue)
        return await super().open(d, flags, creds)


class MqueueFD(FileDescription):
    """An open queue (an mqd_t): read gives the status line; poll sees the queue."""

    def __init__(self, flags: int, queue: MessageQueue) -> None:
        super().__init__(None, flags)
        self.queue = queue

    @property
    def waitq(self) -> WaitQueue:
        return self.queue.waitq

    @property
    def nonblocking(self) -> bool:
        return bool(self.flags & O_NONBLOCK)

    def readiness(self, mask: int) -> int:
        return self.queue.readiness(mask)

    def closed_by(self, owner: int) -> None:
        """mqueue_flush_file: the notification goes when its owner closes the queue."""
        if self.queue.notify is not None and self.queue.notify[0] == owner:
            self.queue.unregister()

    async def do_read(self, n: int) -> bytes:
        text = self.queue.status()
        out = text[self.offset:self.offset + n]
        self.offset += len(out)
        return out


__all__ = ["MQ_PRIO_MAX", "MQUEUE_MAGIC", "MessageQueue", "MqueueFD", "MqueueFS"]
