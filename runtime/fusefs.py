"""A FUSE filesystem (pyfuse3, on trio) that serves any 9P2000.L server through our client.

Why: this machine has no kernel 9P client, yet third-party tools and test suites want a
mount. The kernel's FUSE layer then plays the part v9fs would: path resolution, permission
checks (`default_permissions`: the kernel checks mode bits, groups, sticky directories
against the attributes we report, like v9fs with access=client), fifos and locks (served
locally by the kernel). This module maps FUSE's inode-based requests onto fids:

- every inode the kernel knows holds one walked (never opened) fid from the root attach,
  keyed by qid.path, so hard links share an inode and renames keep working (the server
  keeps the file behind a fid); the kernel's `forget` clunks it;
- every open file or directory holds its own opened fid;
- all requests go to the server as the attaching user (root by default); a file created by
  another caller is then given to the caller (uid, and gid per the setgid rule), restoring
  set-id bits the ownership change cleared;
- attribute and entry caching is off (timeouts 0), so every stat sees the server;
- any failure that is not an errno from the server (a lost connection, a timeout) is EIO,
  so a vanished server gives errors, never a hung mount.
"""

from __future__ import annotations

import errno
import logging
import os
import stat as statmod
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import pyfuse3
import trio

import p9

log = logging.getLogger("runpsc.mount")
T = TypeVar("T")
P = ParamSpec("P")
_ALL = p9.GetattrMask.ALL
REQUEST_TIMEOUT = 60.0


