"""The client's `Fid`: a handle on one server file, one method per operation.

Each method is one or a few messages through its `Client` (p9/_client.py), which owns the
connection, tags and fid numbers; failures raise `OSError` with the server's errno. Where
the negotiated dialect lacks an extension, the method falls back to plain 9P2000.L
messages (walk + getattr for Twalkgetattr, Txattrwalk/Txattrcreate for the xattr
messages, walk + Trename/Tremove when a server refuses Trenameat/Tunlinkat).
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from . import _messages as m
from ._constants import AT_REMOVEDIR, NOFID, GetattrMask, LockStatus, LockType, QidType, SetattrMask
from ._dirents import decode_attr_entries
from ._errors import ProtocolError, oserror

if TYPE_CHECKING:
    from ._client import Client


#: Open flags that act once, at the open: not repeated when a reconnection reopens a fid.
_ONCE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_TRUNC


@dataclasses.dataclass(frozen=True, slots=True)
class Stat:
    """A Tgetattr result: qid, the mask of valid fields, and the attributes."""

    qid: m.Qid
    valid: int
    attr: m.Attr

    @property
    def is_dir(self) -> bool:
        return bool(self.qid.type & QidType.DIR)


class HeldLocks:
    """The byte-range locks one fid holds, as the server holds them: a lock or unlock over
    a range replaces whatever the same owner had there (POSIX), so after a reconnection
    taking each range again rebuilds the same set."""

    __slots__ = ("ranges", "owner")

    def __init__(self) -> None:
        #: (lock type, start, end or None for "to the end of the file"), by start.
        self.ranges: list[tuple[int, int, int | None]] = []
        #: The proc_id and client_id of the last Tlock.
        self.owner: tuple[int, bytes] = (0, b"")

    def apply(self, lock_type: int, start: int, length: int) -> None:
        """Record a granted Tlock (start and length as the server reads them: signed; a
        negative length covers the bytes before start, 0 the rest of the file)."""
        if length >= 1 << 63:
            length -= 1 << 64
        end: int | None = None if length == 0 else start + length
        if length < 0:
            start, end = start + length, start
        out: list[tuple[int, int, int | None]] = []
        for t, s, e in self.ranges:
            if (e is not None and e <= start) or (end is not None and s >= end):
                out.append((t, s, e))
                continue
            if s < start:
                out.append((t, s, start))
            if end is not None and (e is None or e > end):
                out.append((t, end, e))
        if lock_type != LockType.UNLCK:
            out.append((lock_type, start, end))
        self.ranges = sorted(out, key=lambda r: r[1])


class Fid:
    """A client-side fid: a handle on one server file, with the path walked to reach it.

    Use as an async context manager or call `clunk()`; a Fid must be clunked exactly once.
    """

    __slots__ = ("client", "fid", "qid", "path", "iounit", "_clunked", "root", "opened",
                 "restorable", "locks")

    def __init__(self, client: Client, fid: int, qid: m.Qid, path: tuple[bytes, ...], *,
                 root: int = NOFID) -> None:
        self.client = client
        self.fid = fid
        self.qid = qid
        #: Names walked from the attach root `root` (a fid number): a reconnection walks
        #: them again to re-establish this fid (renames keep it current).
        self.path = path
        self.root = root
        self.iounit = 0
        self._clunked = False
        #: The flags it was opened with (None: not open), to open it again after a
        #: reconnection.
        self.opened: int | None = None
        #: False for what a walk cannot rebuild (an xattr fid): lost with the connection.
        self.restorable = root != NOFID
        #: The byte-range locks taken through it (None: none), taken again after a
        #: reconnection.
        self.locks: HeldLocks | None = None
        client._fids[fid] = self

    def __repr__(self) -> str:
        return f"<Fid {self.fid} {b'/'.join(self.path)!r}>"

    async def __aenter__(self) -> Fid:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.clunk()

    @property
    def is_dir(self) -> bool:
        return bool(self.qid.type & QidType.DIR)

    # --- walking ------------------------------------------------------------------------------

    async def walk(self, names: Sequence[bytes | str] = ()) -> Fid:
        """Walk `names` (one component each) to a new Fid; `()` clones.

        Raises:
            OSError: ENOENT (or the server's errno) if any component is missing.
        """
        wnames = [os.fsencode(n) for n in names]
        c = self.client
        qid = self.qid
        cur: Fid | None = None
        # Twalk carries at most 16 names (MAXWELEM); longer walks go in steps.
        chunks = [wnames[i : i + 16] for i in range(0, len(wnames), 16)] or [[]]
        try:
            for chunk in chunks:
                src = cur or self

                def twalk(nf: int, fid: int = src.fid, wnames: tuple[bytes, ...] = tuple(chunk)
                          ) -> m.Message:
                    return m.Twalk(fid, nf, wnames)

                newfid, r = await c._walk_to_new_fid(twalk, m.Rwalk, chunk)
                if r.qids:
                    qid = r.qids[-1]
                nxt = Fid(c, newfid, qid, src.path + tuple(chunk), root=src.root)
                if cur is not None:
                    await cur.clunk()
                cur = nxt
        except BaseException:
            if cur is not None:
                await cur.clunk()
            raise
        assert cur is not None
        return cur

    async def walk_getattr(
        self, names: Sequence[bytes | str], mask: int = GetattrMask.BASIC
    ) -> tuple[Fid, Stat]:
        """Walk and stat in one round trip when negotiated (Twalkgetattr), else two."""
        c = self.client
        wnames = [os.fsencode(n) for n in names]
        if not c.dialect.walkgetattr or len(wnames) > 16:
            f = await self.walk(wnames)
            try:
                return f, await f.getattr(mask)
            except BaseException:
                await f.clunk()
                raise
        newfid, r = await c._walk_to_new_fid(
            lambda nf: m.Twalkgetattr(self.fid, nf, tuple(wnames)), m.Rwalkgetattr, wnames)
        qid = r.qids[-1] if r.qids else self.qid
        return (Fid(c, newfid, qid, self.path + tuple(wnames), root=self.root),
                Stat(qid, r.valid, r.attr))

    async def multi_getattr(self, names: Sequence[bytes | str]) -> list[Stat]:
        """Stat every component along `names` (stops at the first missing one)."""
        c = self.client
        wnames = [os.fsencode(n) for n in names]
        if c.dialect.multigetattr:
            r = await c.rpc(m.Tmultigetattr(self.fid, tuple(wnames)))
            assert isinstance(r, m.Rmultigetattr)
            return [Stat(s.qid, s.valid, s.attr) for s in r.stats]
        out: list[Stat] = []
        for i in range(1, len(names) + 1) if names else [0]:
            try:
                f, st = await self.walk_getattr(names[:i], GetattrMask.ALL)
            except OSError:
                if out:
                    break
                raise
            await f.clunk()
            out.append(st)
        return out

    async def clunk(self) -> None:
        """Release the fid on the server (shielded; idempotent)."""
        if self._clunked:
            return
        self._clunked = True
        await self.client._clunk(self.fid)

    aclose = clunk

    async def remove(self) -> None:
        """Remove the file; the fid is gone afterwards whatever the result."""
        if self._clunked:
            raise oserror(errno.EBADF, "fid already clunked")
        self._clunked = True
        try:
            with trio.CancelScope(shield=True):
                await self.client.rpc(m.Tremove(self.fid))
        finally:
            # (kept until now: a reconnection meanwhile looks for its file by its path)
            self.client._fids.pop(self.fid, None)
            self.client.release_fid(self.fid)

    # --- attributes ----------------------------------------------------------------------------

    async def getattr(self, mask: int = GetattrMask.BASIC) -> Stat:
        r = await self.client.rpc(m.Tgetattr(self.fid, mask))
        assert isinstance(r, m.Rgetattr)
        return Stat(r.qid, r.valid, r.attr)

    async def setattr(
        self,
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        size: int | None = None,
        atime: int | bool | None = None,
        mtime: int | bool | None = None,
        ctime: bool = False,
    ) -> None:
        """Change attributes. `atime`/`mtime`: nanoseconds since the epoch, or True = now."""
        valid, a = _setattr_args(mode, uid, gid, size, atime, mtime, ctime)
        await self.client.rpc(m.Tsetattr(self.fid, valid, a))

    async def statfs(self) -> m.Rstatfs:
        r = await self.client.rpc(m.Tstatfs(self.fid))
        assert isinstance(r, m.Rstatfs)
        return r

    # --- open files -----------------------------------------------------------------------------

    async def open(self, flags: int = os.O_RDONLY) -> m.Qid:
        """Open this fid with Linux open flags (O_CREAT/O_EXCL are not for Tlopen)."""
        r = await self.client.rpc(m.Tlopen(self.fid, flags))
        assert isinstance(r, m.Rlopen)
        self.iounit = r.iounit
        self.qid = r.qid
        self.opened = flags & ~_ONCE_FLAGS
        return r.qid

    async def open_donated(self, flags: int = os.O_RDONLY) -> tuple[m.Qid, int | None]:
        """`open`, and the file's host descriptor when the server donates one (Tlopenfd:
        `client.donations`); the descriptor is the caller's to close, and stays valid
        after this fid is clunked."""
        client = self.client
        if not client.donations:
            return await self.open(flags), None

        async def cancelled(reply: m.Message | None) -> None:
            client.drop_donated(reply)

        r = await client.rpc(m.Tlopenfd(self.fid, flags), on_cancel=cancelled)
        assert isinstance(r, m.Rlopenfd)
        self.iounit = r.iounit
        self.qid = r.qid
        return r.qid, client.donated_fd(r, flags)

    async def create(
        self, name: bytes | str, flags: int = os.O_RDWR, mode: int = 0o644, gid: int | None = None
    ) -> m.Qid:
        """Create `name` in this directory; this fid then refers to the new open file."""
        name = os.fsencode(name)
        path = self.path  # (a reconnection that finds it made moves the fid there itself)
        r = await self.client.rpc(
            m.Tlcreate(self.fid, name, flags, mode, os.getegid() if gid is None else gid)
        )
        assert isinstance(r, m.Rlcreate)
        self.iounit = r.iounit
        self.qid = r.qid
        self.path = path + (name,)
        self.opened = flags & ~_ONCE_FLAGS
        return r.qid

    def _chunk(self) -> int:
        n = self.client.iosize
        if self.iounit and self.iounit < n:
            n = self.iounit
        return n

    async def read(self, offset: int, count: int) -> bytes:
        """Read up to `count` bytes at `offset`; large reads are split and pipelined.

        Returns fewer bytes only at end of file.
        """
        chunk = self._chunk()
        if count <= chunk:
            r = await self.client.rpc(m.Tread(self.fid, offset, count))
            assert isinstance(r, m.Rread)
            return r.data
        n = (count + chunk - 1) // chunk
        msgs = [m.Tread(self.fid, offset + i * chunk, min(chunk, count - i * chunk)) for i in range(n)]
        out = []
        for i, r in enumerate(await self.client.rpc_many(msgs)):
            assert isinstance(r, m.Rread)
            out.append(r.data)
            if len(r.data) < msgs[i].count:
                break
        return b"".join(out)

    async def write(self, offset: int, data: bytes) -> int:
        """Write `data` at `offset`, split and pipelined; returns the bytes written."""
        chunk = self._chunk()
        view = memoryview(data)
        if len(view) <= chunk:
            r = await self.client.rpc(m.Twrite(self.fid, offset, bytes(view)))
            assert isinstance(r, m.Rwrite)
            return r.count
        n = (len(view) + chunk - 1) // chunk
        msgs = [m.Twrite(self.fid, offset + i * chunk, bytes(view[i * chunk : (i + 1) * chunk]))
                for i in range(n)]
        total = 0
        for msg, r in zip(msgs, await self.client.rpc_many(msgs), strict=True):
            assert isinstance(r, m.Rwrite)
            total += r.count
            if r.count < len(msg.data):
                break
        return total

    async def readdir(self, offset: int = 0, count: int | None = None) -> list[m.Dirent]:
        """One Treaddir from cookie `offset`; [] at the end of the directory."""
        if count is None:
            # msize-24 as Linux asks: diod refuses anything larger.
            count = self.client.iosize
        r = await self.client.rpc(m.Treaddir(self.fid, offset, count))
        assert isinstance(r, m.Rreaddir)
        try:
            return m.decode_dirents(r.data)
        except ProtocolError as e:
            raise oserror(errno.EPROTO, str(e)) from e

    async def readdir_attr(self, offset: int = 0, count: int | None = None
                           ) -> tuple[list[tuple[tuple[int, int, int, int, bytes],
                                                 tuple[int, ...] | None]], bool]:
        """One Treaddirattr from cookie `offset` (the dialect's `readdirattr`): the entries
        as `(qid_type, qid_path, next_cookie, d_type, name)` rows, each with its attributes
        `(valid, qid_type, qid_path, *Attr fields)` or None, and whether the directory ends
        there. EOPNOTSUPP if the server's file model does not serve it."""
        if not self.client.dialect.readdirattr:
            raise oserror(errno.EOPNOTSUPP, "Treaddirattr not negotiated")
        if count is None:
            count = self.client.iosize
        r = await self.client.rpc(m.Treaddirattr(self.fid, offset, count))
        assert isinstance(r, m.Rreaddirattr)
        try:
            return decode_attr_entries(r.data), bool(r.eof)
        except ProtocolError as e:
            raise oserror(errno.EPROTO, str(e)) from e

    async def open_dir_attr(self, names: Sequence[bytes] = (), count: int | None = None
                            ) -> tuple[Fid, list[tuple[tuple[int, int, int, int, bytes],
                                                       tuple[int, ...] | None]], bool]:
        """Walk `names` to a new Fid, open it as a directory and list it from cookie 0 with
        attributes, in one round trip (Topendirattr, the dialect's `opendirattr`): the
        open Fid, `readdir_attr`'s entries and whether the directory ends there.
        EOPNOTSUPP if not negotiated or the server's file model does not list attributes
        (nothing is left open then)."""
        c = self.client
        if not c.dialect.opendirattr:
            raise oserror(errno.EOPNOTSUPP, "Topendirattr not negotiated")
        wnames = tuple(names)
        if count is None:
            count = c.iosize
        newfid, r = await c.rpc_to_new_fid(
            lambda nf: m.Topendirattr(self.fid, nf, count, wnames),
            lambda reply: isinstance(reply, m.Ropendirattr))
        assert isinstance(r, m.Ropendirattr)
        f = Fid(c, newfid, r.qid, self.path + wnames, root=self.root)
        f.iounit = r.iounit
        f.opened = os.O_RDONLY | os.O_DIRECTORY
        try:
            return f, decode_attr_entries(r.data), bool(r.eof)
        except ProtocolError as e:
            await f.clunk()
            raise oserror(errno.EPROTO, str(e)) from e

    async def readdir_all(self) -> list[m.Dirent]:
        """Every entry of this open directory (including . and .. if the server sends them)."""
        out: list[m.Dirent] = []
        offset = 0
        while True:
            ents = await self.readdir(offset)
            if not ents:
                return out
            out.extend(ents)
            offset = ents[-1].offset

    async def fsync(self, datasync: bool = False) -> None:
        await self.client.rpc(m.Tfsync(self.fid, int(datasync)))

    async def allocate(self, mode: int, offset: int, length: int) -> None:
        """fallocate(2); needs the negotiated extension, else EOPNOTSUPP."""
        if not self.client.dialect.allocate:
            raise oserror(errno.EOPNOTSUPP, "Tallocate not negotiated")
        await self.client.rpc(m.Tallocate(self.fid, mode, offset, length))

    async def lock(
        self,
        lock_type: int,
        start: int = 0,
        length: int = 0,
        *,
        flags: int = 0,
        proc_id: int | None = None,
        client_id: bytes = b"",
    ) -> int:
        """POSIX byte-range lock (Tlock); returns a p9.LockStatus. What it holds is
        remembered (`locks`) to take it again after a reconnection."""
        pid = os.getpid() if proc_id is None else proc_id
        r = await self.client.rpc(m.Tlock(self.fid, lock_type, flags, start, length, pid,
                                          client_id))
        assert isinstance(r, m.Rlock)
        if r.status == LockStatus.SUCCESS:
            held = self.locks or HeldLocks()
            held.owner = (pid, client_id)
            held.apply(lock_type, start, length)
            self.locks = held if held.ranges else None
        return r.status

    async def getlock(
        self, lock_type: int = LockType.WRLCK, start: int = 0, length: int = 0,
        *, proc_id: int | None = None, client_id: bytes = b"",
    ) -> m.Rgetlock:
        """Test for a conflicting lock (Tgetlock); lock_type UNLCK in the answer: none."""
        r = await self.client.rpc(
            m.Tgetlock(self.fid, lock_type, start, length,
                       os.getpid() if proc_id is None else proc_id, client_id)
        )
        assert isinstance(r, m.Rgetlock)
        return r

    # --- directories ----------------------------------------------------------------------------

    async def mkdir(self, name: bytes | str, mode: int = 0o755, gid: int | None = None) -> m.Qid:
        r = await self.client.rpc(
            m.Tmkdir(self.fid, os.fsencode(name), mode, os.getegid() if gid is None else gid)
        )
        assert isinstance(r, m.Rmkdir)
        return r.qid

    async def symlink(self, name: bytes | str, target: bytes | str, gid: int | None = None) -> m.Qid:
        r = await self.client.rpc(
            m.Tsymlink(self.fid, os.fsencode(name), os.fsencode(target),
                       os.getegid() if gid is None else gid)
        )
        assert isinstance(r, m.Rsymlink)
        return r.qid

    async def mknod(
        self, name: bytes | str, mode: int, major: int = 0, minor: int = 0, gid: int | None = None
    ) -> m.Qid:
        r = await self.client.rpc(
            m.Tmknod(self.fid, os.fsencode(name), mode, major, minor,
                     os.getegid() if gid is None else gid)
        )
        assert isinstance(r, m.Rmknod)
        return r.qid

    async def link(self, target: Fid, name: bytes | str) -> None:
        """Make `name` in this directory a hard link to `target`."""
        await self.client.rpc(m.Tlink(self.fid, target.fid, os.fsencode(name)))

    async def rename(self, newdir: Fid, name: bytes | str) -> None:
        """Move this fid's file to `newdir`/`name` (Trename)."""
        name = os.fsencode(name)
        await self.client.rpc(m.Trename(self.fid, newdir.fid, name))
        self.client._renamed(self.root, self.path, newdir.path + (name,))

    async def renameat(self, oldname: bytes | str, newdir: Fid, newname: bytes | str) -> None:
        """Rename `oldname` here to `newdir`/`newname`; falls back to walk + Trename."""
        c = self.client
        if not c._no_renameat:
            try:
                old, new = os.fsencode(oldname), os.fsencode(newname)
                await c.rpc(m.Trenameat(self.fid, old, newdir.fid, new))
                c._renamed(self.root, self.path + (old,), newdir.path + (new,))
                return
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                c._no_renameat = True
        async with await self.walk([oldname]) as f:
            await f.rename(newdir, newname)

    async def unlinkat(self, name: bytes | str, flags: int = 0) -> None:
        """Remove `name` (AT_REMOVEDIR for a directory); falls back to walk + Tremove."""
        c = self.client
        if not c._no_unlinkat:
            try:
                await c.rpc(m.Tunlinkat(self.fid, os.fsencode(name), flags))
                return
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                c._no_unlinkat = True
        f = await self.walk([name])
        try:
            st = await f.getattr(GetattrMask.MODE)
        except BaseException:
            await f.clunk()
            raise
        if flags & AT_REMOVEDIR and not st.is_dir:
            await f.clunk()
            raise oserror(errno.ENOTDIR, os.fsdecode(name))
        if not flags & AT_REMOVEDIR and st.is_dir:
            await f.clunk()
            raise oserror(errno.EISDIR, os.fsdecode(name))
        await f.remove()

    async def readlink(self) -> bytes:
        r = await self.client.rpc(m.Treadlink(self.fid))
        assert isinstance(r, m.Rreadlink)
        return r.target

    # --- extended attributes --------------------------------------------------------------------

    async def _xattr_read(self, name: bytes) -> bytes:
        c = self.client
        newfid, r = await c.rpc_to_new_fid(lambda nf: m.Txattrwalk(self.fid, nf, name),
                                           lambda reply: True)
        assert isinstance(r, m.Rxattrwalk)
        f = Fid(c, newfid, self.qid, self.path)  # (no root: an xattr fid is not walked again)
        async with f:
            data = await f.read(0, r.size) if r.size else b""
        return data

    async def _xattr_create(self, name: bytes, value: bytes, flags: int) -> None:
        """Set (or, with an empty value, remove) `name` over plain 9P2000.L: a cloned fid
        becomes the xattr write buffer (Txattrcreate), committed at its clunk, which is
        therefore awaited (its Rclunk or Rlerror is the result)."""
        c = self.client
        f = await self.walk()
        try:
            f.restorable = False  # (now an xattr fid: lost with the connection)
            await c.rpc(m.Txattrcreate(f.fid, name, len(value), flags))
            if value:
                await f.write(0, value)
        except BaseException:
            await f.clunk()
            raise
        f._clunked = True
        c._fids.pop(f.fid, None)
        try:
            with trio.CancelScope(shield=True):
                await c.rpc(m.Tclunk(f.fid))
        finally:
            c.release_fid(f.fid)

    async def getxattr(self, name: bytes | str) -> bytes:
        """Value of extended attribute `name` (ENODATA if absent)."""
        name = os.fsencode(name)
        if self.client.dialect.getsetxattr:
            r = await self.client.rpc(m.Tgetxattr(self.fid, name, 0))
            assert isinstance(r, m.Rgetxattr)
            return r.value
        return await self._xattr_read(name)

    async def listxattr(self) -> list[bytes]:
        if self.client.dialect.listremovexattr:
            r = await self.client.rpc(m.Tlistxattr(self.fid, 0))
            assert isinstance(r, m.Rlistxattr)
            return list(r.xattrs)
        data = await self._xattr_read(b"")
        return [n for n in data.split(b"\0") if n]

    async def setxattr(self, name: bytes | str, value: bytes, flags: int = 0) -> None:
        """Set extended attribute `name` (flags: os.XATTR_CREATE / os.XATTR_REPLACE)."""
        name = os.fsencode(name)
        c = self.client
        if c.dialect.getsetxattr:
            await c.rpc(m.Tsetxattr(self.fid, name, value, flags))
            return
        await self._xattr_create(name, value, flags)

    async def removexattr(self, name: bytes | str) -> None:
        name = os.fsencode(name)
        c = self.client
        if c.dialect.listremovexattr:
            await c.rpc(m.Tremovexattr(self.fid, name))
            return
        # Linux v9fs: Txattrcreate with size 0 and XATTR_REPLACE... servers vary, so we use
        # size 0, flags 0, which diod, QEMU and our server treat as removal.
        await self._xattr_create(name, b"", 0)


def _setattr_args(
    mode: int | None, uid: int | None, gid: int | None, size: int | None,
    atime: int | bool | None, mtime: int | bool | None, ctime: bool,
) -> tuple[int, m.SetAttr]:
    V = SetattrMask
    valid = 0
    kw: dict[str, int] = {}
    if mode is not None:
        valid |= V.MODE
        kw["mode"] = mode
    if uid is not None:
        valid |= V.UID
        kw["uid"] = uid
    if gid is not None:
        valid |= V.GID
        kw["gid"] = gid
    if size is not None:
        valid |= V.SIZE
        kw["size"] = size
    for which, value, flag, setflag in (("atime", atime, V.ATIME, V.ATIME_SET),
                                        ("mtime", mtime, V.MTIME, V.MTIME_SET)):
        if value is None or value is False:
            continue
        valid |= flag
        if value is not True:
            valid |= setflag
            kw[f"{which}_sec"], kw[f"{which}_nsec"] = divmod(int(value), 10**9)
    if ctime:
        valid |= V.CTIME
    return int(valid), m.SetAttr(**kw)
