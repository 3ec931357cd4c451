"""The dentry fids of one goferfs: walked lazily, bounded by an LRU, pinned for removed
files that are still open.

Why a bound: the server limits fids per connection, and `find /` would otherwise pin one
per directory; the least recently used are clunked and walked again when needed. Why pins:
once a name is removed it must never be walked again (it may name another file by then), so
a removed file's fid is its only way back while a dentry still refers to it (an open fd, a
cwd): fchmod or fstat on an open unlinked file.
"""

from __future__ import annotations

import errno
import weakref
from collections import OrderedDict

import p9

from ...dentry import Dentry
from ...errors import error
from .inode import GoferInode, inode_of

#: Dentry fids kept for later operations (more are walked again on demand).
MAX_CACHED_FIDS = 512
#: Names one Twalk (and one Tmultigetattr) may carry.
MAX_WALK_NAMES = 16


class Fids:
    """The fid of each dentry that has one. The root's is never dropped.

    Attributes:
        limit: at most this many dentry fids are kept (least recently used clunked first).
    """

    def __init__(self, root: Dentry) -> None:
        self.root = root
        self.limit = MAX_CACHED_FIDS
        self._lru: OrderedDict[int, GoferInode] = OrderedDict()
        self._pinned: set[GoferInode] = set()
        self._unpin: list[GoferInode] = []

    @property
    def client(self) -> p9.Client:
        fid = inode_of(self.root).fid
        assert fid is not None  # (the root keeps its fid until release)
        return fid.client

    async def get(self, d: Dentry) -> p9.Fid:
        """The fid of `d`, walked (in one Twalk) from the nearest ancestor that has one."""
        if self._unpin:
            await self.drain_unpinned()
        ino = inode_of(d)
        fid = ino.fid
        if fid is not None:
            if id(ino) in self._lru:  # (the root and pinned inodes are not in it)
                self._lru.move_to_end(id(ino))
            return fid
        if d.dead:
            # Its name may belong to another file now: never walk it again.
            raise error(errno.ESTALE, d.name)
        anc, path = _below_holder(d)
        return await self.adopt(ino, await anc.walk([c.name for c in path]))

    async def adopt(self, ino: GoferInode, fid: p9.Fid) -> p9.Fid:
        """Make `fid` the dentry fid of `ino` (under the LRU bound), unless another task
        gave it one meanwhile: then `fid` is clunked and that one is returned."""
        if ino.fid is not None:
            await fid.clunk()
            return ino.fid
        ino.fid = fid
        self._lru[id(ino)] = ino
        while len(self._lru) > self.limit:
            _, old = self._lru.popitem(last=False)
            if old.fid is not None:
                f, old.fid = old.fid, None
                await f.clunk()
        return fid

    async def replace(self, ino: GoferInode, fid: p9.Fid) -> None:
        """Make `fid` the dentry fid of `ino`, clunking the one it had (a create walks
        the new file's fid in the same round trip as its attributes)."""
        if ino.fid is not None and ino.fid is not fid:
            await ino.fid.clunk()
        ino.fid = fid
        self._lru[id(ino)] = ino

    def base(self, d: Dentry) -> tuple[p9.Fid, list[bytes]] | None:
        """The nearest ancestor-or-self of `d` holding a fid and the names from it to `d`,
        so a lookup below a fid-less directory is sent from there in the same message
        instead of walking the directory's fid first (one round trip less). None when
        that cannot be one message (a plain server's multi-getattr walks per prefix; more
        than 16 names; a removed directory): then `get(d)` is used."""
        ino = inode_of(d)
        if ino.fid is not None:
            if id(ino) in self._lru:
                self._lru.move_to_end(id(ino))
            return ino.fid, []
        if d.dead or self._unpin or not self.client.dialect.multigetattr:
            return None
        anc, path = _below_holder(d)
        if len(path) >= MAX_WALK_NAMES or any(c.dead for c in path):
            return None
        return anc, [c.name for c in path]

    def io_base(self, d: Dentry) -> tuple[p9.Fid, list[bytes]]:
        """Where a fresh fid for `d` is walked from: its own fid (no names), or the nearest
        ancestor holding one and the names from there (without caching a dentry fid).

        Raises:
            OSError(ESTALE): `d` was removed and has no fid (its name is never walked again).
        """
        ino = inode_of(d)
        if ino.fid is not None:
            return ino.fid, []
        if d.dead:
            raise error(errno.ESTALE, d.name)
        anc, path = _below_holder(d)
        return anc, [c.name for c in path]

    async def new(self, d: Dentry) -> p9.Fid:
        """A fresh fid for `d` that the caller owns (for I/O): a clone of its fid, or one
        Twalk from the nearest ancestor holding one (`io_base`)."""
        fid, names = self.io_base(d)
        return await fid.walk(names)

    async def take_for_io(self, d: Dentry) -> p9.Fid:
        """An unopened fid for opening the regular file `d`: its dentry fid if it holds
        one from the lookup (no Twalk; the dentry walks a new one lazily if it needs one
        again), else a new one (`new`). Removed files keep theirs (pinned)."""
        ino = inode_of(d)
        fid = ino.fid
        if fid is not None and not d.dead and self._lru.pop(id(ino), None) is not None:
            ino.fid = None
            return fid
        return await self.new(d)

    async def keep_reachable(self, d: Dentry) -> None:
        """Before removing an open file's name, give it a fid: afterwards the name may
        not be walked again, and fchmod/fstat on the open file still need one."""
        ino = inode_of(d)
        if ino.fid is None and ino.opens:
            await self.get(d)

    def pin(self, d: Dentry) -> None:
        """A removed file keeps its fid (if it has one) while its dentry is referenced
        (an open fd, a cwd): it is then the only way to reach it (fchmod on an open
        unlinked file). When the dentry goes away the fid is clunked at the next call."""
        ino = inode_of(d)
        if ino.fid is None or ino is self.root.inode:
            return
        self._lru.pop(id(ino), None)
        self._pinned.add(ino)
        weakref.finalize(d, self._unpin.append, ino)

    async def drain_unpinned(self) -> None:
        """Clunk the fids of removed files no dentry refers to any more."""
        while self._unpin:
            ino = self._unpin.pop()
            self._pinned.discard(ino)
            if ino.nlink == 0 and ino.fid is not None:
                f, ino.fid = ino.fid, None
                await f.clunk()
            elif ino.fid is not None:
                self._lru[id(ino)] = ino  # still linked elsewhere: back under the LRU

    async def forget(self, d: Dentry) -> None:
        """Drop the fids of a renamed subtree: path-based servers (diod) keep resolving a
        fid by the path it was walked with, so they are walked again by the new path."""
        todo = [d]
        while todo:
            x = todo.pop()
            todo.extend(x.children.values())
            ino = inode_of(x)
            if ino.fid is not None:
                fid, ino.fid = ino.fid, None
                await fid.clunk()

    async def release(self) -> None:
        """Clunk every fid (the filesystem's release; the client stays open)."""
        for ino in list(self._pinned):
            if ino.fid is not None:
                f, ino.fid = ino.fid, None
                await f.clunk()
        self._pinned.clear()
        self._unpin.clear()
        await self.forget(self.root)


def _below_holder(d: Dentry) -> tuple[p9.Fid, list[Dentry]]:
    """The fid of the nearest proper ancestor of `d` that holds one, and the dentries from
    just below it down to `d` (their names are the walk from that fid to `d`)."""
    path = [d]
    anc = d.parent
    while (fid := inode_of(anc).fid) is None:
        path.append(anc)
        anc = anc.parent
    path.reverse()
    return fid, path
