"""One server connection: the reader loop, request tasks, Tflush and Tversion, hot paths.

The reader task decodes frames and, per request, either answers it itself (the hot paths
below, and requests `Server(inline=)` names) or starts a task for it, at most
`max_inflight` running and as many more waiting for a slot. A Tflush cancels the request
it names and is answered after that request is finished; a Tversion resets the session.
What each request does is `Handlers`' (p9/_handlers.py); the fids are `FidTable`'s
(p9/_fids.py); runs of requests answered in C are `CLoops`' (p9/_cloops.py).

Hot paths, answered in the reader task without message objects or dispatch:
- Tread/Twrite of an open `inline_io` File with a `data_fd()`: pread into the reply
  buffer, or `File.write` of a view of the receive buffer (`_fast_read`, `_fast_write`),
  or C's read loop (`_c_reads`);
- Tgetattr, Tclunk and one-name Twalk when all three are inline (`_meta`), or C's
  metadata loop when the file model offers walk sources.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import struct
from typing import TYPE_CHECKING

import trio

from . import _messages as m
from ._cloops import RECV_CHUNK, CLoops, open_c_loops
from ._constants import IOHDRSZ, MIN_MSIZE, NOTAG
from ._errors import ProtocolError
from ._fids import INLINE, FidState, FidTable
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
from ._handlers import Handlers, errno_of
from ._sendpath import PartsSender
from ._sockio import Receiver, carries_fds
from ._version import server_choose

if TYPE_CHECKING:
    from ._server import Server

log = logging.getLogger("p9.server")

#: Requests C's metadata loop may answer even while it owns no fid: walks, which start
#: from Python's fids (p9/_cmeta.py). Its Tgetattr and Tclunk are for fids it owns.
_C_WALKS = frozenset({m.Twalk.type, m.Twalkgetattr.type})

_RREAD_HDR = struct.Struct("<IBHI")  # size[4] type[1] tag[2] count[4]
_RWRITE = struct.Struct("<IBHI")  # size[4] type[1] tag[2] count[4]: a whole Rwrite

#: Requests that run inline when their fid's File has a true `inline_io` attribute: the file
#: model's promise that nothing it does for that file waits (a regular file, not a FIFO).
_FID_INLINE = (m.Tlopen, m.Tlopenfd, m.Tread, m.Twrite, m.Treaddir)


class _Request:
    """A request running in its own task: its cancel scope (Tflush) and its end."""

    __slots__ = ("scope", "done")

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.done = trio.Event()


class _Connection:
    def __init__(self, server: Server, stream: trio.abc.Stream) -> None:
        self.server = server
        self.fs = server.fs
        self.stream = stream
        self.decoder = FrameDecoder(server.max_msize)
        self.inflight: dict[int, _Request] = {}
        self.limiter = trio.Semaphore(server.max_inflight)
        self.tasks = 0  # request tasks running or waiting for a slot
        #: Request tasks inside the file model (not waiting for a slot, not sending), and
        #: when the last of them came out: the idle timer does not run while a request is
        #: being carried out (`_watch`).
        self.working = 0
        self.worked = -math.inf
        self.room = trio.Event()
        self.sender = PartsSender(stream)
        self.receiver = Receiver(stream, spin_us=server.spin_us)
        self.inline = server.inline
        self.rbuf = bytearray()  # inline Rread frames (see _read_frame)
        #: The frame deadline (`Server(frame_timeout=)`): when the partial frame at the head
        #: of the input started, which one it is (`_frame_clock`), the watchdog's sleep.
        self.frame_started: float | None = None
        self.frame_mark = 0
        self.watch_scope: trio.CancelScope | None = None
        #: Tgetattr, Twalk and Tclunk take the short path of `_meta` when the file model
        #: answers all three inline (the Gofer does); C's metadata loop answers them when
        #: the file model also offers walk sources.
        self.meta_inline = {m.Tgetattr, m.Twalk, m.Tclunk} <= self.inline
        self.c: CLoops | None = open_c_loops(
            self.decoder, self.sender, self.receiver,
            meta=bool(server.fs.walk_sources) and self.meta_inline)
        self.table = FidTable(self.c.cm if self.c is not None else None)
        self.ops = Handlers(server, self.table)
        self.ops.passes_fds = carries_fds(stream)
        self._c_dialect()

    # --- plumbing ---------------------------------------------------------------------------

    async def send(self, tag: int, msg: m.Message) -> None:
        if type(msg) is m.Rread:
            await self.sender.send_parts(encode_frame_parts(tag, msg))
        elif type(msg) is m.Rlopenfd and (fd := self.ops.take_passing(msg)) >= 0:
            try:
                await self.sender.send_fd(encode_frame(tag, msg), fd)
            finally:
                os.close(fd)
        else:
            await self.sender.send(encode_frame(tag, msg))

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            frame_timeout = self.server.frame_timeout
            if self.server.idle_timeout is not None or frame_timeout is not None:
                nursery.start_soon(self._watch)
            receive = self.receiver.receive
            decoder = self.decoder
            meta = self.meta_inline
            table = self.table
            c = self.c
            cm = table.cm
            try:
                while True:
                    if frame_timeout is not None:
                        self._frame_clock(decoder)
                    data = await receive(decoder.wanted(RECV_CHUNK))
                    if not data:
                        break
                    decoder.receive_data(data)
                    c_turn = True
                    while True:
                        if cm is not None:
                            assert c is not None
                            # Twalk/Tgetattr/Tclunk go to C's loop first (p9/_cmeta.py);
                            # what it declines, and anything else, Python answers, after
                            # taking over the fids C holds.
                            t = decoder.whole_type()
                            if t >= 0:
                                if c_turn and (t in _C_WALKS or (t in META_TYPES and cm.owned)):
                                    if not await c.meta(self.fs.cred_token(), self.fs.fid_room()):
                                        break  # the peer closed
                                    c_turn = not c.declined
                                    continue
                                if cm.owned:
                                    table.adopt_all()
                            c_turn = True
                        # The hot path: Tread/Twrite of an open regular file, answered
                        # here without building a message or dispatching.
                        io = decoder.peek_io()
                        if io is not None:
                            f = table.fids.get(io[2])  # (Tversion replaces the dict)
                            if f is not None and f.read_fd >= 0:
                                payload = decoder.take_io(io)
                                if payload is None and c is not None and (
                                        decoder.buffered <= RECV_CHUNK):
                                    if not await self._c_reads(c, io[1], io[2], f, io[3], io[4]):
                                        break  # the peer closed
                                elif payload is None:
                                    await self._fast_read(io[1], io[2], f, io[3], io[4])
                                else:
                                    await self._fast_write(io[1], f, io[3], payload)
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

    def _frame_clock(self, decoder: FrameDecoder) -> None:
        """Before waiting for input: start the frame deadline when a new frame is partly
        here, stop it when nothing is pending (see `Server(frame_timeout=)`)."""
        if not decoder.buffered:
            self.frame_started = None
            return
        mark = decoder.received - decoder.buffered  # moves only when a frame was consumed
        if self.frame_started is None or mark != self.frame_mark:
            self.frame_mark = mark
            self.frame_started = now = trio.current_time()
            scope = self.watch_scope
            ft = self.server.frame_timeout
            if scope is not None and ft is not None and now + ft < scope.deadline:
                scope.deadline = now + ft

    async def _watch(self) -> None:
        """Close the connection once nothing has arrived for `idle_timeout` seconds while
        no request was being carried out, or a started frame is still incomplete
        `frame_timeout` seconds after it started.

        Idle is what the client sends, not its transport: TCP keepalive probes (which the
        client enables, `bound_unacknowledged`) carry no data, so they never reset the
        timer (`receiver.last_data` moves only when a receive returns bytes). A request
        the file model takes long over (a read of a FIFO waiting for a writer) keeps the
        connection: the client is waiting for us, not idle; its reply stuck in a send to
        a client that stopped reading does not (it is out of the file model by then).

        Why a watchdog task rather than a timeout around each receive: a cancel scope per
        receive cost ~10 µs, a fifth of an inline Tread; the receiver only stamps the time.
        The stream is closed too: a reply stuck in a shielded send to a peer that stopped
        reading would otherwise keep the connection.
        """
        receiver = self.receiver
        idle = self.server.idle_timeout
        ft = self.server.frame_timeout
        while True:
            now = trio.current_time()
            deadline = math.inf
            if idle is not None and not self.working:
                since = max(receiver.last_data, self.worked)
                if now >= since + idle:
                    log.info("p9 server: closing a connection idle for %ss", idle)
                    break
                deadline = since + idle
            started = self.frame_started
            if ft is not None and started is not None:
                if now >= started + ft:
                    log.info("p9 server: closing a connection whose frame took over %ss", ft)
                    break
                deadline = min(deadline, started + ft)
            with trio.CancelScope(deadline=deadline) as self.watch_scope:
                await trio.sleep_forever()
            self.watch_scope = None
        self.nursery.cancel_scope.cancel()
        await trio.aclose_forcefully(self.stream)

    async def dispatch(self, tag: int, msg: m.Message) -> None:
        if isinstance(msg, m.Tversion):
            await self.version(tag, msg)
            return
        if isinstance(msg, m.Tflush):
            # Runs as its own task: it waits for the flushed request.
            self.nursery.start_soon(self.flush, tag, msg)
            return
        cls = type(msg)
        if cls in self.inline or (isinstance(msg, _FID_INLINE) and self._quick_fid(msg.fid)):
            token = INLINE.set(True)
            frame = None
            reply: m.Message | None
            try:
                if isinstance(msg, m.Tread):
                    frame = await self._read_frame(tag, msg)
                reply = await self.ops.call(msg) if frame is None else None
            except Exception as e:  # mapped to Rlerror in one place
                reply = m.Rlerror(errno_of(e))
            finally:
                INLINE.reset(token)
            if reply is None:
                assert frame is not None
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

    def _worked(self) -> None:
        """A request came out of the file model: with none left inside, the idle time
        counts from now (the watchdog is woken for it)."""
        self.working -= 1
        if self.working:
            return
        self.worked = now = trio.current_time()
        idle = self.server.idle_timeout
        scope = self.watch_scope
        if scope is not None and idle is not None and now + idle < scope.deadline:
            scope.deadline = now + idle

    def _quick_fid(self, fid: int) -> bool:
        """Whether the fid's File says none of its operations can wait (`File.inline_io`)."""
        f = self.table.fids.get(fid)
        return f is not None and f.quick()

    async def handle(self, tag: int, msg: m.Message, req: _Request) -> None:
        acquired = False
        try:
            reply: m.Message | None = None
            with req.scope:
                try:
                    self.limiter.acquire_nowait()  # no scheduler pass unless we must wait
                except trio.WouldBlock:
                    await self.limiter.acquire()
                acquired = True
                self.working += 1
                try:
                    reply = await self.ops.call(msg)
                except Exception as e:  # mapped to Rlerror in one place
                    reply = m.Rlerror(errno_of(e))
                finally:
                    self._worked()
            if not req.scope.cancelled_caught:
                assert reply is not None
                await self.send(tag, reply)
            elif reply is not None and (fd := self.ops.take_passing(reply)) >= 0:
                os.close(fd)  # (a flushed Tlopenfd's descriptor is not sent)
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

    # --- session ----------------------------------------------------------------------------

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
        ops = self.ops
        ops.msize = min(msg.msize, self.server.max_msize)
        if dialect is None:
            await self.send(tag, m.Rversion(ops.msize, b"unknown"))
            return
        ops.dialect = dialect
        self._c_dialect()
        self.decoder.max_size = ops.msize
        await self.send(tag, m.Rversion(ops.msize, dialect.version))

    def _c_dialect(self) -> None:
        """Tell C's metadata loop whether it may answer Twalkgetattr (the dialect has it,
        and it is inline as C answers it)."""
        if self.c is not None:
            self.c.set_dialect(self.ops.dialect.walkgetattr and m.Twalkgetattr in self.inline)

    async def release_all(self) -> None:
        """Free every fid, closing their Files (the connection or the session ended)."""
        await self.table.release_all()

    # --- hot paths --------------------------------------------------------------------------

    async def _meta(self, mtype: int, tag: int, fid: int, x: int, name: bytes | None) -> None:
        """Answer a Tgetattr, Tclunk or one-name Twalk (`FrameDecoder.next_meta`) inline.

        The same handling as `dispatch` → `getattr`/`clunk`/`walk`, without the message
        objects: at one request in flight that is a third of each request's server time.
        """
        token = INLINE.set(True)
        ops = self.ops
        try:
            if mtype == TGETATTR:
                frame = encode_rgetattr(tag, *await ops.getattr_fid(fid, x))
            elif mtype == TCLUNK:
                await ops.clunk_fid(fid)
                frame = encode_rclunk(tag)
            else:
                assert name is not None
                frame = encode_rwalk(tag, await ops.walk_fid(fid, x, (name,)))
        except Exception as e:  # mapped to Rlerror in one place
            frame = encode_frame(tag, m.Rlerror(errno_of(e)))
        finally:
            INLINE.reset(token)
        await self.sender.send(frame)

    def _reply_buffer(self, count: int) -> bytearray:
        """The connection's Rread buffer, with room for a header and `count` bytes.

        Reused only after its reply is sent: inline requests run one at a time in the
        reader task."""
        if len(self.rbuf) < _RREAD_HDR.size + count:
            self.rbuf = bytearray(_RREAD_HDR.size + count)
        return self.rbuf

    async def _fast_read(self, tag: int, fid: int, f: FidState, offset: int, count: int) -> None:
        """Answer a Tread by pread(2) from `f.read_fd` into the reply buffer, then one send.

        Why: this is most of a sequential reader's traffic, and a Tread served through
        message objects, dispatch and the File's `readinto` cost ~20 µs of Python on top of
        the system calls. When pread fails (or the offset does not fit) nothing is sent
        and the generic path answers, which also reports the error. No reference is taken
        on the fid: its descriptor is used only before the first await.
        """
        count = min(count, self.ops.msize - IOHDRSZ)
        hdr = _RREAD_HDR.size
        buf = self._reply_buffer(count)
        view = memoryview(buf)
        try:
            n = os.preadv(f.read_fd, [view[hdr : hdr + count]], offset) if count else 0
        except (OSError, OverflowError):
            await self.dispatch(tag, m.Tread(fid, offset, count))
            return
        _RREAD_HDR.pack_into(buf, 0, hdr + n, m.Rread.type, tag, n)
        await self.sender.send(view[: hdr + n])

    async def _c_reads(self, c: CLoops, tag: int, fid: int, f: FidState, offset: int,
                       count: int) -> bool:
        """Answer this Tread, and the run of Treads of the same fid that follows it, in C
        (`CLoops.reads`), or by `_fast_read` if C declines; False when the peer closed the
        connection meanwhile."""
        maxcount = self.ops.msize - IOHDRSZ
        out = self._reply_buffer(maxcount)
        ok = await c.reads(f.read_fd, fid, maxcount, out, tag, offset, count)
        if ok is None:
            await self._fast_read(tag, fid, f, offset, count)
            return True
        return ok

    async def _fast_write(self, tag: int, f: FidState, offset: int, data: memoryview) -> None:
        """Answer a Twrite by `File.write` with the data still in the receive buffer.

        Why: the generic path copies the payload out of the buffer into the message first.
        The File sees a memoryview valid for the call (it is an inline_io File, whose write
        does not wait).
        """
        f.refs += 1
        token = INLINE.set(True)
        try:
            n = await f.file.write(offset, data)
            reply = _RWRITE.pack(_RWRITE.size, m.Rwrite.type, tag, n)
        except Exception as e:  # mapped to Rlerror in one place
            reply = encode_frame(tag, m.Rlerror(errno_of(e)))
        finally:
            INLINE.reset(token)
            await self.table.unref(f)
        await self.sender.send(reply)

    async def _read_frame(self, tag: int, msg: m.Tread) -> memoryview | None:
        """An inline Tread's whole Rread frame, read by `File.readinto` into the connection's
        reply buffer (None when the File has no readinto: the generic path answers).

        Why: no per-read allocation of msize bytes (and its page faults) and no copy into a
        frame.
        """
        f = self.table.get(msg.fid)
        try:
            readinto = getattr(f.file, "readinto", None)
            if readinto is None or f.xattr_read is not None:
                return None
            count = max(0, min(msg.count, self.ops.msize - IOHDRSZ))
            buf = self._reply_buffer(count)
            view = memoryview(buf)
            n = await readinto(msg.offset, view[_RREAD_HDR.size : _RREAD_HDR.size + count])
        finally:
            await self.table.unref(f)
        if not 0 <= n <= count:
            raise OSError(errno.EIO, f"file model readinto returned {n!r} for {count} bytes")
        size = _RREAD_HDR.size + n
        _RREAD_HDR.pack_into(buf, 0, size, m.Rread.type, tag, n)
        return view[:size]
