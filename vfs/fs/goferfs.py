"""goferfs: files served by a Gofer over 9P2000.L (the `p9` client).

Why caches, and two policies: every round trip to the gofer costs far more than the
syscall that caused it, so dentries, attributes, symlink targets and file pages are kept
here. When the sandbox has the tree to itself (`policy="exclusive"`, the default for a
sandbox root) nothing else changes the files, so the caches are trusted: attributes and
names are fetched once, file data is read once and written back at fsync/close. When other
users may change the files (`policy="shared"`), every lookup and stat asks the server
again and file data is read and written through, uncached.

Lookups are batched: `lookup(parent, [a, b, c])` resolves the uncached part of the run with
one Tmultigetattr (a walk per prefix on servers without it), so a path costs one round trip
however deep it is. A dentry gets a fid only when an operation needs one (walked lazily
from its parent's), so a long lookup does not pin a fid per component.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import time
import weakref
from collections import OrderedDict
from typing import Any

import trio

import p9

from ..abi import (
    DT_UNKNOWN,
    O_ACCMODE,
    O_APPEND,
    O_DIRECTORY,
    O_RDONLY,
    O_WRONLY,
    RENAME_EXCHANGE,
    S_IFMT,
    S_IFREG,
    V9FS_MAGIC,
    Stat,
    StatFS,
)
from ..creds import Credentials
from ..dentry import Dentry, Inode, now_ns
from ..errors import error
from ..file import DirectoryFD, FileDescription, RegularFD
from ..filesystem import Filesystem
from ..perm import mode_after_write

CHUNK = 64 * 1024
#: Shared policy: how long the answer of a batched lookup may serve the same path
#: resolution (its last-component lookup and the stat after it); then it is asked again.
FRESH_SECONDS = 0.002
#: Pages read ahead after a miss (1 MiB), in one pipelined read.
READ_AHEAD = 16
#: Clean pages kept per filesystem before the oldest are dropped (dirty ones stay).
PAGE_CACHE_BYTES = 256 << 20
#: Dirty bytes per file that trigger write-back before fsync/close.
DIRTY_LIMIT = 32 << 20
#: Dentry fids kept for later operations (more are walked again on demand).
MAX_CACHED_FIDS = 512
#: Exclusive policy: after a directory was listed, the first lookup (or xattr probe) of
#: one of its entries fetches this many entries' attributes (xattr names) in one pipelined
#: batch, as NFS's readdirplus does: `ls -l`, `cp -r`, `diff -r` then ask per entry.
PREFETCH = 128
#: Small files of a listed directory read together once a second one is opened.
PREFETCH_FILES = 64
_ALL = int(p9.GetattrMask.ALL)
#: xattr namespaces whose existing names listxattr always reports (so an unlisted name is
#: ENODATA without asking); other system.* names are always asked for.
_LISTED_XATTRS = (b"user.", b"trusted.", b"security.")
_LISTED_SYSTEM_XATTRS = frozenset((b"system.posix_acl_access", b"system.posix_acl_default"))
_NS = 1_000_000_000


def _mutation(fn: Any) -> Any:
    """A namespace change: bump the generation before and after, and shield it from
    cancellation (like most Linux filesystem operations it is not interruptible), so the
    server and the dentry cache never disagree because a signal arrived mid-way."""

    @functools.wraps(fn)
    async def wrapper(self: GoferFS, *args: Any, **kwargs: Any) -> Any:
        self.generation += 1
        self._fresh_uses = 0
        try:
            with trio.CancelScope(shield=True):
                return await fn(self, *args, **kwargs)
        finally:
            self.generation += 1

    return wrapper


class GoferInode(Inode):
    """Cached attributes of a remote file, its fid (lazily walked) and its page cache."""

    __slots__ = ("fid", "target", "pages", "dirty", "server_size", "opens", "xattrs", "xnames",
                 "read_ok")

    def __init__(self, st: p9.Stat) -> None:
        super().__init__(st.qid.path, 0)
        self.fid: p9.Fid | None = None
        self.target: bytes | None = None
        self.pages: dict[int, bytearray] = {}
        self.dirty: set[int] = set()
        self.opens = 0
        # The server opened it for reading once: a later read-only open whose pages are
        # all cached needs no I/O fid (exclusive policy).
        self.read_ok = False
        # exclusive policy: xattr values by name (None: known absent, ENODATA), and the
        # server's list of names (False: the server cannot list them), both dropped by any
        # change that may alter xattrs (chmod rewrites an ACL, chown/write drop capabilities).
        self.xattrs: dict[bytes, bytes | None] | None = None
        self.xnames: frozenset[bytes] | bool | None = None
        self.update(st)

    def drop_xattrs(self) -> None:
        """Forget cached xattrs (after a change the server may have applied to them)."""
        self.xattrs = None
        self.xnames = None

    def update(self, st: p9.Stat) -> None:
        a = st.attr
        self.ino = st.qid.path
        self.mode = a.mode
        self.uid = a.uid
        self.gid = a.gid
        self.nlink = a.nlink
        self.rdev = a.rdev
        if not self.dirty:
            self.size = a.size
        self.server_size = a.size
        self.blocks = a.blocks
        self.atime_ns = a.atime_sec * _NS + a.atime_nsec
        self.mtime_ns = a.mtime_sec * _NS + a.mtime_nsec
        self.ctime_ns = a.ctime_sec * _NS + a.ctime_nsec
        self.btime_ns = a.btime_sec * _NS + a.btime_nsec if st.valid & 0x800 else None


class GoferFS(Filesystem):
    """A filesystem over one attached 9P tree.

    Args:
        root: the fid `client.attach(...)` returned (this filesystem owns it from now on).
        root_stat: its attributes.
        policy: "exclusive" (trust caches) or "shared" (revalidate, no data cache).
        owner_uid: the uid the server creates files as (the attaching user); files made for
            anyone else get a Tsetattr afterwards.
    """

    fstype = "9p"
    magic = V9FS_MAGIC
    remote = True

    def __init__(self, root: p9.Fid, root_stat: p9.Stat, *, policy: str = "exclusive",
                 owner_uid: int = 0) -> None:
        super().__init__()
        if policy not in ("exclusive", "shared"):
            raise ValueError(f"policy must be 'exclusive' or 'shared', not {policy!r}")
        self.policy = policy
        self.exclusive = policy == "exclusive"
        self.owner_uid = owner_uid
        ino = GoferInode(root_stat)
        ino.fid = root
        self.root = Dentry(self, b"/", None, ino)
        # Bumped by every namespace change; a lookup whose reply crossed a change is
        # retried, so a stale reply never overwrites what the change put in the cache.
        self.generation = 0
        # exclusive policy: names known not to exist, per directory (negative dentries);
        # dynamic linkers and PATH searches probe many of them.
        self._neg: weakref.WeakKeyDictionary[Dentry, set[bytes]] = weakref.WeakKeyDictionary()
        # shared policy: the last answer of a batched lookup, usable twice (by the
        # resolver's lookup of the last component and the stat that follows), then stale.
        self._fresh_key: tuple[Dentry, bytes] | None = None
        self._fresh_child: Dentry | None = None
        self._fresh_uses = 0
        self._fresh_at = 0.0
        self._lru: OrderedDict[tuple[int, int], tuple[GoferInode, int]] = OrderedDict()
        self._lru_bytes = 0
        self.page_cache_bytes = PAGE_CACHE_BYTES
        self.dirty_limit = DIRTY_LIMIT
        self._fid_lru: OrderedDict[int, GoferInode] = OrderedDict()
        self._pinned: set[GoferInode] = set()
        self._unpin: list[GoferInode] = []
        self.max_cached_fids = MAX_CACHED_FIDS
        # exclusive policy: names a readdir returned whose attributes were not fetched yet
        # (in listing order), and listed directories whose entries' xattr names may be
        # fetched together.
        self._listed: weakref.WeakKeyDictionary[Dentry, dict[bytes, None]] = \
            weakref.WeakKeyDictionary()
        self._xscan: weakref.WeakSet[Dentry] = weakref.WeakSet()
        # exclusive policy: files opened (uncached) per listed directory; from the second
        # one on, small siblings are read together (`cp -r`, `diff -r`, `grep -r`).
        self._opens_in: weakref.WeakKeyDictionary[Dentry, int] = weakref.WeakKeyDictionary()

    @classmethod
    async def attach(cls, client: p9.Client, aname: bytes = b"", *, policy: str = "exclusive",
                     uname: bytes = b"root", n_uname: int = 0) -> GoferFS:
        """Attach to `aname` on a connected client and build the filesystem."""
        root = await client.attach(aname, uname=uname, n_uname=n_uname)
        st = await root.getattr(_ALL)
        return cls(root, st, policy=policy, owner_uid=n_uname)

    def _touch(self, ino: GoferInode, idx: int) -> None:
        """Note a page use; drop the least recently used clean pages past the limit.

        A page counts the bytes it held when cached (a small file's only page is short),
        so thousands of small files do not evict each other (`cp -r` then `diff -r`)."""
        key = (id(ino), idx)
        lru = self._lru
        if key in lru:
            lru.move_to_end(key)
            return
        page = ino.pages.get(idx)
        n = max(len(page) if page is not None else CHUNK, 4096)
        lru[key] = (ino, n)
        self._lru_bytes += n
        while self._lru_bytes > self.page_cache_bytes and lru:
            (_, old_idx), (old, old_n) = lru.popitem(last=False)
            if old_idx in old.dirty:
                lru[(id(old), old_idx)] = (old, old_n)  # written back first, evicted later
                break
            self._lru_bytes -= old_n
            old.pages.pop(old_idx, None)

    # -- fids and attributes -------------------------------------------------------------------

    async def _fid(self, d: Dentry) -> p9.Fid:
        """The fid of `d`, walked (in one Twalk) from the nearest ancestor that has one.

        At most `max_cached_fids` dentry fids are kept (the server bounds fids per
        connection, and `find /` would otherwise pin one per directory); the least
        recently used are clunked and walked again when needed.
        """
        if self._unpin:
            await self._drain_unpinned()
        ino: GoferInode = d.inode  # type: ignore[assignment]
        lru = self._fid_lru
        fid = ino.fid
        if fid is not None:
            if id(ino) in lru:  # (the root and pinned inodes are not in it)
                lru.move_to_end(id(ino))
            return fid
        if d.dead:
            # Its name may belong to another file now: never walk it again.
            raise error(errno.ESTALE, d.name)
        anc, path = _below_holder(d)
        fid = await anc.inode.fid.walk([c.name for c in path])  # type: ignore[attr-defined]
        return await self._adopt(ino, fid)

    async def _adopt(self, ino: GoferInode, fid: p9.Fid) -> p9.Fid:
        """Make `fid` the dentry fid of `ino` (under the LRU bound), unless another task
        gave it one meanwhile: then `fid` is clunked and that one is returned."""
        if ino.fid is not None:
            await fid.clunk()
            return ino.fid
        ino.fid = fid
        lru = self._fid_lru
        lru[id(ino)] = ino
        while len(lru) > self.max_cached_fids:
            _, old = lru.popitem(last=False)
            if old.fid is not None:
                f, old.fid = old.fid, None
                await f.clunk()
        return fid

    def _base(self, d: Dentry) -> tuple[p9.Fid, list[bytes]] | None:
        """The nearest ancestor-or-self of `d` holding a fid and the names from it to `d`,
        so a lookup below a fid-less directory is sent from there in the same message
        instead of walking the directory's fid first (one round trip less). None when
        that cannot be one message (a plain server's multi-getattr walks per prefix; more
        than 16 names; a removed directory): then `_fid(d)` is used."""
        ino: GoferInode = d.inode  # type: ignore[assignment]
        if ino.fid is not None:
            if id(ino) in self._fid_lru:
                self._fid_lru.move_to_end(id(ino))
            return ino.fid, []
        if d.dead or self._unpin or not self.root.inode.fid.client.dialect.multigetattr:  # type: ignore[attr-defined]
            return None
        anc, path = _below_holder(d)
        if len(path) >= 16 or any(c.dead for c in path):
            return None
        return anc.inode.fid, [c.name for c in path]  # type: ignore[attr-defined]

    def _child(self, parent: Dentry, name: bytes, st: p9.Stat) -> Dentry:
        old = parent.children.get(name)
        if old is not None and old.inode.ino == st.qid.path:
            old.inode.update(st)  # type: ignore[attr-defined]
            return old
        if old is not None:
            old.dead = True
        d = Dentry(self, name, parent, GoferInode(st))
        parent.children[name] = d
        self._positive(parent, name)
        return d

    async def _keep_reachable(self, d: Dentry) -> None:
        """Before removing an open file's name, give it a fid: afterwards the name may
        not be walked again, and fchmod/fstat on the open file still need one."""
        ino: GoferInode = d.inode  # type: ignore[assignment]
        if ino.fid is None and ino.opens:
            await self._fid(d)

    def _pin(self, d: Dentry) -> None:
        """A removed file keeps its fid (if it has one) while its dentry is referenced
        (an open fd, a cwd): it is then the only way to reach it (fchmod on an open
        unlinked file). When the dentry goes away the fid is clunked at the next call."""
        ino: GoferInode = d.inode  # type: ignore[assignment]
        if ino.fid is None or ino is self.root.inode:
            return
        self._fid_lru.pop(id(ino), None)
        self._pinned.add(ino)
        weakref.finalize(d, self._unpin_later, ino)

    def _unpin_later(self, ino: GoferInode) -> None:
        self._unpin.append(ino)

    async def _drain_unpinned(self) -> None:
        while self._unpin:
            ino = self._unpin.pop()
            self._pinned.discard(ino)
            if ino.nlink == 0 and ino.fid is not None:
                f, ino.fid = ino.fid, None
                await f.clunk()
            elif ino.fid is not None:
                self._fid_lru[id(ino)] = ino  # still linked elsewhere: back under the LRU

    def _positive(self, parent: Dentry, name: bytes) -> None:
        neg = self._neg.get(parent)
        if neg:
            neg.discard(name)

    def _negative(self, parent: Dentry, name: bytes) -> None:
        if self.exclusive:
            neg = self._neg.get(parent)
            if neg is None:
                neg = self._neg[parent] = set()
            if len(neg) < 4096:
                neg.add(name)

    async def lookup(self, parent: Dentry, names: list[bytes]) -> list[Dentry]:
        out: list[Dentry] = []
        d = parent
        i = 0
        if self.exclusive:
            while i < len(names):
                child = d.children.get(names[i])
                if child is None:
                    neg = self._neg.get(d)
                    if neg and names[i] in neg:
                        return out
                    if d in self._listed and await self._prefetch(d, names[i]):
                        continue
                    break
                out.append(child)
                i += 1
                if not child.inode.is_dir:
                    return out
                d = child
        elif (len(names) == 1 and self._fresh_uses and self._fresh_key == (parent, names[0])
              and time.monotonic() - self._fresh_at < FRESH_SECONDS):
            # shared policy: the resolver prefetched this very name a moment ago, in the
            # same resolution; use that answer once instead of asking again.
            self._fresh_uses -= 1
            child = self._fresh_child
            return [child] if child is not None else []
        if i == len(names):
            return out
        run = names[i:]
        while True:
            gen = self.generation
            base = self._base(d)
            fid, prefix = base if base is not None else (await self._fid(d), [])
            leaf: p9.Fid | None = None
            try:
                if len(run) == 1 and fid.client.dialect.walkgetattr:
                    # One name: walk it too (same round trip), so the readlink, open or
                    # lookup below it that usually follows needs no Twalk of its own.
                    leaf, st = await fid.walk_getattr(prefix + run, _ALL)
                    stats = [st]
                else:
                    stats, leaf = await self._getattrs_and_walk(fid, prefix + run)
                    if len(stats) < len(prefix):  # (the directory itself is gone)
                        raise error(errno.ENOENT, d.name)
                    stats = stats[len(prefix):]
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                    raise
                stats = []
            if gen == self.generation and not d.dead:
                if len(stats) == len(run):
                    break
            if leaf is not None:
                await leaf.clunk()
                leaf = None
            if gen == self.generation and not d.dead:
                break
            if d.dead:
                return out
        for st in stats:
            child = self._child(d, names[i], st)
            out.append(child)
            i += 1
            if leaf is not None and i == len(names):
                await self._adopt(child.inode, leaf)  # type: ignore[arg-type]
                leaf = None
            if not child.inode.is_dir or i == len(names):
                if leaf is not None:  # (the walk cannot have passed a non-directory)
                    await leaf.clunk()
                if i == len(names) and len(names) > 1 and not self.exclusive:
                    self._fresh_key = (d, names[-1])
                    self._fresh_child = child
                    self._fresh_uses = 2
                    self._fresh_at = time.monotonic()
                return out
            d = child
        if i < len(names):
            if i == len(names) - 1 and len(names) > 1 and not self.exclusive:
                self._fresh_key = (d, names[-1])
                self._fresh_child = None
                self._fresh_uses = 1
                self._fresh_at = time.monotonic()
            gone = d.children.pop(names[i], None)
            if gone is not None:
                gone.dead = True
            self._negative(d, names[i])
        return out

    async def _getattrs_and_walk(self, fid: p9.Fid,
                                 path: list[bytes]) -> tuple[list[p9.Stat], p9.Fid | None]:
        """Tmultigetattr of `path` and, in the same round trip, a Twalk to its last name:
        the fid the open or readlink that usually follows a lookup needs. The walk is
        left out where it would cost a round trip of its own (a plain server, which
        answers the multi-getattr with walks; more than 16 names)."""
        if not fid.client.dialect.multigetattr or len(path) > 16:
            return await fid.multi_getattr(path), None
        got: list[p9.Fid] = []

        async def walk() -> None:
            with contextlib.suppress(OSError):  # (missing: the multi-getattr says so)
                got.append(await fid.walk(path))

        err: OSError | None = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(walk)
                try:
                    stats = await fid.multi_getattr(path)
                except OSError as e:
                    err = e  # (the walk finishes on its own: no Tflush)
        except BaseException:
            for f in got:
                await f.clunk()
            raise
        if err is not None:
            for f in got:
                await f.clunk()
            raise err
        return stats, got[0] if got else None

    def _note_listing(self, d: Dentry, cookie: int, names: list[bytes]) -> None:
        """exclusive: remember what a readdir of `d` returned, for `_prefetch`."""
        listed = self._listed.get(d) if cookie else None
        if listed is None:
            listed = self._listed[d] = {}
            self._xscan.add(d)
        kids = d.children
        for n in names:
            if n not in kids and n != b"." and n != b"..":
                listed[n] = None

    async def _prefetch(self, d: Dentry, name: bytes) -> bool:
        """exclusive: `name` was listed in `d`: fetch its attributes and those of up to
        PREFETCH - 1 more listed, unlooked-up entries in one pipelined batch. Whether
        `name` is now cached (False: look it up alone)."""
        listed = self._listed.get(d)
        if not listed or name not in listed:
            return False
        kids = d.children
        neg = self._neg.get(d) or ()
        batch = [name]
        del listed[name]
        for n in list(listed):
            if len(batch) >= PREFETCH:
                break
            del listed[n]
            if n not in kids and n not in neg:
                batch.append(n)
        if not listed:
            self._listed.pop(d, None)
        gen = self.generation
        fid = await self._fid(d)
        client = fid.client
        if not client.dialect.multigetattr:
            return False
        try:
            replies = await client.rpc_many(
                [p9.Tmultigetattr(fid.fid, (n,)) for n in batch], window=PREFETCH)
        except OSError:
            return False  # (an entry vanished meanwhile): each is looked up alone
        if gen != self.generation or d.dead:
            return False
        for n, r in zip(batch, replies, strict=True):
            if r.stats and n not in kids:
                st = r.stats[0]
                self._child(d, n, p9.Stat(st.qid, st.valid, st.attr))
        return name in kids

    async def _refresh(self, d: Dentry) -> None:
        fid = await self._fid(d)
        d.inode.update(await fid.getattr(_ALL))  # type: ignore[attr-defined]

    async def stat(self, d: Dentry) -> Stat:
        if not self.exclusive and not d.dead:
            if (self._fresh_uses and self._fresh_child is d
                    and time.monotonic() - self._fresh_at < FRESH_SECONDS):
                self._fresh_uses -= 1
            else:
                await self._refresh(d)
        return d.inode.to_stat(self.dev)

    async def setattr(self, d: Dentry, *, mode: int | None = None, uid: int | None = None,
                      gid: int | None = None, size: int | None = None,
                      atime_ns: int | None = None, mtime_ns: int | None = None,
                      ctime_ns: int | None = None) -> None:
        ino: GoferInode = d.inode  # type: ignore[assignment]
        fid = await self._fid(d)
        if size is not None:
            await self._writeback(ino, None, d)
        if mode is not None or uid is not None or gid is not None or size is not None:
            ino.drop_xattrs()  # chmod rewrites an ACL; chown and truncate drop capabilities
        try:
            await fid.setattr(mode=None if mode is None else mode & 0o7777, uid=uid, gid=gid,
                              size=size, atime=atime_ns, mtime=mtime_ns,
                              ctime=ctime_ns is not None)
        finally:
            if mode is not None or uid is not None or gid is not None or size is not None:
                ino.drop_xattrs()
        if size is not None:
            _truncate_pages(ino, size)
        await self._refresh(d)

    async def readlink(self, d: Dentry) -> bytes:
        ino: GoferInode = d.inode  # type: ignore[assignment]
        if not ino.is_symlink:
            raise error(errno.EINVAL)
        if ino.target is None or not self.exclusive:
            if (self.exclusive and ino.fid is None and d.parent is not None
                    and d.parent in self._xscan and await self._prefetch_targets(d)
                    and ino.target is not None):
                return ino.target
            ino.target = await (await self._fid(d)).readlink()
        return ino.target

    async def _prefetch_targets(self, d: Dentry) -> bool:
        """exclusive: read the target of the symlink `d` of a listed directory together
        with those of up to PREFETCH - 1 looked-up sibling symlinks (`ls -l /usr/bin`
        reads every one): a pipelined batch of walks, one of Treadlink, then clunks,
        instead of a Twalk and a Treadlink each. False: nothing batched (read it alone)."""
        p = d.parent
        todo = [d]
        for c in p.children.values():
            if len(todo) >= PREFETCH:
                break
            ci: GoferInode = c.inode  # type: ignore[assignment]
            if c is not d and ci.is_symlink and ci.target is None and not c.dead:
                todo.append(c)
        if len(todo) < 2:
            return False
        gen = self.generation
        pfid = await self._fid(p)
        got = await self._sibling_batch(pfid, todo, p9.Treadlink)
        if got is None:
            return False  # (an entry vanished meanwhile): each is read alone
        replies, _ = got
        if gen != self.generation:
            return False  # a rename crossed the walks: they may have named other files
        for c, r in zip(todo, replies, strict=True):
            ci = c.inode  # type: ignore[assignment]
            if ci.target is None and not c.dead:
                ci.target = r.target
        return True

    async def statfs(self) -> StatFS:
        r = await (await self._fid(self.root)).statfs()
        return StatFS(type=V9FS_MAGIC, bsize=r.bsize, blocks=r.blocks, bfree=r.bfree,
                      bavail=r.bavail, files=r.files, ffree=r.ffree, fsid=r.fsid,
                      namelen=r.namelen, frsize=r.bsize)

    # -- namespace changes ---------------------------------------------------------------------

    async def _made(self, parent: Dentry, name: bytes, mode: int, uid: int) -> Dentry:
        """After a create: fetch the new file's attributes and fix what the server's
        umask or creating user changed."""
        pf = await self._fid(parent)
        fid, st = await pf.walk_getattr([name], _ALL)
        d = self._child(parent, name, st)
        ino: GoferInode = d.inode  # type: ignore[assignment]
        if ino.fid is not None and ino.fid is not fid:
            await ino.fid.clunk()
        ino.fid = fid
        self._fid_lru[id(ino)] = ino
        fix_mode = (st.attr.mode & 0o7777) != (mode & 0o7777) and not ino.is_symlink
        if uid != st.attr.uid or fix_mode:
            await fid.setattr(uid=uid if uid != st.attr.uid else None,
                              mode=mode & 0o7777 if fix_mode else None)
            await self._refresh(d)
        self._touch_dir(parent)
        return d

    def _touch_dir(self, parent: Dentry, nlink: int = 0) -> None:
        pi = parent.inode
        pi.nlink += nlink
        pi.mtime_ns = pi.ctime_ns = now_ns()

    @_mutation
    async def mknod(self, parent: Dentry, name: bytes, mode: int, rdev: int, uid: int,
                    gid: int) -> Dentry:
        pf = await self._fid(parent)
        if mode & S_IFMT == S_IFREG:
            tmp = await pf.walk([])
            try:
                await tmp.create(name, O_RDONLY, mode & 0o7777, gid)
            finally:
                await tmp.clunk()
        else:
            await pf.mknod(name, mode, os.major(rdev), os.minor(rdev), gid)
        return await self._made(parent, name, mode, uid)

    @_mutation
    async def mkdir(self, parent: Dentry, name: bytes, mode: int, uid: int, gid: int) -> Dentry:
        pf = await self._fid(parent)
        await pf.mkdir(name, mode & 0o7777, gid)
        d = await self._made(parent, name, mode, uid)
        self._touch_dir(parent, 1)
        return d

    @_mutation
    async def symlink(self, parent: Dentry, name: bytes, target: bytes, uid: int,
                      gid: int) -> Dentry:
        pf = await self._fid(parent)
        await pf.symlink(name, target, gid)
        d = await self._made(parent, name, 0o777, uid)
        d.inode.target = target  # type: ignore[attr-defined]
        return d

    @_mutation
    async def link(self, parent: Dentry, name: bytes, target: Dentry) -> Dentry:
        pf = await self._fid(parent)
        tf = await self._fid(target)
        await pf.link(tf, name)
        d = Dentry(self, name, parent, target.inode)
        parent.children[name] = d
        self._positive(parent, name)
        await self._refresh(target)
        self._touch_dir(parent)
        return d

    @_mutation
    async def unlink(self, parent: Dentry, child: Dentry) -> None:
        pf = await self._fid(parent)
        await self._keep_reachable(child)
        await pf.unlinkat(child.name, 0)
        self._pin(child)
        parent.children.pop(child.name, None)
        self._negative(parent, child.name)
        child.dead = True
        child.inode.nlink = max(0, child.inode.nlink - 1)
        child.inode.ctime_ns = now_ns()
        self._touch_dir(parent)

    @_mutation
    async def rmdir(self, parent: Dentry, child: Dentry) -> None:
        pf = await self._fid(parent)
        await pf.unlinkat(child.name, p9.AT_REMOVEDIR)
        self._pin(child)
        parent.children.pop(child.name, None)
        self._negative(parent, child.name)
        child.dead = True
        child.inode.nlink = 0
        self._touch_dir(parent, -1)

    @_mutation
    async def rename(self, old_parent: Dentry, child: Dentry, new_parent: Dentry,
                     new_name: bytes, replaced: Dentry | None, flags: int) -> None:
        of = await self._fid(old_parent)
        nf = await self._fid(new_parent)
        if flags & RENAME_EXCHANGE and replaced is not None:
            await self._exchange(old_parent, child, new_parent, replaced, of, nf)
            return
        old_name = child.name
        if replaced is not None:
            await self._keep_reachable(replaced)
        await of.renameat(old_name, nf, new_name)
        old_parent.children.pop(old_name, None)
        is_dir = child.inode.is_dir
        if replaced is not None:
            replaced.dead = True
            self._pin(replaced)
            new_parent.children.pop(new_name, None)
            if replaced.inode.is_dir:
                replaced.inode.nlink = 0
                self._touch_dir(new_parent, -1)
            else:
                replaced.inode.nlink = max(0, replaced.inode.nlink - 1)
        child.name = new_name
        child.parent = new_parent
        new_parent.children[new_name] = child
        self._positive(new_parent, new_name)
        self._negative(old_parent, old_name)
        child.inode.ctime_ns = now_ns()
        await self._forget_fids(child)
        self._touch_dir(old_parent, -1 if is_dir else 0)
        self._touch_dir(new_parent, 1 if is_dir else 0)

    async def _exchange(self, op: Dentry, a: Dentry, np: Dentry, b: Dentry, of: p9.Fid,
                        nf: p9.Fid) -> None:
        """RENAME_EXCHANGE: 9P2000.L has none, so three renames through a temporary name
        (not atomic for other users of the server; the sandbox sees the result only)."""
        tmp = b".runpsc-exchange-%s" % os.urandom(6).hex().encode()
        an, bn = a.name, b.name
        await of.renameat(an, of, tmp)
        try:
            await nf.renameat(bn, of, an)
        except BaseException:
            await of.renameat(tmp, of, an)
            raise
        await of.renameat(tmp, nf, bn)
        op.children.pop(an, None)
        np.children.pop(bn, None)
        a.name, a.parent = bn, np
        b.name, b.parent = an, op
        np.children[bn] = a
        op.children[an] = b
        await self._forget_fids(a)
        await self._forget_fids(b)
        if op is not np and a.inode.is_dir != b.inode.is_dir:
            delta = 1 if a.inode.is_dir else -1
            self._touch_dir(op, -delta)
            self._touch_dir(np, delta)

    async def _forget_fids(self, d: Dentry) -> None:
        """Drop the fids of a renamed subtree: path-based servers (diod) keep resolving a
        fid by the path it was walked with, so they are walked again by the new path."""
        todo = [d]
        while todo:
            x = todo.pop()
            todo.extend(x.children.values())
            ino: GoferInode = x.inode  # type: ignore[assignment]
            if ino.fid is not None:
                fid, ino.fid = ino.fid, None
                await fid.clunk()

    # -- open files ----------------------------------------------------------------------------

    async def _new_fid(self, d: Dentry) -> p9.Fid:
        """A fresh fid for `d` that the caller owns (for I/O): a clone of its fid, or one
        Twalk from the nearest ancestor holding one (without caching a dentry fid)."""
        ino: GoferInode = d.inode  # type: ignore[assignment]
        if ino.fid is not None:
            return await ino.fid.walk([])
        if d.dead:
            raise error(errno.ESTALE, d.name)
        anc, path = _below_holder(d)
        return await anc.inode.fid.walk([c.name for c in path])  # type: ignore[attr-defined]

    async def _io_fid(self, d: Dentry) -> p9.Fid:
        """An unopened fid for opening the regular file `d`: its dentry fid if it holds
        one from the lookup (no Twalk; the dentry walks a new one lazily if it needs one
        again), else a new one (`_new_fid`). Removed files keep theirs (pinned)."""
        ino: GoferInode = d.inode  # type: ignore[assignment]
        fid = ino.fid
        if fid is not None and not d.dead and self._fid_lru.pop(id(ino), None) is not None:
            ino.fid = None
            return fid
        return await self._new_fid(d)

    def _all_cached(self, ino: GoferInode) -> bool:
        pages = ino.pages
        return all(i in pages for i in range(-(-ino.size // CHUNK)))

    async def open(self, d: Dentry, flags: int, creds: Credentials) -> FileDescription:
        if self._unpin:
            await self._drain_unpinned()
        ino: GoferInode = d.inode  # type: ignore[assignment]
        if (self.exclusive and not ino.read_ok and not ino.is_dir and d.parent is not None
                and d.parent in self._xscan):
            n = self._opens_in[d.parent] = self._opens_in.get(d.parent, 0) + 1
            if n >= 2:  # a scan, not a single file
                await self._prefetch_data(d.parent, d)
        if (self.exclusive and flags & O_ACCMODE == O_RDONLY and ino.read_ok
                and not ino.is_dir and self._all_cached(ino)):
            # Read before and every page is cached (`cp` then `diff`): the I/O fid is
            # walked and opened only if a page is dropped before it is read.
            return GoferFileFD(flags, self, d, None)
        io = await self._new_fid(d) if ino.is_dir else await self._io_fid(d)
        try:
            if d.inode.is_dir:
                await io.open(O_RDONLY | O_DIRECTORY)
                return GoferDirFD(flags, self, d, io)
            acc = flags & O_ACCMODE
            # Reads fill the page cache even through a write-only fd, so open for both.
            await io.open(os.O_RDWR if acc != O_RDONLY else O_RDONLY)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM) and not d.inode.is_dir and \
                    flags & O_ACCMODE == O_WRONLY:
                await io.clunk()
                io = await self._new_fid(d)
                await io.open(O_WRONLY)
            else:
                await io.clunk()
                raise
        except BaseException:
            await io.clunk()
            raise
        if acc == O_RDONLY or acc == os.O_RDWR:
            ino.read_ok = True
        fd = GoferFileFD(flags, self, d, io)
        fd.writer = creds
        return fd

    async def _prefetch_data(self, p: Dentry, first: Dentry) -> None:
        """exclusive: read `first` and up to PREFETCH_FILES - 1 more small, world-readable,
        uncached regular files of the listed directory `p` whole, in four pipelined
        batches (walk, open, read, clunk), instead of three round trips per file; their
        later read-only opens then need none (see `open`)."""
        pfid = await self._fid(p)
        client = pfid.client
        limit = min(CHUNK, client.iosize)
        todo: list[Dentry] = []
        for c in (first, *p.children.values()):
            ci: GoferInode = c.inode  # type: ignore[assignment]
            if (c.dead or ci.read_ok or ci.type != S_IFREG or ci.size > limit
                    or not ci.mode & 0o004 or ci.pages or ci.dirty or c in todo):
                continue
            todo.append(c)
            if len(todo) >= PREFETCH_FILES:
                break
        if len(todo) < 2:
            return
        gen = self.generation
        sizes = [c.inode.size for c in todo]
        fids = [client.alloc_fid() for _ in todo]
        with trio.CancelScope(shield=True):  # fids must be clunked whatever happens
            walks = None
            try:
                walks = await client.rpc_many([p9.Twalk(pfid.fid, f, (c.name,))
                                               for f, c in zip(fids, todo, strict=True)],
                                              window=PREFETCH_FILES)
                await client.rpc_many([p9.Tlopen(f, O_RDONLY) for f in fids],
                                      window=PREFETCH_FILES)
                reads = await client.rpc_many(
                    [p9.Tread(f, 0, n) for f, n in zip(fids, sizes, strict=True)],
                    window=PREFETCH_FILES)
            except OSError:
                self._opens_in[p] = -(1 << 30)  # (unreadable for the server): not again here
                return
            finally:
                await _clunk_batch(client, fids, walks)
        if gen != self.generation:
            return
        for c, n, r in zip(todo, sizes, reads, strict=True):
            ci = c.inode  # type: ignore[assignment]
            if ci.read_ok or ci.pages or ci.dirty or ci.size != n or c.dead:
                continue  # changed while we waited
            if n:
                ci.pages[0] = bytearray(r.data[:n])
                self._touch(ci, 0)
            ci.read_ok = True

    async def _open_io(self, d: Dentry, flags: int) -> p9.Fid:
        """An opened I/O fid for a file description that was opened without one."""
        io = await self._io_fid(d)
        try:
            await io.open(flags)
        except BaseException:
            await io.clunk()
            raise
        return io

    async def _writeback(self, ino: GoferInode, fid: p9.Fid | None,
                         d: Dentry | None = None) -> None:
        """Write every dirty page of `ino` with `fid` (any writable fid of the file)."""
        if not ino.dirty:
            return
        if fid is None:
            assert d is not None
            io = await (await self._fid(d)).walk([])
            await io.open(os.O_WRONLY)
            try:
                await self._writeback(ino, io)
            finally:
                await io.clunk()
            return
        for idx in sorted(ino.dirty):
            if idx not in ino.dirty:  # written back by a concurrent call
                continue
            ino.dirty.discard(idx)  # a write while we await dirties it again
            page = ino.pages.get(idx)
            start = idx * CHUNK
            if page is None or start >= ino.size:
                continue
            data = bytes(page[: min(CHUNK, ino.size - start)])
            try:
                await fid.write(start, data)
            except BaseException:
                ino.dirty.add(idx)
                raise
            ino.server_size = max(ino.server_size, start + len(data))
            ino.drop_xattrs()  # a write drops security.capability on the server

    async def _xattr_names(self, d: Dentry, ino: GoferInode,
                           cache: dict[bytes, bytes | None]) -> frozenset[bytes] | bool:
        """exclusive: the server's xattr names of `d`, listed once (one round trip answers
        every later getxattr of an absent name, e.g. ls's security.selinux and ACL probes)."""
        names = ino.xnames
        if names is None and ino.fid is None and d.parent is not None and not d.dead:
            await self._prefetch_xnames(d)
            names = ino.xnames
        if names is None:
            try:
                names = frozenset(n for n in await (await self._fid(d)).listxattr() if n)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.E2BIG, errno.ERANGE):
                    return False  # ask per name, and let that answer the error
                names = False  # the server cannot list them: ask per name from now on
            if ino.xattrs is cache:  # not invalidated while we waited
                ino.xnames = names
        return names

    async def _prefetch_xnames(self, d: Dentry) -> None:
        """exclusive: list the xattr names of `d` without keeping a fid for it, together
        with those of up to PREFETCH - 1 siblings if their directory was listed: one
        pipelined batch of walks, one of Tlistxattr, one of clunks (the server may run
        pipelined requests concurrently, so dependent ones go in separate batches)."""
        p = d.parent
        todo = [d]
        if p in self._xscan:
            for c in p.children.values():
                if len(todo) >= PREFETCH:
                    break
                ci: GoferInode = c.inode  # type: ignore[assignment]
                if c is not d and ci.xnames is None and not c.dead:
                    todo.append(c)
        pfid = await self._fid(p)
        client = pfid.client
        if not client.dialect.listremovexattr:
            return
        gen = self.generation
        caches = []
        for c in todo:
            ci = c.inode  # type: ignore[assignment]
            if ci.xattrs is None:
                ci.xattrs = {}
            caches.append(ci.xattrs)
        got = await self._sibling_batch(pfid, todo, lambda f: p9.Tlistxattr(f, 0),
                                        then=functools.partial(self._prefetch_values, client))
        if got is None:
            return  # (an entry vanished meanwhile): each is listed alone
        replies, values = got
        if gen != self.generation:
            return  # a rename crossed the walks: they may have named other files
        for i, (c, cache, r) in enumerate(zip(todo, caches, replies, strict=True)):
            ci = c.inode  # type: ignore[assignment]
            if ci.xattrs is cache and ci.xnames is None:
                ci.xnames = frozenset(n for n in r.xattrs if n)
                for (j, name), value in values.items():
                    if j == i:
                        cache.setdefault(name, value)

    async def _sibling_batch(self, pfid: Any, todo: list[Dentry], ask: Any,
                             then: Any = None) -> tuple[list[Any], Any] | None:
        """Walk a fresh fid to each of `todo` (children of `pfid`'s directory) in one
        pipelined batch, send `ask(fid)` for each in a second (the server may run pipelined
        requests concurrently, so dependent ones go in separate batches), and
        `await then(fids, replies)` if given; every fid is clunked whatever happens.
        Returns (replies, then's result), or None if a request failed (an entry vanished
        meanwhile: the caller asks per name)."""
        client = pfid.client
        fids = [client.alloc_fid() for _ in todo]
        with trio.CancelScope(shield=True):  # fids must be clunked whatever happens
            walks = None
            try:
                walks = await client.rpc_many(
                    [p9.Twalk(pfid.fid, f, (c.name,)) for f, c in zip(fids, todo, strict=True)],
                    window=PREFETCH)
                replies = await client.rpc_many([ask(f) for f in fids], window=PREFETCH)
                extra = await then(fids, replies) if then is not None else None
            except OSError:
                return None
            finally:
                await _clunk_batch(client, fids, walks)
        return replies, extra

    async def _prefetch_values(self, client: p9.Client, fids: list[int],
                               replies: list[Any]) -> dict[tuple[int, bytes], bytes]:
        """The values of the names a batch listed (few files have any; on SELinux hosts
        every file has security.selinux, which `ls -l` asks for), in one more batch."""
        want = [(i, n) for i, r in enumerate(replies) for n in r.xattrs if n]
        if not want or not client.dialect.getsetxattr:
            return {}
        try:
            got = await client.rpc_many([p9.Tgetxattr(fids[i], n, 0) for i, n in want],
                                        window=PREFETCH)
        except OSError:
            return {}  # (one could not be read): each is asked alone
        return {key: r.value for key, r in zip(want, got, strict=True)}

    async def getxattr(self, d: Dentry, name: bytes) -> bytes:
        ino: GoferInode = d.inode  # type: ignore[assignment]
        if not self.exclusive:
            return await (await self._fid(d)).getxattr(name)
        cache = ino.xattrs
        if cache is None:
            cache = ino.xattrs = {}
        if name in cache:
            value = cache[name]
            if value is None:
                raise error(errno.ENODATA, name)
            return value
        # Names Linux lists whenever they exist; other system.* names (nfs4_acl, ...) may
        # be answered without being listed, so those are always asked for.
        if name.startswith(_LISTED_XATTRS) or name in _LISTED_SYSTEM_XATTRS:
            names = await self._xattr_names(d, ino, cache)
            if names is not False and name not in names:  # type: ignore[operator]
                cache[name] = None
                raise error(errno.ENODATA, name)
        try:
            value = await (await self._fid(d)).getxattr(name)
        except OSError as e:
            if e.errno == errno.ENODATA:
                cache[name] = None
            raise
        cache[name] = value
        return value

    async def setxattr(self, d: Dentry, name: bytes, value: bytes, flags: int) -> None:
        ino: GoferInode = d.inode  # type: ignore[assignment]
        try:
            await (await self._fid(d)).setxattr(name, value, flags)
        except BaseException:
            ino.drop_xattrs()
            raise
        self._xattr_changed(ino, name, bytes(value))

    def _xattr_changed(self, ino: GoferInode, name: bytes, value: bytes | None) -> None:
        """After our own setxattr/removexattr: the cache learns the new state. A fresh
        dict, so a getxattr reply that crossed the change lands in the old one, unseen.
        system.* (ACLs) may change more than the name (the mode): forget everything."""
        if not self.exclusive or name.startswith(b"system.") or ino.xattrs is None:
            ino.drop_xattrs()
            return
        cache = dict(ino.xattrs)
        cache[name] = value
        names = ino.xnames
        if isinstance(names, frozenset):
            names = names | {name} if value is not None else names - {name}
        ino.xattrs = cache
        ino.xnames = names

    async def listxattr(self, d: Dentry) -> list[bytes]:
        ino: GoferInode = d.inode  # type: ignore[assignment]
        if self.exclusive:
            cache = ino.xattrs
            if cache is None:
                cache = ino.xattrs = {}
            names = await self._xattr_names(d, ino, cache)
            if names is not False:
                return sorted(names)  # type: ignore[arg-type]
        return [n for n in await (await self._fid(d)).listxattr() if n]

    async def removexattr(self, d: Dentry, name: bytes) -> None:
        ino: GoferInode = d.inode  # type: ignore[assignment]
        try:
            await (await self._fid(d)).removexattr(name)
        except BaseException:
            ino.drop_xattrs()
            raise
        self._xattr_changed(ino, name, None)

    async def sync(self) -> None:
        """Write back every dirty page cache (sync(2), syncfs(2), unmount)."""
        todo = [self.root]
        seen: set[int] = set()
        while todo:
            d = todo.pop()
            todo.extend(d.children.values())
            ino: GoferInode = d.inode  # type: ignore[assignment]
            if ino.dirty and id(ino) not in seen and not (d.dead and ino.nlink == 0):
                seen.add(id(ino))
                await self._writeback(ino, None, d)

    async def release(self) -> None:
        """Clunk every fid this filesystem holds (the client stays open)."""
        for ino in list(self._pinned):
            if ino.fid is not None:
                f, ino.fid = ino.fid, None
                await f.clunk()
        self._pinned.clear()
        self._unpin.clear()
        todo = [self.root]
        while todo:
            d = todo.pop()
            todo.extend(d.children.values())
            fid = d.inode.fid  # type: ignore[attr-defined]
            if fid is not None:
                d.inode.fid = None  # type: ignore[attr-defined]
                await fid.clunk()


