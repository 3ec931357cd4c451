"""The trio server framework: protocol, fid table, concurrency and leniencies.

`Server(fs)` serves 9P2000.L connections for a `Filesystem`; each fid refers to one `File`.
Requests of a connection run concurrently (bounded by `max_inflight`); a Tflush cancels the
request it names and is answered after that request is finished; when a connection closes,
every fid's File is closed. An `OSError` from the file model becomes Rlerror(errno) in
`_errno_of`, the one place that maps exceptions to the wire.
"""

from __future__ import annotations

import contextvars
import errno
import logging
import os
import pwd
import struct
from collections.abc import Collection, Sequence

import trio

from . import _messages as m
from ._cmeta import CMeta
from ._constants import IOHDRSZ, MIN_MSIZE, NOFID, NONUNAME, NOTAG, GetattrMask, QidType
from ._dirents import PackedDirents, pack_dirents
from ._errors import ProtocolError
from ._file import File, Filesystem
from ._framing import (
    META_TYPES,
    TCLUNK,
    TGETATTR,
    FrameDecoder,
    encode_frame,
    encode_frame_parts,
    encode_rclunk,
    encode_rgetattr,
    encode_rwalk,
)
from ._sendpath import PartsSender
from ._sockio import Receiver
from ._transport import tune_tcp
from ._version import PLAIN, Dialect, server_choose

log = logging.getLogger("p9.server")

try:  # the C loop for runs of Treads (p9/fastio.c), built at install time
    if os.environ.get("RUNPSC_NO_CFFI"):
        raise ImportError("RUNPSC_NO_CFFI is set")
    from ._fastio import ffi as _ffi
    from ._fastio import lib as _fastio
except ImportError:  # pragma: no cover - depends on the build
    _ffi = _fastio = None

#: Treads answered in C in a row before the reader task lets other tasks run.
_C_BUDGET = 64
#: Requests C's metadata loop may answer even while it owns no fid: walks, which start
#: from Python's fids (p9/_cmeta.py). Its Tgetattr and Tclunk are for fids it owns.
_C_WALKS = frozenset({m.Twalk.type, m.Twalkgetattr.type})

#: True while a request runs inline in the connection's reader task (see Server(inline=)).
_INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("p9_inline", default=False)

_RREADDIR_HDR = 11  # size[4] type[1] tag[2] count[4]
_RREAD_HDR = struct.Struct("<IBHI")  # size[4] type[1] tag[2] count[4]
_RWRITE = struct.Struct("<IBHI")  # size[4] type[1] tag[2] count[4]: a whole Rwrite
_RECV_CHUNK = 1 << 16


#: Metadata requests a file model usually answers at once: candidates for `Server(inline=)`.
QUICK_MESSAGES: frozenset[type[m.Message]] = frozenset({
    m.Twalk, m.Tgetattr, m.Tclunk, m.Tlopen, m.Tstatfs, m.Treadlink, m.Twalkgetattr,
    m.Tmultigetattr, m.Tsetattr, m.Tsetattrclunk, m.Txattrwalk, m.Tgetxattr, m.Tlistxattr,
})


#: Requests that run inline when their fid's File has a true `inline_io` attribute: the file
#: model's promise that nothing it does for that file waits (a regular file, not a FIFO).
_FID_INLINE: frozenset[type[m.Message]] = frozenset({m.Tlopen, m.Tread, m.Twrite, m.Treaddir})


class _Fid:
    """A fid's state: its File, its qid, how deep below the attach root, reference count."""

    __slots__ = (
        "file", "qid", "depth", "opened", "refs", "dead", "xattr_read", "xattr_write", "read_fd",
    )

    def __init__(self, file: File, qid: m.Qid, depth: int) -> None:
        self.file = file
        self.qid = qid
        self.depth = depth
        self.opened = False
        self.refs = 1
        self.dead = False
        self.xattr_read: bytes | None = None
        self.xattr_write: tuple[bytes, int, int, bytearray] | None = None  # name, size, flags
        #: The File's `data_fd()` once opened, when Treads of this fid may be answered by
        #: pread from it in the reader task (see _Connection._fast_read), and Twrites by a
        #: direct File.write (_fast_write); else -1.
        self.read_fd = -1


class _Request:
    __slots__ = ("scope", "done")

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.done = trio.Event()


def _read_fd_of(f: _Fid) -> int:
    """The descriptor the reader task may pread this fid's Tread data from, or -1."""
    if not getattr(f.file, "inline_io", False) or f.xattr_read is not None or f.xattr_write:
        return -1
    fd = f.file.data_fd()
    return -1 if fd is None else fd


