"""The goferfs filesystem: lookups, attributes, namespace changes, opens and xattrs over
one attached 9P tree, with the dentry cache (positive and negative names) and the state the
two policies keep.

Why caches, and three policies: every round trip to the gofer costs far more than the
syscall that caused it, so dentries, attributes, symlink targets and file pages are kept
here. When the sandbox has the tree to itself (`policy="exclusive"`, the default for a
sandbox root) nothing else changes the files, so the caches are trusted: attributes and
names are fetched once, file data is read once and written back at fsync/close. When other
users may change the files (`policy="shared"`, `cache=none` on the command line), every
lookup and stat asks the server again and file data is read and written through, uncached.
In between, `policy="revalidating"` keeps the exclusive policy's caches but trusts a cached
name or attribute for `revalidate_after` seconds only, and re-checks a file's attributes
whenever it is opened (close-to-open): when the server's size or mtime moved, the clean
pages, symlink target and xattrs are dropped; a directory opened forgets its negative
names (its listing always comes from the server). Linux v9fs's cache=loose, with a bound.

Lookups are batched: `lookup(parent, [a, b, c])` resolves the uncached part of the run with
one Tmultigetattr (a walk per prefix on servers without it), so a path costs one round trip
however deep it is. A dentry gets a fid only when an operation needs one (`fids.py`), so a
long lookup does not pin a fid per component.

Listings bring attributes (exclusive policy, servers of our dialect): a directory read
with Treaddirattr caches a dentry for each listed entry with the attributes a lookup would
have fetched, so the lstat a program makes of every name it lists is answered here
(`add_listed`); at most `listed_limit` of those dentries wait unlooked-up, the oldest are
dropped past it. Plain 9P2000.L servers get Treaddir and the prefetcher's batches.

A unix socket bound here (`bind_socket`) is a node only the sandbox sees (`SyntheticInode`,
as gVisor's synthetic dentries): it lives in the dentry cache under every policy, listings
show it after the server's entries, unlink, rename, link and chmod change it here, and the
host's directory never gets a file; a directory holding one is not empty (ENOTEMPTY).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import os
import time
import weakref
from collections.abc import Callable, Collection, Coroutine
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import trio

import p9

from ...abi import (
    O_ACCMODE,
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
from ...creds import Credentials
from ...dcache import DentryCache
from ...dentry import Dentry, now_ns
from ...errors import error
from ...file import FileDescription
from ...filesystem import Filesystem
from .donated import DonatedFiles
from .fids import MAX_WALK_NAMES, Fids
from .files import GoferDirFD, GoferFileFD
from .inode import GoferInode, SyntheticInode, inode_of, is_synthetic, listed_row
from .pages import DIRTY_LIMIT, LostWrite, PageCache, lost_write, truncate_pages, write_dirty
from .prefetch import Prefetcher

#: exclusive policy: dentries made from listings' attributes (`GoferFS.add_listed`) and not
#: looked up since, at most; past it the oldest are dropped (a lookup asks for them again), so
#: listing a huge directory takes bounded memory.
LISTED_LIMIT = 20_000
#: Shared policy: how long the answer of a batched lookup may serve the same path
#: resolution (its last-component lookup and the stat after it); then it is asked again.
FRESH_SECONDS = 0.002
#: Revalidating policy: how long a cached name or attribute is trusted without asking.
REVALIDATE_SECONDS = 1.0
#: The cache policies (`GoferFS(policy=)`).
POLICIES = ("exclusive", "revalidating", "shared")
_ALL = int(p9.GetattrMask.ALL)
#: xattr namespaces whose existing names listxattr always reports (so an unlisted name is
#: ENODATA without asking); other system.* names are always asked for.
_LISTED_XATTRS = (b"user.", b"trusted.", b"security.")
_LISTED_SYSTEM_XATTRS = frozenset((b"system.posix_acl_access", b"system.posix_acl_default"))

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _mutation(
    fn: Callable[Concatenate[GoferFS, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[GoferFS, _P], Coroutine[Any, Any, _R]]:
    """A namespace change: bump the generation before and after, and shield it from
    cancellation (like most Linux filesystem operations it is not interruptible), so the
    server and the dentry cache never disagree because a signal arrived mid-way."""

    @functools.wraps(fn)
    async def wrapper(self: GoferFS, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        self.generation += 1
        self._fresh_uses = 0
        try:
            with trio.CancelScope(shield=True):
                result = await fn(self, *args, **kwargs)
        finally:
            self.generation += 1
        return result

    return wrapper


class GoferFS(Filesystem):
    """A filesystem over one attached 9P tree.

    Args:
        root: the fid `client.attach(...)` returned (this filesystem owns it from now on).
        root_stat: its attributes.
        policy: "exclusive" (trust caches), "revalidating" (caches, re-checked on open and
            after `revalidate_after` seconds) or "shared" (ask every time, no data cache).
            `self.exclusive` says whether the caches are kept (both of the first two).
        owner_uid: the uid the server creates files as (the attaching user); files made for
            anyone else get a Tsetattr afterwards.

    Attributes:
        fids: the dentry fids (`fids.limit` bounds them).
        pages: the page cache (`pages.limit` bounds its clean bytes).
        dirty_limit: dirty bytes per file that trigger write-back before fsync/close.
    """

    fstype = "9p"
    magic = V9FS_MAGIC
    remote = True

    def __init__(self, root: p9.Fid, root_stat: p9.Stat, *, policy: str = "exclusive",
                 owner_uid: int = 0, revalidate_after: float = REVALIDATE_SECONDS) -> None:
        super().__init__()
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        self.policy = policy
        self.exclusive = policy != "shared"
        self.revalidating = policy == "revalidating"
        self.revalidate_after = revalidate_after
        self.owner_uid = owner_uid
        ino = GoferInode(root_stat)
        ino.fid = root
        self.root = Dentry(self, b"/", None, ino)
        self.fids = Fids(self.root)
        self.pages = PageCache()
        self.dirty_limit = DIRTY_LIMIT
        # Donated host files (a local gofer's, exclusive policy only: what the host
        # changes behind a revalidating or shared mount must be seen as 9P sees it).
        self.donations = policy == "exclusive" and root.client.donations
        self.donated = DonatedFiles()
        # exclusive policy: what readdirs listed, for batched fetches per entry.
        self.prefetch = Prefetcher(self)
        # Bumped by every namespace change; a lookup whose reply crossed a change is
        # retried, so a stale reply never overwrites what the change put in the cache.
        self.generation = 0
        # exclusive policy: names known not to exist, per directory (negative dentries);
        # dynamic linkers and PATH searches probe many of them.
        self._neg: weakref.WeakKeyDictionary[Dentry, set[bytes]] = weakref.WeakKeyDictionary()
        # revalidating policy: when each directory's negative set was started.
        self._neg_at: weakref.WeakKeyDictionary[Dentry, float] = weakref.WeakKeyDictionary()
        # shared policy: the last answer of a batched lookup, usable once (by the stat
        # that follows the resolution, which takes the last component's dentry from the
        # same batch), then stale.
        self._fresh_key: tuple[Dentry, bytes] | None = None
        self._fresh_child: Dentry | None = None
        self._fresh_uses = 0
        self._fresh_at = 0.0
        # exclusive policy: whether the server lists entries with their attributes
        # (Treaddirattr), and the dentries made from such listings, oldest first.
        self.listed_attrs = self.exclusive and root.client.dialect.readdirattr
        self._listed: collections.deque[weakref.ref[Dentry]] = collections.deque()
        # ... and opens a directory with its first listing in the same request.
        self.open_listing = self.listed_attrs and root.client.dialect.opendirattr
        self.listed_limit = LISTED_LIMIT
        # The bound on dentries looked up or listed (least recently used leaves go).
        self.dcache = DentryCache(self._evictable)
        # Inode numbers of sandbox-only sockets: above any the server's qid paths use.
        self._synthetic_ino = 1 << 63

    @classmethod
    async def attach(cls, client: p9.Client, aname: bytes = b"", *, policy: str = "exclusive",
                     uname: bytes = b"root", n_uname: int = 0,
                     revalidate_after: float = REVALIDATE_SECONDS) -> GoferFS:
        """Attach to `aname` on a connected client and build the filesystem."""
        root = await client.attach(aname, uname=uname, n_uname=n_uname)
        st = await root.getattr(_ALL)
        return cls(root, st, policy=policy, owner_uid=n_uname, revalidate_after=revalidate_after)

    # -- the dentry cache ----------------------------------------------------------------------

    def child(self, parent: Dentry, name: bytes, st: p9.Stat) -> Dentry:
        """The dentry of `name` in `parent` with the attributes `st` the server gave: the
        cached one if it is the same file, else a new one (the old one is dead)."""
        old = parent.children.get(name) or self.dcache.revive(parent, name)
        if old is not None and is_synthetic(old):
            return old  # (the sandbox's own node hides what the host made since)
        if old is not None and old.inode.ino == st.qid.path:
            if inode_of(old).update(st) and self.revalidating:
                inode_of(old).drop_clean_data()
            old.hot = True
            return old
        if old is not None:
            old.dead = True
        d = Dentry(self, name, parent, self._inode_for(parent, name, st))
        parent.children[name] = d
        self._positive(parent, name)
        self.dcache.added(d)
        return d

    def _inode_for(self, parent: Dentry, name: bytes, st: p9.Stat | tuple[int, ...]
                   ) -> GoferInode:
        """A new dentry's inode: the one its name's dropped dentry had if something still
        holds it and the server names the same file (`DentryCache.orphan`), else new.
        `st`: a `p9.Stat` or a listing's attribute row (`GoferInode.take`)."""
        ino = self.dcache.orphan(parent, name)
        if ino is None:
            return GoferInode(st)
        row = listed_row(st) if isinstance(st, p9.Stat) else st
        if isinstance(ino, GoferInode) and ino.ino == row[2] \
                and not isinstance(ino, SyntheticInode):
            if ino.take(row) and self.revalidating:
                ino.drop_clean_data()
            return ino
        return GoferInode(row)

    @staticmethod
    def _evictable(d: Dentry) -> bool:
        """Whether the dentry cache may let `d` go (a lookup then builds it again from
        the server): nothing of it lives only here (a sandbox-only node, dirty pages,
        an open file, a donated descriptor) and it holds no fid (a fid walked by its path
        must be forgotten when an ancestor is renamed, which only a dentry in the tree
        sees; the fid LRU drops fids, after which their dentries may go)."""
        ino = inode_of(d)
        return not (ino.fid is not None or ino.opens or ino.dirty or ino.writers
                    or ino.host_fd >= 0 or is_synthetic(d))

    def add_listed(self, parent: Dentry, cookie: int, gen: int,
                   entries: list[tuple[tuple[int, int, int, int, bytes],
                                       tuple[int, ...] | None]]) -> None:
        """A Treaddirattr of `parent` from `cookie` returned `entries`: cache a dentry for
        each entry that came with its attributes (the lstat that usually follows each
        name a program lists, e.g. `find`, `ls -l`, `du`, then needs no round trip); leave
        the others to the prefetcher's batches. Nothing is cached if a namespace change
        crossed the request (`gen`). Bounded by `listed_limit` dentries not looked up."""
        kids = parent.children
        rest: list[bytes] = []
        if gen == self.generation and not parent.dead:
            neg = self._neg.get(parent)
            made = self._listed
            dcache = self.dcache
            for (_, _, _, _, name), a in entries:
                if name in kids or name == b"." or name == b".." \
                        or dcache.revive(parent, name) is not None:
                    continue
                if a is None or (neg and name in neg):
                    rest.append(name)
                    continue
                ino = self._inode_for(parent, name, a)  # (from the row: no p9.Stat)
                ino.listed_only = True
                d = kids[name] = Dentry(self, name, parent, ino)
                made.append(weakref.ref(d))
                dcache.added(d)
            while len(made) > self.listed_limit:
                old = made.popleft()()
                if (old is not None and inode_of(old).listed_only and not old.children
                        and old.parent.children.get(old.name) is old):
                    dcache.detach(old)
                    if old.parent is parent:  # (batched by the prefetcher instead)
                        rest.append(old.name)
        else:
            rest = [e[0][4] for e in entries]
        self.prefetch.note_listing(parent, cookie, rest)

    def absent_names(self, parent: Dentry) -> Collection[bytes]:
        """The names known not to exist in `parent` (exclusive and revalidating policies;
        the latter forgets them `revalidate_after` seconds after the first)."""
        neg = self._neg.get(parent)
        if neg and self.revalidating and self._stale(self._neg_at.get(parent, 0.0)):
            del self._neg[parent]
            return ()
        return neg or ()

    def _stale(self, checked: float) -> bool:
        """Revalidating policy: whether what was fetched at `checked` must be asked again."""
        return self.revalidating and time.monotonic() - checked >= self.revalidate_after

    def _positive(self, parent: Dentry, name: bytes) -> None:
        neg = self._neg.get(parent)
        if neg:
            neg.discard(name)

    def _negative(self, parent: Dentry, name: bytes) -> None:
        if self.exclusive:
            neg = self._neg.get(parent)
            if neg is None:
                neg = self._neg[parent] = set()
                if self.revalidating:
                    self._neg_at[parent] = time.monotonic()
            if len(neg) < 4096:
                neg.add(name)

    # -- lookups and attributes ----------------------------------------------------------------

    async def lookup(self, parent: Dentry, names: list[bytes]) -> list[Dentry]:
        first = parent.children.get(names[0]) if names else None
        if first is not None and is_synthetic(first):
            return [first]  # (never a directory: the lookup ends here)
        out: list[Dentry] = []
        d = parent
        i = 0
        if self.exclusive:
            dcache = self.dcache
            while i < len(names):
                child = d.children.get(names[i]) or dcache.revive(d, names[i])
                if child is not None and self.revalidating and not is_synthetic(child) \
                        and self._stale(inode_of(child).checked):
                    break  # asked again below: refreshed, replaced or found gone
                if child is None:
                    neg = self.absent_names(d)
                    if neg and names[i] in neg:
                        return out
                    if self.prefetch.has_listing(d) and await self.prefetch.attrs(d, names[i]):
                        continue
                    break
                out.append(child)
                i += 1
                inode_of(child).listed_only = False
                child.hot = True
                if not child.inode.is_dir:
                    return out
                d = child
        elif (len(names) == 1 and self._fresh_uses and self._fresh_key == (parent, names[0])
              and time.monotonic() - self._fresh_at < FRESH_SECONDS):
            # shared policy: the resolver prefetched this very name a moment ago, in the
            # same resolution (a missing name: its last step asks); use that answer once.
            self._fresh_uses -= 1
            child = self._fresh_child
            return [child] if child is not None else []
        if i == len(names):
            return out
        run = names[i:]
        while True:
            gen = self.generation
            base = self.fids.base(d)
            fid, prefix = base if base is not None else (await self.fids.get(d), [])
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
            child = self.child(d, names[i], st)
            out.append(child)
            i += 1
            if leaf is not None and i == len(names) and not is_synthetic(child):
                await self.fids.adopt(inode_of(child), leaf)
                leaf = None
            if not child.inode.is_dir or i == len(names):
                if leaf is not None:  # (the walk cannot have passed a non-directory)
                    await leaf.clunk()
                if i == len(names) and len(names) > 1 and not self.exclusive:
                    self._fresh_key = (d, names[-1])
                    self._fresh_child = child
                    self._fresh_uses = 1
                    self._fresh_at = time.monotonic()
                return out
            d = child
        if i < len(names):
            if i == len(names) - 1 and len(names) > 1 and not self.exclusive:
                self._fresh_key = (d, names[-1])
                self._fresh_child = None
                self._fresh_uses = 1
                self._fresh_at = time.monotonic()
            kept = d.children.get(names[i])
            if kept is not None and is_synthetic(kept):
                out.append(kept)  # the server does not know it: the sandbox's node
                return out
            self.dcache.revive(d, names[i])  # (a detached dentry of the name dies too)
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
        if not fid.client.dialect.multigetattr or len(path) > MAX_WALK_NAMES:
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

    async def refresh(self, d: Dentry, via: p9.Fid | None = None) -> None:
        """Ask the server for the attributes of `d` again (through `via`, a fid of the
        same file, if given)."""
        if is_synthetic(d):
            return  # (its attributes are the sandbox's own)
        fid = via or await self.fids.get(d)
        ino = inode_of(d)
        if ino.update(await fid.getattr(_ALL)) and self.revalidating:
            ino.drop_clean_data()

    async def stat(self, d: Dentry) -> Stat:
        if is_synthetic(d):
            return d.inode.to_stat(self.dev)
        if not self.exclusive and not d.dead:
            if (self._fresh_uses and self._fresh_child is d
                    and time.monotonic() - self._fresh_at < FRESH_SECONDS):
                self._fresh_uses -= 1
            else:
                await self.refresh(d)
        elif self.revalidating and not d.dead and self._stale(inode_of(d).checked):
            await self.refresh(d)
        return d.inode.to_stat(self.dev)

    async def stat_open(self, d: Dentry, io: p9.Fid | None) -> Stat:
        """fstat of a file open as `io`: under the shared policy the attributes are asked
        through that fid, which reaches the file even once another user of the server
        removed or replaced its name (its dentry may have no fid of its own, and walking
        the name again would give ENOENT or another file); likewise when the revalidating
        policy asks again."""
        if (io is None or d.dead or is_synthetic(d)
                or self.exclusive and not self._stale(inode_of(d).checked)):
            return await self.stat(d)
        await self.refresh(d, io)
        return d.inode.to_stat(self.dev)

    async def setattr(self, d: Dentry, *, mode: int | None = None, uid: int | None = None,
                      gid: int | None = None, size: int | None = None,
                      atime_ns: int | None = None, mtime_ns: int | None = None,
                      ctime_ns: int | None = None) -> None:
        ino = inode_of(d)
        if isinstance(ino, SyntheticInode):
            ino.set_attrs(mode=mode, uid=uid, gid=gid, atime_ns=atime_ns, mtime_ns=mtime_ns,
                          ctime_ns=ctime_ns if ctime_ns is not None else now_ns())
            return
        fid = await self.fids.get(d)
        if size is not None:
            await self._write_dirty(d)
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
            truncate_pages(ino, size)
        await self.refresh(d)

    async def readlink(self, d: Dentry) -> bytes:
        ino = inode_of(d)
        if not ino.is_symlink:
            raise error(errno.EINVAL)
        if ino.target is None or not self.exclusive:
            if (self.exclusive and ino.fid is None and d.parent is not None
                    and self.prefetch.was_listed(d.parent) and await self.prefetch.targets(d)
                    and ino.target is not None):
                return ino.target
            ino.target = await (await self.fids.get(d)).readlink()
        return ino.target

    async def statfs(self) -> StatFS:
        r = await (await self.fids.get(self.root)).statfs()
        return StatFS(type=V9FS_MAGIC, bsize=r.bsize, blocks=r.blocks, bfree=r.bfree,
                      bavail=r.bavail, files=r.files, ffree=r.ffree, fsid=r.fsid,
                      namelen=r.namelen, frsize=r.bsize)

    # -- sandbox-only sockets ------------------------------------------------------------------

    @_mutation
    async def bind_socket(self, parent: Dentry, name: bytes, mode: int, uid: int,
                          gid: int) -> Dentry:
        """A unix socket's bind: a node in the dentry cache only (the lookup that found the
        name free asked the server under the shared and revalidating policies)."""
        self._synthetic_ino += 1
        d = Dentry(self, name, parent, SyntheticInode(self._synthetic_ino, mode, uid, gid))
        parent.children[name] = d
        self._positive(parent, name)
        self._touch_dir(parent)
        return d

    @staticmethod
    def synthetic_children(d: Dentry) -> list[Dentry]:
        """The sandbox-only nodes in the directory `d`, in the order they were made."""
        return [c for c in d.children.values() if is_synthetic(c)]

    def _unlink_synthetic(self, parent: Dentry, child: Dentry) -> None:
        if parent.children.get(child.name) is child:
            del parent.children[child.name]
        child.dead = True
        child.inode.nlink = max(0, child.inode.nlink - 1)
        child.inode.ctime_ns = now_ns()

    # -- namespace changes ---------------------------------------------------------------------

    async def _made(self, parent: Dentry, name: bytes, mode: int, uid: int) -> Dentry:
        """After a create: fetch the new file's attributes and fix what the server's
        umask or creating user changed."""
        pf = await self.fids.get(parent)
        fid, st = await pf.walk_getattr([name], _ALL)
        d = self.child(parent, name, st)
        ino = inode_of(d)
        await self.fids.replace(ino, fid)
        # The mode goes with an owner change too: the server applies the owner first, and
        # that chown clears S_ISUID/S_ISGID the new file must keep (a setgid directory's
        # member creating a setgid file).
        fix_mode = ((st.attr.mode & 0o7777) != (mode & 0o7777) or uid != st.attr.uid) \
            and not ino.is_symlink
        if uid != st.attr.uid or fix_mode:
            try:
                await fid.setattr(uid=uid if uid != st.attr.uid else None,
                                  mode=mode & 0o7777 if fix_mode else None)
            except PermissionError:
                if uid == st.attr.uid:
                    raise
                # A server that creates as another user and will not give the file away
                # (a squashing gofer, NFS's root_squash): its owner stands, as over NFS,
                # and the create succeeds; the mode is still the caller's.
                uid = st.attr.uid
                if fix_mode:
                    await fid.setattr(mode=mode & 0o7777)
            if uid != st.attr.uid and mode & 0o6000 and not ino.is_symlink:
                # Servers differ in the order they apply the two (diod: the mode first),
                # and the chown clears set-id bits: set them again on their own.
                await fid.setattr(mode=mode & 0o7777)
            await self.refresh(d)
        self._touch_dir(parent)
        return d

    def _touch_dir(self, parent: Dentry, nlink: int = 0) -> None:
        pi = parent.inode
        pi.nlink += nlink
        pi.mtime_ns = pi.ctime_ns = now_ns()

    @_mutation
    async def mknod(self, parent: Dentry, name: bytes, mode: int, rdev: int, uid: int,
                    gid: int) -> Dentry:
        pf = await self.fids.get(parent)
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
        pf = await self.fids.get(parent)
        await pf.mkdir(name, mode & 0o7777, gid)
        d = await self._made(parent, name, mode, uid)
        self._touch_dir(parent, 1)
        return d

    @_mutation
    async def symlink(self, parent: Dentry, name: bytes, target: bytes, uid: int,
                      gid: int) -> Dentry:
        pf = await self.fids.get(parent)
        await pf.symlink(name, target, gid)
        d = await self._made(parent, name, 0o777, uid)
        inode_of(d).target = target
        return d

    @_mutation
    async def link(self, parent: Dentry, name: bytes, target: Dentry) -> Dentry:
        if is_synthetic(target):  # another name for the sandbox's node, here too
            d = Dentry(self, name, parent, target.inode)
            parent.children[name] = d
            self._positive(parent, name)
            target.inode.nlink += 1
            target.inode.ctime_ns = now_ns()
            self._touch_dir(parent)
            return d
        pf = await self.fids.get(parent)
        tf = await self.fids.get(target)
        await pf.link(tf, name)
        d = Dentry(self, name, parent, target.inode)
        parent.children[name] = d
        self._positive(parent, name)
        await self.refresh(target)
        self._touch_dir(parent)
        return d

    @_mutation
    async def unlink(self, parent: Dentry, child: Dentry) -> None:
        if is_synthetic(child):
            self._unlink_synthetic(parent, child)
            self._touch_dir(parent)
            return
        pf = await self.fids.get(parent)
        await self.fids.keep_reachable(child)
        await pf.unlinkat(child.name, 0)
        self.fids.pin(child)
        parent.children.pop(child.name, None)
        self._negative(parent, child.name)
        child.dead = True
        child.inode.nlink = max(0, child.inode.nlink - 1)
        child.inode.ctime_ns = now_ns()
        self._touch_dir(parent)

    @_mutation
    async def rmdir(self, parent: Dentry, child: Dentry) -> None:
        if self.synthetic_children(child):
            raise error(errno.ENOTEMPTY)  # (the server's copy is empty; the sandbox's not)
        pf = await self.fids.get(parent)
        await pf.unlinkat(child.name, p9.AT_REMOVEDIR)
        self.fids.pin(child)
        parent.children.pop(child.name, None)
        self._negative(parent, child.name)
        child.dead = True
        child.inode.nlink = 0
        self._touch_dir(parent, -1)

    @_mutation
    async def rename(self, old_parent: Dentry, child: Dentry, new_parent: Dentry,
                     new_name: bytes, replaced: Dentry | None, flags: int) -> None:
        if replaced is not None and (is_synthetic(child) or is_synthetic(replaced)):
            if flags & RENAME_EXCHANGE:
                raise error(errno.EXDEV)  # (9P has no exchange; one side is not there)
            if is_synthetic(replaced):
                self._unlink_synthetic(new_parent, replaced)
            else:  # the sandbox's socket takes the name of a file of the server's
                await self.unlink(new_parent, replaced)
            replaced = None
        if is_synthetic(child):
            del old_parent.children[child.name]
            child.name = new_name
            child.parent = new_parent
            new_parent.children[new_name] = child
            self._positive(new_parent, new_name)
            child.inode.ctime_ns = now_ns()
            self._touch_dir(old_parent)
            self._touch_dir(new_parent)
            return
        of = await self.fids.get(old_parent)
        nf = await self.fids.get(new_parent)
        if flags & RENAME_EXCHANGE and replaced is not None:
            await self._exchange(old_parent, child, new_parent, replaced, of, nf)
            return
        old_name = child.name
        if replaced is not None:
            await self.fids.keep_reachable(replaced)
        await of.renameat(old_name, nf, new_name)
        old_parent.children.pop(old_name, None)
        is_dir = child.inode.is_dir
        if replaced is not None:
            replaced.dead = True
            self.fids.pin(replaced)
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
        await self.fids.forget(child)
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
        await self.fids.forget(a)
        await self.fids.forget(b)
        if op is not np and a.inode.is_dir != b.inode.is_dir:
            delta = 1 if a.inode.is_dir else -1
            self._touch_dir(op, -delta)
            self._touch_dir(np, delta)

    async def open(self, d: Dentry, flags: int, creds: Credentials) -> FileDescription:
        await self.fids.drain_unpinned()
        ino = inode_of(d)
        if self.revalidating and not d.dead:
            # Close-to-open: what others changed since the last look is seen from here on.
            await self.refresh(d)
            if ino.is_dir:
                self._neg.pop(d, None)
        if (self.exclusive and not ino.read_ok and not ino.is_dir
                and self.prefetch.was_listed(d.parent)):
            await self.prefetch.on_open(d)
        if self.exclusive and flags & O_ACCMODE == O_RDONLY and ino.read_ok and not ino.is_dir:
            # The server opened it for reading before: the I/O fid is walked and opened
            # when a read needs a page that is not cached, if ever (`cp` then `diff`, a
            # program opened to be mapped, an open only to fstat or close).
            return GoferFileFD(flags, self, d, None)
        if ino.is_dir and self.open_listing:
            dirfd = await self._open_dir_listing(flags, d)
            if dirfd is not None:
                return dirfd
        io = await self.fids.new(d) if ino.is_dir else await self.fids.take_for_io(d)
        try:
            if d.inode.is_dir:
                await io.open(O_RDONLY | O_DIRECTORY)
                return GoferDirFD(flags, self, d, io)
            acc = flags & O_ACCMODE
            # Reads fill the page cache even through a write-only fd, so open for both.
            if acc == O_RDONLY:
                await self._open_read(io, ino)
            else:
                await io.open(os.O_RDWR)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM) and not d.inode.is_dir and \
                    flags & O_ACCMODE == O_WRONLY:
                await io.clunk()
                io = await self.fids.new(d)
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

    async def _open_dir_listing(self, flags: int, d: Dentry) -> GoferDirFD | None:
        """Open the directory `d` with its first listing in one round trip
        (Topendirattr, walked from `d`'s fid or the nearest ancestor's); None where that
        is not one message (more than 16 names) or the server cannot (then never again)."""
        fid, names = self.fids.io_base(d)
        if len(names) > MAX_WALK_NAMES:
            return None
        gen = self.generation
        try:
            io, got, eof = await fid.open_dir_attr(names)
        except OSError as e:
            if e.errno != errno.EOPNOTSUPP:
                raise
            self.open_listing = False
            return None
        return GoferDirFD(flags, self, d, io, (gen, got, eof))

    async def open_io(self, d: Dentry, flags: int) -> p9.Fid:
        """An opened I/O fid for a file description that was opened without one."""
        io = await self.fids.take_for_io(d)
        try:
            if flags & O_ACCMODE == O_RDONLY:
                await self._open_read(io, inode_of(d))
            else:
                await io.open(flags)
        except BaseException:
            await io.clunk()
            raise
        return io

    async def _open_read(self, io: p9.Fid, ino: GoferInode) -> None:
        """Open `io` read-only; a local gofer may donate the file's host descriptor with
        it, kept on the inode for reads and mappings (`donated.py`)."""
        if not self.donations or ino.host_fd >= 0 or ino.mode & S_IFMT != S_IFREG:
            await io.open(O_RDONLY)
            return
        _, fd = await io.open_donated(O_RDONLY)
        if fd is not None:
            self.donated.keep(ino, fd)

    async def _xattr_names(self, d: Dentry, ino: GoferInode,
                           cache: dict[bytes, bytes | None]) -> frozenset[bytes] | Literal[False]:
        """exclusive: the server's xattr names of `d`, listed once (one round trip answers
        every later getxattr of an absent name, e.g. ls's security.selinux and ACL probes)."""
        names = ino.xnames
        if names is None and ino.fid is None and d.parent is not None and not d.dead:
            await self.prefetch.xnames(d)
            names = ino.xnames
        if names is None:
            try:
                names = frozenset(n for n in await (await self.fids.get(d)).listxattr() if n)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.E2BIG, errno.ERANGE):
                    return False  # ask per name, and let that answer the error
                names = False  # the server cannot list them: ask per name from now on
            if ino.xvalues is cache:  # not invalidated while we waited
                ino.xnames = names
        return names


    # -- xattrs -------------------------------------------------------------------------------

    async def getxattr(self, d: Dentry, name: bytes) -> bytes:
        if is_synthetic(d):
            raise error(errno.ENODATA)  # (a sandbox-only node keeps none)
        ino = inode_of(d)
        if not self.exclusive:
            return await (await self.fids.get(d)).getxattr(name)
        cache = ino.xvalues
        if cache is None:
            cache = ino.xvalues = {}
        if name in cache:
            value = cache[name]
            if value is None:
                raise error(errno.ENODATA, name)
            return value
        # Names Linux lists whenever they exist; other system.* names (nfs4_acl, ...) may
        # be answered without being listed, so those are always asked for.
        if name.startswith(_LISTED_XATTRS) or name in _LISTED_SYSTEM_XATTRS:
            names = await self._xattr_names(d, ino, cache)
            if names is not False and name not in names:
                cache[name] = None
                raise error(errno.ENODATA, name)
        try:
            value = await (await self.fids.get(d)).getxattr(name)
        except OSError as e:
            if e.errno == errno.ENODATA:
                cache[name] = None
            raise
        cache[name] = value
        return value

    async def setxattr(self, d: Dentry, name: bytes, value: bytes, flags: int) -> None:
        if is_synthetic(d):
            raise error(errno.EPERM)  # (a sandbox-only node keeps none)
        ino = inode_of(d)
        try:
            await (await self.fids.get(d)).setxattr(name, value, flags)
        except BaseException:
            ino.drop_xattrs()
            raise
        self._xattr_changed(ino, name, bytes(value))

    def _xattr_changed(self, ino: GoferInode, name: bytes, value: bytes | None) -> None:
        """After our own setxattr/removexattr: the cache learns the new state (and the
        change time, which the server moved too). A fresh dict, so a getxattr reply that
        crossed the change lands in the old one, unseen. system.* (ACLs) may change more
        than the name (the mode): forget everything."""
        ino.ctime_ns = now_ns()
        if not self.exclusive or name.startswith(b"system.") or ino.xvalues is None:
            ino.drop_xattrs()
            return
        cache = dict(ino.xvalues)
        cache[name] = value
        names = ino.xnames
        if isinstance(names, frozenset):
            names = names | {name} if value is not None else names - {name}
        ino.xvalues = cache
        ino.xnames = names

    async def listxattr(self, d: Dentry) -> list[bytes]:
        if is_synthetic(d):
            return []  # (a sandbox-only node keeps none)
        ino = inode_of(d)
        if self.exclusive:
            cache = ino.xvalues
            if cache is None:
                cache = ino.xvalues = {}
            names = await self._xattr_names(d, ino, cache)
            if names is not False:
                return sorted(names)
        return [n for n in await (await self.fids.get(d)).listxattr() if n]

    async def removexattr(self, d: Dentry, name: bytes) -> None:
        if is_synthetic(d):
            raise error(errno.ENODATA)  # (a sandbox-only node keeps none)
        ino = inode_of(d)
        try:
            await (await self.fids.get(d)).removexattr(name)
        except BaseException:
            ino.drop_xattrs()
            raise
        self._xattr_changed(ino, name, None)

    # -- write-back and release ----------------------------------------------------------------

    async def _write_dirty(self, d: Dentry) -> None:
        """Write back the dirty pages of `d` through a fid opened for it now."""
        ino = inode_of(d)
        if not ino.dirty:
            return
        try:
            io = await (await self.fids.get(d)).walk([])
        except OSError as e:
            raise lost_write(ino, e) from e
        try:
            await io.open(os.O_WRONLY)
        except BaseException:
            await io.clunk()
            raise
        try:
            await write_dirty(ino, io)
        finally:
            await io.clunk()

    async def sync(self) -> None:
        """Write back every dirty page cache (sync(2), syncfs(2), unmount).

        One file's failure does not stop the others; the first is raised at the end (what
        syncfs(2) reports). Pages that failed stay dirty, so the file's next fsync/close
        tries again and reports; data lost for good (`LostWrite`) is reported by its next
        write/fsync/close (`GoferInode.lost`)."""
        todo = [self.root]
        seen: set[int] = set()
        first: OSError | None = None
        while todo:
            d = todo.pop()
            todo.extend(d.children.values())
            ino = inode_of(d)
            if ino.dirty and id(ino) not in seen and not (d.dead and ino.nlink == 0):
                seen.add(id(ino))
                try:
                    await self._write_dirty(d)
                except OSError as e:
                    if isinstance(e, LostWrite):
                        ino.lost = True
                    first = first or e
        if first is not None:
            raise first

    async def release(self) -> None:
        """Clunk every fid this filesystem holds (the client stays open), close the
        donated descriptors."""
        self.donated.release()
        await self.fids.release()
