"""The trio client: one connection multiplexing many requests by tag, and a Fid-level API.

`open_client(stream)` negotiates version and msize, runs a reader task, and yields a
`Client`; `client.attach()` returns the root `Fid`. Every Fid method is one or a few
messages; failures raise `OSError` with the server's errno. A request cancelled while
waiting is flushed (Tflush, then Rflush awaited, shielded) and, if its reply had already
succeeded in creating a fid, that fid is clunked, so fids never leak.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from . import _messages as m
from ._constants import (
    AT_REMOVEDIR,
    IOHDRSZ,
    MIN_MSIZE,
    NOFID,
    NOTAG,
    GetattrMask,
    LockType,
    QidType,
    SetattrMask,
)
from ._errors import ProtocolError
from ._framing import FrameDecoder, encode_frame
from ._sockio import FrameSender, Receiver
from ._version import BASE, PLAIN, RUNPSC, Dialect, client_accept

_RECV_CHUNK = 1 << 16
_FLUSH_TIMEOUT = 30.0
_NO_AUTH = (errno.ENOENT, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.EPERM)


def _leaves(eg: BaseException) -> list[BaseException]:
    if isinstance(eg, BaseExceptionGroup):
        return [leaf for sub in eg.exceptions for leaf in _leaves(sub)]
    return [eg]


@asynccontextmanager
async def _collapsing_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery whose single (or all-OSError) failure comes out bare, not as a group.

    Why: callers of the client catch OSError; an ExceptionGroup would slip past them.
    """
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as eg:
        leaves = _leaves(eg)
        errors = [e for e in leaves if not isinstance(e, trio.Cancelled)]
        if len(leaves) == 1 or (errors and all(isinstance(e, OSError) for e in errors)):
            raise (errors or leaves)[0] from None
        raise


def _partial_walk_error(qids: Sequence[m.Qid], names: Sequence[bytes]) -> OSError:
    """The errno of a walk that stopped early: 9P gives none, so infer Linux's.

    Stopping right after a non-directory (that is not a symlink) means ENOTDIR, as Linux
    path resolution reports; anything else is ENOENT.
    """
    what = b"/".join(names).decode(errors="replace")
    if qids and not qids[-1].type & (QidType.DIR | QidType.SYMLINK):
        return _oserror(errno.ENOTDIR, what)
    return _oserror(errno.ENOENT, what)


def _oserror(code: int, what: str = "") -> OSError:
    return OSError(code, os.strerror(code) + (f" ({what})" if what else ""))


@dataclasses.dataclass(frozen=True, slots=True)
class Stat:
    """A Tgetattr result: qid, the mask of valid fields, and the attributes."""

    qid: m.Qid
    valid: int
    attr: m.Attr

    @property
    def is_dir(self) -> bool:
        return bool(self.qid.type & QidType.DIR)


class _Call:
    __slots__ = ("event", "reply", "on_reply")

    def __init__(self, on_reply: Callable[[], None] | None = None) -> None:
        self.event = trio.Event()
        self.reply: m.Message | BaseException | None = None
        #: For requests nobody waits for (Tclunk): run by the reader when the reply lands.
        self.on_reply = on_reply