def _errno_of(exc: BaseException) -> int:
    """The one mapping from an exception raised while serving to an Rlerror errno."""
    if isinstance(exc, OSError):
        return exc.errno or errno.EIO
    if isinstance(exc, ProtocolError):
        return errno.EINVAL
    log.exception("p9 server: unexpected error in the file model", exc_info=exc)
    return errno.EIO


class Server:
    """Serve a `Filesystem` over 9P2000.L.

    Args:
        fs: the exported file system.
        max_msize: the largest msize granted (clients asking more get this).
        max_inflight: requests run at once per connection; up to as many more wait (and
            can be flushed); reading stops beyond that.
        default_uname: user for Tattach with an empty uname and NONUNAME (gVisor's client).
        default_uid: its uid.
        inline: message types handled in the connection's reader task instead of a task of
            their own (e.g. `p9.QUICK_MESSAGES`). Saves a task spawn and a cancel scope per
            request, which matters when one request is in flight at a time; only for
            operations the file model completes without waiting long, because the
            connection reads nothing else meanwhile (a Tflush for one finds it done).
        idle_timeout: close a connection when nothing arrives for this many seconds (None:
            never). Kept here rather than in a stream wrapper because a wrapped stream loses
            the non-blocking socket fast path for every send and receive.
        spin_us: after answering, poll the socket this many microseconds for the next
            request before sleeping (0: never; see `p9._sockio.Receiver`). Lowers latency
            for clients with one request in flight, at the price of that much CPU per
            wait while they keep coming; backs off by itself when they pause.
    """

    def __init__(
        self,
        fs: Filesystem,
        *,
        max_msize: int = 1 << 20,
        max_inflight: int = 64,
        default_uname: bytes = b"root",
        default_uid: int = 0,
        inline: Collection[type[m.Message]] = (),
        idle_timeout: float | None = None,
        spin_us: float = 0,
    ) -> None:
        if max_msize < MIN_MSIZE:
            raise ValueError(f"max_msize {max_msize!r} is below {MIN_MSIZE}")
        self.fs = fs
        self.max_msize = max_msize
        self.max_inflight = max_inflight
        self.default_uname = default_uname
        self.default_uid = default_uid
        self.inline = frozenset(inline)
        self.idle_timeout = idle_timeout
        self.spin_us = spin_us

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one connection until the peer closes it; always closes every fid.

        A broken stream ends it quietly. A fault in serving it (a bug: no client can cause
        one on purpose) is logged with its traceback and ends this connection only, not the
        caller's others.
        """
        try:
            conn = _Connection(self, stream)
            try:
                await conn.run()
            finally:
                with trio.CancelScope(shield=True):
                    await conn.release_all()
                    await trio.aclose_forcefully(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            log.debug("p9 server: connection ended: %r", e)
        except Exception:
            log.exception("p9 server: dropped a connection after an internal error")

    async def serve_listeners(
        self,
        listeners: Sequence[trio.abc.Listener],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections forever on `listeners`, each served in its own task."""

        async def handle(stream: trio.abc.Stream) -> None:
            tune_tcp(stream)
            await self.serve_stream(stream)

        await trio.serve_listeners(handle, list(listeners), task_status=task_status)