def _fuse_errors(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn server errnos into FUSEError, and everything else (lost server, timeout) into
    EIO, so that no request hangs or crashes the loop."""

    @wraps(fn)
    async def wrapper(*args: P.args, **kw: P.kwargs) -> T:
        try:
            with trio.fail_after(REQUEST_TIMEOUT):
                return await fn(*args, **kw)
        except pyfuse3.FUSEError:
            raise
        except OSError as e:
            code = e.errno or errno.EIO
            if code in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ECONNABORTED):
                code = errno.EIO
            raise pyfuse3.FUSEError(code) from None
        except trio.TooSlowError:
            log.warning("%s: no answer from the server within %ss", fn.__name__,
                        REQUEST_TIMEOUT)
            raise pyfuse3.FUSEError(errno.EIO) from None
        except Exception:
            log.exception("%s failed", fn.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


@dataclass
class _Node:
    fid: p9.Fid
    qpath: int
    lookups: int = 0
    #: the latest attributes seen (used for the setgid rule when creating inside)
    st: p9.Stat | None = None


@dataclass
class _Dir:
    fid: p9.Fid
    inode: int
    entries: list[tuple[bytes, int]] | None = None  # (name, qid.path), fixed at offset 0


class NinePOperations(pyfuse3.Operations):
    """pyfuse3 operations backed by a root Fid of a 9P2000.L server."""

    enable_writeback_cache = False
    supports_dot_lookup = False

    def __init__(self, root: p9.Fid, nursery: trio.Nursery, *,
                 cache_timeout: float = 1.0) -> None:
        """`cache_timeout`: seconds the kernel may trust names and attributes we reported.

        Every change made through this mount invalidates what it touches in the kernel
        (FUSE does that), so a short timeout only hides changes made behind the mount's
        back, for that long; 0 makes every stat and path step a round trip.
        """
        super().__init__()
        self.cache_timeout = cache_timeout
        self.root = root
        self._nursery = nursery
        self.nodes: dict[int, _Node] = {pyfuse3.ROOT_INODE: _Node(root, root.qid.path, 1)}
        self.by_qpath: dict[int, int] = {root.qid.path: pyfuse3.ROOT_INODE}
        self.next_ino = pyfuse3.ROOT_INODE + 1
        self.files: dict[int, p9.Fid] = {}
        #: fh -> (inode, opener's host pid, gid) for files opened for writing by a caller
        #: other than root: their first write drops set-group-ID as Linux's would (below).
        self.unprivileged_writers: dict[int, tuple[int, int, int]] = {}
        self.dirs: dict[int, _Dir] = {}
        self.next_fh = 1

    # -- helpers -----------------------------------------------------------------------------
    def _drop(self, fid: p9.Fid) -> None:
        """Clunk a fid nobody waits for in the background (saves a round trip)."""
        async def clunk() -> None:
            try:
                await fid.clunk()
            except Exception:  # noqa: BLE001 - a lost server: nothing left to release
                pass
        self._nursery.start_soon(clunk)

    async def _getattr(self, node: _Node) -> p9.Stat:
        node.st = await node.fid.getattr(_ALL)
        return node.st

    async def _parent_stat(self, node: _Node) -> p9.Stat:
        return node.st if node.st is not None else await self._getattr(node)
    def _node(self, inode: int) -> _Node:
        try:
            return self.nodes[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ESTALE) from None

    def _attrs(self, inode: int, st: p9.Stat) -> pyfuse3.EntryAttributes:
        a = st.attr
        e = pyfuse3.EntryAttributes()
        e.st_ino = inode
        e.generation = 0
        e.entry_timeout = self.cache_timeout
        e.attr_timeout = self.cache_timeout
        e.st_mode = a.mode
        e.st_nlink = a.nlink
        e.st_uid = a.uid
        e.st_gid = a.gid
        e.st_rdev = a.rdev
        e.st_size = a.size
        e.st_blksize = a.blksize or 4096
        e.st_blocks = a.blocks
        e.st_atime_ns = a.atime_sec * 10**9 + a.atime_nsec
        e.st_mtime_ns = a.mtime_sec * 10**9 + a.mtime_nsec
        e.st_ctime_ns = a.ctime_sec * 10**9 + a.ctime_nsec
        return e

    async def _adopt(self, fid: p9.Fid, st: p9.Stat) -> pyfuse3.EntryAttributes:
        """Register a freshly walked fid as an inode (or drop it for a known one) and count
        one lookup."""
        qpath = st.qid.path
        inode = self.by_qpath.get(qpath)
        if inode is None:
            inode = self.next_ino
            self.next_ino += 1
            self.nodes[inode] = _Node(fid, qpath)
            self.by_qpath[qpath] = inode
        else:
            self._drop(fid)
        node = self.nodes[inode]
        node.lookups += 1
        node.st = st
        return self._attrs(inode, st)

    async def _lookup_fid(self, parent: int, name: bytes) -> pyfuse3.EntryAttributes:
        fid, st = await self._node(parent).fid.walk_getattr([name], _ALL)
        return await self._adopt(fid, st)

    async def _give(self, inode: int, parent_st: p9.Stat, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        """Make a new object the caller's (uid, and gid unless the directory is setgid)."""
        node = self._node(inode)
        if ctx.uid == 0 and node.st is not None:
            return self._attrs(inode, node.st)  # made by the attaching user (root) already
        if ctx.uid != 0:
            made = node.st or await self._getattr(node)
            gid = parent_st.attr.gid if parent_st.attr.mode & statmod.S_ISGID else ctx.gid
            await node.fid.setattr(uid=ctx.uid, gid=gid)
            st = await node.fid.getattr(_ALL)
            # chown may clear set-id bits the new object was made with: put them back.
            want = made.attr.mode & 0o7777
            if statmod.S_ISREG(st.attr.mode) and want & statmod.S_ISGID:
                # Linux strips S_ISGID when the creator is not in the file's group.
                try:
                    groups = set(pyfuse3.get_sup_groups(ctx.pid))
                except OSError:
                    groups = set()
                if st.attr.gid != ctx.gid and st.attr.gid not in groups:
                    want &= ~statmod.S_ISGID
            if not statmod.S_ISLNK(st.attr.mode) and st.attr.mode & 0o7777 != want:
                await node.fid.setattr(mode=want)
        return self._attrs(inode, await self._getattr(node))

    def _gid(self, parent_st: p9.Stat, ctx: pyfuse3.RequestContext) -> int:
        if parent_st.attr.mode & statmod.S_ISGID:
            return parent_st.attr.gid
        return ctx.gid

    # -- lookups and attributes --------------------------------------------------------------
    @_fuse_errors
    async def lookup(self, parent_inode: int, name: bytes,
                     ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return await self._lookup_fid(parent_inode, name)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for inode, n in inode_list:
            node = self.nodes.get(inode)
            if node is None or inode == pyfuse3.ROOT_INODE:
                continue
            node.lookups -= n
            if node.lookups <= 0:
                del self.nodes[inode]
                self.by_qpath.pop(node.qpath, None)
                self._drop(node.fid)

    @_fuse_errors
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(inode, await self._getattr(self._node(inode)))

    @_fuse_errors
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes,
                      fields: pyfuse3.SetattrFields, fh: int | None,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        fid = self.files.get(fh) if fh is not None else None
        fid = fid or self._node(inode).fid
        kw: dict[str, Any] = {}
        if fields.update_mode:
            kw["mode"] = attr.st_mode & 0o7777
            if ctx.uid != 0 and kw["mode"] & statmod.S_ISGID \
                    and not self._in_group((await self._getattr(self._node(inode))).attr.gid,
                                           ctx.pid, ctx.gid):
                # Set-group-ID stays only for a member of the file's group (Linux's chmod
                # and its kill-privileges call before a write by an outsider, which the
                # kernel's FUSE layer sends with set-user-ID dropped but set-group-ID kept
                # unless group-executable): drop it here, so the attributes the kernel caches
                # from this reply are right.
                kw["mode"] &= ~statmod.S_ISGID
        if fields.update_uid:
            kw["uid"] = attr.st_uid
        if fields.update_gid:
            kw["gid"] = attr.st_gid
        if fields.update_size:
            kw["size"] = attr.st_size
        if fields.update_atime:
            kw["atime"] = attr.st_atime_ns
        if fields.update_mtime:
            kw["mtime"] = attr.st_mtime_ns
        if kw or fields.update_ctime:
            await fid.setattr(ctime=True, **kw)
        return self._attrs(inode, await self._getattr(self._node(inode)))

    @_fuse_errors
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return await self._node(inode).fid.readlink()

    @_fuse_errors
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        r = await self.root.statfs()
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = r.bsize
        s.f_blocks, s.f_bfree, s.f_bavail = r.blocks, r.bfree, r.bavail
        s.f_files, s.f_ffree, s.f_favail = r.files, r.ffree, r.ffree
        s.f_namemax = r.namelen
        return s

    # -- creating and removing ---------------------------------------------------------------
    @_fuse_errors
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        pn = self._node(parent_inode)
        p = pn.fid
        pst = await self._parent_stat(pn)
        await p.mknod(name, mode, os.major(rdev), os.minor(rdev), self._gid(pst, ctx))
        e = await self._lookup_fid(parent_inode, name)
        return await self._give(e.st_ino, pst, mode, ctx)

    @_fuse_errors
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        pn = self._node(parent_inode)
        p = pn.fid
        pst = await self._parent_stat(pn)
        await p.mkdir(name, mode, self._gid(pst, ctx))
        e = await self._lookup_fid(parent_inode, name)
        return await self._give(e.st_ino, pst, mode | statmod.S_IFDIR, ctx)

    @_fuse_errors
    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        pn = self._node(parent_inode)
        p = pn.fid
        pst = await self._parent_stat(pn)
        await p.symlink(name, target, self._gid(pst, ctx))
        e = await self._lookup_fid(parent_inode, name)
        return await self._give(e.st_ino, pst, statmod.S_IFLNK | 0o777, ctx)

    @_fuse_errors
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo,
                                                           pyfuse3.EntryAttributes]:
        pn = self._node(parent_inode)
        p = pn.fid
        pst = await self._parent_stat(pn)
        f = await p.walk()
        try:
            cflags = (flags & (os.O_ACCMODE | os.O_TRUNC)) | os.O_CREAT | (flags & os.O_EXCL)
            await f.create(name, cflags, mode & 0o7777, self._gid(pst, ctx))
            e = await self._lookup_fid(parent_inode, name)
            e = await self._give(e.st_ino, pst, mode, ctx)
        except BaseException:
            await f.clunk()
            raise
        return pyfuse3.FileInfo(fh=self._file(f)), e

    @_fuse_errors
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = self._node(inode)
        await self._node(new_parent_inode).fid.link(node.fid, new_name)
        node.lookups += 1
        return self._attrs(inode, await self._getattr(node))

    @_fuse_errors
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._node(parent_inode).fid.unlinkat(name, 0)

    @_fuse_errors
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._node(parent_inode).fid.unlinkat(name, p9.AT_REMOVEDIR)

    @_fuse_errors
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:
        old = self._node(parent_inode_old).fid
        new = self._node(parent_inode_new).fid
        if flags & pyfuse3.RENAME_EXCHANGE:
            # Trenameat carries no flags: an atomic exchange cannot be expressed (v9fs: EINVAL).
            raise pyfuse3.FUSEError(errno.EINVAL)
        if flags & pyfuse3.RENAME_NOREPLACE:
            try:
                f = await new.walk([name_new])
            except FileNotFoundError:
                pass
            else:
                self._drop(f)
                raise pyfuse3.FUSEError(errno.EEXIST)
        await old.renameat(name_old, new, name_new)

    # -- files -------------------------------------------------------------------------------
    def _file(self, fid: p9.Fid) -> int:
        fh = self.next_fh
        self.next_fh += 1
        self.files[fh] = fid
        return fh

    @_fuse_errors
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        f = await self._node(inode).fid.walk()
        try:
            await f.open(flags & (os.O_ACCMODE | os.O_TRUNC | os.O_APPEND))
        except BaseException:
            await f.clunk()
            raise
        fh = self._file(f)
        self._note_writer(fh, inode, flags, ctx)
        return pyfuse3.FileInfo(fh=fh)

    @_fuse_errors
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self.files[fh].read(off, size)

    @_fuse_errors
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        n = await self.files[fh].write(off, buf)
        writer = self.unprivileged_writers.pop(fh, None)
        if writer is not None:
            await self._drop_sgid(*writer)
        return n

    def _note_writer(self, fh: int, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> None:
        if ctx.uid != 0 and flags & os.O_ACCMODE != os.O_RDONLY:
            self.unprivileged_writers[fh] = (inode, ctx.pid, ctx.gid)

    async def _drop_sgid(self, inode: int, pid: int, gid: int) -> None:
        """A write by a caller outside the file's group drops its set-group-ID.

        Why here: the kernel's FUSE layer drops set-user-ID (and set-group-ID of a
        group-executable file) itself, but Linux's own filesystems also drop set-group-ID
        when the writer is not in the file's group, and the gofer writes as the mount's
        identity, so its host kernel does not see the writer. The writer's supplementary
        groups come from its /proc status (the request carries only uid and gid).
        """
        node = self._node(inode)
        attr = (await self._getattr(node)).attr
        mode = attr.mode
        if statmod.S_ISREG(mode) and mode & statmod.S_ISGID \
                and not self._in_group(attr.gid, pid, gid):
            await node.fid.setattr(mode=mode & 0o7777 & ~statmod.S_ISGID, ctime=True)
            node.st = None

    @staticmethod
    def _in_group(fgid: int, pid: int, gid: int) -> bool:
        """Whether the caller (host pid, gid) is in group `fgid` (the file's)."""
        if fgid == gid:
            return True
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                groups = next((line.split()[1:] for line in f if line.startswith(b"Groups:")), [])
        except OSError:
            return False  # the writer is gone: judge by its gid alone
        return str(fgid).encode() in groups

    async def flush(self, fh: int) -> None:
        return None

    @_fuse_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self.files[fh].fsync(datasync)

    async def release(self, fh: int) -> None:
        fid = self.files.pop(fh, None)
        self.unprivileged_writers.pop(fh, None)
        if fid is not None:
            self._drop(fid)

    # -- directories -------------------------------------------------------------------------
    @_fuse_errors
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        f = await self._node(inode).fid.walk()
        try:
            await f.open(os.O_RDONLY)
        except BaseException:
            await f.clunk()
            raise
        fh = self.next_fh
        self.next_fh += 1
        self.dirs[fh] = _Dir(f, inode)
        return fh

    @_fuse_errors
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        d = self.dirs[fh]
        if d.entries is None or start_id == 0:
            d.entries = [(e.name, e.qid.path) for e in await d.fid.readdir_all()
                         if e.name not in (b".", b"..")]
        dir_fid = self._node(d.inode).fid  # walk from the unopened fid
        batch = 32
        for first in range(start_id, len(d.entries), batch):
            names = [n for n, _ in d.entries[first:first + batch]]
            found: list[tuple[p9.Fid, p9.Stat] | None] = [None] * len(names)

            async def one(k: int, name: bytes, found: list = found) -> None:
                try:
                    found[k] = await dir_fid.walk_getattr([name], _ALL)
                except FileNotFoundError:
                    pass  # removed since the listing was taken

            async with trio.open_nursery() as nursery:
                for k, name in enumerate(names):
                    nursery.start_soon(one, k, name)
            for k, name in enumerate(names):
                got = found[k]
                if got is None:
                    continue
                attrs = await self._adopt(*got)
                if not pyfuse3.readdir_reply(token, name, attrs, first + k + 1):
                    # Not sent: the kernel did not learn these entries; undo the lookups.
                    await self.forget([(attrs.st_ino, 1)])
                    for rest in found[k + 1:]:
                        if rest is not None:
                            self._drop(rest[0])
                    return

    async def releasedir(self, fh: int) -> None:
        d = self.dirs.pop(fh, None)
        if d is not None:
            self._drop(d.fid)

    # -- extended attributes -----------------------------------------------------------------
    @_fuse_errors
    async def setxattr(self, inode: int, name: bytes, value: bytes,
                       ctx: pyfuse3.RequestContext) -> None:
        await self._node(inode).fid.setxattr(name, value, 0)

    @_fuse_errors
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        try:
            return await self._node(inode).fid.getxattr(name)
        except OSError as e:
            if e.errno == errno.ENODATA:
                raise pyfuse3.FUSEError(pyfuse3.ENOATTR) from None
            raise

    @_fuse_errors
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return await self._node(inode).fid.listxattr()

    @_fuse_errors
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._node(inode).fid.removexattr(name)


async def serve(address: str, mountpoint: str, *, aname: str = "", uname: str = "root",
                n_uname: int = 0, msize: int = 1 << 20, debug: bool = False,
                tls: p9.TLSClientConfig | None = None, reconnect: float = 0.0,
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Mount `address` (unix:PATH, tcp:HOST:PORT or tls:HOST:PORT with `tls`) on
    `mountpoint` until unmounted or signalled (SIGINT/SIGTERM), then unmount. A lost
    connection is dialled again for `reconnect` seconds (p9's reconnection).

    Raises:
        p9.TLSError: the TLS connection failed (certificates, CA, host name); nothing is
            mounted.
        OSError: the server cannot be reached or refuses the attach; nothing is mounted.
        ValueError: a malformed address.
    """
    import signal

    async with p9.open_address(address, tls=tls, msize=msize, reconnect=reconnect) as client, \
            trio.open_nursery() as background:
        root = await client.attach(aname.encode(), uname=uname.encode(), n_uname=n_uname)
        ops = NinePOperations(root, background)
        options = set(pyfuse3.default_options)
        options |= {"default_permissions", "allow_other", f"fsname=9p:{address}",
                    "subtype=runpsc-9p"}
        if debug:
            options.add("debug")
        pyfuse3.init(ops, mountpoint, options)
        try:
            async with trio.open_nursery() as nursery:
                async def on_signal() -> None:
                    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
                        async for _ in sigs:
                            log.info("signal: unmounting %s", mountpoint)
                            pyfuse3.terminate()
                            return

                nursery.start_soon(on_signal)
                task_status.started()
                await pyfuse3.main()
                nursery.cancel_scope.cancel()
        finally:
            pyfuse3.close(unmount=True)
            background.cancel_scope.cancel()