class Client:
    """A 9P2000.L client connection. Create with `open_client`.

    Attributes:
        msize: the negotiated maximum message size.
        dialect: the negotiated `p9.Dialect` (which extensions may be used).
    """

    def __init__(self, stream: trio.abc.Stream, *, max_inflight: int = 256) -> None:
        self._stream = stream
        self.msize = 0
        self.dialect: Dialect = PLAIN
        self._decoder = FrameDecoder(1 << 20)
        self._pending: dict[int, _Call] = {}
        self._free_tags: list[int] = []
        self._next_tag = 0
        self._slots = trio.Semaphore(max(1, min(max_inflight, 0x7FFF)))
        self._sender = FrameSender(stream)
        self._receiver = Receiver(stream)
        self._free_fids: list[int] = []
        self._next_fid = 0
        self._broken: BaseException | None = None
        self._no_renameat = False
        self._no_unlinkat = False
        #: Fid numbers currently allocated (for leak checks and diagnostics).
        self.live_fids: set[int] = set()
        self._background = 0
        self._idle = trio.Event()
        self._idle.set()

    # --- plumbing -----------------------------------------------------------------------------

    def _alloc_tag(self) -> int:
        if self._free_tags:
            return self._free_tags.pop()
        t = self._next_tag
        self._next_tag += 1
        return t

    def alloc_fid(self) -> int:
        """Reserve a fid number (released by `release_fid` after the server dropped it)."""
        if self._free_fids:
            f = self._free_fids.pop()
        else:
            f = self._next_fid
            self._next_fid += 1
        self.live_fids.add(f)
        return f

    def release_fid(self, fid: int) -> None:
        if fid in self.live_fids:
            self.live_fids.discard(fid)
            self._free_fids.append(fid)

    async def _send(self, tag: int, msg: m.Message) -> None:
        frame = encode_frame(tag, msg)
        if len(frame) > self.msize and self.msize:
            raise ProtocolError(f"{type(msg).__name__} of {len(frame)} bytes exceeds msize {self.msize}", remote=False)
        await self._send_raw(frame)

    async def _send_raw(self, frame: bytes) -> None:
        try:
            await self._sender.send(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            self._fail(e)
            raise _oserror(errno.ECONNRESET, "9P connection lost") from e

    async def _reader(self) -> None:
        try:
            while True:
                data = await self._receiver.receive(self._decoder.wanted(_RECV_CHUNK))
                if not data:
                    raise _oserror(errno.ECONNRESET, "9P server closed the connection")
                self._decoder.receive_data(data)
                while True:
                    try:
                        item = self._decoder.next_message()
                    except ProtocolError as e:
                        if not e.recoverable:
                            raise
                        item = (e.tag, e) if e.tag is not None else None
                        if item is None:
                            continue
                    if item is None:
                        break
                    tag, msg = item
                    call = self._pending.get(tag)
                    if call is not None and call.reply is None:
                        call.reply = msg
                        if call.on_reply is not None:
                            self._finish_background(tag, call)
                        else:
                            call.event.set()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ProtocolError) as e:
            self._fail(e)

    def _fail(self, exc: BaseException) -> None:
        if self._broken is None:
            self._broken = exc
        for tag, call in list(self._pending.items()):
            if call.reply is None:
                call.reply = exc
                if call.on_reply is not None:
                    self._finish_background(tag, call)
                else:
                    call.event.set()

    def _finish_background(self, tag: int, call: _Call) -> None:
        del self._pending[tag]
        self._free_tags.append(tag)
        assert call.on_reply is not None
        call.on_reply()
        self._background -= 1
        if self._background == 0:
            self._idle.set()

    async def drain(self) -> None:
        """Wait until every clunk sent so far is answered (their fids are then free)."""
        await self._idle.wait()

    async def rpc(
        self, msg: m.Message, *, on_cancel: Callable[[m.Message | None], Any] | None = None
    ) -> m.Message:
        """Send `msg`, wait for its reply; raise OSError for Rlerror.

        Args:
            on_cancel: if this call is cancelled, awaited (shielded) with the reply that
                had already arrived (None if none did, or if the request never left); used
                to clunk or release a fid the request may have created.
        """
        if self._broken is not None:
            raise _oserror(errno.ECONNRESET, f"9P connection lost: {self._broken}")
        call: _Call | None = None
        try:
            try:
                self._slots.acquire_nowait()  # no scheduler pass unless we must wait
            except trio.WouldBlock:
                await self._slots.acquire()
            try:
                tag = self._alloc_tag()
                call = _Call()
                self._pending[tag] = call
                try:
                    await self._send(tag, msg)  # never cut by cancellation (FrameSender)
                    try:
                        await call.event.wait()
                    except trio.Cancelled:
                        with trio.CancelScope(shield=True) as scope:
                            scope.deadline = trio.current_time() + _FLUSH_TIMEOUT
                            await self._flush(tag, call)
                        raise
                finally:
                    del self._pending[tag]
                    self._free_tags.append(tag)
            finally:
                self._slots.release()
        except trio.Cancelled:
            if on_cancel is not None:
                reply = call.reply if call is not None else None
                ok = isinstance(reply, m.Message) and not isinstance(reply, m.Rlerror | m.Rerror)
                with trio.CancelScope(shield=True):
                    await on_cancel(reply if ok else None)
            raise
        return self._check(msg, call.reply)

    async def rpc_many(self, msgs: Sequence[m.Message], *, window: int = 32,
                       check: bool = True) -> list[Any]:
        """Pipeline `msgs`: send up to `window` frames in one write, then collect replies.

        Why: a large read or write is many independent Tread/Twrite; one send of many
        frames and no task per message costs far less than an rpc() each.

        With `check=False` the raw replies are returned (an Rlerror, or a ProtocolError
        for a malformed reply, in place of a failure) and nothing is raised for them.

        Raises:
            OSError: the first failure (by position), after every reply has arrived.
        """
        replies: list[Any] = []
        for start in range(0, len(msgs), window):
            batch = msgs[start : start + window]
            if self._broken is not None:
                raise _oserror(errno.ECONNRESET, f"9P connection lost: {self._broken}")
            tags = [self._alloc_tag() for _ in batch]
            calls = [_Call() for _ in batch]
            for tag, call in zip(tags, calls, strict=True):
                self._pending[tag] = call
            try:
                # Never cut by cancellation (FrameSender).
                await self._send_raw(b"".join(encode_frame(tg, msg) for tg, msg in zip(tags, batch, strict=True)))
                try:
                    for call in calls:
                        await call.event.wait()
                except trio.Cancelled:
                    with trio.CancelScope(shield=True) as scope:
                        scope.deadline = trio.current_time() + _FLUSH_TIMEOUT
                        for tag, call in zip(tags, calls, strict=True):
                            if call.reply is None:
                                await self._flush(tag, call)
                    raise
            finally:
                for tag in tags:
                    del self._pending[tag]
                    self._free_tags.append(tag)
            replies.extend(call.reply for call in calls)
        if not check:
            return replies
        return [self._check(msg, r) for msg, r in zip(msgs, replies, strict=True)]

    async def _flush(self, oldtag: int, call: _Call) -> None:
        if self._broken is not None:
            return
        tag = self._alloc_tag()
        fcall = _Call()
        self._pending[tag] = fcall
        try:
            with trio.CancelScope(shield=True):
                await self._send(tag, m.Tflush(oldtag))
            await fcall.event.wait()
        except OSError:
            pass
        finally:
            del self._pending[tag]
            self._free_tags.append(tag)

    def _check(self, req: m.Message, reply: Any) -> m.Message:
        if isinstance(reply, m.Rlerror | m.Rerror):
            raise _oserror(reply.ecode, type(req).__name__)
        if isinstance(reply, BaseException):
            if isinstance(reply, OSError):
                raise reply
            if isinstance(reply, trio.BrokenResourceError | trio.ClosedResourceError):
                raise _oserror(errno.ECONNRESET, f"9P connection lost: {reply}") from reply
            raise _oserror(errno.EIO, f"{type(req).__name__}: {reply}") from reply
        want = m.RESPONSE_OF.get(type(req))
        if want is not None and not isinstance(reply, want):
            raise _oserror(
                errno.EPROTO, f"{type(req).__name__} answered with {type(reply).__name__}"
            )
        return reply

    # --- session ------------------------------------------------------------------------------

    async def _negotiate(self, msize: int, version: bytes) -> None:
        offers = [version] if version == BASE else [version, BASE]
        for offer in offers:
            self.msize = msize
            self._decoder.max_size = msize
            tag = NOTAG
            call = _Call()
            self._pending[tag] = call
            try:
                await self._send(tag, m.Tversion(msize, offer))
                await call.event.wait()
            finally:
                del self._pending[tag]
            reply = call.reply
            if isinstance(reply, m.Rversion):
                dialect = client_accept(offer, reply.version)
                if dialect is None:
                    continue
                if reply.msize < MIN_MSIZE:
                    raise _oserror(errno.EPROTO, f"server msize {reply.msize} is below {MIN_MSIZE}")
                self.msize = min(msize, reply.msize)
                self._decoder.max_size = self.msize
                self.dialect = dialect
                return
            if isinstance(reply, m.Rlerror | m.Rerror | ProtocolError):
                continue
            self._check(m.Tversion(msize, offer), reply)
        raise _oserror(errno.EPROTONOSUPPORT, "server speaks no 9P2000.L dialect we know")

    async def attach(
        self,
        aname: bytes | str = b"",
        *,
        uname: bytes | str = b"",
        n_uname: int | None = None,
    ) -> Fid:
        """Attach to export `aname` as `uname`/`n_uname`; return the root Fid.

        Tauth is tried first; ENOENT/EOPNOTSUPP (and similar refusals) mean "no auth
        needed" (with our dialect, Tauth and Tattach are sent together). `uname`
        defaults to the current user's name, `n_uname` to the euid.
        """
        aname = os.fsencode(aname)
        if n_uname is None:
            n_uname = os.geteuid()
        if not uname:
            try:
                import pwd

                uname = pwd.getpwuid(n_uname).pw_name
            except KeyError:
                uname = str(n_uname)
        uname = os.fsencode(uname)
        afid = self.alloc_fid()
        if self.dialect.version == RUNPSC:
            return await self._attach_pipelined(afid, uname, aname, n_uname)
        try:
            await self.rpc(m.Tauth(afid, uname, aname, n_uname))
        except OSError as e:
            self.release_fid(afid)
            if e.errno not in _NO_AUTH:
                raise
        else:
            # We implement no authentication protocol: drop the afid and try without.
            await self._clunk(afid)
        fid = self.alloc_fid()
        try:
            r = await self.rpc(m.Tattach(fid, NOFID, uname, aname, n_uname))
        except BaseException:
            self.release_fid(fid)
            raise
        assert isinstance(r, m.Rattach)
        return Fid(self, fid, r.qid, ())

    async def _attach_pipelined(self, afid: int, uname: bytes, aname: bytes,
                                n_uname: int) -> Fid:
        """Tauth and Tattach (without an afid) in one write: one round trip, not two.

        Why only with our dialect: its servers never require authentication, so the
        attach does not depend on the Tauth's answer; the same outcome as `attach`'s two
        steps (an afid that was granted is clunked; a refusal other than "no auth needed"
        is raised, after clunking the attached fid).
        """
        fid = self.alloc_fid()
        try:
            auth, att = await self.rpc_many(
                [m.Tauth(afid, uname, aname, n_uname), m.Tattach(fid, NOFID, uname, aname, n_uname)],
                check=False)
        except BaseException:
            self.release_fid(fid)
            self.release_fid(afid)
            raise
        ok = isinstance(att, m.Rattach)
        try:
            if isinstance(auth, m.Rauth):
                await self._clunk(afid)  # we implement no authentication protocol
            else:
                self.release_fid(afid)
                try:
                    self._check(m.Tauth(afid, uname, aname, n_uname), auth)
                except OSError as e:
                    if e.errno not in _NO_AUTH:
                        raise
            r = self._check(m.Tattach(fid, NOFID, uname, aname, n_uname), att)
        except BaseException:
            if ok:
                await self._clunk(fid)
            else:
                self.release_fid(fid)
            raise
        assert isinstance(r, m.Rattach)
        return Fid(self, fid, r.qid, ())

    async def _walk_to_new_fid(self, make: Callable[[int], m.Message], reply_type: type,
                               names: Sequence[bytes]) -> tuple[int, Any]:
        """Send `make(newfid)`, a request that walks `names` into a fresh fid (Twalk,
        Twalkgetattr), and return (newfid, reply) once every name was walked.

        The fid never leaks: an error or a partial walk releases it; cancellation leaves
        it to the late reply, which clunks it if the server did create it.
        """
        newfid = self.alloc_fid()
        n = len(names)

        async def late(reply: m.Message | None) -> None:
            if isinstance(reply, reply_type) and len(reply.qids) == n:
                await self._clunk(newfid)
            else:
                self.release_fid(newfid)

        try:
            r = await self.rpc(make(newfid), on_cancel=late)
        except trio.Cancelled:
            raise
        except BaseException:
            self.release_fid(newfid)
            raise
        assert isinstance(r, reply_type)
        if len(r.qids) != n:
            self.release_fid(newfid)
            raise _partial_walk_error(r.qids, names)
        return newfid, r

    async def _clunk(self, fid: int) -> None:
        """Send Tclunk without waiting for Rclunk: a clunk always frees the fid on the
        server, whatever it answers, so nobody needs the reply; the fid number is reused
        only once Rclunk arrives (`drain()` waits for that). `live_fids` drops it at once.
        Saves a round trip per walk-stat-clunk."""
        if self._broken is not None:
            self.release_fid(fid)
            return
        # No longer held by anyone (live_fids says so at once), but the number is reused
        # only after Rclunk.
        self.live_fids.discard(fid)
        tag = self._alloc_tag()
        if self._background == 0:
            self._idle = trio.Event()
        self._background += 1
        self._pending[tag] = _Call(on_reply=lambda: self._free_fids.append(fid))
        try:
            await self._send(tag, m.Tclunk(fid))  # the frame is never cut by cancellation
        except OSError:
            pass  # connection lost: _fail already released the fid

    @property
    def iosize(self) -> int:
        """Largest data payload of one Tread/Twrite."""
        return self.msize - IOHDRSZ