def _below_holder(d: Dentry) -> tuple[Dentry, list[Dentry]]:
    """The nearest proper ancestor of `d` whose inode holds a fid, and the dentries from
    just below it down to `d` (their names are the walk from that fid to `d`)."""
    path = [d]
    anc = d.parent
    while anc.inode.fid is None:  # type: ignore[attr-defined]
        path.append(anc)
        anc = anc.parent
    path.reverse()
    return anc, path


async def _clunk_batch(client: p9.Client, fids: list[int], walks: list[Any] | None) -> None:
    """Clunk the fids of a prefetch batch. All walked (`walks`): each Tclunk is sent
    without waiting for its reply (the client frees the number when it comes). Otherwise
    some never existed: clunk them all in one pipelined batch, errors expected."""
    if walks is not None:
        for f, w in zip(fids, walks, strict=True):
            await p9.Fid(client, f, w.qids[-1], ()).clunk()
        return
    try:
        await client.rpc_many([p9.Tclunk(f) for f in fids], window=len(fids))
    except OSError:
        pass  # a walk had failed: its fid never existed
    finally:
        for f in fids:
            client.release_fid(f)


def _join(parts: list[Any]) -> bytes:
    """The bytes of `parts`, releasing the page views among them (a bytearray with a
    live view cannot be resized)."""
    out = b"".join(parts)
    for p in parts:
        if isinstance(p, memoryview):
            p.release()
    parts.clear()
    return out


