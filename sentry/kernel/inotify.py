"""inotify's kernel state: watches on inodes, and the event queue of each instance.

The VFS reports every change made through it to its `Notifier`, whose hook is
`Watches.event` while a watch exists; it hands the event to every watch on that inode
whose mask wants it. A watch belongs to one instance (an `Instance`, the inotify file)
and one inode, as Linux's inode marks do; an inode's watches are kept in a weak map, so
a watch never keeps an inode alive. Watches are ended by inotify_rm_watch, IN_ONESHOT,
the inode's IN_DELETE_SELF, or the instance's close, each queueing IN_IGNORED.

An instance's queue follows fs/notify/inotify: an event equal to the last one queued and
not yet read (same wd, mask and name) is merged into it; at `max_events` queued, one
IN_Q_OVERFLOW (wd -1) is queued and later events are dropped until the queue is read.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from vfs.notify import (
    IN_ALL_EVENTS,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_ISDIR,
    IN_MOVE_SELF,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
)

if TYPE_CHECKING:
    from vfs.dentry import Inode
    from vfs.notify import Notifier

IN_ONESHOT, IN_MASK_ADD, IN_MASK_CREATE = 0x80000000, 0x20000000, 0x10000000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_EXCL_UNLINK = 0x01000000, 0x02000000, 0x04000000
#: /proc/sys/fs/inotify/max_queued_events
MAX_QUEUED_EVENTS = 16384
#: An event: (wd, mask, cookie, name).
Event = tuple[int, int, int, bytes]


class Watch:
    """One watch: instance `owner` watches `inode` for `mask` as descriptor `wd`."""

    __slots__ = ("owner", "wd", "mask", "inode", "ino", "dev")

    def __init__(self, owner: Instance, wd: int, mask: int, inode: Inode, dev: int) -> None:
        self.owner, self.wd, self.mask, self.inode = owner, wd, mask, inode
        self.ino, self.dev = inode.ino, dev


class Instance:
    """One inotify instance's watches (by wd) and queue; `on_queue()` is called after
    each event queued (to wake its readers)."""

    def __init__(self, watches: Watches, on_queue: Callable[[], None]) -> None:
        self.registry = watches
        self.on_queue = on_queue
        self.watches: dict[int, Watch] = {}
        self.queue: deque[Event] = deque()
        self.last_wd = 0
        self.overflowed = False

    def queue_event(self, ev: Event) -> None:
        q = self.queue
        if self.overflowed:
            return
        if len(q) >= MAX_QUEUED_EVENTS:
            q.append((-1, IN_Q_OVERFLOW, 0, b""))
            self.overflowed = True
        elif q and q[-1] == ev and not q[-1][1] & IN_IGNORED:
            return
        else:
            q.append(ev)
        self.on_queue()

    def take(self) -> Event:
        ev = self.queue.popleft()
        if ev[1] & IN_Q_OVERFLOW:
            self.overflowed = False
        return ev

    def watch_of(self, inode: Inode) -> Watch | None:
        for w in self.registry.of(inode):
            if w.owner is self:
                return w
        return None

    def add(self, inode: Inode, mask: int, dev: int) -> int:
        """A new watch with the next wd (wds are never reused while the instance lives)."""
        self.last_wd += 1
        w = Watch(self, self.last_wd, mask, inode, dev)
        self.watches[w.wd] = w
        self.registry.add(w)
        return w.wd

    def remove(self, w: Watch) -> None:
        """End watch `w`: IN_IGNORED is queued for it."""
        if self.watches.pop(w.wd, None) is None:
            return
        self.registry.discard(w)
        self.queue_event((w.wd, IN_IGNORED, 0, b""))

    def close(self) -> None:
        for w in list(self.watches.values()):
            self.registry.discard(w)
        self.watches.clear()
        self.queue.clear()


class Watches:
    """Every watch of the sandbox, by inode. `event` is the hook of the VFS's `notifier`
    while any watch exists (so that a sandbox without watches pays nothing per write)."""

    def __init__(self, notifier: Notifier | None = None) -> None:
        self._by_inode: weakref.WeakKeyDictionary[Inode, list[Watch]] = (
            weakref.WeakKeyDictionary())
        self.notifier = notifier
        self.count = 0

    def of(self, inode: Inode) -> list[Watch]:
        return self._by_inode.get(inode, [])

    def add(self, w: Watch) -> None:
        self._by_inode.setdefault(w.inode, []).append(w)
        self.count += 1
        if self.notifier is not None:
            self.notifier.hook = self.event

    def discard(self, w: Watch) -> None:
        ws = self._by_inode.get(w.inode)
        if ws is not None and w in ws:
            ws.remove(w)
            if not ws:
                del self._by_inode[w.inode]
            self.count -= 1
            if not self.count and self.notifier is not None:
                self.notifier.hook = None

    def event(self, inode: Inode, mask: int, name: bytes, cookie: int) -> None:
        """The VFS says `mask` happened to `inode` (to its entry `name`, if a directory)."""
        ws = self._by_inode.get(inode)
        if not ws:
            return
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
            mask &= ~IN_ISDIR  # inotify never reported IN_ISDIR with these
        for w in list(ws):
            if mask & w.mask & IN_ALL_EVENTS or mask & (IN_UNMOUNT | IN_IGNORED):
                w.owner.queue_event((w.wd, mask, cookie, name))
                if w.mask & IN_ONESHOT:
                    w.owner.remove(w)
            if mask & IN_DELETE_SELF:
                w.owner.remove(w)
