"""Reconnection: a client whose connection dropped dials again, renegotiates, attaches its
roots again, re-establishes every live fid by walking its path, reopens the open ones, and
resends the requests in flight that can safely be sent twice.

Why in the client: every user of a connection (the Sentry's goferfs, the FUSE mount)
holds Fids by number; re-establishing the same numbers on the new session lets them carry
on without knowing anything happened. What cannot be recovered says so: a fid whose path
now leads to another file (or nowhere) is stale (ESTALE on its next use); a request whose
effect is unknown (a create, rename, unlink ... in flight when the link broke) gets EIO;
after the window every operation gets EIO, as Linux's v9fs answers for a lost server.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import trio

from . import _messages as m
from ._constants import NOFID, NOTAG
from ._errors import ProtocolError, oserror
from ._framing import encode_frame

if TYPE_CHECKING:
    from ._client import Client
    from ._client_fid import Fid

log = logging.getLogger("p9.client")

#: Requests that may be sent again when the first answer was lost: sending one twice has
#: the effect of sending it once (a write at an explicit offset included).
IDEMPOTENT: frozenset[type[m.Message]] = frozenset({
    m.Twalk, m.Twalkgetattr, m.Topendirattr, m.Tmultigetattr, m.Tgetattr, m.Tread, m.Twrite, m.Treaddir,
    m.Treaddirattr, m.Tstatfs, m.Treadlink, m.Tgetxattr, m.Tlistxattr, m.Tfsync,
    m.Tsetattr, m.Tlopen, m.Tgetlock, m.Tlock, m.Tallocate, m.Tflush,
})
#: The fields of a request that name existing fids (not the new fid a walk makes).
_FID_FIELDS = ("fid", "dfid", "olddirfid", "newdirfid")
#: First pause between dial attempts, doubled after each failure up to the last.
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 1.0
#: Names one Twalk may carry.
_MAXWELEM = 16


def fids_of(msg: m.Message) -> Iterator[int]:
    """The existing fids a request uses."""
    for name in _FID_FIELDS:
        fid = getattr(msg, name, None)
        if fid is not None:
            yield fid


async def reconnect(client: Client, cause: BaseException) -> bool:
    """Re-establish `client`'s session after its connection failed with `cause`, dialling
    with backoff for up to `client.reconnect_window` seconds. True when the session is
    back; False (the caller fails everything with EIO) when the window passed.

    Requests wait (`Client._down`) until this returns."""
    assert client._redial is not None
    client._down = trio.Event()
    start = trio.current_time()
    deadline = start + client.reconnect_window
    log.warning("9P connection lost (%s); reconnecting for up to %ss", cause,
                client.reconnect_window)
    with trio.CancelScope(shield=True):
        await trio.aclose_forcefully(client._stream)
    delay = BACKOFF_FIRST
    try:
        while True:
            with trio.move_on_at(deadline):
                stream: trio.abc.Stream | None = None
                try:
                    stream = await client._redial()
                    client.use_stream(stream)
                    await _restore(client)
                except Exception as e:  # any failure of this attempt: try again
                    log.info("9P reconnect attempt failed: %s", e)
                    if stream is not None:
                        with trio.CancelScope(shield=True):
                            await trio.aclose_forcefully(stream)
                else:
                    client.reconnects += 1
                    log.warning("9P connection re-established after %.2fs",
                                trio.current_time() - start)
                    return True
            if trio.current_time() + delay >= deadline:
                log.warning("9P connection not re-established within %ss",
                            client.reconnect_window)
                client._fail(cause)
                return False
            await trio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
    finally:
        down, client._down = client._down, None
        down.set()


async def _restore(client: Client) -> None:
    """On the new connection: negotiate the same version and msize, attach every root,
    walk and reopen every fid, then resend or answer the requests in flight."""
    r = await _direct(client, m.Tversion(client.msize, client.dialect.version), NOTAG)
    if not isinstance(r, m.Rversion) or r.version != client.dialect.version or \
            r.msize < client.msize:
        raise ProtocolError(f"the server now answers {r!r}, not {client.dialect.version!r} "
                            f"with msize {client.msize}")
    for fid, (aname, uname, n_uname) in client._roots.items():
        r = await _direct(client, m.Tattach(fid, NOFID, uname, aname, n_uname))
        if isinstance(r, m.Rlerror | m.Rerror):
            # The export may be refused for good, or the server is still starting:
            # (ENOENT, EACCES ...) a retry decides.
            raise oserror(r.ecode, f"re-attaching {aname!r}")
        if not isinstance(r, m.Rattach):
            raise ProtocolError(f"Tattach answered with {type(r).__name__}")
    stale: set[int] = set()
    for fid, f in sorted(client._fids.items()):
        if fid in client._roots:
            continue
        if not f.restorable or f.root not in client._roots:
            stale.add(fid)
            continue
        if not await _rewalk(client, f):
            stale.add(fid)
    client._stale = stale
    if stale:
        log.warning("9P reconnect: %d fid(s) could not be re-established (their files "
                    "were removed or replaced): ESTALE", len(stale))
    _answer_in_flight(client)
    frames = _resend_frames(client)
    if frames:
        await client._sender.send(b"".join(frames))


async def _rewalk(client: Client, f: Fid) -> bool:
    """Walk fid `f` again from its root by its path (the same file: same qid path and
    type) and reopen it as it was; False when that cannot be done."""
    names = list(f.path)
    src = f.root
    qids: tuple[m.Qid, ...] = ()
    chunks = [names[i : i + _MAXWELEM] for i in range(0, len(names), _MAXWELEM)] or [[]]
    for chunk in chunks:
        r = await _direct(client, m.Twalk(src, f.fid, tuple(chunk)))
        if not isinstance(r, m.Rwalk) or len(r.qids) != len(chunk):
            if src == f.fid:  # (walked in place: the fid exists, at the wrong place)
                await _direct(client, m.Tclunk(f.fid))
            return False
        qids = r.qids or qids
        src = f.fid
    if names and qids and (qids[-1].path != f.qid.path or qids[-1].type != f.qid.type):
        await _direct(client, m.Tclunk(f.fid))
        return False
    if f.opened is not None:
        r = await _direct(client, m.Tlopen(f.fid, f.opened))
        if not isinstance(r, m.Rlopen):
            await _direct(client, m.Tclunk(f.fid))
            return False
    return True


def _answer_in_flight(client: Client) -> None:
    """Answer here the requests in flight that must not be sent again: clunks (the new
    session never had their fids), requests on stale fids (ESTALE), and those whose
    effect is unknown (EIO)."""
    for tag, call in list(client._pending.items()):
        if call.reply is not None or not call.sent or call.msg is None:
            continue
        msg = call.msg
        if call.on_reply is not None:
            call.reply = m.Rclunk()
            client._finish_background(tag, call)
            continue
        if any(fid in client._stale for fid in fids_of(msg)):
            call.reply = oserror(errno.ESTALE, f"{type(msg).__name__}: its fid was lost "
                                 "with the connection")
        elif type(msg) not in IDEMPOTENT:
            call.reply = oserror(errno.EIO, f"{type(msg).__name__}: the connection was lost "
                                 "before its answer, whether it was done is unknown")
        else:
            continue
        call.event.set()


def _resend_frames(client: Client) -> list[bytes]:
    """The frames of the requests in flight that are sent again (same tags)."""
    return [encode_frame(tag, call.msg) for tag, call in client._pending.items()
            if call.reply is None and call.sent and call.msg is not None]


async def _direct(client: Client, msg: m.Message, tag: int | None = None) -> m.Message:
    """One request and its answer on the new connection, read here (the reader task is
    the one reconnecting; nothing else is sent meanwhile)."""
    own = tag is None
    if tag is None:
        tag = client._alloc_tag()
    try:
        await client._sender.send(encode_frame(tag, msg))
        decoder = client._decoder
        while True:
            item = decoder.next_message()
            if item is None:
                data = await client._receiver.receive(decoder.wanted(1 << 16))
                if not data:
                    raise oserror(errno.ECONNRESET, "9P server closed the connection")
                decoder.receive_data(data)
                continue
            got, reply = item
            if got == tag:
                if isinstance(reply, ProtocolError):
                    raise reply
                return reply
    finally:
        if own:
            client._free_tags.append(tag)
