"""`9p:ADDRESS,aname=NAME` — any 9P2000.L server, through our p9 client.

Why this shape: 9P2000.L moves files, not system calls. The part of Linux that turns a
system call into 9P messages (the kernel's v9fs client) decides path resolution, symlink
following, trailing slashes, `.`/`..`, O_CREAT/O_EXCL/O_NOFOLLOW logic, file offsets,
O_APPEND, the umask and the group of new files in setgid directories. This module plays
that part, as v9fs does it, so that a case exercises the *server* for everything the
protocol carries. What the protocol does carry (permission checks, ownership, the setgid
and sticky rules, timestamps, locks, xattrs) is left entirely to the server: each identity
attaches with its own n_uname, as v9fs does with `access=user`.

Things 9P2000.L cannot express are answered the way Linux's v9fs answers them and listed as
documented exceptions (conformance/exceptions.py): RENAME_EXCHANGE (Trenameat carries no
flags; RENAME_NOREPLACE is emulated by a lookup first, which is not atomic), supplementary
groups (Tattach carries one uid), and fifo I/O (a fifo's data never travels over 9P; a
client serves it locally).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import trio

import p9

from .target_api import (
    F_RDLCK,
    F_UNLCK,
    F_WRLCK,
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    ROOT,
    UTIME_NOW,
    UTIME_OMIT,
    Creds,
    Stat,
    Target,
)

PATH_MAX = 4096
NAME_MAX = 255
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536
MAXSYMLINKS = 40
_XATTR_PREFIXES = (b"user.", b"trusted.", b"security.", b"system.")
_ALL = p9.GetattrMask.ALL


def _err(code: int, what: str = "") -> OSError:
    return OSError(code, os.strerror(code) + (f": {what}" if what else ""))


def to_stat(st: p9.Stat) -> Stat:
    """Our Stat from a Tgetattr answer."""
    a = st.attr
    return Stat(mode=a.mode, ino=st.qid.path, nlink=a.nlink, uid=a.uid, gid=a.gid,
                size=a.size, atime_ns=a.atime_sec * 10**9 + a.atime_nsec,
                mtime_ns=a.mtime_sec * 10**9 + a.mtime_nsec,
                ctime_ns=a.ctime_sec * 10**9 + a.ctime_nsec, rdev=a.rdev, blocks=a.blocks)


def parse_address(spec: str) -> tuple[str, dict[str, str]]:
    """Split 'tcp:HOST:PORT,aname=NAME,msize=N' into the address and its options."""
    addr, *opts = spec.split(",")
    options: dict[str, str] = {}
    for o in opts:
        k, sep, v = o.partition("=")
        if not sep or k not in ("aname", "msize", "version"):
            raise ValueError(f"unknown 9p target option {o!r} in {spec!r} "
                             "(aname=NAME, msize=N, version=plain)")
        options[k] = v
    return addr, options


@dataclass
class _Handle:
    fid: p9.Fid
    flags: int
    is_dir: bool
    offset: int = 0
    cookie: int = 0
    done: bool = False

    @property
    def readable(self) -> bool:
        acc = self.flags & os.O_ACCMODE
        return not self.flags & os.O_PATH and acc in (os.O_RDONLY, os.O_RDWR)

    @property
    def writable(self) -> bool:
        acc = self.flags & os.O_ACCMODE
        return not self.flags & os.O_PATH and acc in (os.O_WRONLY, os.O_RDWR)


@dataclass
class _Shared:
    client: p9.Client
    aname: bytes
    #: where fids that were only walked are clunked without waiting for the answer
    nursery: trio.Nursery
    roots: dict[Creds, p9.Fid] = field(default_factory=dict)
    handles: dict[int, _Handle] = field(default_factory=dict)
    next: int = 1


class NinePTarget(Target):
    """A 9P2000.L server seen through a v9fs-like client layer."""

    features = frozenset({"unpriv", "xattr", "locks", "mknod-dev"})

    def __init__(self, shared: _Shared, comps: tuple[bytes, ...] = (), *,
                 creds: Creds = ROOT, _mask: list[int] | None = None) -> None:
        self._sh = shared
        self.comps = comps
        self.creds = creds
        # The umask belongs to one case: shared by views with other credentials only.
        self._mask = _mask if _mask is not None else [0o022]
        self._dir: p9.Fid | None = None
        self._own: set[int] = set()

    def derive(self, *, root: bytes | None = None, creds: Creds | None = None) -> NinePTarget:
        comps = self.comps
        if root is not None:
            for c in root.split(b"/"):
                if c and c != b".":
                    comps = comps[:-1] if c == b".." else comps + (c,)
        return NinePTarget(self._sh, comps, creds=creds or self.creds,
                           _mask=self._mask if root is None else None)

    def abspath(self, path: bytes) -> bytes:
        return b"/" + b"/".join(self.comps + ((path,) if path else ()))

    async def aclose(self) -> None:
        for h in sorted(self._own):
            hd = self._sh.handles.pop(h, None)
            if hd is not None:
                await hd.fid.clunk()
        self._own.clear()
        if self._dir is not None:
            await self._dir.clunk()
            self._dir = None

    def umask(self, mask: int) -> int:
        old, self._mask[0] = self._mask[0], mask
        return old

    # -- resolution (what v9fs and the VFS above it do) --------------------------------------
    def _drop(self, fid: p9.Fid) -> None:
        """Clunk a walked (never opened) fid in the background: nothing depends on it."""
        self._sh.nursery.start_soon(fid.clunk)

    @contextlib.asynccontextmanager
    async def _dropping(self, fid: p9.Fid) -> AsyncIterator[p9.Fid]:
        try:
            yield fid
        finally:
            self._drop(fid)
    async def _attach_root(self) -> p9.Fid:
        root = self._sh.roots.get(self.creds)
        if root is None:
            uname = b"root" if self.creds.uid == 0 else str(self.creds.uid).encode()
            root = await self._sh.client.attach(self._sh.aname, uname=uname,
                                                n_uname=self.creds.uid)
            self._sh.roots[self.creds] = root
        return root

    async def _base(self, path: bytes) -> p9.Fid:
        """The (borrowed) Fid of the directory resolution of `path` starts from."""
        if path.startswith(b"/"):
            return await self._attach_root()
        if self._dir is None:
            self._dir = await (await self._attach_root()).walk(list(self.comps))
        return self._dir

    async def _resolve(self, path: bytes, comps: list[bytes],
                       follow_last: bool) -> tuple[p9.Fid, p9.Stat]:
        """Resolve `comps` of `path`; an owned Fid of the final object and its stat.

        Fast path: one Twalk(getattr) of every component. A server walks only through
        directories, so if it succeeds no component but the last can be a symlink; the
        slow path (one component at a time, following symlinks as Linux does) runs when
        it fails, when the last component is a symlink to follow, or for '.'/'..'.
        """
        base = await self._base(path)
        if b"." not in comps and b".." not in comps:
            try:
                fid, st = await base.walk_getattr(comps, _ALL)
            except OSError:
                pass
            else:
                if not (follow_last and statmod.S_ISLNK(st.attr.mode)):
                    return fid, st
                await fid.clunk()
        return await self._walk(await base.walk(), comps, follow_last, [MAXSYMLINKS])

    async def _walk(self, cur: p9.Fid, comps: list[bytes], follow_last: bool,
                    budget: list[int]) -> tuple[p9.Fid, p9.Stat]:
        """Resolve `comps` from directory `cur` (consumed); the final object and its stat."""
        st: p9.Stat | None = None
        try:
            for i, name in enumerate(comps):
                last = i == len(comps) - 1
                if name == b".":
                    if st is None:
                        st = await cur.getattr(_ALL)
                    continue
                if len(name) > NAME_MAX:
                    raise _err(errno.ENAMETOOLONG)
                nf, nst = await cur.walk_getattr([name], _ALL)
                if statmod.S_ISLNK(nst.attr.mode) and (not last or follow_last):
                    budget[0] -= 1
                    if budget[0] < 0:
                        await nf.clunk()
                        raise _err(errno.ELOOP)
                    try:
                        target = await nf.readlink()
                    finally:
                        await nf.clunk()
                    if target.startswith(b"/"):
                        await cur.clunk()
                        cur = await (await self._attach_root()).walk()
                    tcomps = [c for c in target.split(b"/") if c]
                    cur, nst = await self._walk(cur, tcomps, True, budget)
                    if target.endswith(b"/") and not nst.is_dir:
                        raise _err(errno.ENOTDIR)
                    st = nst
                else:
                    await cur.clunk()
                    cur, st = nf, nst
                if not last and not statmod.S_ISDIR(st.attr.mode):
                    raise _err(errno.ENOTDIR)
            if st is None:
                st = await cur.getattr(_ALL)
            return cur, st
        except BaseException:
            await cur.clunk()
            raise

    @staticmethod
    def _split(path: bytes) -> tuple[list[bytes], bool]:
        if not path:
            raise _err(errno.ENOENT, "empty path")
        if len(path) >= PATH_MAX:
            raise _err(errno.ENAMETOOLONG)
        # (a component's length is checked when the walk reaches it, as Linux's
        # filesystems do in their lookup: a missing directory before it is ENOENT)
        return [c for c in path.split(b"/") if c], path.endswith(b"/")

    async def _lookup(self, path: bytes, follow: bool = True) -> tuple[p9.Fid, p9.Stat]:
        """The object `path` names (an owned Fid) and its attributes."""
        comps, slash = self._split(path)
        fid, st = await self._resolve(path, comps, follow or slash)
        if slash and not st.is_dir:
            await fid.clunk()
            raise _err(errno.ENOTDIR)
        return fid, st

    async def _parent(self, path: bytes) -> tuple[p9.Fid, p9.Stat, bytes, bool]:
        """(directory Fid, its stat, last component, trailing slash) for creating ops.

        The last component may be b'.' or b'..' (callers decide the errno)."""
        comps, slash = self._split(path)
        if not comps:
            comps = [b"."]
        d, st = await self._resolve(path, comps[:-1], True)
        if not st.is_dir or len(comps[-1]) > NAME_MAX:
            await d.clunk()
            raise _err(errno.ENOTDIR if not st.is_dir else errno.ENAMETOOLONG)
        return d, st, comps[-1], slash

    async def _child(self, d: p9.Fid, name: bytes) -> tuple[p9.Fid, p9.Stat] | None:
        try:
            return await d.walk_getattr([name], _ALL)
        except FileNotFoundError:
            return None

    def _gid_for_create(self, parent: p9.Stat) -> int:
        """v9fs_get_fsgid_for_create: the parent's group in a setgid directory."""
        if parent.attr.mode & statmod.S_ISGID:
            return parent.attr.gid
        return self.creds.gid

    def _new(self, hd: _Handle) -> int:
        h = self._sh.next
        self._sh.next += 1
        self._sh.handles[h] = hd
        self._own.add(h)
        return h

    def _h(self, h: int) -> _Handle:
        try:
            return self._sh.handles[h]
        except KeyError:
            raise _err(errno.EBADF, f"handle {h}") from None

    # -- files -------------------------------------------------------------------------------
    async def open(self, path: bytes, flags: int, mode: int = 0o666) -> int:
        if flags & os.O_CREAT and flags & os.O_DIRECTORY:
            raise _err(errno.EINVAL, "O_CREAT|O_DIRECTORY")
        if flags & os.O_CREAT:
            return await self._open_creat(path, flags, mode)
        fid, st = await self._lookup(path, follow=not flags & os.O_NOFOLLOW)
        try:
            return await self._open_existing(fid, st, flags)
        except BaseException:
            await fid.clunk()
            raise

    async def _open_existing(self, fid: p9.Fid, st: p9.Stat, flags: int) -> int:
        mode = st.attr.mode
        acc = flags & os.O_ACCMODE
        is_dir = statmod.S_ISDIR(mode)
        # Linux's order: O_DIRECTORY is part of the lookup; then, except for O_PATH, the
        # checks of may_open (kind, O_NOATIME's owner) and the open itself.
        if flags & os.O_DIRECTORY and not is_dir:
            raise _err(errno.ENOTDIR)
        if flags & os.O_PATH:  # names the object only: nothing is opened on the server
            return self._new(_Handle(fid, flags, is_dir))
        if statmod.S_ISLNK(mode):
            raise _err(errno.ELOOP)
        if is_dir and (acc != os.O_RDONLY or flags & os.O_TRUNC):
            raise _err(errno.EISDIR)
        if flags & os.O_NOATIME and not self.creds.is_root and self.creds.uid != st.attr.uid:
            raise _err(errno.EPERM)
        if statmod.S_ISSOCK(mode):
            raise _err(errno.ENXIO)  # a socket node has no open
        if not (statmod.S_ISREG(mode) or is_dir):
            raise _err(errno.EOPNOTSUPP, "special files are served by the client, not over 9P")
        lflags = acc | (flags & os.O_TRUNC)
        await fid.open(lflags)
        return self._new(_Handle(fid, flags, is_dir))

    async def _open_creat(self, path: bytes, flags: int, mode: int) -> int:
        budget = [MAXSYMLINKS]
        while True:
            d: p9.Fid | None
            d, dst, name, slash = await self._parent(path)
            try:
                if slash or name in (b".", b".."):
                    raise _err(errno.EISDIR)
                # Try to create first (the usual case: one round trip); an existing name
                # is then looked at the way Linux's open_last_lookups would.
                try:
                    await d.create(name, (flags & os.O_ACCMODE) | os.O_CREAT | os.O_EXCL,
                                   mode & ~self._mask[0] & 0o7777, self._gid_for_create(dst))
                except FileExistsError:
                    pass
                else:
                    h = self._new(_Handle(d, flags, False))
                    d = None
                    return h
                child = await self._child(d, name)
                if child is None:  # removed meanwhile: try again (a bounded number of times)
                    budget[0] -= 1
                    if budget[0] < 0:
                        raise _err(errno.ELOOP)
                    continue
                cf, cst = child
                if flags & os.O_EXCL:
                    await cf.clunk()
                    raise _err(errno.EEXIST)
                if statmod.S_ISLNK(cst.attr.mode):
                    if flags & os.O_NOFOLLOW:
                        await cf.clunk()
                        raise _err(errno.ELOOP)
                    try:
                        target = await cf.readlink()
                    finally:
                        await cf.clunk()
                    budget[0] -= 1
                    if budget[0] < 0:
                        raise _err(errno.ELOOP)
                    # Continue creating at the link's target, as Linux does.
                    if not target.startswith(b"/"):
                        target = self._dirpath(path) + target
                    path = target
                    continue
                if cst.is_dir:
                    self._drop(cf)
                    raise _err(errno.EISDIR)
                try:
                    return await self._open_existing(cf, cst, flags)
                except BaseException:
                    self._drop(cf)
                    raise
            finally:
                if d is not None:
                    self._drop(d)

    @staticmethod
    def _dirpath(path: bytes) -> bytes:
        head = path.rstrip(b"/").rpartition(b"/")[0]
        return head + b"/" if head or path.startswith(b"/") else b""

    async def close(self, h: int) -> None:
        hd = self._h(h)
        del self._sh.handles[h]
        self._own.discard(h)
        await hd.fid.clunk()

    async def read(self, h: int, n: int) -> bytes:
        hd = self._h(h)
        data = await self._pread(hd, n, hd.offset)
        hd.offset += len(data)
        return data

    async def _pread(self, hd: _Handle, n: int, off: int) -> bytes:
        if not hd.readable:
            raise _err(errno.EBADF)
        if hd.is_dir:
            raise _err(errno.EISDIR)
        if off < 0:
            raise _err(errno.EINVAL)
        return await hd.fid.read(off, n) if n else b""

    async def pread(self, h: int, n: int, off: int) -> bytes:
        return await self._pread(self._h(h), n, off)

    async def _pwrite(self, hd: _Handle, data: bytes, off: int) -> int:
        if not hd.writable:
            raise _err(errno.EBADF)
        if off < 0:
            raise _err(errno.EINVAL)
        if hd.flags & os.O_APPEND:
            off = (await hd.fid.getattr(p9.GetattrMask.SIZE)).attr.size
        if not data:
            return 0
        n = await hd.fid.write(off, data)
        if hd.flags & os.O_APPEND:
            hd.offset = off + n
        return n

    async def write(self, h: int, data: bytes) -> int:
        hd = self._h(h)
        if hd.flags & os.O_APPEND:
            return await self._pwrite(hd, data, 0)
        n = await self._pwrite(hd, data, hd.offset)
        hd.offset += n
        return n

    async def pwrite(self, h: int, data: bytes, off: int) -> int:
        hd = self._h(h)
        keep = hd.offset
        n = await self._pwrite(hd, data, off)
        hd.offset = keep
        return n

    async def lseek(self, h: int, off: int, whence: int) -> int:
        hd = self._h(h)
        if whence == os.SEEK_SET:
            new = off
        elif whence == os.SEEK_CUR:
            new = hd.offset + off
        elif whence == os.SEEK_END:
            new = (await hd.fid.getattr(p9.GetattrMask.SIZE)).attr.size + off
        else:
            raise _err(errno.EINVAL)
        if new < 0:
            raise _err(errno.EINVAL)
        hd.offset = new
        return new

    async def ftruncate(self, h: int, size: int) -> None:
        hd = self._h(h)
        if size < 0 or not hd.writable or hd.is_dir:
            raise _err(errno.EINVAL)
        await hd.fid.setattr(size=size, ctime=True)

    async def truncate(self, path: bytes, size: int) -> None:
        if size < 0:
            raise _err(errno.EINVAL)
        fid, st = await self._lookup(path)
        async with self._dropping(fid):
            if st.is_dir:
                raise _err(errno.EISDIR)
            if not statmod.S_ISREG(st.attr.mode):
                raise _err(errno.EINVAL)
            await fid.setattr(size=size, ctime=True)

    async def fsync(self, h: int) -> None:
        await self._h(h).fid.fsync()

    async def fstat(self, h: int) -> Stat:
        return to_stat(await self._h(h).fid.getattr(_ALL))

    async def stat(self, path: bytes, follow: bool = True) -> Stat:
        comps, slash = self._split(path)
        if (comps and self._sh.client.dialect.multigetattr and b"." not in comps
                and b".." not in comps):
            # One Tmultigetattr, no fid to clunk; it stops at the first missing component,
            # so a short answer (or a symlink to follow) takes the general path.
            try:
                stats = await (await self._base(path)).multi_getattr(comps)
            except OSError:
                stats = []
            if len(stats) == len(comps):
                st = stats[-1]
                link = statmod.S_ISLNK(st.attr.mode)
                if not ((follow or slash) and link) and not (slash and not st.is_dir):
                    return to_stat(st)
        fid, st = await self._lookup(path, follow)
        self._drop(fid)
        return to_stat(st)

    # -- namespace ---------------------------------------------------------------------------
    async def _create_prep(self, path: bytes, *, dir_ok: bool = False
                           ) -> tuple[p9.Fid, p9.Stat, bytes]:
        """Parent and name for mkdir/symlink/mknod/link: the name must not exist."""
        d, dst, name, slash = await self._parent(path)
        try:
            if name in (b".", b".."):
                raise _err(errno.EEXIST)
            if slash and not dir_ok:
                # 'name/' may only be created as a directory: EEXIST if it exists, else ENOENT.
                child = await self._child(d, name)
                if child is not None:
                    self._drop(child[0])
                    raise _err(errno.EEXIST)
                raise _err(errno.ENOENT)
        except BaseException:
            self._drop(d)
            raise
        return d, dst, name

    async def mkdir(self, path: bytes, mode: int = 0o777) -> None:
        d, dst, name = await self._create_prep(path, dir_ok=True)
        async with self._dropping(d):
            await d.mkdir(name, mode & 0o1777 & ~self._mask[0], self._gid_for_create(dst))

    async def rmdir(self, path: bytes) -> None:
        d, _, name, _ = await self._parent(path)
        async with self._dropping(d):
            if name == b".":
                raise _err(errno.EINVAL)
            if name == b"..":
                raise _err(errno.ENOTEMPTY)
            await d.unlinkat(name, p9.AT_REMOVEDIR)

    async def unlink(self, path: bytes) -> None:
        d, _, name, slash = await self._parent(path)
        async with self._dropping(d):
            if name in (b".", b".."):
                raise _err(errno.EISDIR)
            if slash:
                child = await self._child(d, name)
                if child is None:
                    raise _err(errno.ENOENT)
                self._drop(child[0])
                raise _err(errno.EISDIR if child[1].is_dir else errno.ENOTDIR)
            await d.unlinkat(name, 0)

    async def rename(self, old: bytes, new: bytes, flags: int = 0) -> None:
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or flags == (
                RENAME_NOREPLACE | RENAME_EXCHANGE):
            raise _err(errno.EINVAL)
        od, _, oname, oslash = await self._parent(old)
        try:
            nd, _, nname, nslash = await self._parent(new)
        except BaseException:
            await od.clunk()
            raise
        async with self._dropping(od), self._dropping(nd):
            if oname in (b".", b".."):
                raise _err(errno.EBUSY)
            if nname in (b".", b".."):
                raise _err(errno.EEXIST if flags & RENAME_NOREPLACE else errno.EBUSY)
            if not flags and not oslash and not nslash:
                await od.renameat(oname, nd, nname)
                return
            src = await self._child(od, oname)
            if src is None:
                raise _err(errno.ENOENT)
            self._drop(src[0])
            dst = await self._child(nd, nname)
            if dst is not None:
                self._drop(dst[0])
            if flags & RENAME_EXCHANGE:
                if dst is None:
                    raise _err(errno.ENOENT)
                raise _err(errno.EINVAL, "RENAME_EXCHANGE cannot be expressed in 9P2000.L")
            if flags & RENAME_NOREPLACE and dst is not None:
                raise _err(errno.EEXIST)
            if not src[1].is_dir and (oslash or nslash):
                raise _err(errno.ENOTDIR)
            await od.renameat(oname, nd, nname)

    async def link(self, old: bytes, new: bytes, follow: bool = False) -> None:
        of, ost = await self._lookup(old, follow=follow)
        async with self._dropping(of):
            if ost.is_dir:
                raise _err(errno.EPERM)
            d, _, name = await self._create_prep(new)
            async with self._dropping(d):
                await d.link(of, name)

    async def symlink(self, target: bytes, path: bytes) -> None:
        if not target:
            raise _err(errno.ENOENT)
        if len(target) >= PATH_MAX:
            raise _err(errno.ENAMETOOLONG)
        d, dst, name = await self._create_prep(path)
        async with self._dropping(d):
            await d.symlink(name, target, self._gid_for_create(dst))

    async def readlink(self, path: bytes) -> bytes:
        fid, st = await self._lookup(path, follow=False)
        async with self._dropping(fid):
            if not statmod.S_ISLNK(st.attr.mode):
                raise _err(errno.EINVAL)
            return await fid.readlink()

    async def mknod(self, path: bytes, mode: int, dev: int = 0) -> None:
        kind = statmod.S_IFMT(mode) or statmod.S_IFREG
        if kind == statmod.S_IFDIR:
            raise _err(errno.EPERM)
        if kind not in (statmod.S_IFREG, statmod.S_IFIFO, statmod.S_IFSOCK, statmod.S_IFCHR,
                        statmod.S_IFBLK):
            raise _err(errno.EINVAL)
        d, dst, name = await self._create_prep(path)
        async with self._dropping(d):
            perm = mode & 0o7777 & ~self._mask[0]
            await d.mknod(name, kind | perm, os.major(dev), os.minor(dev),
                          self._gid_for_create(dst))

    async def _opendir_fid(self, path: bytes) -> p9.Fid:
        fid, st = await self._lookup(path)
        try:
            if not st.is_dir:
                raise _err(errno.ENOTDIR)
            await fid.open(os.O_RDONLY)
        except BaseException:
            await fid.clunk()
            raise
        return fid

    async def listdir(self, path: bytes) -> list[bytes]:
        fid = await self._opendir_fid(path)
        async with self._dropping(fid):
            ents = await fid.readdir_all()
        return [e.name for e in ents if e.name not in (b".", b"..")]

    async def opendir(self, path: bytes) -> int:
        return self._new(_Handle(await self._opendir_fid(path), os.O_RDONLY, True))

    async def getdents(self, h: int, count: int) -> list[bytes]:
        hd = self._h(h)
        if not hd.is_dir:
            raise _err(errno.ENOTDIR)
        # Linux refuses to read a directory that has been removed (IS_DEADDIR), whatever
        # the filesystem would return; a removed directory has no links left.
        if (await hd.fid.getattr(p9.GetattrMask.NLINK)).attr.nlink == 0:
            raise _err(errno.ENOENT)
        out: list[bytes] = []
        while not out and not hd.done:
            # Small Treaddir counts, so that a directory changing between calls is observable.
            ents = await hd.fid.readdir(hd.cookie, max(64, 40 * count))
            if not ents:
                hd.done = True
                break
            hd.cookie = ents[-1].offset
            out.extend(e.name for e in ents if e.name not in (b".", b".."))
        return out

    # -- attributes --------------------------------------------------------------------------
    async def chmod(self, path: bytes, mode: int, follow: bool = True) -> None:
        fid, st = await self._lookup(path, follow)
        async with self._dropping(fid):
            if statmod.S_ISLNK(st.attr.mode):
                raise _err(errno.EOPNOTSUPP)  # Linux's chmod_common on a symlink
            await fid.setattr(mode=mode & 0o7777, ctime=True)

    async def fchmod(self, h: int, mode: int) -> None:
        hd = self._h(h)
        if hd.flags & os.O_PATH:
            raise _err(errno.EBADF)
        await hd.fid.setattr(mode=mode & 0o7777, ctime=True)

    async def chown(self, path: bytes, uid: int, gid: int, follow: bool = True) -> None:
        fid, st = await self._lookup(path, follow)
        async with self._dropping(fid):
            if uid == -1 and gid == -1:
                # Linux's chown drops set-user-ID (and set-group-ID with group execute) of
                # a non-directory even when no owner changes; the server sees no chown.
                perm = st.attr.mode & 0o7777
                kept = perm & ~statmod.S_ISUID
                if perm & statmod.S_IXGRP:
                    kept &= ~statmod.S_ISGID
                if statmod.S_ISDIR(st.attr.mode) or kept == perm:
                    await fid.setattr(ctime=True)
                else:
                    await fid.setattr(mode=kept, ctime=True)
                return
            await fid.setattr(uid=None if uid == -1 else uid, gid=None if gid == -1 else gid,
                              ctime=True)

    async def utimens(self, path: bytes, atime_ns: int, mtime_ns: int,
                      follow: bool = True) -> None:
        fid, _ = await self._lookup(path, follow)
        async with self._dropping(fid):
            if atime_ns == UTIME_OMIT and mtime_ns == UTIME_OMIT:
                return

            def conv(v: int) -> int | bool | None:
                return None if v == UTIME_OMIT else True if v == UTIME_NOW else v

            await fid.setattr(atime=conv(atime_ns), mtime=conv(mtime_ns), ctime=True)

    @staticmethod
    def _xattr_name(name: bytes) -> None:
        if len(name) > XATTR_NAME_MAX or not name:
            raise _err(errno.ERANGE)
        if not name.startswith(_XATTR_PREFIXES):
            raise _err(errno.EOPNOTSUPP)

    async def _xattr_target(self, path: bytes, name: bytes, write: bool) -> p9.Fid:
        self._xattr_name(name)
        fid, st = await self._lookup(path, follow=False)
        mode = st.attr.mode
        if name.startswith(b"user.") and not (statmod.S_ISREG(mode) or statmod.S_ISDIR(mode)):
            await fid.clunk()
            raise _err(errno.EPERM if write else errno.ENODATA)
        return fid

    async def setxattr(self, path: bytes, name: bytes, value: bytes, flags: int = 0) -> None:
        if len(value) > XATTR_SIZE_MAX:
            raise _err(errno.E2BIG)
        fid = await self._xattr_target(path, name, True)
        async with self._dropping(fid):
            await fid.setxattr(name, value, flags)

    async def getxattr(self, path: bytes, name: bytes) -> bytes:
        fid = await self._xattr_target(path, name, False)
        async with self._dropping(fid):
            return await fid.getxattr(name)

    async def listxattr(self, path: bytes) -> list[bytes]:
        fid, _ = await self._lookup(path, follow=False)
        async with self._dropping(fid):
            return await fid.listxattr()

    async def removexattr(self, path: bytes, name: bytes) -> None:
        fid = await self._xattr_target(path, name, True)
        async with self._dropping(fid):
            await fid.removexattr(name)

    # -- locks -------------------------------------------------------------------------------
    async def setlk(self, h: int, kind: int, start: int, length: int) -> None:
        hd = self._h(h)
        if (kind == F_WRLCK and not hd.writable) or (kind == F_RDLCK and not hd.readable):
            raise _err(errno.EBADF)
        if kind not in (F_RDLCK, F_WRLCK, F_UNLCK):
            raise _err(errno.EINVAL)
        status = await hd.fid.lock(kind, start, length, proc_id=h,
                                   client_id=b"runpsc-conformance")
        if status == p9.LockStatus.SUCCESS:
            return
        if status in (p9.LockStatus.BLOCKED, p9.LockStatus.GRACE):
            raise _err(errno.EAGAIN)
        raise _err(errno.ENOLCK)

    async def getlk(self, h: int, kind: int, start: int,
                    length: int) -> tuple[int, int, int] | None:
        hd = self._h(h)
        r = await hd.fid.getlock(kind, start, length, proc_id=h,
                                 client_id=b"runpsc-conformance")
        if r.lock_type == p9.LockType.UNLCK:
            return None
        return (int(r.lock_type), r.start, r.length)


@contextlib.asynccontextmanager
async def open_9p(spec: str, *,
                  tls: p9.TLSClientConfig | None = None) -> AsyncIterator[NinePTarget]:
    """Connect to the server in `spec` ('tcp:HOST:PORT,aname=NAME', 'unix:PATH,…' or
    'tls:HOST:PORT,…' with `tls`)."""
    addr, opts = parse_address(spec)
    version = b"9P2000.L" if opts.get("version") == "plain" else p9.RUNPSC
    async with p9.open_address(addr, tls=tls, msize=int(opts.get("msize", 1 << 20)),
                               version=version) as client, trio.open_nursery() as nursery:
        shared = _Shared(client, os.fsencode(opts.get("aname", "")), nursery)
        t = NinePTarget(shared)
        try:
            await t._attach_root()
            yield t
        finally:
            await t.aclose()
            for root in shared.roots.values():
                await root.clunk()
