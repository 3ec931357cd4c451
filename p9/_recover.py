"""Reconnection: a client whose connection dropped dials again, renegotiates, attaches its
roots again, re-establishes every live fid by walking its path, reopens the open ones, and
resends the requests in flight that can safely be sent twice.

Why in the client: every user of a connection (the Sentry's goferfs, the FUSE mount)
holds Fids by number; re-establishing the same numbers on the new session lets them carry
on without knowing anything happened. What cannot be recovered says so: a fid whose path
now leads to another file (or nowhere) is stale (ESTALE on its next use); a request whose
effect is unknown (a create, rename, unlink ... in flight when the link broke) is settled
by looking at the server's state (`_fate`), else EIO; a lock that cannot be taken again
makes its fid fail with EIO (`_relock`); after the window every operation gets EIO, as
Linux's v9fs answers for a lost server.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Literal

import trio

from . import _messages as m
from ._constants import NOFID, NOTAG, GetattrMask, LockStatus
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
_FID_FIELDS = ("fid", "dfid", "dirfid", "olddirfid", "newdirfid")
#: First pause between dial attempts, doubled after each failure up to the last.
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 1.0
#: Names one Twalk may carry.
_MAXWELEM = 16
#: Open flags that act once, at the open (as `_client_fid._ONCE_FLAGS`).
_ONCE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_TRUNC
#: What `_fate` found of a request whose answer was lost: its reply (it was done), "resend"
#: (the server's state shows it was not: sending it now does what was asked), "created"
#: (an exclusive create that was done: its fid is reopened as the new file, then
#: answered), or "eio" (the state says neither, or could not be read).
_Verdict = m.Message | Literal["resend", "created", "eio"]


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
    verdicts: dict[int, _Verdict] = {}
    for tag, call in list(client._pending.items()):
        if call.reply is None and call.sent and call.msg is not None and \
                call.on_reply is None and type(call.msg) not in IDEMPOTENT:
            try:
                verdicts[tag] = await _fate(client, call.msg)
            except OSError as e:  # (the state could not be read: unknown)
                log.info("9P reconnect: the fate of %s is unknown: %s",
                         type(call.msg).__name__, e)
                verdicts[tag] = "eio"
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
    _answer_in_flight(client, verdicts)
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
        f.iounit = r.iounit
        if f.locks is not None and f.fid not in client._lock_lost and \
                not await _relock(client, f):
            client._lock_lost.add(f.fid)
            log.warning("9P reconnect: the locks held through %r could not be taken again "
                        "(another owner has them): EIO on its operations", f)
    return True


async def _relock(client: Client, f: Fid) -> bool:
    """Take again, without waiting, the byte-range locks `f` held on the lost session (the
    server dropped them with it); False when one is refused: someone else took it
    meanwhile, and what the program protected with it may have changed under it."""
    assert f.locks is not None
    proc_id, client_id = f.locks.owner
    for lock_type, start, end in f.locks.ranges:
        length = 0 if end is None else end - start
        r = await _direct(client, m.Tlock(f.fid, lock_type, 0, start, length, proc_id, client_id))
        if not isinstance(r, m.Rlock) or r.status != LockStatus.SUCCESS:
            return False
    return True


async def _lookup(client: Client, root: int, path: Sequence[bytes], *,
                  target: bool = False) -> tuple[m.Rgetattr, bytes | None] | None:
    """What is at `path` under attach root `root` on the new session: its attributes (and
    a symlink's target when `target`), or None when nothing is there. Other failures raise
    OSError (the state cannot be read)."""
    tmp = client.alloc_fid()
    walked = False
    try:
        src = root
        chunks = [path[i : i + _MAXWELEM] for i in range(0, len(path), _MAXWELEM)] or [()]
        for chunk in chunks:
            r = await _direct(client, m.Twalk(src, tmp, tuple(chunk)))
            if isinstance(r, m.Rlerror | m.Rerror) and r.ecode in (errno.ENOENT, errno.ENOTDIR):
                return None
            if not isinstance(r, m.Rwalk):
                raise oserror(getattr(r, "ecode", errno.EPROTO), "looking the name up")
            if len(r.qids) != len(chunk):
                return None
            walked, src = True, tmp
        a = await _direct(client, m.Tgetattr(tmp, GetattrMask.BASIC))
        if not isinstance(a, m.Rgetattr):
            raise oserror(getattr(a, "ecode", errno.EPROTO), "reading its attributes")
        link: bytes | None = None
        if target and stat.S_ISLNK(a.attr.mode):
            t = await _direct(client, m.Treadlink(tmp))
            link = t.target if isinstance(t, m.Rreadlink) else None
        return a, link
    finally:
        if walked:
            await _direct(client, m.Tclunk(tmp))
        client.release_fid(tmp)


async def _fate(client: Client, msg: m.Message) -> _Verdict:
    """Whether `msg`, a request that changes the namespace and whose answer was lost, was
    done by the server, judged by what is there now (p9/README.md "Reconnection" says when
    this is wrong: another client changing the same names meanwhile). Runs before the fids
    are walked again, so a rename that was done moves them first."""
    fids = client._fids

    def where(fid: int) -> tuple[int, tuple[bytes, ...]] | None:
        f = fids.get(fid)
        if f is None or not f.restorable or f.root not in client._roots:
            return None
        return f.root, f.path

    async def look(fid: int, name: bytes | None = None, *, target: bool = False
                   ) -> tuple[m.Rgetattr, bytes | None] | None | Literal["eio"]:
        w = where(fid)
        if w is None:
            return "eio"
        return await _lookup(client, w[0], w[1] + ((name,) if name is not None else ()),
                             target=target)

    if isinstance(msg, m.Tlcreate) and not msg.flags & os.O_EXCL:
        return "resend"  # (creating or opening it again does the same)
    if isinstance(msg, m.Tlcreate | m.Tmkdir | m.Tsymlink | m.Tmknod):
        dirfid = msg.fid if isinstance(msg, m.Tlcreate | m.Tsymlink) else msg.dfid
        found = await look(dirfid, msg.name, target=isinstance(msg, m.Tsymlink))
        if found is None:
            return "resend"
        if found == "eio":
            return "eio"
        a, link = found
        kind = stat.S_IFMT(a.attr.mode)
        if isinstance(msg, m.Tmkdir) and kind == stat.S_IFDIR:
            return m.Rmkdir(a.qid)
        if isinstance(msg, m.Tsymlink) and kind == stat.S_IFLNK and link == msg.symtgt:
            return m.Rsymlink(a.qid)
        if isinstance(msg, m.Tmknod) and kind == stat.S_IFMT(msg.mode) and (
                kind not in (stat.S_IFCHR, stat.S_IFBLK)
                or a.attr.rdev == os.makedev(msg.major, msg.minor)):
            return m.Rmknod(a.qid)
        if isinstance(msg, m.Tlcreate) and kind == stat.S_IFREG and a.attr.size == 0:
            made = fids[msg.fid]  # (the walk again opens it as the new file: `_answer_in_flight`)
            made.path, made.qid = made.path + (msg.name,), a.qid
            made.opened = msg.flags & ~_ONCE_FLAGS
            return "created"
        return "eio"
    if isinstance(msg, m.Tunlinkat):
        found = await look(msg.dirfid, msg.name)
        return "eio" if found == "eio" else m.Runlinkat() if found is None else "resend"
    if isinstance(msg, m.Tremove | m.Tlink):
        gone = fids.get(msg.fid)
        found = await (look(msg.fid) if isinstance(msg, m.Tremove) else look(msg.dfid, msg.name))
        if gone is None or found == "eio":
            return "eio"
        same = found is not None and found[0].qid.path == gone.qid.path
        if isinstance(msg, m.Tremove):
            return "resend" if same else m.Rremove()
        return "resend" if found is None else m.Rlink() if same else "eio"
    if isinstance(msg, m.Trename | m.Trenameat):
        known: int | None = None
        if isinstance(msg, m.Trename):
            src, dst = where(msg.fid), where(msg.dfid)
            moved = fids.get(msg.fid)
            known = moved.qid.path if moved is not None else None
            new_name = msg.name
        else:
            d, dst = where(msg.olddirfid), where(msg.newdirfid)
            src = None if d is None else (d[0], d[1] + (msg.oldname,))
            known = next((g.qid.path for g in fids.values() if src is not None and
                          (g.root, g.path) == src), None)
            new_name = msg.newname
        if src is None or dst is None:
            return "eio"
        before = await _lookup(client, *src)
        if before is not None and known in (None, before[0].qid.path):
            return "resend"  # (the source is still there: not done)
        after = await _lookup(client, dst[0], dst[1] + (new_name,))
        if after is None or (known is not None and after[0].qid.path != known):
            return "eio"
        client._renamed(src[0], src[1], dst[1] + (new_name,))
        return m.Rrename() if isinstance(msg, m.Trename) else m.Rrenameat()
    return "eio"


def _answer_in_flight(client: Client, verdicts: dict[int, _Verdict]) -> None:
    """Answer here the requests in flight that must not be sent again: clunks (the new
    session never had their fids), those `_fate` found done (their replies), requests on
    stale fids (ESTALE) or on fids whose locks were lost (EIO), and those whose effect is
    unknown (EIO)."""
    for tag, call in list(client._pending.items()):
        if call.reply is not None or not call.sent or call.msg is None:
            continue
        msg = call.msg
        if call.on_reply is not None:
            call.reply = m.Rclunk()
            client._finish_background(tag, call)
            continue
        verdict = verdicts.get(tag, "resend" if type(msg) in IDEMPOTENT else "eio")
        fids = list(fids_of(msg))
        if isinstance(verdict, m.Message):
            call.reply = verdict
        elif verdict == "created" and isinstance(msg, m.Tlcreate):
            if msg.fid in client._stale:  # (made, then gone before it could be opened)
                call.reply = oserror(errno.EIO, "Tlcreate: the file made was lost")
            else:
                f = client._fids[msg.fid]
                call.reply = m.Rlcreate(f.qid, f.iounit)
        elif any(fid in client._stale for fid in fids):
            call.reply = oserror(errno.ESTALE, f"{type(msg).__name__}: its fid was lost "
                                 "with the connection")
        elif any(fid in client._lock_lost for fid in fids):
            call.reply = oserror(errno.EIO, f"{type(msg).__name__}: the file's locks were "
                                 "lost with the connection")
        elif verdict != "resend":
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
