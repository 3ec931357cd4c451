"""The trio client: one connection multiplexing many requests by tag, and a Fid-level API.

`open_client(stream)` negotiates version and msize, runs a reader task, and yields a
`Client`; `client.attach()` returns the root `Fid` (p9/_client_fid.py). Every Fid method is
one or a few messages; failures raise `OSError` with the server's errno. A request cancelled while
waiting is flushed (Tflush, then Rflush awaited, shielded) and, if its reply had already
succeeded in creating a fid, that fid is clunked, so fids never leak.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from . import _messages as m
from . import _recover as recover
from ._client_fid import Fid
from ._constants import IOHDRSZ, MIN_MSIZE, NOFID, NOTAG, QidType
from ._errors import ProtocolError, oserror
from ._framing import FrameDecoder, encode_frame
from ._sockio import FrameSender, Receiver, carries_fds
from ._transport import bound_unacknowledged
from ._version import BASE, PLAIN, RUNPSC, Dialect, client_accept

_RECV_CHUNK = 1 << 16
#: Seconds a reply may stay partly received before the server counts as gone.
DEFAULT_FRAME_TIMEOUT = 30.0
_FLUSH_TIMEOUT = 30.0
_NO_AUTH = (errno.ENOENT, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.EPERM)
#: The replies of the requests that walk to a new fid (`Client._walk_to_new_fid`).
_WalkReply = TypeVar("_WalkReply", m.Rwalk, m.Rwalkgetattr)
#: The bits of a qid path that are the donated file's inode number (p9/README.md).
_INO_BITS = (1 << 56) - 1

log = logging.getLogger("p9.client")


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
            err = (errors or leaves)[0]
            raise err from err.__cause__  # (its own cause kept: it may say why, e.g. TLS)
        raise


def _partial_walk_error(qids: Sequence[m.Qid], names: Sequence[bytes]) -> OSError:
    """The errno of a walk that stopped early: 9P gives none, so infer Linux's.

    Stopping right after a non-directory (that is not a symlink) means ENOTDIR, as Linux
    path resolution reports; anything else is ENOENT.
    """
    what = b"/".join(names).decode(errors="replace")
    if qids and not qids[-1].type & (QidType.DIR | QidType.SYMLINK):
        return oserror(errno.ENOTDIR, what)
    return oserror(errno.ENOENT, what)


class _Call:
    __slots__ = ("event", "reply", "on_reply", "msg", "sent")

    def __init__(self, msg: m.Message | None = None,
                 on_reply: Callable[[], None] | None = None) -> None:
        self.event = trio.Event()
        self.reply: m.Message | BaseException | None = None
        #: For requests nobody waits for (Tclunk): run by the reader when the reply lands.
        self.on_reply = on_reply
        #: The request, kept so a reconnection can send it again (`_recover.py`).
        self.msg = msg
        #: Whether (part of) its frame went out on the connection (a reconnection resends
        #: only such requests; the others are sent on the new connection by their task).
        self.sent = False


class Client:
    """A 9P2000.L client connection. Create with `open_client`.

    Attributes:
        msize: the negotiated maximum message size.
        dialect: the negotiated `p9.Dialect` (which extensions may be used).
        donations: whether read-only opens ask for the file's host descriptor (Tlopenfd:
            our dialect over a unix socket; off for good after a bad donation).
    """

    def __init__(self, stream: trio.abc.Stream, *, max_inflight: int = 256) -> None:
        self._stream = stream
        #: Dials the server again after the connection dropped (None: a lost connection
        #: is final); see `open_client(redial=)`.
        self._redial: Callable[[], Awaitable[trio.abc.Stream]] | None = None
        #: Seconds a reconnection may take before every operation fails with EIO.
        self.reconnect_window = 0.0
        #: Set while reconnecting: requests wait for it before they are sent.
        self._down: trio.Event | None = None
        #: Connections re-established so far (diagnostics, tests).
        self.reconnects = 0
        #: Seconds a reply may stay partly received (a server that stopped mid-reply), or
        #: a request unacknowledged by a TCP peer (a dark link), before the connection is
        #: dropped as lost (and reconnected); 0: no bound.
        self.frame_timeout = DEFAULT_FRAME_TIMEOUT
        #: Live Fid objects by number (re-established after a reconnection), the attach
        #: roots' (aname, uname, n_uname), and fids that could not be re-established
        #: (their requests fail with ESTALE until they are clunked).
        self._fids: dict[int, Fid] = {}
        self._roots: dict[int, tuple[bytes, bytes, int]] = {}
        self._stale: set[int] = set()
        #: Fids whose byte-range locks a reconnection could not take again: their
        #: requests but Tclunk fail with EIO (as Linux NFS after a failed lock reclaim).
        self._lock_lost: set[int] = set()
        self.msize = 0
        self.dialect: Dialect = PLAIN
        self.donations = False
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
        #: The descriptor each Rlopenfd brought, by the reply's id (the reply is kept
        #: beside it, so the id stays its own), taken by `donated_fd` or `drop_donated`.
        #: The reader pairs them as frames arrive: the waiting tasks wake in any order.
        self._donated: dict[int, tuple[m.Message, int]] = {}

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
        self._stale.discard(fid)
        self._lock_lost.discard(fid)
        if fid in self.live_fids:
            self.live_fids.discard(fid)
            self._free_fids.append(fid)

    async def _send(self, tag: int, msg: m.Message, call: _Call | None = None) -> None:
        frame = encode_frame(tag, msg)
        if len(frame) > self.msize and self.msize:
            raise ProtocolError(f"{type(msg).__name__} of {len(frame)} bytes exceeds msize {self.msize}", remote=False)
        await self._send_raw(frame, (call,) if call is not None else ())

    async def _send_raw(self, frame: bytes, calls: Sequence[_Call] = ()) -> None:
        """Send whole frames; while reconnecting, first wait for the new connection.

        A send that fails on a connection that will be re-established raises nothing: the
        reader notices the loss too, and the reconnection answers or resends `calls`.

        Requests that waited for a reconnection are checked here, the one place every
        frame (`rpc`'s and `rpc_many`'s) passes: their fids may have come back stale
        (ESTALE) or without their locks (EIO), and their numbers mean nothing on the new
        connection."""
        if self._down is not None:
            while self._down is not None:
                await self._down.wait()
            if self._stale or self._lock_lost:
                for call in calls:
                    if call.msg is not None:
                        self._check_fresh(call.msg)
        if self._broken is not None:
            raise self._lost()
        for call in calls:
            call.sent = True
        try:
            await self._sender.send(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            if self._redial is not None and calls:
                return
            self._fail(e)
            raise self._lost() from e

    def _lost(self) -> OSError:
        """The error of every operation once the connection is lost for good: EIO, as
        Linux's v9fs answers (the cause is chained)."""
        err = oserror(errno.EIO, f"9P connection lost: {self._broken}")
        err.__cause__ = self._broken
        return err

    async def _reader(self) -> None:
        while True:
            try:
                await self._read_replies()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError,
                    ProtocolError) as e:
                if self._redial is None or not await recover.reconnect(self, e):
                    self._fail(e)
                    return

    async def _read_replies(self) -> None:
        """Read replies and hand each to its waiting call, until the connection fails.

        A reply begun but not finished within `frame_timeout` fails the connection
        (ETIMEDOUT): a server that stopped mid-reply is as gone as one that closed. Nothing
        bounds the wait for a reply not begun: a request may rightly take long (a lock).
        Why no deadline while idle: the cancel scope is paid only with a partial frame."""
        frame_mark, frame_started = -1, 0.0
        while True:
            decoder = self._decoder
            wanted = decoder.wanted(_RECV_CHUNK)
            if decoder.buffered and self.frame_timeout > 0:
                mark = decoder.received - decoder.buffered  # moves when a frame is consumed
                if mark != frame_mark:
                    frame_mark, frame_started = mark, trio.current_time()
                with trio.move_on_at(frame_started + self.frame_timeout) as scope:
                    data = await self._receiver.receive(wanted)
                if scope.cancelled_caught:
                    raise oserror(errno.ETIMEDOUT, f"9P server stopped mid-reply for "
                                                   f"{self.frame_timeout:g}s")
            else:
                data = await self._receiver.receive(wanted)
            if not data:
                raise oserror(errno.ECONNRESET, "9P server closed the connection")
            self._decoder.receive_data(data)
            while True:
                item: tuple[int, m.Message | ProtocolError] | None
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
                if type(msg) is m.Rlopenfd and msg.fd:
                    self._pair_donated(msg, call is not None and call.reply is None)
                if call is not None and call.reply is None:
                    call.reply = msg
                    if call.on_reply is not None:
                        self._finish_background(tag, call)
                    else:
                        call.event.set()

    def use_stream(self, stream: trio.abc.Stream) -> None:
        """Talk over `stream` from now on (a reconnection's new connection)."""
        self._stream = stream
        self._sender = FrameSender(stream)
        self._receiver = Receiver(stream)
        self._decoder = FrameDecoder(self.msize or (1 << 20))
        bound_unacknowledged(stream, self.frame_timeout)

    def _fail(self, exc: BaseException) -> None:
        if self._broken is None:
            self._broken = exc
        lost = self._lost()
        for tag, call in list(self._pending.items()):
            if call.reply is None:
                call.reply = lost
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
            raise self._lost()
        if self._stale or self._lock_lost:
            self._check_fresh(msg)
        call: _Call | None = None
        try:
            try:
                self._slots.acquire_nowait()  # no scheduler pass unless we must wait
            except trio.WouldBlock:
                await self._slots.acquire()
            try:
                tag = self._alloc_tag()
                call = _Call(msg)
                self._pending[tag] = call
                try:
                    await self._send(tag, msg, call)  # never cut by cancellation (FrameSender)
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
                if not isinstance(reply, m.Message) or isinstance(reply, m.Rlerror | m.Rerror):
                    reply = None
                with trio.CancelScope(shield=True):
                    await on_cancel(reply)
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
                raise self._lost()
            if self._stale or self._lock_lost:
                for msg in batch:
                    self._check_fresh(msg)
            tags = [self._alloc_tag() for _ in batch]
            calls = [_Call(msg) for msg in batch]
            for tag, call in zip(tags, calls, strict=True):
                self._pending[tag] = call
            try:
                # Never cut by cancellation (FrameSender).
                await self._send_raw(b"".join(encode_frame(tg, msg) for tg, msg in zip(tags, batch, strict=True)),
                                     calls)
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
        if self._broken is not None or not call.sent:
            return
        tag = self._alloc_tag()
        fcall = _Call(m.Tflush(oldtag))
        self._pending[tag] = fcall
        try:
            with trio.CancelScope(shield=True):
                await self._send(tag, m.Tflush(oldtag), fcall)
            await fcall.event.wait()
        except OSError:
            pass
        finally:
            del self._pending[tag]
            self._free_tags.append(tag)

    def _check_fresh(self, msg: m.Message) -> None:
        """ESTALE for a request on a fid a reconnection could not re-establish (its file
        was removed or replaced on the server meanwhile); EIO for one on a fid whose locks
        it could not take again (but its clunk)."""
        for fid in recover.fids_of(msg):
            if fid in self._stale:
                raise oserror(errno.ESTALE, f"{type(msg).__name__}: fid {fid} was lost "
                              "with the connection")
            if fid in self._lock_lost and type(msg) is not m.Tclunk:
                raise oserror(errno.EIO, f"{type(msg).__name__}: the locks of fid {fid} "
                              "were lost with the connection")

    def _renamed(self, root: int, old: tuple[bytes, ...], new: tuple[bytes, ...]) -> None:
        """A rename moved `old` to `new` under attach root `root`: the fids at or below it
        are re-established by their new path after a reconnection."""
        n = len(old)
        for f in self._fids.values():
            if f.root == root and f.path[:n] == old:
                f.path = new + f.path[n:]

    def _check(self, req: m.Message, reply: Any) -> m.Message:
        if isinstance(reply, m.Rlerror | m.Rerror):
            raise oserror(reply.ecode, type(req).__name__)
        if isinstance(reply, BaseException):
            if isinstance(reply, OSError):
                raise reply
            if isinstance(reply, trio.BrokenResourceError | trio.ClosedResourceError):
                raise oserror(errno.EIO, f"9P connection lost: {reply}") from reply
            raise oserror(errno.EIO, f"{type(req).__name__}: {reply}") from reply
        want = m.RESPONSE_OF.get(type(req))
        if want is not None and not isinstance(reply, want):
            raise oserror(
                errno.EPROTO, f"{type(req).__name__} answered with {type(reply).__name__}"
            )
        return reply

    # --- donated descriptors (Tlopenfd) ---------------------------------------------------------

    def _pair_donated(self, reply: m.Rlopenfd, awaited: bool) -> None:
        """Give `reply` the oldest descriptor received (-1 if none came), in frame order,
        or close it when nobody waits for the reply (a flushed request's)."""
        fds = self._receiver.fds
        fd = fds.popleft() if fds else -1
        if awaited:
            self._donated[id(reply)] = (reply, fd)
        elif fd >= 0:
            os.close(fd)

    def donated_fd(self, reply: m.Rlopenfd, flags: int) -> int | None:
        """The descriptor that came with `reply` (the caller's to close), or None.

        The server's word is checked: one descriptor must have come, of a regular file
        whose inode is the qid's and opened with the access mode asked for. Anything else
        turns donations off on this connection (logged once) and the file is read with
        Tread, as after a plain Tlopen.
        """
        if not reply.fd:
            return None
        fd = self._take_donated(reply)
        problem = ""
        if fd < 0:
            problem = "none came with the reply" + (
                " (dropped on receipt: out of descriptors?)" if self._receiver.fds_lost else "")
        else:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                problem = f"not a regular file (mode {st.st_mode:o})"
            elif (st.st_ino ^ reply.qid.path) & _INO_BITS:
                problem = "another file than the one opened"
            elif fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != flags & os.O_ACCMODE:
                problem = "opened with another access mode"
        if not problem:
            return fd
        if fd >= 0:
            os.close(fd)
        self.refuse_donations(f"the server donated a bad descriptor: {problem}")
        return None

    def _take_donated(self, reply: m.Message) -> int:
        kept = self._donated.pop(id(reply), None)
        return kept[1] if kept is not None and kept[0] is reply else -1

    def refuse_donations(self, why: str) -> None:
        """Ask for no more donated descriptors on this connection (logged once), closing
        any received and not yet paired with a reply."""
        if self.donations:
            log.warning("9P: %s; files are read through 9P from now on", why)
        self.donations = False
        fds = self._receiver.fds
        while fds:
            os.close(fds.popleft())

    def drop_donated(self, reply: m.Message | None) -> None:
        """Close the descriptor of an Rlopenfd whose open was cancelled."""
        if reply is not None and (fd := self._take_donated(reply)) >= 0:
            os.close(fd)

    # --- session ------------------------------------------------------------------------------

    async def _negotiate(self, msize: int, version: bytes) -> None:
        offers = [version] if version == BASE else [version, BASE]
        refused: m.Rlerror | None = None
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
                    raise oserror(errno.EPROTO, f"server msize {reply.msize} is below {MIN_MSIZE}")
                self.msize = min(msize, reply.msize)
                self._decoder.max_size = self.msize
                self.dialect = dialect
                self.donations = dialect.lopenfd and carries_fds(self._stream)
                if self.donations:
                    self._receiver.take_fds()
                return
            if isinstance(reply, m.Rlerror | m.Rerror | ProtocolError):
                refused = reply if isinstance(reply, m.Rlerror) else None
                continue
            self._check(m.Tversion(msize, offer), reply)
        if refused is not None:  # the server refused the session itself (e.g. too many connections)
            raise oserror(refused.ecode, "the server refused the session")
        raise oserror(errno.EPROTONOSUPPORT, "server speaks no 9P2000.L dialect we know")

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
        return self._root_fid(fid, r.qid, aname, uname, n_uname)

    def _root_fid(self, fid: int, qid: m.Qid, aname: bytes, uname: bytes, n_uname: int) -> Fid:
        """The Fid of an attach root, remembered so a reconnection attaches it again."""
        self._roots[fid] = (aname, uname, n_uname)
        return Fid(self, fid, qid, (), root=fid)

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
        return self._root_fid(fid, r.qid, aname, uname, n_uname)

    async def rpc_to_new_fid(self, make: Callable[[int], m.Message],
                             made: Callable[[m.Message], bool]) -> tuple[int, m.Message]:
        """Send `make(newfid)`, a request that makes a fresh fid on the server, and return
        (newfid, reply). The fid never leaks: an error releases it; cancellation leaves it
        to the late reply, which clunks it if `made(reply)` says the server made it."""
        newfid = self.alloc_fid()

        async def late(reply: m.Message | None) -> None:
            if reply is not None and made(reply):
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
        return newfid, r

    async def _walk_to_new_fid(self, make: Callable[[int], m.Message], reply_type: type[_WalkReply],
                               names: Sequence[bytes]) -> tuple[int, _WalkReply]:
        """Send `make(newfid)`, a request that walks `names` into a fresh fid (Twalk,
        Twalkgetattr), and return (newfid, reply) once every name was walked.

        The fid never leaks: an error or a partial walk releases it; cancellation leaves
        it to the late reply, which clunks it if the server did create it.
        """
        n = len(names)
        newfid, r = await self.rpc_to_new_fid(
            make, lambda reply: isinstance(reply, reply_type) and len(reply.qids) == n)
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
        self._fids.pop(fid, None)
        self._roots.pop(fid, None)
        if self._broken is not None or fid in self._stale:
            self.release_fid(fid)  # (the server has no such fid)
            return
        # No longer held by anyone (live_fids says so at once), but the number is reused
        # only after Rclunk.
        self.live_fids.discard(fid)
        tag = self._alloc_tag()
        if self._background == 0:
            self._idle = trio.Event()
        self._background += 1
        call = _Call(m.Tclunk(fid), on_reply=lambda: self._free_fids.append(fid))
        self._pending[tag] = call
        try:
            await self._send(tag, m.Tclunk(fid), call)  # the frame is never cut by cancellation
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
    redial: Callable[[], Awaitable[trio.abc.Stream]] | None = None,
    reconnect: float = 0.0,
    frame_timeout: float = DEFAULT_FRAME_TIMEOUT,
) -> AsyncIterator[Client]:
    """Negotiate a 9P2000.L session on `stream` and yield a `Client`.

    Args:
        msize: the msize asked for (the server may grant less; below 4096 is refused).
        version: the first version string offered (`p9.RUNPSC` for our extensions, or
            `b"9P2000.L"` for plain); we fall back to plain 9P2000.L.
        max_inflight: requests in flight at once on this connection.
        redial: a new connection to the same server; with `reconnect` > 0, a lost
            connection is re-established through it (p9/_recover.py), retrying with
            backoff for up to `reconnect` seconds while operations wait. Otherwise, and
            after that window, every operation fails with EIO.
        frame_timeout: seconds a reply may stay partly received, or (TCP) a request
            unacknowledged by the peer, before the connection counts as lost (then as
            above); 0: no bound.

    Raises:
        OSError: EPROTONOSUPPORT when the server speaks no 9P2000.L, EPROTO for a bad msize.
    """
    if msize < MIN_MSIZE:
        raise ValueError(f"msize {msize!r} is below {MIN_MSIZE}")
    client = Client(stream, max_inflight=max_inflight)
    client.frame_timeout = frame_timeout
    bound_unacknowledged(stream, frame_timeout)
    try:
        async with _collapsing_nursery() as nursery:
            nursery.start_soon(client._reader)
            await client._negotiate(msize, version)
            if redial is not None and reconnect > 0:
                client._redial = redial
                client.reconnect_window = reconnect
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
            if client._stream is not stream:  # (a reconnection's)
                await trio.aclose_forcefully(client._stream)