def _truncate_pages(ino: GoferInode, size: int) -> None:
    last = size // CHUNK
    for idx in [i for i in ino.pages if i > last or (i == last and size % CHUNK == 0)]:
        del ino.pages[idx]
        ino.dirty.discard(idx)
    page = ino.pages.get(last)
    if page is not None:
        off = size % CHUNK
        if off < len(page):  # (a short page reads as zeros past its end already)
            page[off:] = bytes(len(page) - off)
    ino.size = size
    ino.server_size = size


class GoferFileFD(RegularFD):
    """An open remote file: page-cached under the exclusive policy, direct when shared."""

    def __init__(self, flags: int, fs: GoferFS, d: Dentry, io: p9.Fid | None) -> None:
        super().__init__(None, flags)
        self.fs = fs
        self.dentry = d
        self.inode: GoferInode = d.inode  # type: ignore[assignment]
        self._io = io  # None: opened (read-only) on first need, see GoferFS.open
        self.inode.opens += 1
        self.writer: Credentials | None = None

    def file_size(self) -> int:
        return self.inode.size

    async def io(self) -> p9.Fid:
        """The I/O fid (walked and opened now if this description was opened without)."""
        if self._io is None:
            io = await self.fs._open_io(self.dentry, O_RDONLY)
            if self._io is not None:  # another task of this description opened it first
                await io.clunk()
            else:
                self._io = io
        return self._io

    async def _fill(self, first: int, last: int, ahead: bool = True) -> None:
        """Bring pages first..last into the cache, reading each missing run (plus up to
        READ_AHEAD pages after it, for reads) with one pipelined read."""
        ino = self.inode
        fs = self.fs
        server_pages = -(-ino.server_size // CHUNK)
        limit = max(last, min(first + READ_AHEAD - 1, server_pages - 1)) if ahead else last
        idx = first
        while idx <= last:
            if idx in ino.pages:
                fs._touch(ino, idx)
                idx += 1
                continue
            j = idx
            while j < limit and (j + 1) not in ino.pages:
                j += 1
            start = idx * CHUNK
            data = b""
            if start < ino.server_size:
                data = await (await self.io()).read(start, min((j + 1) * CHUNK, ino.server_size) - start)
            with memoryview(data) as view:  # (one copy per page, not two)
                for k in range(idx, j + 1):
                    if k in ino.pages:  # filled by a write while we awaited
                        continue
                    # A short page (the end of the file) reads as zeros past its end.
                    ino.pages[k] = bytearray(view[(k - idx) * CHUNK : (k - idx + 1) * CHUNK])
                    fs._touch(ino, k)
            idx = j + 1

    async def _page(self, idx: int, whole: bool = False) -> bytearray:
        """Page `idx`; `whole`: the caller overwrites all of it, so it is not read."""
        ino = self.inode
        page = ino.pages.get(idx)
        if page is None:
            if whole:
                page = ino.pages[idx] = bytearray(CHUNK)
                self.fs._touch(ino, idx)
            else:
                await self._fill(idx, idx, ahead=False)
                page = ino.pages[idx]
        return page

    async def do_pread(self, n: int, offset: int) -> bytes:
        ino = self.inode
        if not self.fs.exclusive:
            return await (await self.io()).read(offset, n)
        end = min(offset + n, ino.size)
        if offset >= end:
            return b""
        await self._fill(offset // CHUNK, (end - 1) // CHUNK)
        # Views of the pages joined once (a mapped 2 MB libc is copied once, not thrice);
        # no view is held across an await (a page may be resized meanwhile).
        parts: list[Any] = []
        pos = offset
        try:
            while pos < end:
                idx, off = divmod(pos, CHUNK)
                page = ino.pages.get(idx)
                if page is None:  # evicted meanwhile (huge read): fetch it again
                    parts = [_join(parts)]
                    page = await self._page(idx)
                k = min(CHUNK - off, end - pos)
                got = memoryview(page)[off : off + k]
                parts.append(got)
                if len(got) < k:  # past a short page's end (the file grew by truncate)
                    parts.append(bytes(k - len(got)))
                pos += k
            return _join(parts)
        finally:
            _join(parts)

    async def do_pwrite(self, data: bytes, offset: int) -> int:
        ino = self.inode
        if ino.mode & 0o6000 and data:
            mode = mode_after_write(self.writer, ino.mode, ino.gid)
            if mode != ino.mode:  # file_remove_privs, on the server too (it writes as root)
                await self.fs.setattr(self.dentry, mode=mode)
        if not self.fs.exclusive:
            n = await (await self.io()).write(offset, data)
            ino.size = max(ino.size, offset + n)
            ino.mtime_ns = ino.ctime_ns = now_ns()
            return n
        pos = offset
        view = memoryview(data)
        done = 0
        while done < len(view):
            idx, off = divmod(pos, CHUNK)
            k = min(CHUNK - off, len(view) - done)
            page = await self._page(idx, whole=k == CHUNK)
            if len(page) < CHUNK:  # a short page grows to a whole one before a write
                page.extend(bytes(CHUNK - len(page)))
            page[off : off + k] = view[done : done + k]
            ino.dirty.add(idx)
            done += k
            pos += k
        if pos > ino.size:
            ino.size = pos
        ino.mtime_ns = ino.ctime_ns = now_ns()
        if len(ino.dirty) * CHUNK >= self.fs.dirty_limit:
            await self._flush_dirty()  # bound memory: write back big streams as they go
        return done

    async def do_write(self, data: bytes) -> int:
        if self.flags & O_APPEND and not self.fs.exclusive:
            await self.fs._refresh(self.dentry)
        return await super().do_write(data)

    async def do_fsync(self, datasync: bool) -> None:
        await self._flush_dirty()
        await (await self.io()).fsync(datasync)

    async def _flush_dirty(self) -> None:
        if self.inode.dirty and self.writable:
            await self.fs._writeback(self.inode, await self.io())

    async def do_truncate(self, size: int) -> None:
        await self.fs.setattr(self.dentry, size=size)

    async def do_fallocate(self, mode: int, offset: int, length: int) -> None:
        """Tallocate where the server has it (EOPNOTSUPP otherwise, like v9fs)."""
        await self._flush_dirty()
        await (await self.io()).allocate(mode, offset, length)
        ino = self.inode
        for idx in range(offset // CHUNK, (offset + length - 1) // CHUNK + 1):
            ino.pages.pop(idx, None)  # punched or zeroed ranges read back from the server
        await self.fs._refresh(self.dentry)

    async def flush(self) -> None:
        await self._flush_dirty()

    async def release(self) -> None:
        self.inode.opens -= 1
        try:
            await self._flush_dirty()
        finally:
            if self._io is not None:
                await self._io.clunk()


class GoferDirFD(DirectoryFD):
    """An open remote directory; the cookies are the server's Treaddir offsets."""

    def __init__(self, flags: int, fs: GoferFS, d: Dentry, io: p9.Fid) -> None:
        super().__init__(None, flags)
        self.fs = fs
        self.dentry = d
        self.io = io

    async def entries(self, cookie: int) -> list[tuple[int, int, int, bytes]]:
        ents = await self.io.readdir(cookie)
        if self.fs.exclusive and not self.dentry.dead:
            self.fs._note_listing(self.dentry, cookie, [e.name for e in ents])
        return [(e.offset, e.qid.path, e.type or DT_UNKNOWN, e.name) for e in ents]

    async def release(self) -> None:
        await self.io.clunk()

