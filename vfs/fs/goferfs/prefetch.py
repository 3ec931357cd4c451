"""goferfs's prefetching (exclusive policy): after a directory was listed, what programs
then ask per entry is fetched for many entries in one pipelined batch, as NFS's
readdirplus does: attributes (`ls -l`), symlink targets (`ls -l /usr/bin`), xattr names
(ls's ACL and security.selinux probes) and the data of small files (`cp -r`, `diff -r`,
`grep -r`).

Each batch walks fresh fids (never the dentry fids of `Fids`) and clunks them whatever
happens; its answers are used only if no namespace change crossed it (`GoferFS.generation`).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

import p9

from ...abi import O_RDONLY, S_IFREG
from ...dentry import Dentry
from .inode import inode_of
from .pages import CHUNK

if TYPE_CHECKING:
    from .filesystem import GoferFS

#: Entries whose attributes (xattr names, symlink targets) one batch fetches.
PREFETCH = 128
#: Small files of a listed directory read together once a second one is opened.
PREFETCH_FILES = 64


class Prefetcher:
    """What the readdirs of one filesystem listed, and the batches that use it."""

    def __init__(self, fs: GoferFS) -> None:
        self.fs = fs
        # Names a readdir returned whose attributes were not fetched yet (in listing
        # order), and listed directories whose entries' xattr names may be fetched together.
        self._listed: weakref.WeakKeyDictionary[Dentry, dict[bytes, None]] = \
            weakref.WeakKeyDictionary()
        self._xscan: weakref.WeakSet[Dentry] = weakref.WeakSet()
        # Files opened (uncached) per listed directory; from the second one on, small
        # siblings are read together (`cp -r`, `diff -r`, `grep -r`).
        self._opens_in: weakref.WeakKeyDictionary[Dentry, int] = weakref.WeakKeyDictionary()

    def note_listing(self, d: Dentry, cookie: int, names: list[bytes]) -> None:
        """Remember what a readdir of `d` returned."""
        listed = self._listed.get(d) if cookie else None
        if listed is None:
            listed = self._listed[d] = {}
            self._xscan.add(d)
        kids = d.children
        for n in names:
            if n not in kids and n != b"." and n != b"..":
                listed[n] = None

    def has_listing(self, d: Dentry) -> bool:
        """Whether `d` has listed entries not looked up yet."""
        return d in self._listed

    def was_listed(self, d: Dentry) -> bool:
        """Whether `d` was listed (its entries' targets, xattrs, data may be batched)."""
        return d in self._xscan

    async def attrs(self, d: Dentry, name: bytes) -> bool:
        """`name` was listed in `d`: fetch its attributes and those of up to PREFETCH - 1
        more listed, unlooked-up entries in one pipelined batch. Whether `name` is now
        cached (False: look it up alone)."""
        listed = self._listed.get(d)
        if not listed or name not in listed:
            return False
        fs = self.fs
        kids = d.children
        neg = fs.absent_names(d)
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
        gen = fs.generation
        fid = await fs.fids.get(d)
        client = fid.client
        if not client.dialect.multigetattr:
            return False
        try:
            replies = await client.rpc_many(
                [p9.Tmultigetattr(fid.fid, (n,)) for n in batch], window=PREFETCH)
        except OSError:
            return False  # (an entry vanished meanwhile): each is looked up alone
        if gen != fs.generation or d.dead:
            return False
        for n, r in zip(batch, replies, strict=True):
            if r.stats and n not in kids:
                st = r.stats[0]
                fs.child(d, n, p9.Stat(st.qid, st.valid, st.attr))
        return name in kids

    async def targets(self, d: Dentry) -> bool:
        """Read the target of the symlink `d` of a listed directory together with those of
        up to PREFETCH - 1 looked-up sibling symlinks (`ls -l /usr/bin` reads every one):
        a pipelined batch of walks, one of Treadlink, then clunks, instead of a Twalk and
        a Treadlink each. False: nothing batched (read it alone)."""
        p = d.parent
        todo = [d]
        for c in p.children.values():
            if len(todo) >= PREFETCH:
                break
            ci = inode_of(c)
            if c is not d and ci.is_symlink and ci.target is None and not c.dead:
                todo.append(c)
        if len(todo) < 2:
            return False
        fs = self.fs
        gen = fs.generation
        pfid = await fs.fids.get(p)
        got = await self._sibling_batch(pfid, todo, p9.Treadlink)
        if got is None:
            return False  # (an entry vanished meanwhile): each is read alone
        replies, _ = got
        if gen != fs.generation:
            return False  # a rename crossed the walks: they may have named other files
        for c, r in zip(todo, replies, strict=True):
            ci = inode_of(c)
            if ci.target is None and not c.dead:
                ci.target = r.target
        return True

    async def on_open(self, d: Dentry) -> None:
        """An uncached file of a listed directory is opened: from the second one on (a
        scan, not a single file), read its small siblings together."""
        p = d.parent
        n = self._opens_in[p] = self._opens_in.get(p, 0) + 1
        if n >= 2:
            await self._data(p, d)

    async def _data(self, p: Dentry, first: Dentry) -> None:
        """Read `first` and up to PREFETCH_FILES - 1 more small, world-readable, uncached
        regular files of the listed directory `p` whole, in four pipelined batches (walk,
        open, read, clunk), instead of three round trips per file; their later read-only
        opens then need none (see `GoferFS.open`)."""
        fs = self.fs
        pfid = await fs.fids.get(p)
        client = pfid.client
        limit = min(CHUNK, client.iosize)
        todo: list[Dentry] = []
        for c in (first, *p.children.values()):
            ci = inode_of(c)
            if (c.dead or ci.read_ok or ci.type != S_IFREG or ci.size > limit
                    or not ci.mode & 0o004 or ci.pages or ci.dirty or c in todo):
                continue
            todo.append(c)
            if len(todo) >= PREFETCH_FILES:
                break
        if len(todo) < 2:
            return
        gen = fs.generation
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
        if gen != fs.generation:
            return
        for c, n, r in zip(todo, sizes, reads, strict=True):
            ci = inode_of(c)
            if ci.read_ok or ci.pages or ci.dirty or ci.size != n or c.dead:
                continue  # changed while we waited
            if n:
                ci.pages[0] = bytearray(r.data[:n])
                fs.pages.touch(ci, 0)
            ci.read_ok = True

    async def xnames(self, d: Dentry) -> None:
        """List the xattr names of `d` without keeping a fid for it, together with those
        of up to PREFETCH - 1 siblings if their directory was listed: one pipelined batch
        of walks, one of Tlistxattr, one of clunks (the server may run pipelined requests
        concurrently, so dependent ones go in separate batches)."""
        p = d.parent
        todo = [d]
        if p in self._xscan:
            for c in p.children.values():
                if len(todo) >= PREFETCH:
                    break
                ci = inode_of(c)
                if c is not d and ci.xnames is None and not c.dead:
                    todo.append(c)
        fs = self.fs
        pfid = await fs.fids.get(p)
        client = pfid.client
        if not client.dialect.listremovexattr:
            return
        gen = fs.generation
        caches = []
        for c in todo:
            ci = inode_of(c)
            if ci.xvalues is None:
                ci.xvalues = {}
            caches.append(ci.xvalues)
        got = await self._sibling_batch(pfid, todo, lambda f: p9.Tlistxattr(f, 0),
                                        then=functools.partial(_values, client))
        if got is None:
            return  # (an entry vanished meanwhile): each is listed alone
        replies, values = got
        if gen != fs.generation:
            return  # a rename crossed the walks: they may have named other files
        for i, (c, cache, r) in enumerate(zip(todo, caches, replies, strict=True)):
            ci = inode_of(c)
            if ci.xvalues is cache and ci.xnames is None:
                ci.xnames = frozenset(n for n in r.xattrs if n)
                for (j, name), value in values.items():
                    if j == i:
                        cache.setdefault(name, value)

    async def _sibling_batch(
            self, pfid: p9.Fid, todo: list[Dentry], ask: Callable[[int], p9.Message],
            then: Callable[[list[int], list[Any]], Awaitable[Any]] | None = None,
    ) -> tuple[list[Any], Any] | None:
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


async def _values(client: p9.Client, fids: list[int],
                  replies: list[Any]) -> dict[tuple[int, bytes], bytes]:
    """The values of the names a batch listed (few files have any; on SELinux hosts every
    file has security.selinux, which `ls -l` asks for), in one more batch."""
    want = [(i, n) for i, r in enumerate(replies) for n in r.xattrs if n]
    if not want or not client.dialect.getsetxattr:
        return {}
    try:
        got = await client.rpc_many([p9.Tgetxattr(fids[i], n, 0) for i, n in want],
                                    window=PREFETCH)
    except OSError:
        return {}  # (one could not be read): each is asked alone
    return {key: r.value for key, r in zip(want, got, strict=True)}


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
