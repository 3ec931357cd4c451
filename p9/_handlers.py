"""The per-message handlers of a server connection: one method per 9P request.

`Handlers.call(msg)` answers one request message with its reply message through the file
model, or raises; the connection (p9/_connection.py) maps what it raises to Rlerror with
`errno_of`, the one place that does. The session's negotiated msize and dialect live here
(Tversion, handled by the connection, sets them): extension messages are answered only when
the dialect has them. The walk leniencies ("." stays, ".." stops at the attach root) are
`_walk`'s.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pwd
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import trio

from . import _messages as m
from ._constants import IOHDRSZ, NONUNAME, GetattrMask, QidType
from ._dirents import PackedDirents, pack_dirents
from ._errors import ProtocolError
from ._fids import FidState, FidTable
from ._file import File
from ._version import PLAIN, Dialect

if TYPE_CHECKING:
    from ._server import Server

log = logging.getLogger("p9.server")

_RREADDIR_HDR = 11  # size[4] type[1] tag[2] count[4]
_RREADDIRATTR_HDR = 12  # size[4] type[1] tag[2] eof[1] count[4]
_ROPENDIRATTR_HDR = 29  # size[4] type[1] tag[2] qid[13] iounit[4] eof[1] count[4]

#: A handler takes its own message type (`call` dispatches by type, hence Any).
_Handler = Callable[[Any], Awaitable[m.Message]]


def errno_of(exc: BaseException) -> int:
    """The one mapping from an exception raised while serving to an Rlerror errno."""
    if isinstance(exc, OSError):
        return exc.errno or errno.EIO
    if isinstance(exc, ProtocolError):
        return errno.EINVAL
    log.exception("p9 server: unexpected error in the file model", exc_info=exc)
    return errno.EIO


class Handlers:
    """One connection's request handlers, over its fid table and negotiated session."""

    def __init__(self, server: Server, table: FidTable) -> None:
        self.server = server
        self.fs = server.fs
        self.table = table
        #: The negotiated msize and dialect (Tversion sets them).
        self.msize = server.max_msize
        self.dialect: Dialect = PLAIN
        self.by_type: dict[type[m.Message], _Handler] = {
            m.Tattach: self.attach, m.Tauth: self.auth, m.Twalk: self.walk,
            m.Tclunk: self.clunk, m.Tremove: self.remove, m.Tlopen: self.lopen,
            m.Tlcreate: self.lcreate, m.Tread: self.read, m.Twrite: self.write,
            m.Tgetattr: self.getattr, m.Tsetattr: self.setattr, m.Treaddir: self.readdir,
            m.Tstatfs: self.statfs, m.Tfsync: self.fsync, m.Tmkdir: self.mkdir,
            m.Tsymlink: self.symlink, m.Tmknod: self.mknod, m.Tlink: self.link,
            m.Trename: self.rename, m.Trenameat: self.renameat, m.Tunlinkat: self.unlinkat,
            m.Treadlink: self.readlink, m.Tlock: self.lock, m.Tgetlock: self.getlock,
            m.Txattrwalk: self.xattrwalk, m.Txattrcreate: self.xattrcreate,
        }
        #: Extension messages: the Dialect flag that must be on, and the handler.
        self.ext: dict[type[m.Message], tuple[str, _Handler]] = {
            m.Tflushf: ("flushf", self.flushf),
            m.Twalkgetattr: ("walkgetattr", self.walkgetattr),
            m.Tucreate: ("ucreate", self.lcreate), m.Tumkdir: ("ucreate", self.mkdir),
            m.Tumknod: ("ucreate", self.mknod), m.Tusymlink: ("ucreate", self.symlink),
            m.Tallocate: ("allocate", self.allocate),
            m.Tgetxattr: ("getsetxattr", self.getxattr),
            m.Tsetxattr: ("getsetxattr", self.setxattr),
            m.Tlistxattr: ("listremovexattr", self.listxattr),
            m.Tremovexattr: ("listremovexattr", self.removexattr),
            m.Tsetattrclunk: ("setattrclunk", self.setattrclunk),
            m.Tmultigetattr: ("multigetattr", self.multigetattr),
            m.Treaddirattr: ("readdirattr", self.readdirattr),
            m.Tlopenfd: ("lopenfd", self.lopenfd),
            m.Topendirattr: ("opendirattr", self.opendirattr),
        }
        #: Whether the connection can carry descriptors (a unix socket), and the duplicate
        #: descriptor each Rlopenfd reply about to be sent carries, by the reply's id
        #: (the connection sends and closes it: `take_passing`).
        self.passes_fds = False
        self._passing: dict[int, int] = {}

    async def call(self, msg: m.Message) -> m.Message:
        cls = type(msg)
        h = self.by_type.get(cls)
        if h is not None:
            return await h(msg)
        ext = self.ext.get(cls)
        if ext is not None and getattr(self.dialect, ext[0]):
            return await ext[1](msg)
        raise OSError(errno.EOPNOTSUPP, f"{cls.__name__} is not served on this connection")

    # --- session -------------------------------------------------------------------------

    async def auth(self, msg: m.Tauth) -> m.Message:
        raise OSError(errno.ENOENT, "authentication is not required")

    async def attach(self, msg: m.Tattach) -> m.Message:
        self.table.check_new(msg.fid)
        uname, uid = msg.uname, msg.n_uname
        if uid == NONUNAME:
            if not uname:
                uname, uid = self.server.default_uname, self.server.default_uid
            else:
                try:
                    uid = pwd.getpwnam(uname.decode("utf-8", "surrogateescape")).pw_uid
                except (KeyError, ValueError):
                    raise OSError(errno.EPERM, f"unknown user {uname!r}") from None
        file = await self.fs.attach(msg.aname, uname, uid)
        try:
            qid, _, _ = await file.getattr(GetattrMask.MODE)
        except BaseException:
            await file.close()
            raise
        self.table.check_new(msg.fid)
        self.table.add(msg.fid, FidState(file, qid, 0))
        return m.Rattach(qid)

    # --- walking -------------------------------------------------------------------------

    async def _walk(self, f: FidState, names: Sequence[bytes]) -> tuple[list[m.Qid], FidState | None]:
        """Walk with the leniencies: "." stays, ".." at the attach root stays at the root."""
        if not names:
            _, new = await f.file.walk([])
            if new is None:
                raise OSError(errno.EIO, "file model returned no clone")
            return [], FidState(new, f.qid, f.depth)
        if b"." not in names and (b".." not in names or f.depth >= len(names)):
            # The common case, no "." and no ".." that could reach the attach root: one
            # walk of the file model (what the loop below would do, without its bookkeeping).
            got, new = await f.file.walk(names)
            if len(got) > len(names) or (not got):
                if new is not None:
                    await new.close()
                raise OSError(errno.EIO, "file model walk returned a bad qid list")
            if len(got) < len(names):
                if new is not None:
                    await new.close()
                return got, None
            if new is None:
                raise OSError(errno.EIO, "file model walk returned no file")
            depth = f.depth
            for n in names:
                depth += -1 if n == b".." else 1
            return got, FidState(new, got[-1], depth)
        qids: list[m.Qid] = []
        cur_file: File = f.file
        cur_qid, depth = f.qid, f.depth
        owned = False  # whether cur_file is ours to close
        i = 0
        try:
            while i < len(names):
                name = names[i]
                if name == b"." or (name == b".." and depth == 0):
                    if not cur_qid.type & QidType.DIR:
                        if not qids:
                            raise OSError(errno.ENOTDIR, "walk from a non-directory")
                        break
                    qids.append(cur_qid)
                    i += 1
                    continue
                run: list[bytes] = []
                d = depth
                while i + len(run) < len(names):
                    n = names[i + len(run)]
                    if n == b"." or (n == b".." and d == 0):
                        break
                    d += -1 if n == b".." else 1
                    run.append(n)
                try:
                    got, new = await cur_file.walk(run)
                except OSError:
                    if not qids:
                        raise
                    break
                if len(got) > len(run) or (not got):
                    if new is not None:
                        await new.close()
                    raise OSError(errno.EIO, "file model walk returned a bad qid list")
                qids.extend(got)
                if new is None or len(got) < len(run):
                    if new is not None:
                        await new.close()
                    break
                if owned:
                    await cur_file.close()
                cur_file, cur_qid, owned, depth = new, got[-1], True, d
                i += len(run)
        except BaseException:
            if owned:
                await cur_file.close()
            raise
        if len(qids) < len(names):
            if owned:
                await cur_file.close()
            return qids, None
        if not owned:
            _, clone = await cur_file.walk([])
            if clone is None:
                raise OSError(errno.EIO, "file model returned no clone")
            cur_file = clone
        return qids, FidState(cur_file, cur_qid, depth)

    async def walk(self, msg: m.Twalk) -> m.Message:
        return m.Rwalk(tuple(await self.walk_fid(msg.fid, msg.newfid, msg.wnames)))

    async def walk_fid(self, fid: int, newfid: int, names: Sequence[bytes]) -> list[m.Qid]:
        self.table.check_new(newfid, fid)
        f = self.table.get(fid)
        try:
            qids, new = await self._walk(f, names)
        finally:
            await self.table.unref(f)
        if new is not None:
            await self.table.install(newfid, fid, new)
        return qids

    async def walkgetattr(self, msg: m.Twalkgetattr) -> m.Message:
        self.table.check_new(msg.newfid, msg.fid)
        if any(n in (b".", b"..") for n in msg.wnames):
            rwalk = await self.walk(m.Twalk(msg.fid, msg.newfid, msg.wnames))
            assert isinstance(rwalk, m.Rwalk)
            if len(rwalk.qids) < len(msg.wnames):
                return m.Rwalkgetattr(0, m.Attr(), rwalk.qids)
            nf = self.table.get(msg.newfid)
            try:
                _, valid, a = await nf.file.getattr(GetattrMask.ALL)
            finally:
                await self.table.unref(nf)
            return m.Rwalkgetattr(valid, a, rwalk.qids)
        f = self.table.get(msg.fid)
        try:
            got, newfile, valid, a = await f.file.walk_getattr(msg.wnames)
        finally:
            await self.table.unref(f)
        if newfile is not None:
            qid = got[-1] if got else f.qid
            depth = f.depth + sum(-1 if n == b".." else 1 for n in msg.wnames)
            await self.table.install(msg.newfid, msg.fid, FidState(newfile, qid, depth))
        return m.Rwalkgetattr(valid, a, tuple(got))

    async def multigetattr(self, msg: m.Tmultigetattr) -> m.Message:
        f = self.table.get(msg.fid)
        try:
            stats = await f.file.multi_getattr(msg.wnames)
        finally:
            await self.table.unref(f)
        return m.Rmultigetattr(tuple(stats))

    async def clunk(self, msg: m.Tclunk) -> m.Message:
        await self.clunk_fid(msg.fid)
        return m.Rclunk()

    async def clunk_fid(self, fid: int) -> None:
        f = self.table.pop(fid)
        if f is None:
            raise OSError(errno.EBADF, f"unknown fid {fid}")
        try:
            if f.xattr_write is not None:
                name, size, flags, buf = f.xattr_write
                if len(buf) != size:
                    raise OSError(errno.EINVAL, f"xattr {name!r}: wrote {len(buf)} of {size}")
                if size == 0:
                    # Linux's v9fs removes with size 0 and XATTR_REPLACE; QEMU and diod
                    # treat any size-0 Txattrcreate as removal. So do we.
                    await f.file.removexattr(name)
                else:
                    await f.file.setxattr(name, bytes(buf), flags)
        finally:
            await self.table.unref(f, kill=True)

    async def remove(self, msg: m.Tremove) -> m.Message:
        f = self.table.pop(msg.fid)
        if f is None:
            raise OSError(errno.EBADF, f"unknown fid {msg.fid}")
        try:
            await f.file.remove()
        finally:
            await self.table.unref(f, kill=True)
        return m.Rremove()

    # --- file operations ----------------------------------------------------------------------

    async def lopen(self, msg: m.Tlopen) -> m.Message:
        f = self.table.get(msg.fid)
        try:
            qid, iounit = await f.file.open(msg.flags)
            f.opened = True
            f.set_read_fd()
        finally:
            await self.table.unref(f)
        return m.Rlopen(qid, self._iounit(iounit))

    async def lopenfd(self, msg: m.Tlopenfd) -> m.Message:
        """Tlopen, and the File's `donate_fd()` (duplicated) with the reply when the
        connection can carry it."""
        f = self.table.get(msg.fid)
        try:
            qid, iounit = await f.file.open(msg.flags)
            f.opened = True
            f.set_read_fd()
            fd = f.file.donate_fd() if self.passes_fds else None
            dup = os.dup(fd) if fd is not None else -1
        finally:
            await self.table.unref(f)
        reply = m.Rlopenfd(qid, self._iounit(iounit), int(dup >= 0))
        if dup >= 0:
            self._passing[id(reply)] = dup
        return reply

    def take_passing(self, reply: m.Message) -> int:
        """The descriptor `reply` (an Rlopenfd) carries, now the caller's to send and close;
        -1 if none."""
        return self._passing.pop(id(reply), -1)

    def _iounit(self, iounit: int) -> int:
        # 0 would leave the choice to the client; some (p9fs) then send msize bytes of data
        # plus a header, overflowing msize. Say what fits.
        limit = self.msize - IOHDRSZ
        return limit if iounit <= 0 or iounit > limit else iounit

    async def lcreate(self, msg: m.Tlcreate | m.Tucreate) -> m.Message:
        uid = msg.uid if isinstance(msg, m.Tucreate) else None
        f = self.table.get(msg.fid)
        try:
            new, qid, iounit = await f.file.create(msg.name, msg.flags, msg.mode, msg.gid, uid)
        finally:
            await self.table.unref(f)
        nf = FidState(new, qid, f.depth + 1)
        nf.opened = True
        nf.set_read_fd()
        if self.table.fids.get(msg.fid) is f:
            self.table.put(msg.fid, nf)
            await self.table.unref(f, kill=True)
        else:
            await self.table.unref(nf, kill=True)
            raise OSError(errno.EBADF, f"fid {msg.fid} was clunked during create")
        reply = m.Rucreate if isinstance(msg, m.Tucreate) else m.Rlcreate
        return reply(qid, self._iounit(iounit))

    async def read(self, msg: m.Tread) -> m.Message:
        count = min(msg.count, self.msize - IOHDRSZ)
        f = self.table.get(msg.fid)
        try:
            if f.xattr_read is not None:
                return m.Rread(f.xattr_read[msg.offset : msg.offset + count])
            data = await f.file.read(msg.offset, count)
        finally:
            await self.table.unref(f)
        if len(data) > count:
            data = data[:count]
        return m.Rread(data)

    async def write(self, msg: m.Twrite) -> m.Message:
        f = self.table.get(msg.fid)
        try:
            if f.xattr_write is not None:
                name, size, flags, buf = f.xattr_write
                if msg.offset != len(buf) or len(buf) + len(msg.data) > size:
                    raise OSError(errno.EINVAL, f"xattr {name!r}: write beyond declared size")
                buf += msg.data
                return m.Rwrite(len(msg.data))
            n = await f.file.write(msg.offset, msg.data)
        finally:
            await self.table.unref(f)
        return m.Rwrite(n)

    async def readdir(self, msg: m.Treaddir) -> m.Message:
        count = min(msg.count, self.msize - _RREADDIR_HDR)
        f = self.table.get(msg.fid)
        try:
            entries = await f.file.readdir(msg.offset, count)
        finally:
            await self.table.unref(f)
        if isinstance(entries, PackedDirents):
            data, n = entries.data, entries.count
            if len(data) > count:
                raise OSError(errno.EIO, "file model packed more than the count")
        else:
            data, n = pack_dirents(entries, count)
        if n == 0 and entries:
            raise OSError(errno.EINVAL, f"readdir count {msg.count} too small for an entry")
        return m.Rreaddir(data)

    async def readdirattr(self, msg: m.Treaddirattr) -> m.Message:
        count = min(msg.count, self.msize - _RREADDIRATTR_HDR)
        f = self.table.get(msg.fid)
        try:
            data, n, eof = await f.file.readdir_attr(msg.offset, count)
        finally:
            await self.table.unref(f)
        _check_listing(data, n, eof, count, msg.count)
        return m.Rreaddirattr(int(eof), data)

    async def opendirattr(self, msg: m.Topendirattr) -> m.Message:
        """Twalk + Tlopen(O_RDONLY | O_DIRECTORY) + Treaddirattr from 0, one round trip;
        the new fid is clunked again if a step after the walk fails."""
        qids = await self.walk_fid(msg.fid, msg.newfid, msg.wnames)
        if len(qids) < len(msg.wnames):
            raise OSError(errno.ENOENT, "walk of a listed directory stopped early")
        try:
            f = self.table.get(msg.newfid)
            try:
                qid, iounit = await f.file.open(os.O_RDONLY | os.O_DIRECTORY)
                f.opened = True
                f.set_read_fd()
                count = min(msg.count, self.msize - _ROPENDIRATTR_HDR)
                data, n, eof = await f.file.readdir_attr(0, count)
            finally:
                await self.table.unref(f)
            _check_listing(data, n, eof, count, msg.count)
        except BaseException:
            with trio.CancelScope(shield=True), contextlib.suppress(OSError):
                await self.clunk_fid(msg.newfid)  # (EBADF: the client clunked it already)
            raise
        return m.Ropendirattr(qid, self._iounit(iounit), int(eof), data)

    async def getattr(self, msg: m.Tgetattr) -> m.Message:
        return m.Rgetattr(*await self.getattr_fid(msg.fid, msg.request_mask))

    async def getattr_fid(self, fid: int, mask: int) -> tuple[int, m.Qid, m.Attr]:
        f = self.table.get(fid)
        try:
            qid, valid, a = await f.file.getattr(mask)
        finally:
            await self.table.unref(f)
        return valid, qid, a

    async def setattr(self, msg: m.Tsetattr) -> m.Message:
        f = self.table.get(msg.fid)
        try:
            await f.file.setattr(msg.valid, msg.attr)
        finally:
            await self.table.unref(f)
        return m.Rsetattr()

    async def setattrclunk(self, msg: m.Tsetattrclunk) -> m.Message:
        try:
            await self.setattr(m.Tsetattr(msg.fid, msg.valid, msg.attr))
        finally:
            await self.table.drop(msg.fid)
        return m.Rsetattrclunk()

    async def statfs(self, msg: m.Tstatfs) -> m.Message:
        return await self._simple(msg.fid, lambda file: file.statfs())

    async def _simple(self, fid: int, op):
        f = self.table.get(fid)
        try:
            return await op(f.file)
        finally:
            await self.table.unref(f)

    async def fsync(self, msg: m.Tfsync) -> m.Message:
        await self._simple(msg.fid, lambda file: file.fsync(bool(msg.datasync)))
        return m.Rfsync()

    async def flushf(self, msg: m.Tflushf) -> m.Message:
        await self._simple(msg.fid, lambda file: file.flush())
        return m.Rflushf()

    async def mkdir(self, msg: m.Tmkdir | m.Tumkdir) -> m.Message:
        uid = msg.uid if isinstance(msg, m.Tumkdir) else None
        qid = await self._simple(msg.dfid, lambda d: d.mkdir(msg.name, msg.mode, msg.gid, uid))
        return (m.Rumkdir if uid is not None else m.Rmkdir)(qid)

    async def symlink(self, msg: m.Tsymlink | m.Tusymlink) -> m.Message:
        uid = msg.uid if isinstance(msg, m.Tusymlink) else None
        qid = await self._simple(msg.fid, lambda d: d.symlink(msg.name, msg.symtgt, msg.gid, uid))
        return (m.Rusymlink if uid is not None else m.Rsymlink)(qid)

    async def mknod(self, msg: m.Tmknod | m.Tumknod) -> m.Message:
        uid = msg.uid if isinstance(msg, m.Tumknod) else None
        qid = await self._simple(
            msg.dfid, lambda d: d.mknod(msg.name, msg.mode, msg.major, msg.minor, msg.gid, uid)
        )
        return (m.Rumknod if uid is not None else m.Rmknod)(qid)

    async def link(self, msg: m.Tlink) -> m.Message:
        t = self.table.get(msg.fid)
        try:
            await self._simple(msg.dfid, lambda d: d.link(t.file, msg.name))
        finally:
            await self.table.unref(t)
        return m.Rlink()

    async def rename(self, msg: m.Trename) -> m.Message:
        d = self.table.get(msg.dfid)
        try:
            await self._simple(msg.fid, lambda file: file.rename(d.file, msg.name))
        finally:
            await self.table.unref(d)
        return m.Rrename()

    async def renameat(self, msg: m.Trenameat) -> m.Message:
        d = self.table.get(msg.newdirfid)
        try:
            await self._simple(
                msg.olddirfid, lambda file: file.renameat(msg.oldname, d.file, msg.newname)
            )
        finally:
            await self.table.unref(d)
        return m.Rrenameat()

    async def unlinkat(self, msg: m.Tunlinkat) -> m.Message:
        await self._simple(msg.dirfid, lambda d: d.unlinkat(msg.name, msg.flags))
        return m.Runlinkat()

    async def readlink(self, msg: m.Treadlink) -> m.Message:
        return m.Rreadlink(await self._simple(msg.fid, lambda file: file.readlink()))

    async def lock(self, msg: m.Tlock) -> m.Message:
        status = await self._simple(
            msg.fid,
            lambda file: file.lock(
                msg.lock_type, msg.flags, msg.start, msg.length, msg.proc_id, msg.client_id
            ),
        )
        return m.Rlock(status)

    async def getlock(self, msg: m.Tgetlock) -> m.Message:
        return await self._simple(
            msg.fid,
            lambda file: file.getlock(
                msg.lock_type, msg.start, msg.length, msg.proc_id, msg.client_id
            ),
        )

    async def allocate(self, msg: m.Tallocate) -> m.Message:
        await self._simple(msg.fid, lambda file: file.allocate(msg.mode, msg.offset, msg.length))
        return m.Rallocate()

    # --- extended attributes ------------------------------------------------------------------

    async def xattrwalk(self, msg: m.Txattrwalk) -> m.Message:
        self.table.check_new(msg.newfid, msg.fid)
        f = self.table.get(msg.fid)
        try:
            if msg.name:
                value = await f.file.getxattr(msg.name, 0)
            else:
                value = b"".join(n + b"\0" for n in await f.file.listxattr(0))
            _, clone = await f.file.walk([])
        finally:
            await self.table.unref(f)
        if clone is None:
            raise OSError(errno.EIO, "file model returned no clone")
        nf = FidState(clone, f.qid, f.depth)
        nf.xattr_read = value
        await self.table.install(msg.newfid, msg.fid, nf)
        return m.Rxattrwalk(len(value))

    async def xattrcreate(self, msg: m.Txattrcreate) -> m.Message:
        f = self.table.fids.get(msg.fid)
        if f is None:
            raise OSError(errno.EBADF, f"unknown fid {msg.fid}")
        if msg.attr_size > 1 << 16:
            raise OSError(errno.E2BIG, f"xattr value of {msg.attr_size} bytes")
        f.xattr_write = (msg.name, msg.attr_size, msg.flags, bytearray())
        f.read_fd = -1
        return m.Rxattrcreate()

    async def getxattr(self, msg: m.Tgetxattr) -> m.Message:
        v = await self._simple(msg.fid, lambda file: file.getxattr(msg.name, msg.size))
        return m.Rgetxattr(v)

    async def setxattr(self, msg: m.Tsetxattr) -> m.Message:
        await self._simple(msg.fid, lambda file: file.setxattr(msg.name, msg.value, msg.flags))
        return m.Rsetxattr()

    async def listxattr(self, msg: m.Tlistxattr) -> m.Message:
        names = await self._simple(msg.fid, lambda file: file.listxattr(msg.size))
        return m.Rlistxattr(tuple(names))

    async def removexattr(self, msg: m.Tremovexattr) -> m.Message:
        await self._simple(msg.fid, lambda file: file.removexattr(msg.name))
        return m.Rremovexattr()


def _check_listing(data: bytes, n: int, eof: bool, count: int, asked: int) -> None:
    """A Treaddirattr batch (or Topendirattr's first) as the file model packed it: never
    over `count` bytes, and at least one entry unless the listing ended."""
    if len(data) > count:
        raise OSError(errno.EIO, "file model packed more than the count")
    if n == 0 and not eof:
        raise OSError(errno.EINVAL, f"readdir count {asked} too small for an entry")