class _Connection:
    def __init__(self, server: Server, stream: trio.abc.Stream) -> None:
        self.server = server
        self.fs = server.fs
        self.stream = stream
        self.msize = server.max_msize
        self.dialect: Dialect = PLAIN
        self.decoder = FrameDecoder(server.max_msize)
        self.fids: dict[int, _Fid] = {}
        self.inflight: dict[int, _Request] = {}
        self.limiter = trio.Semaphore(server.max_inflight)
        self.tasks = 0  # request tasks running or waiting for a slot
        self.room = trio.Event()
        self.sender = PartsSender(stream)
        self.receiver = Receiver(stream, spin_us=server.spin_us)
        self.inline = server.inline
        self.rbuf = bytearray()  # inline Rread frames (see _read_frame)
        self._cbufs = None  # p9._fastio's receive buffer and results, once used
        #: The fid table of C's metadata loop (p9/_cmeta.py), when the file model offers
        #: walk sources and answers Twalk, Tgetattr and Tclunk inline.
        #: Tgetattr, Twalk and Tclunk take the short path of `_meta` when the file model
        #: answers all three inline (the Gofer does).
        self.meta_inline = {m.Tgetattr, m.Twalk, m.Tclunk} <= self.inline
        self.cm = CMeta(_ffi) if (
            _fastio is not None and server.fs.walk_sources and self.sender._raw is not None
            and self.meta_inline) else None
        self._c_declined = False  # C handed back the frame at the head of the buffer
        self._c_dialect()
        self.handlers = {
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
        self.ext_handlers = {
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
        }

    # --- plumbing ---------------------------------------------------------------------------

    async def send(self, tag: int, msg: m.Message) -> None:
        if type(msg) is m.Rread:
            await self.sender.send_parts(encode_frame_parts(tag, msg))
        else:
            await self.sender.send(encode_frame(tag, msg))

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            if self.server.idle_timeout is not None:
                nursery.start_soon(self._watch_idle, self.server.idle_timeout)
            receive = self.receiver.receive
            decoder = self.decoder
            meta = self.meta_inline
            cm = self.cm
            try:
                while True:
                    data = await receive(decoder.wanted(_RECV_CHUNK))
                    if not data:
                        break
                    decoder.receive_data(data)
                    c_turn = True
                    while True:
                        if cm is not None:
                            # Twalk/Tgetattr/Tclunk go to C's loop first (p9/_cmeta.py);
                            # what it declines, and anything else, Python answers, after
                            # taking over the fids C holds.
                            t = decoder.whole_type()
                            if t >= 0:
                                if c_turn and (t in _C_WALKS or (t in META_TYPES and cm.owned)):
                                    if not await self._c_meta():
                                        break  # the peer closed
                                    c_turn = not self._c_declined
                                    continue
                                if cm.owned:
                                    self._adopt_all()
                            c_turn = True
                        # The hot path: Tread/Twrite of an open regular file, answered
                        # here without building a message or dispatching.
                        io = decoder.peek_io()
                        if io is not None:
                            f = self.fids.get(io[2])  # (Tversion replaces the dict)
                            if f is not None and f.read_fd >= 0:
                                data = decoder.take_io(io)
                                if data is None and _fastio is not None and (
                                        decoder.buffered <= _RECV_CHUNK):
                                    if not await self._c_reads(io[1], io[2], f, io[3], io[4]):
                                        break  # the peer closed
                                elif data is None:
                                    await self._fast_read(io[1], io[2], f, io[3], io[4])
                                else:
                                    await self._fast_write(io[1], f, io[3], data)
                                continue
                        if meta:
                            q = decoder.next_meta()
                            if q is not None:
                                await self._meta(*q)
                                continue
                        try:
                            item = decoder.next_message()
                        except ProtocolError as e:
                            if not e.recoverable:
                                log.info("p9 server: dropping connection: %s", e)
                                return
                            code = errno.EOPNOTSUPP if "unknown message" in str(e) else errno.EINVAL
                            await self.send(NOTAG if e.tag is None else e.tag, m.Rlerror(code))
                            continue
                        if item is None:
                            break
                        tag, msg = item
                        await self.dispatch(tag, msg)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                nursery.cancel_scope.cancel()

    async def _meta(self, mtype: int, tag: int, fid: int, x: int, name: bytes | None) -> None:
        """Answer a Tgetattr, Tclunk or one-name Twalk (`FrameDecoder.next_meta`) inline.

        The same handling as `dispatch` → `getattr`/`clunk`/`walk`, without the message
        objects: at one request in flight that is a third of each request's server time.
        """
        token = _INLINE.set(True)
        try:
            if mtype == TGETATTR:
                frame = encode_rgetattr(tag, *await self.getattr_fid(fid, x))
            elif mtype == TCLUNK:
                await self.clunk_fid(fid)
                frame = encode_rclunk(tag)
            else:
                frame = encode_rwalk(tag, await self.walk_fid(fid, x, (name,)))
        except Exception as e:  # mapped to Rlerror in one place
            frame = encode_frame(tag, m.Rlerror(_errno_of(e)))
        finally:
            _INLINE.reset(token)
        await self.sender.send(frame)

    async def _watch_idle(self, idle: float) -> None:
        """Close the connection once nothing has arrived for `idle` seconds.

        Why a watchdog task rather than a timeout around each receive: a cancel scope per
        receive cost ~10 µs, a fifth of an inline Tread; the receiver only stamps the time.
        """
        receiver = self.receiver
        while True:
            deadline = receiver.last_data + idle
            if trio.current_time() >= deadline:
                log.info("p9 server: closing a connection idle for %ss", idle)
                self.nursery.cancel_scope.cancel()
                return
            await trio.sleep_until(deadline)

    async def dispatch(self, tag: int, msg: m.Message) -> None:
        cls = type(msg)
        if cls is m.Tversion:
            await self.version(tag, msg)
            return
        if cls is m.Tflush:
            # Runs as its own task: it waits for the flushed request.
            self.nursery.start_soon(self.flush, tag, msg)
            return
        if cls in self.inline or (cls in _FID_INLINE and self._quick_fid(msg.fid)):
            token = _INLINE.set(True)
            frame = None
            try:
                if cls is m.Tread:
                    frame = await self._read_frame(tag, msg)
                reply = await self.call(msg) if frame is None else None
            except Exception as e:  # mapped to Rlerror in one place
                reply = m.Rlerror(_errno_of(e))
            finally:
                _INLINE.reset(token)
            if reply is None:
                await self.sender.send(frame)
            else:
                await self.send(tag, reply)
            return
        # Requests beyond max_inflight wait for a slot in their own task, so the reader
        # keeps reading (a Tflush for a running or waiting request gets through) until
        # twice that many are outstanding; only then does it stop reading the socket.
        if self.tasks >= 2 * self.server.max_inflight:
            self.room = trio.Event()
            await self.room.wait()
        self.tasks += 1
        req = _Request()
        self.inflight[tag] = req
        self.nursery.start_soon(self.handle, tag, msg, req)

    async def _fast_read(self, tag: int, fid: int, f: _Fid, offset: int, count: int) -> None:
        """Answer a Tread by pread(2) from `f.read_fd` into the reply buffer, then one send.

        Why: this is most of a sequential reader's traffic, and a Tread served through
        message objects, dispatch and the File's `readinto` cost ~20 µs of Python on top of
        the system calls. When pread fails (or the offset does not fit) nothing is sent
        and the generic path answers, which also reports the error. No reference is taken
        on the fid: its descriptor is used only before the first await.
        """
        count = min(count, self.msize - IOHDRSZ)
        hdr = _RREAD_HDR.size
        buf = self.rbuf
        if len(buf) < hdr + count:
            buf = self.rbuf = bytearray(hdr + count)
        view = memoryview(buf)
        try:
            n = os.preadv(f.read_fd, [view[hdr : hdr + count]], offset) if count else 0
        except (OSError, OverflowError):
            await self.dispatch(tag, m.Tread(fid, offset, count))
            return
        _RREAD_HDR.pack_into(buf, 0, hdr + n, m.Rread.type, tag, n)
        await self.sender.send(view[: hdr + n])

    async def _c_reads(self, tag: int, fid: int, f: _Fid, offset: int, count: int) -> bool:
        """Answer this Tread, and the run of Treads of the same fid that follows it, in C
        (`p9._fastio`); False when the peer closed the connection meanwhile.

        Whatever the decoder still holds (at most _RECV_CHUNK bytes) moves to C's buffer
        first; what C does not answer comes back to the decoder, in order.
        """
        sender = self.sender
        raw = sender._raw
        if raw is None or sender.lock.locked():
            await self._fast_read(tag, fid, f, offset, count)
            return True
        cin, sizes, served, rest = self._to_c()  # what came after this Tread: C goes on
        maxcount = self.msize - IOHDRSZ
        if len(self.rbuf) < _RREAD_HDR.size + maxcount:
            self.rbuf = bytearray(_RREAD_HDR.size + maxcount)
        out = self.rbuf
        spin = self.receiver.spin_ns()
        st = _fastio.p9f_serve_reads(
            raw.fileno(), f.read_fd, fid, maxcount, tag, offset, count,
            cin, len(rest), _RECV_CHUNK, sizes, _ffi.from_buffer(out), sizes + 1, sizes + 2,
            spin, _C_BUDGET, served,
        )
        if st == _fastio.P9F_FAIL:  # nothing sent: the Python path answers (and reports)
            self.decoder.receive_data(rest)
            await self._fast_read(tag, fid, f, offset, count)
            return True
        return await self._from_c(st, spin, memoryview(out))

    def _to_c(self):
        """Move what the decoder holds into C's receive buffer, shared by both C loops (never
        both at once): (that buffer, result slots, served count, the bytes moved)."""
        if self._cbufs is None:
            self._cbufs = (_ffi.new("uint8_t[]", _RECV_CHUNK), _ffi.new("size_t[3]"),
                           _ffi.new("long[1]"))
        cin, sizes, served = self._cbufs
        rest = self.decoder.take_buffered()
        _ffi.memmove(cin, rest, len(rest))
        return cin, sizes, served, rest

    async def _from_c(self, st: int, spin: int, out) -> bool:
        """What a C loop's status `st` leaves Python to do (it spun up to `spin` ns; a
        partial reply's rest is in `out`): False when the peer closed the connection."""
        if st < 0:
            raise trio.BrokenResourceError(f"send or receive failed: {os.strerror(-st)}")
        if st == _fastio.P9F_EMPTY:  # C spun (if allowed) and found nothing
            self.receiver.spun(False, waiting=spin > 0)
        else:
            self.receiver.spun(True)
        cin, sizes, _ = self._cbufs
        if sizes[0]:  # what C did not answer goes back to the decoder, in order
            self.decoder.receive_data(_ffi.buffer(cin, sizes[0])[:])
        if st == _fastio.P9F_PARTIAL:
            await self.sender.send(out[sizes[1] : sizes[2]])
        elif st == _fastio.P9F_BUDGET:
            await trio.lowlevel.checkpoint()  # let other tasks run
        return st != _fastio.P9F_EOF

    async def _c_meta(self) -> bool:
        """Let C's loop answer the Twalk/Tgetattr/Tclunk at the head of the buffer and those
        that follow (p9/_cmeta.py); False when the peer closed the connection meanwhile.
        Sets `_c_declined` when the frame now at the head is Python's to answer."""
        sender = self.sender
        if sender.lock.locked() or self.decoder.buffered > _RECV_CHUNK:
            self._c_declined = True
            return True
        cin, sizes, served, rest = self._to_c()
        spin = self.receiver.spin_ns()
        fs = self.fs
        st = _fastio.p9f_serve_meta(
            sender._raw.fileno(), self.cm.mt, fs.cred_token(), fs.fid_room(),
            cin, len(rest), _RECV_CHUNK, sizes, sizes + 1, sizes + 2, spin, _C_BUDGET, served,
        )
        self._c_declined = st == _fastio.P9F_MORE
        return await self._from_c(st, spin, _ffi.buffer(self.cm.mt.out))

    def _c_dialect(self) -> None:
        """Tell C's loop whether it may answer Twalkgetattr (the dialect has it, and it is
        inline as C answers it)."""
        if self.cm is not None:
            self.cm.mt.walkgetattr = int(self.dialect.walkgetattr and m.Twalkgetattr in self.inline)

    def _adopt_all(self) -> None:
        """Make every fid C owns a Python fid (see p9/_cmeta.py): before Python answers
        anything, or changes the fid table, while C holds fids."""
        for fid, parent, names, fds, mode, qtype, qpath in self.cm.take():
            pf = self.fids.get(parent)
            try:
                if pf is None:  # cannot happen: a parent's change adopts its children first
                    for fd in fds:
                        os.close(fd)
                    raise OSError(errno.EBADF, f"fid {fid}'s parent {parent} is gone")
                new = _Fid(pf.file.adopt_child(names, fds, mode), m.Qid(qtype, 0, qpath),
                           pf.depth + len(names))
            except Exception:  # noqa: BLE001 - the fid is lost, the connection goes on
                log.exception("p9 server: could not adopt fid %d from C", fid)
                continue
            self.fids[fid] = new
            self.cm.set_fid(fid, new)

    def _put(self, fid: int, f: _Fid) -> None:
        """The one way to make `fid` name `f` (keeps C's table in step)."""
        cm = self.cm
        if cm is not None:
            if cm.owned:
                self._adopt_all()
            cm.set_fid(fid, f)
        self.fids[fid] = f

    def _pop(self, fid: int) -> _Fid | None:
        """The one way to free `fid` (keeps C's table in step)."""
        cm = self.cm
        if cm is not None:
            if cm.owned:
                self._adopt_all()
            cm.set_fid(fid, None)
        return self.fids.pop(fid, None)

    async def _fast_write(self, tag: int, f: _Fid, offset: int, data: memoryview) -> None:
        """Answer a Twrite by `File.write` with the data still in the receive buffer.

        Why: the generic path copies the payload out of the buffer into the message first.
        The File sees a memoryview valid for the call (it is an inline_io File, whose write
        does not wait).
        """
        f.refs += 1
        token = _INLINE.set(True)
        try:
            n = await f.file.write(offset, data)
            reply = _RWRITE.pack(_RWRITE.size, m.Rwrite.type, tag, n)
        except Exception as e:  # mapped to Rlerror in one place
            reply = encode_frame(tag, m.Rlerror(_errno_of(e)))
        finally:
            _INLINE.reset(token)
            await self.unref(f)
        await self.sender.send(reply)

    async def _read_frame(self, tag: int, msg: m.Tread) -> memoryview | None:
        """An inline Tread's whole Rread frame, read by `File.readinto` into the connection's
        reply buffer (None when the File has no readinto: the generic path answers).

        Why: no per-read allocation of msize bytes (and its page faults) and no copy into a
        frame; the buffer is reused only after the reply is sent, since inline requests run
        one at a time in the reader task.
        """
        f = self.get(msg.fid)
        try:
            readinto = getattr(f.file, "readinto", None)
            if readinto is None or f.xattr_read is not None:
                return None
            count = max(0, min(msg.count, self.msize - IOHDRSZ))
            buf = self.rbuf
            if len(buf) < _RREAD_HDR.size + count:
                buf = self.rbuf = bytearray(_RREAD_HDR.size + count)
            view = memoryview(buf)
            n = await readinto(msg.offset, view[_RREAD_HDR.size : _RREAD_HDR.size + count])
        finally:
            await self.unref(f)
        if not 0 <= n <= count:
            raise OSError(errno.EIO, f"file model readinto returned {n!r} for {count} bytes")
        size = _RREAD_HDR.size + n
        _RREAD_HDR.pack_into(buf, 0, size, m.Rread.type, tag, n)
        return view[:size]

    def _quick_fid(self, fid: int) -> bool:
        """Whether the fid's File says none of its operations can wait (`File.inline_io`)."""
        f = self.fids.get(fid)
        return (
            f is not None
            and getattr(f.file, "inline_io", False)
            and f.xattr_read is None
            and f.xattr_write is None
        )

    async def handle(self, tag: int, msg: m.Message, req: _Request) -> None:
        acquired = False
        try:
            reply: m.Message
            with req.scope:
                try:
                    self.limiter.acquire_nowait()  # no scheduler pass unless we must wait
                except trio.WouldBlock:
                    await self.limiter.acquire()
                acquired = True
                try:
                    reply = await self.call(msg)
                except Exception as e:  # mapped to Rlerror in one place
                    reply = m.Rlerror(_errno_of(e))
            if not req.scope.cancelled_caught:
                await self.send(tag, reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            if self.inflight.get(tag) is req:
                del self.inflight[tag]
            req.done.set()
            if acquired:
                self.limiter.release()
            self.tasks -= 1
            if self.tasks < 2 * self.server.max_inflight:
                self.room.set()

    async def call(self, msg: m.Message) -> m.Message:
        cls = type(msg)
        h = self.handlers.get(cls)
        if h is not None:
            return await h(msg)
        ext = self.ext_handlers.get(cls)
        if ext is not None and getattr(self.dialect, ext[0]):
            return await ext[1](msg)
        raise OSError(errno.EOPNOTSUPP, f"{cls.__name__} is not served on this connection")

    async def flush(self, tag: int, msg: m.Tflush) -> None:
        req = self.inflight.get(msg.oldtag)
        if req is not None:
            req.scope.cancel()
            await req.done.wait()
        try:
            await self.send(tag, m.Rflush())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def version(self, tag: int, msg: m.Tversion) -> None:
        # Tversion resets the session: abort everything outstanding, clunk every fid.
        for req in list(self.inflight.values()):
            req.scope.cancel()
        for req in list(self.inflight.values()):
            await req.done.wait()
        await self.release_all()
        if msg.msize < MIN_MSIZE:
            await self.send(tag, m.Rlerror(errno.EINVAL))
            return
        dialect = server_choose(msg.version)
        self.msize = min(msg.msize, self.server.max_msize)
        if dialect is None:
            await self.send(tag, m.Rversion(self.msize, b"unknown"))
            return
        self.dialect = dialect
        self._c_dialect()
        self.decoder.max_size = self.msize
        await self.send(tag, m.Rversion(self.msize, dialect.version))

    async def release_all(self) -> None:
        if self.cm is not None:
            self.cm.clear()
        fids, self.fids = self.fids, {}
        for f in fids.values():
            await self.unref(f, kill=True)

    # --- fid table ---------------------------------------------------------------------------

    def get(self, fid: int) -> _Fid:
        f = self.fids.get(fid)
        if f is None:
            raise OSError(errno.EBADF, f"unknown fid {fid}")
        f.refs += 1
        return f

    async def unref(self, f: _Fid, *, kill: bool = False) -> None:
        if kill:
            if f.dead:
                return
            f.dead = True
        f.refs -= 1
        if f.refs == 0:
            try:
                if _INLINE.get():
                    # Only the connection's end can cancel the reader task, and then the
                    # process of tearing down is under way; a cancel scope costs ~10 µs.
                    await f.file.close()
                else:
                    with trio.CancelScope(shield=True):
                        await f.file.close()
            except Exception:  # noqa: BLE001 - close must not take the server down
                log.exception("p9 server: File.close failed")

    def add(self, fid: int, f: _Fid) -> None:
        if fid == NOFID:
            raise OSError(errno.EBADF, "NOFID cannot name a file")
        self._put(fid, f)

    async def drop(self, fid: int) -> None:
        f = self._pop(fid)
        if f is not None:
            await self.unref(f, kill=True)

    def check_new(self, newfid: int, fid: int | None = None) -> None:
        if (newfid in self.fids or (self.cm is not None and self.cm.owns(newfid))) and (
                newfid != fid):
            raise OSError(errno.EBADF, f"fid {newfid} is already in use")
        if newfid == NOFID:
            raise OSError(errno.EBADF, "NOFID cannot name a file")

    # --- session -------------------------------------------------------------------------

    async def auth(self, msg: m.Tauth) -> m.Message:
        raise OSError(errno.ENOENT, "authentication is not required")

    async def attach(self, msg: m.Tattach) -> m.Message:
        self.check_new(msg.fid)
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
        self.check_new(msg.fid)
        self.add(msg.fid, _Fid(file, qid, 0))
        return m.Rattach(qid)

    # --- walking -------------------------------------------------------------------------

    async def _walk(self, f: _Fid, names: Sequence[bytes]) -> tuple[list[m.Qid], _Fid | None]:
        """Walk with the leniencies: "." stays, ".." at the attach root stays at the root."""
        if not names:
            qids, new = await f.file.walk([])
            if new is None:
                raise OSError(errno.EIO, "file model returned no clone")
            return [], _Fid(new, f.qid, f.depth)
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
            return got, _Fid(new, got[-1], depth)
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
        return qids, _Fid(cur_file, cur_qid, depth)

    async def walk(self, msg: m.Twalk) -> m.Message:
        return m.Rwalk(tuple(await self.walk_fid(msg.fid, msg.newfid, msg.wnames)))

    async def walk_fid(self, fid: int, newfid: int, names: Sequence[bytes]) -> list[m.Qid]:
        self.check_new(newfid, fid)
        f = self.get(fid)
        try:
            qids, new = await self._walk(f, names)
        finally:
            await self.unref(f)
        if new is not None:
            await self._install(newfid, fid, new)
        return qids

    async def _install(self, newfid: int, fid: int, new: _Fid) -> None:
        if newfid != fid and newfid in self.fids:
            await self.unref(new, kill=True)
            raise OSError(errno.EBADF, f"fid {newfid} is already in use")
        old = self.fids.get(newfid)
        self.add(newfid, new)
        if old is not None:
            await self.unref(old, kill=True)

    async def walkgetattr(self, msg: m.Twalkgetattr) -> m.Message:
        self.check_new(msg.newfid, msg.fid)
        if any(n in (b".", b"..") for n in msg.wnames):
            rwalk = await self.walk(m.Twalk(msg.fid, msg.newfid, msg.wnames))
            assert isinstance(rwalk, m.Rwalk)
            if len(rwalk.qids) < len(msg.wnames):
                return m.Rwalkgetattr(0, m.Attr(), rwalk.qids)
            nf = self.get(msg.newfid)
            try:
                _, valid, a = await nf.file.getattr(GetattrMask.ALL)
            finally:
                await self.unref(nf)
            return m.Rwalkgetattr(valid, a, rwalk.qids)
        f = self.get(msg.fid)
        try:
            got, newfile, valid, a = await f.file.walk_getattr(msg.wnames)
        finally:
            await self.unref(f)
        if newfile is not None:
            qid = got[-1] if got else f.qid
            depth = f.depth + sum(-1 if n == b".." else 1 for n in msg.wnames)
            await self._install(msg.newfid, msg.fid, _Fid(newfile, qid, depth))
        return m.Rwalkgetattr(valid, a, tuple(got))

    async def multigetattr(self, msg: m.Tmultigetattr) -> m.Message:
        f = self.get(msg.fid)
        try:
            stats = await f.file.multi_getattr(msg.wnames)
        finally:
            await self.unref(f)
        return m.Rmultigetattr(tuple(stats))

    async def clunk(self, msg: m.Tclunk) -> m.Message:
        await self.clunk_fid(msg.fid)
        return m.Rclunk()

    async def clunk_fid(self, fid: int) -> None:
        f = self._pop(fid)
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
            await self.unref(f, kill=True)

    async def remove(self, msg: m.Tremove) -> m.Message:
        f = self._pop(msg.fid)
        if f is None:
            raise OSError(errno.EBADF, f"unknown fid {msg.fid}")
        try:
            await f.file.remove()
        finally:
            await self.unref(f, kill=True)
        return m.Rremove()

    # --- file operations ----------------------------------------------------------------------

    async def lopen(self, msg: m.Tlopen) -> m.Message:
        f = self.get(msg.fid)
        try:
            qid, iounit = await f.file.open(msg.flags)
            f.opened = True
            f.read_fd = _read_fd_of(f)
        finally:
            await self.unref(f)
        return m.Rlopen(qid, self._iounit(iounit))

    def _iounit(self, iounit: int) -> int:
        # 0 would leave the choice to the client; some (p9fs) then send msize bytes of data
        # plus a header, overflowing msize. Say what fits.
        limit = self.msize - IOHDRSZ
        return limit if iounit <= 0 or iounit > limit else iounit

    async def lcreate(self, msg: m.Tlcreate | m.Tucreate) -> m.Message:
        uid = msg.uid if isinstance(msg, m.Tucreate) else None
        f = self.get(msg.fid)
        try:
            new, qid, iounit = await f.file.create(msg.name, msg.flags, msg.mode, msg.gid, uid)
        finally:
            await self.unref(f)
        nf = _Fid(new, qid, f.depth + 1)
        nf.opened = True
        nf.read_fd = _read_fd_of(nf)
        if self.fids.get(msg.fid) is f:
            self._put(msg.fid, nf)
            await self.unref(f, kill=True)
        else:
            await self.unref(nf, kill=True)
            raise OSError(errno.EBADF, f"fid {msg.fid} was clunked during create")
        reply = m.Rucreate if isinstance(msg, m.Tucreate) else m.Rlcreate
        return reply(qid, self._iounit(iounit))

    async def read(self, msg: m.Tread) -> m.Message:
        count = min(msg.count, self.msize - IOHDRSZ)
        f = self.get(msg.fid)
        try:
            if f.xattr_read is not None:
                return m.Rread(f.xattr_read[msg.offset : msg.offset + count])
            data = await f.file.read(msg.offset, count)
        finally:
            await self.unref(f)
        if len(data) > count:
            data = data[:count]
        return m.Rread(data)

    async def write(self, msg: m.Twrite) -> m.Message:
        f = self.get(msg.fid)
        try:
            if f.xattr_write is not None:
                name, size, flags, buf = f.xattr_write
                if msg.offset != len(buf) or len(buf) + len(msg.data) > size:
                    raise OSError(errno.EINVAL, f"xattr {name!r}: write beyond declared size")
                buf += msg.data
                return m.Rwrite(len(msg.data))
            n = await f.file.write(msg.offset, msg.data)
        finally:
            await self.unref(f)
        return m.Rwrite(n)

    async def readdir(self, msg: m.Treaddir) -> m.Message:
        count = min(msg.count, self.msize - _RREADDIR_HDR)
        f = self.get(msg.fid)
        try:
            entries = await f.file.readdir(msg.offset, count)
        finally:
            await self.unref(f)
        if type(entries) is PackedDirents:
            data, n = entries.data, entries.count
            if len(data) > count:
                raise OSError(errno.EIO, "file model packed more than the count")
        else:
            data, n = pack_dirents(entries, count)
        if n == 0 and entries:
            raise OSError(errno.EINVAL, f"readdir count {msg.count} too small for an entry")
        return m.Rreaddir(data)

    async def getattr(self, msg: m.Tgetattr) -> m.Message:
        return m.Rgetattr(*await self.getattr_fid(msg.fid, msg.request_mask))

    async def getattr_fid(self, fid: int, mask: int) -> tuple[int, m.Qid, m.Attr]:
        f = self.get(fid)
        try:
            qid, valid, a = await f.file.getattr(mask)
        finally:
            await self.unref(f)
        return valid, qid, a

    async def setattr(self, msg: m.Tsetattr) -> m.Message:
        f = self.get(msg.fid)
        try:
            await f.file.setattr(msg.valid, msg.attr)
        finally:
            await self.unref(f)
        return m.Rsetattr()

    async def setattrclunk(self, msg: m.Tsetattrclunk) -> m.Message:
        try:
            await self.setattr(m.Tsetattr(msg.fid, msg.valid, msg.attr))
        finally:
            await self.drop(msg.fid)
        return m.Rsetattrclunk()

    async def statfs(self, msg: m.Tstatfs) -> m.Message:
        return await self._simple(msg.fid, lambda file: file.statfs())

    async def _simple(self, fid: int, op):
        f = self.get(fid)
        try:
            return await op(f.file)
        finally:
            await self.unref(f)

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
        t = self.get(msg.fid)
        try:
            await self._simple(msg.dfid, lambda d: d.link(t.file, msg.name))
        finally:
            await self.unref(t)
        return m.Rlink()

    async def rename(self, msg: m.Trename) -> m.Message:
        d = self.get(msg.dfid)
        try:
            await self._simple(msg.fid, lambda file: file.rename(d.file, msg.name))
        finally:
            await self.unref(d)
        return m.Rrename()

    async def renameat(self, msg: m.Trenameat) -> m.Message:
        d = self.get(msg.newdirfid)
        try:
            await self._simple(
                msg.olddirfid, lambda file: file.renameat(msg.oldname, d.file, msg.newname)
            )
        finally:
            await self.unref(d)
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
        self.check_new(msg.newfid, msg.fid)
        f = self.get(msg.fid)
        try:
            if msg.name:
                value = await f.file.getxattr(msg.name, 0)
            else:
                value = b"".join(n + b"\0" for n in await f.file.listxattr(0))
            _, clone = await f.file.walk([])
        finally:
            await self.unref(f)
        if clone is None:
            raise OSError(errno.EIO, "file model returned no clone")
        nf = _Fid(clone, f.qid, f.depth)
        nf.xattr_read = value
        await self._install(msg.newfid, msg.fid, nf)
        return m.Rxattrwalk(len(value))

    async def xattrcreate(self, msg: m.Txattrcreate) -> m.Message:
        f = self.fids.get(msg.fid)
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
