"""A bound on the dentries a caching filesystem keeps (goferfs, the overlay).

Why: a filesystem whose dentries only mirror another's (a 9P server's, an overlay's layers)
would otherwise keep one per name ever looked up, so `find /` grows the Sentry without
bound. Past `limit`, the least recently used leaf dentries the filesystem says it can
rebuild are detached from their parents (CLOCK's approximation of LRU: a lookup that finds
a dentry sets its `hot` bit, and the sweep gives such a dentry a second chance). A detached dentry that something still holds
(an open file, a cwd, a mount, a layer above) is kept in a weak table and put back, the
same object, when its name is looked up again, so no two dentries ever stand for one name;
one nobody holds is freed, and a later lookup builds it again from the source, with the
inode it had if something still holds that (an inotify watch is on the inode: its events
must keep coming from the rebuilt dentry).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable

from .dentry import Dentry, Inode

#: Dentries kept by default per filesystem before the least recently used leaves go.
DENTRY_LIMIT = 20_000


class DentryCache:
    """The LRU of one filesystem's rebuildable dentries, and the detached ones still held.

    Args:
        evictable: whether a leaf dentry may be detached now (the filesystem's own state:
            no open file, no dirty data, not a node only the sandbox knows ...).
    """

    def __init__(self, evictable: Callable[[Dentry], bool], limit: int = DENTRY_LIMIT) -> None:
        self._limit = limit
        self._evictable = evictable
        # Weak: a dentry removed from the tree (unlinked, replaced) goes when nobody holds it.
        self._lru: OrderedDict[int, weakref.ref[Dentry]] = OrderedDict()
        # The size that starts the next trim: a trim goes down to 90% of the bound, or,
        # when too many cannot go, waits for a tenth of the bound more (amortised O(1)).
        self._next = limit
        # (id(parent), name) -> a detached dentry something still holds; the child holds
        # its parent, so the parent's id cannot be reused while the entry lives.
        self._detached: weakref.WeakValueDictionary[tuple[int, bytes], Dentry] = \
            weakref.WeakValueDictionary()
        # (the parent's inode number, name) -> the inode of a detached dentry, while
        # something holds the inode itself (an inotify watch, a page cache): the
        # filesystem gives it to the dentry it builds for the same file again.
        self._orphans: weakref.WeakValueDictionary[tuple[int, bytes], Inode] = \
            weakref.WeakValueDictionary()

    @property
    def limit(self) -> int:
        """How many dentries are kept before the least recently used leaves go."""
        return self._limit

    @limit.setter
    def limit(self, n: int) -> None:
        self._limit = self._next = n

    def __len__(self) -> int:
        return len(self._lru)

    def added(self, d: Dentry) -> None:
        """`d` was just put in its parent's children by a lookup; trim past the bound.
        (A lookup that finds `d` cached sets `d.hot`.)"""
        self._lru[id(d)] = weakref.ref(d)
        if len(self._lru) > self._next:
            self._trim()

    def revive(self, parent: Dentry, name: bytes) -> Dentry | None:
        """The detached dentry of `name` in `parent` if something still holds it: put
        back in `parent.children` (and the LRU), so a lookup finds the same object."""
        if not self._detached:
            return None
        d = self._detached.pop((id(parent), name), None)
        if d is None or d.dead or d.parent is not parent or d.name != name \
                or name in parent.children:
            return None
        parent.children[name] = d
        self._lru[id(d)] = weakref.ref(d)
        return d

    def detach(self, d: Dentry) -> None:
        """Take `d` out of its parent's children (the bound's choice, or the filesystem's
        own): a lookup of its name revives it while it is held, and its inode while that
        is held (`orphan`)."""
        parent = d.parent
        del parent.children[d.name]
        self._detached[(id(parent), d.name)] = d
        self._orphans[(parent.inode.ino, d.name)] = d.inode

    def orphan(self, parent: Dentry, name: bytes) -> Inode | None:
        """The inode the detached dentry of `name` in `parent` had, if it is still alive
        though that dentry is gone (the caller checks it is the same file)."""
        if not self._orphans:
            return None
        return self._orphans.pop((parent.inode.ino, name), None)

    def _trim(self) -> None:
        """Detach least recently used leaves down to 90% of the bound; dentries that cannot
        go now (a directory with children, an open file) move to the young end, each
        looked at once per trim."""
        lru = self._lru
        goal = self.limit * 9 // 10
        for _ in range(len(lru)):
            if len(lru) <= goal:
                break
            key, ref = lru.popitem(last=False)
            d = ref()
            if d is None:
                continue
            parent = d.parent
            if parent is d or parent.children.get(d.name) is not d:
                continue  # removed, renamed away or replaced meanwhile: not ours to keep
            if d.hot or d.children or d.mounted or not self._evictable(d):
                d.hot = False  # (found by a lookup since the last sweep: a second chance)
                lru[key] = ref
                continue
            self.detach(d)
        self._next = max(self.limit, len(lru) + self.limit // 10)