@asynccontextmanager
async def open_client(
    stream: trio.abc.Stream,
    *,
    msize: int = 1 << 20,
    version: bytes = RUNPSC,
    max_inflight: int = 256,
) -> AsyncIterator[Client]:
    """Negotiate a 9P2000.L session on `stream` and yield a `Client`.

    Args:
        msize: the msize asked for (the server may grant less; below 4096 is refused).
        version: the first version string offered (`p9.RUNPSC` for our extensions, or
            `b"9P2000.L"` for plain); we fall back to plain 9P2000.L.
        max_inflight: requests in flight at once on this connection.

    Raises:
        OSError: EPROTONOSUPPORT when the server speaks no 9P2000.L, EPROTO for a bad msize.
    """
    if msize < MIN_MSIZE:
        raise ValueError(f"msize {msize!r} is below {MIN_MSIZE}")
    client = Client(stream, max_inflight=max_inflight)
    try:
        async with _collapsing_nursery() as nursery:
            nursery.start_soon(client._reader)
            await client._negotiate(msize, version)
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)


class Fid:
    """A client-side fid: a handle on one server file, with the path walked to reach it.

    Use as an async context manager or call `clunk()`; a Fid must be clunked exactly once.
    """

    __slots__ = ("client", "fid", "qid", "path", "iounit", "_clunked")

    def __init__(self, client: Client, fid: int, qid: m.Qid, path: tuple[bytes, ...]) -> None:
        self.client = client
        self.fid = fid
        self.qid = qid
        #: Names walked from the attach root (informational; for re-establishing later).
        self.path = path
        self.iounit = 0
        self._clunked = False

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
        names = [os.fsencode(n) for n in names]
        c = self.client
        qid = self.qid
        cur: Fid | None = None
        # Twalk carries at most 16 names (MAXWELEM); longer walks go in steps.
        chunks = [names[i : i + 16] for i in range(0, len(names), 16)] or [[]]
        try:
            for chunk in chunks:
                src = cur or self
                newfid, r = await c._walk_to_new_fid(
                    lambda nf, src=src, chunk=chunk: m.Twalk(src.fid, nf, tuple(chunk)),
                    m.Rwalk, chunk)
                if r.qids:
                    qid = r.qids[-1]
                nxt = Fid(c, newfid, qid, src.path + tuple(chunk))
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
        names = [os.fsencode(n) for n in names]
        if not c.dialect.walkgetattr or len(names) > 16:
            f = await self.walk(names)
            try:
                return f, await f.getattr(mask)
            except BaseException:
                await f.clunk()
                raise
        newfid, r = await c._walk_to_new_fid(
            lambda nf: m.Twalkgetattr(self.fid, nf, tuple(names)), m.Rwalkgetattr, names)
        qid = r.qids[-1] if r.qids else self.qid
        return Fid(c, newfid, qid, self.path + tuple(names)), Stat(qid, r.valid, r.attr)

    async def multi_getattr(self, names: Sequence[bytes | str]) -> list[Stat]:
        """Stat every component along `names` (stops at the first missing one)."""
        c = self.client
        names = [os.fsencode(n) for n in names]
        if c.dialect.multigetattr:
            r = await c.rpc(m.Tmultigetattr(self.fid, tuple(names)))
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
            raise _oserror(errno.EBADF, "fid already clunked")
        self._clunked = True
        try:
            with trio.CancelScope(shield=True):
                await self.client.rpc(m.Tremove(self.fid))
        finally:
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
        return r.qid

    async def create(
        self, name: bytes | str, flags: int = os.O_RDWR, mode: int = 0o644, gid: int | None = None
    ) -> m.Qid:
        """Create `name` in this directory; this fid then refers to the new open file."""
        name = os.fsencode(name)
        r = await self.client.rpc(
            m.Tlcreate(self.fid, name, flags, mode, os.getegid() if gid is None else gid)
        )
        assert isinstance(r, m.Rlcreate)
        self.iounit = r.iounit
        self.qid = r.qid
        self.path = self.path + (name,)
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
            raise _oserror(errno.EPROTO, str(e)) from e

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
            raise _oserror(errno.EOPNOTSUPP, "Tallocate not negotiated")
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
        """POSIX byte-range lock (Tlock); returns a p9.LockStatus."""
        r = await self.client.rpc(
            m.Tlock(self.fid, lock_type, flags, start, length,
                    os.getpid() if proc_id is None else proc_id, client_id)
        )
        assert isinstance(r, m.Rlock)
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
        await self.client.rpc(m.Trename(self.fid, newdir.fid, os.fsencode(name)))

    async def renameat(self, oldname: bytes | str, newdir: Fid, newname: bytes | str) -> None:
        """Rename `oldname` here to `newdir`/`newname`; falls back to walk + Trename."""
        c = self.client
        if not c._no_renameat:
            try:
                await c.rpc(m.Trenameat(self.fid, os.fsencode(oldname), newdir.fid,
                                        os.fsencode(newname)))
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
            raise _oserror(errno.ENOTDIR, os.fsdecode(name))
        if not flags & AT_REMOVEDIR and st.is_dir:
            await f.clunk()
            raise _oserror(errno.EISDIR, os.fsdecode(name))
        await f.remove()

    async def readlink(self) -> bytes:
        r = await self.client.rpc(m.Treadlink(self.fid))
        assert isinstance(r, m.Rreadlink)
        return r.target

    # --- extended attributes --------------------------------------------------------------------

    async def _xattr_read(self, name: bytes) -> bytes:
        c = self.client
        newfid = c.alloc_fid()

        async def late(reply: m.Message | None) -> None:
            if reply is not None:
                await c._clunk(newfid)
            else:
                c.release_fid(newfid)

        try:
            r = await c.rpc(m.Txattrwalk(self.fid, newfid, name), on_cancel=late)
        except trio.Cancelled:
            raise
        except BaseException:
            c.release_fid(newfid)
            raise
        assert isinstance(r, m.Rxattrwalk)
        f = Fid(c, newfid, self.qid, self.path)
        async with f:
            data = await f.read(0, r.size) if r.size else b""
        return data

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
        # Plain 9P2000.L: a cloned fid becomes the xattr write buffer, committed at clunk.
        f = await self.walk()
        try:
            await c.rpc(m.Txattrcreate(f.fid, name, len(value), flags))
            if value:
                await f.write(0, value)
        except BaseException:
            await f.clunk()
            raise
        f._clunked = True
        try:
            with trio.CancelScope(shield=True):
                await c.rpc(m.Tclunk(f.fid))
        finally:
            c.release_fid(f.fid)

    async def removexattr(self, name: bytes | str) -> None:
        name = os.fsencode(name)
        c = self.client
        if c.dialect.listremovexattr:
            await c.rpc(m.Tremovexattr(self.fid, name))
            return
        # Linux v9fs: Txattrcreate with size 0 and XATTR_REPLACE... servers vary, so we use
        # size 0, flags 0, which diod, QEMU and our server treat as removal.
        f = await self.walk()
        try:
            await c.rpc(m.Txattrcreate(f.fid, name, 0, 0))
        except BaseException:
            await f.clunk()
            raise
        f._clunked = True
        try:
            with trio.CancelScope(shield=True):
                await c.rpc(m.Tclunk(f.fid))
        finally:
            c.release_fid(f.fid)


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
