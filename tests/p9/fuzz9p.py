"""Random 9P requests, valid and not, against the gofer's server, and what must hold of its
answers: shared by tests/p9/test_fuzz_codec.py and tests/gofer/test_fuzz_9p.py (hypothesis, a short derandomized run) and
bench/p9_fuzz.py (a seeded random.Random, a long run).

A request is drawn field by field from the message's own layout (`p9.REGISTRY`), each field
from a pool of values chosen by its name (fids from a few numbers plus NOFID, names with
`.`, `..`, `/`, empty, 255 and 256 bytes, offsets and counts at their edges ...), or is a
malformed frame: a known or unknown type with a random body, a message's frame with bytes
changed (the size kept, so the stream stays in sync), or a frame whose size is impossible
(below 7, or above the server's bound on msize: the connection must then be dropped; a
frame between the negotiated msize and that bound may be answered or end the connection).

What must hold (`Session.request`): every request gets exactly one reply with its tag,
either its own R-message or Rlerror (Rversion for a Tversion; nothing for a flushed one),
well formed, within a generous timeout; an impossible size ends the connection; the server
logs no internal error. After the connection: no descriptor left behind, nothing created
outside the export, no device node inside it.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import stat
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import trio

import p9
from p9 import _wire
from p9._messages import REGISTRY

T = TypeVar("T")

#: Requests (T-messages) and, rarely, replies sent the wrong way.
T_TYPES = sorted(t for t in REGISTRY if t % 2 == 0)
R_TYPES = sorted(t for t in REGISTRY if t % 2 == 1)

FIDS = (0, 1, 2, 3, 4, 5, 6, p9.NOFID, 0xFFFFFFFE, 16383, 16384)
NAMES = (b"a", b"b", b"d", b"f", b"link", b"fifo", b".", b"..", b"", b"a/b", b"/", b"\xff",
         b"x" * 255, b"x" * 256, b"d\x00x", b"new", b"sub")
TARGETS = (b"a", b"f", b"/etc/passwd", b"../../..", b"..", b"x" * 300, b"link", b"")
OFFSETS = (0, 1, 4095, 4096, 1 << 31, (1 << 63) - 1, 1 << 63, (1 << 64) - 1)
COUNTS = (0, 1, 7, 4096, 65536, (1 << 20) + 1, (1 << 31), (1 << 32) - 1)
IDS = (0, 1000, 65534, p9.NONUNAME)
VERSIONS = (p9.RUNPSC, p9.PLAIN.version, b"9P2000.L.Google.2", b"9P2000.L.Google.13",
            b"9P2000", b"", b"9P2000.L.x")
MSIZES = (0, 7, 100, 4096, 8192, 1 << 16, 1 << 20, (1 << 32) - 1)
ANAMES = (b"e", b"", b"nope", b"/e", b"e/..")
UNAMES = (b"root", b"", b"nobody", b"\xff")
#: Tallocate sizes stay small: fallocate really takes the space (on tmpfs, memory).
ALLOC = (0, 1, 4096, 1 << 20)
MSIZE = 1 << 16
#: The gofer's bound on msize (GoferOptions.max_msize): a frame beyond it cannot be read.
MAX_MSIZE = 1 << 20


class Chooser(Protocol):
    """Where the random choices come from (hypothesis' data, or a random.Random)."""

    def int(self, lo: int, hi: int) -> int: ...
    def pick(self, seq: Sequence[T]) -> T: ...
    def bytes(self, max_size: int) -> bytes: ...


class DataChooser:
    """Choices from hypothesis (the CI run: shrinkable, derandomized)."""

    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def pick(self, seq: Sequence[T]) -> T:
        return self.data.draw(self.st.sampled_from(seq))

    def bytes(self, max_size: int) -> bytes:
        return self.data.draw(self.st.binary(max_size=max_size))


class RandomChooser:
    """Choices from a seeded random.Random (the long run)."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.r.randint(lo, hi)

    def pick(self, seq: Sequence[T]) -> T:
        return seq[self.r.randrange(len(seq))]

    def bytes(self, max_size: int) -> bytes:
        return self.r.randbytes(self.r.randint(0, max_size))


def _int(ch: Chooser, name: str, bits: int) -> int:
    top = (1 << bits) - 1
    if ch.int(0, 7) == 0:  # any value of the field
        return ch.int(0, top)
    if name in ("fid", "newfid", "dfid", "afid", "olddirfid", "newdirfid", "dirfid"):
        v = ch.pick(FIDS)
    elif name in ("offset", "start"):
        v = ch.pick(OFFSETS)
    elif name == "length":
        v = ch.pick(OFFSETS + ALLOC)
    elif name in ("count", "size", "attr_size"):
        v = ch.pick(COUNTS)
    elif name in ("n_uname", "uid", "gid"):
        v = ch.pick(IDS)
    elif name == "msize":
        v = ch.pick(MSIZES)
    elif name == "oldtag":
        v = ch.int(0, 8)
    elif name in ("flags", "mode", "valid", "request_mask", "lock_type", "datasync"):
        v = ch.pick((0, 1, 2, 3, 0o100, 0o200, 0o1000, 0o40000, 0o100644, 0o20644, 0o10644,
                     0o140644, 0o40755, 0x3FFF, 0x4000, ch.int(0, top)))
    else:
        v = ch.int(0, min(top, 1 << 16))
    return v & top


def _field(ch: Chooser, name: str, kind: _wire.Kind) -> Any:
    if isinstance(kind, _wire.Int):
        return _int(ch, name, kind.bits)
    if isinstance(kind, _wire.OptionalTrailingU32):
        return ch.int(0, 1)
    if isinstance(kind, _wire.Str):
        pool = {"version": VERSIONS, "aname": ANAMES, "uname": UNAMES, "symtgt": TARGETS}
        if ch.int(0, 9) == 0:
            return ch.bytes(40)
        return ch.pick(pool.get(name, NAMES))
    if isinstance(kind, _wire.Data):
        return ch.bytes(64) if ch.int(0, 9) else bytes(ch.int(0, MSIZE))
    if isinstance(kind, _wire.List):
        n = ch.pick((0, 1, 1, 2, 3, 4, 5, 16, 17))
        return tuple(_field(ch, name, kind.item) for _ in range(n))
    if isinstance(kind, _wire.Nested):
        cls = kind.nested
        return cls(*[_field(ch, n, k) for n, k in cls._layout.fields])
    raise AssertionError(kind)


def message(ch: Chooser, mtype: int) -> p9.Message:
    """A message of type `mtype`, its fields drawn from their pools."""
    cls = REGISTRY[mtype]
    msg = cls(*[_field(ch, n, k) for n, k in cls._layout.fields])
    if isinstance(msg, p9.Tallocate):  # the space is really taken: keep it small
        msg = p9.Tallocate(msg.fid, msg.mode, msg.offset & 0xFFFFF, ch.pick(ALLOC))
    return msg


#: Walks that succeed in make_export's tree, from the attach fid.
PATHS = ((b"f",), (b"d",), (b"d", b"a"), (b"d", b"sub"), (b"link",), (b"d", b"..", b"f"),
         (b"d", b"sub", b"..", b"a"), (b"fifo",), (b"up",), ())


def _likely(ch: Chooser) -> p9.Message:
    """A well-formed request on the fids a session is likely to hold: walks of 1-4 names
    that exist, getattrs, clunks, opens, reads and writes of what they reach."""
    fid, new = ch.pick((0, 1)), ch.pick((2, 3))
    op = ch.int(0, 9)
    if op <= 2:
        return p9.Twalk(fid, new, ch.pick(PATHS))
    if op == 3:
        return p9.Twalkgetattr(fid, new, ch.pick(PATHS))
    if op == 4:
        return p9.Tgetattr(new, ch.pick((p9.GetattrMask.BASIC, p9.GetattrMask.ALL)))
    if op == 5:
        return p9.Tclunk(new)
    if op == 6:
        return p9.Tlopen(new, ch.pick((0, 1, 2, 0o4000)))
    if op == 7:
        return p9.Tread(new, ch.pick((0, 10, 4096, 1 << 40)), ch.pick((1, 100, 4096, 65536)))
    if op == 8:
        return p9.Twrite(new, ch.pick((0, 10, 5000)), ch.bytes(32))
    return p9.Treaddir(new, 0, 4096)


class Request:
    """One frame to send, and what it is."""

    __slots__ = ("frame", "tag", "mtype", "fatal")

    def __init__(self, frame: bytes, tag: int, mtype: int, fatal: bool = False) -> None:
        self.frame, self.tag, self.mtype, self.fatal = frame, tag, mtype, fatal

    def __repr__(self) -> str:
        try:
            what = repr(p9.decode_frame(self.frame)[1])
        except p9.ProtocolError:
            what = f"raw type {self.mtype}"
        return f"<Request tag={self.tag} {what[:200]} frame={self.frame[:64].hex()}>"


def request(ch: Chooser, *, allow_fatal: bool = True) -> Request:
    """A request, valid or not (see the module's docstring)."""
    tag = ch.pick((0, 1, 2, 3, 4, 5, p9.NOTAG, ch.int(0, 0xFFFF)))
    kind = ch.int(0, 31)
    if kind == 0:  # a known or unknown type, a random body
        mtype = ch.int(0, 255)
        body = ch.bytes(48)
        return Request((7 + len(body)).to_bytes(4, "little") + bytes([mtype]) +
                       tag.to_bytes(2, "little") + body, tag, mtype)
    if kind == 1 and allow_fatal:  # an impossible size: the connection must end
        size = ch.pick((0, 1, 6, MAX_MSIZE + 1, (1 << 32) - 1))
        return Request(size.to_bytes(4, "little") + ch.bytes(16), tag, -1, fatal=True)
    if 5 <= kind <= 20:  # what a real client sends most, and p9's C loops answer
        frame = p9.encode_frame(tag, _likely(ch))
        return Request(frame, tag, frame[4])
    mtype = ch.pick(R_TYPES) if kind == 2 else ch.pick(T_TYPES)
    if mtype == p9.Tversion.type and ch.int(0, 3):
        mtype = p9.Twalk.type  # a session reset now and then, not every few requests
    msg = message(ch, mtype)
    try:
        frame = bytearray(p9.encode_frame(tag, msg))
    except p9.ProtocolError:  # a value that does not fit (a name list too long ...)
        frame = bytearray(p9.encode_frame(tag, p9.Tclunk(ch.pick(FIDS))))
        mtype = p9.Tclunk.type
    if kind == 3 and len(frame) > 7:  # bytes changed behind the header
        for _ in range(ch.int(1, 4)):
            frame[ch.int(7, len(frame) - 1)] = ch.int(0, 255)
    elif kind == 4 and len(frame) > 7:  # body cut short or extended, size kept right
        body = bytes(frame[7:ch.int(7, len(frame))]) + ch.bytes(8)
        frame = bytearray((7 + len(body)).to_bytes(4, "little")) + frame[4:7] + body
    return Request(bytes(frame), tag, mtype)


def sequence(ch: Chooser, n: int) -> list[Request]:
    """A session: Tversion, usually an attach, then `n` requests (the last may be fatal)."""
    out = [Request(p9.encode_frame(p9.NOTAG, p9.Tversion(MSIZE, ch.pick(VERSIONS[:4]))),
                   p9.NOTAG, p9.Tversion.type)]
    if ch.int(0, 7):
        out.append(Request(p9.encode_frame(0, p9.Tattach(ch.pick((0, 1)), p9.NOFID, b"root",
                                                         b"e", ch.pick(IDS))),
                           0, p9.Tattach.type))
        if ch.int(0, 1):  # fid 2 an open file, fid 3 a directory: what reads and walks use
            fid = out[-1].frame[7:11]
            for tag, msg in enumerate((p9.Twalk(0, 2, (b"f",)), p9.Tlopen(2, 2),
                                       p9.Twalk(0, 3, (b"d",))), 1):
                raw = bytearray(p9.encode_frame(tag, msg))
                if isinstance(msg, p9.Twalk):
                    raw[7:11] = fid  # from the fid attached
                out.append(Request(bytes(raw), tag, msg.type))
    for i in range(n):
        out.append(request(ch, allow_fatal=i == n - 1))
    return out


class Violation(AssertionError):
    """The server or the codec broke a rule of the module's docstring."""


def check_codec(frames: list[bytes], cuts: list[int], *, raw: bool = False) -> int:
    """Feed `frames` (cut at `cuts`) to a FrameDecoder; raises Violation unless only
    p9.ProtocolError is raised, each frame of a right size gives exactly one message or
    one recoverable error (with its tag), decoded messages re-encode to themselves, and
    `peek_io`/`next_meta` agree with `next_message` on the frame at the head. `raw`: the
    bytes are anything (a broken size may end the stream). Returns the frames decoded."""
    stream = b"".join(frames)
    bounds = [0, *cuts, len(stream)]
    dec = p9.FrameDecoder(MSIZE)
    outcomes = 0
    decoded = 0
    try:
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            dec.receive_data(stream[lo:hi])
            while True:
                pos = dec._pos  # the frame at the head, for the checks
                size = int.from_bytes(dec._buf[pos:pos + 4], "little")
                head = bytes(dec._buf[pos:pos + min(max(size, 7), MSIZE)])
                io = dec.peek_io()
                try:
                    item = dec.next_message()
                except p9.ProtocolError as e:
                    if io is not None:
                        raise Violation(f"peek_io took {head[:64].hex()}, decoding failed: {e}") \
                            from e
                    if not e.recoverable:
                        if raw:
                            return decoded
                        raise Violation(f"unrecoverable {e} in {head[:64].hex()}") from e
                    outcomes += 1
                    continue
                if item is None:
                    break
                outcomes += 1
                decoded += 1
                _check_decoded(item, io, head)
    except Violation:
        raise
    except Exception as e:  # anything but the documented error is a bug
        raise Violation(f"{type(e).__name__}: {e} decoding {stream[:128].hex()}") from e
    if not raw:
        if outcomes != len(frames) or dec.buffered:
            raise Violation(f"{len(frames)} frames gave {outcomes} outcomes, "
                            f"{dec.buffered} bytes left: {stream[:128].hex()}")
    return decoded


def _check_decoded(item: tuple[int, p9.Message], io: tuple[int, int, int, int, int] | None,
                   head: bytes) -> None:
    tag, msg = item
    try:
        again = p9.decode_frame(p9.encode_frame(tag, msg))
    except p9.ProtocolError as e:
        raise Violation(f"{msg!r} decoded but does not re-encode: {e}") from e
    if again != (tag, msg):
        raise Violation(f"{msg!r} re-encoded decodes to {again!r}")
    if io is not None:
        data = msg.count if isinstance(msg, p9.Tread) else len(getattr(msg, "data", b""))
        if io != (msg.type, tag, msg.fid, msg.offset, data):  # type: ignore[attr-defined]
            raise Violation(f"peek_io says {io}, the decoder {msg!r}")
    meta_dec = p9.FrameDecoder(MSIZE)
    meta_dec.receive_data(head)
    meta = meta_dec.next_meta()
    if meta is not None:
        if isinstance(msg, p9.Tgetattr):
            want = (msg.type, tag, msg.fid, msg.request_mask, None)
        elif isinstance(msg, p9.Tclunk):
            want = (msg.type, tag, msg.fid, 0, None)
        elif isinstance(msg, p9.Twalk) and len(msg.wnames) == 1:
            want = (msg.type, tag, msg.fid, msg.newfid, msg.wnames[0])
        else:
            raise Violation(f"next_meta took {msg!r}: {meta}")
        if meta != want:
            raise Violation(f"next_meta says {meta}, the decoder {msg!r}")


class ErrorLog(logging.Handler):
    """Records what p9's server and the gofer log at ERROR (their internal errors)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> ErrorLog:
        for name in ("p9", "gofer"):
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in ("p9", "gofer"):
            logging.getLogger(name).removeHandler(self)


class Session:
    """The client end of one connection to the server under test."""

    def __init__(self, stream: trio.SocketStream, timeout: float, patience: float) -> None:
        self.stream = stream
        self.timeout = timeout
        self.patience = patience
        self.msize = MSIZE
        self.dec = p9.FrameDecoder(1 << 21)
        self.closed = False

    async def _reply(self) -> tuple[int, p9.Message] | None:
        while True:
            try:
                item = self.dec.next_message()
            except p9.ProtocolError as e:
                raise Violation(f"malformed reply: {e}") from e
            if item is not None:
                return item
            try:
                data = await self.stream.receive_some(1 << 20)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                return None
            self.dec.receive_data(data)

    async def request(self, req: Request) -> p9.Message | None:
        """Send `req` and check its answer (None: flushed, or the connection ended). A
        request still unanswered after `patience` seconds (an open of a FIFO, a read of an
        empty one, a blocking lock) is flushed: the flush must be answered in time."""
        size = int.from_bytes(req.frame[:4], "little")
        # Beyond the server's own bound the frame cannot be read: the connection must end.
        # Between the negotiated msize and that bound, answering it is a leniency, and
        # ending the connection is right too.
        fatal = req.fatal or not 7 <= size <= MAX_MSIZE
        either = not fatal and size > self.msize
        try:
            await self.stream.send_all(req.frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise Violation(f"connection gone before {req!r}") from None
        if fatal or either:  # no flush: the stream is not in step any more
            with trio.move_on_after(self.timeout):
                item = await self._reply()
                if item is None and either:
                    self.closed = True
                    return None
                return self._check(req, fatal, item)
            raise Violation(f"no answer within {self.timeout} s to {req!r}")
        with trio.move_on_after(self.patience):
            return self._check(req, fatal, await self._reply())
        flush_tag = 0xFFFE if req.tag != 0xFFFE else 0xFFFD
        await self.stream.send_all(p9.encode_frame(flush_tag, p9.Tflush(req.tag)))
        with trio.move_on_after(self.timeout):
            first = await self._reply()
            if first is not None and first[0] == req.tag:  # answered before the flush
                self._check(req, fatal, first)
                first = await self._reply()
            if first is None or first[0] != flush_tag or not isinstance(first[1], p9.Rflush):
                raise Violation(f"{first!r} to a Tflush of {req!r}")
            return None
        raise Violation(f"no answer within {self.timeout} s to a Tflush of {req!r}")

    def _check(self, req: Request, fatal: bool,
               item: tuple[int, p9.Message] | None) -> p9.Message | None:
        if item is None:
            self.closed = True
            if not fatal:
                raise Violation(f"connection dropped after {req!r}")
            return None
        if fatal:
            raise Violation(f"an impossible frame size was answered: {item!r}")
        tag, reply = item
        if tag != req.tag:
            raise Violation(f"reply tag {tag} to {req!r}: {reply!r}")
        if isinstance(reply, p9.Rlerror):
            if reply.ecode <= 0 or reply.ecode >= 4096:
                raise Violation(f"Rlerror {reply.ecode} to {req!r}")
            if reply.ecode == errno.EIO:  # what the framework answers an unexpected exception
                raise Violation(f"EIO (an internal error) to {req!r}")
            return reply
        if reply.type != req.mtype + 1:
            raise Violation(f"{reply!r} to {req!r}")
        if isinstance(reply, p9.Rversion):
            self.msize = reply.msize
        return reply


def make_export(root: str) -> str:
    """A fresh export `root`/e: a file, a directory, a symlink, a FIFO; returns its path."""
    exp = os.path.join(root, "e")
    os.makedirs(os.path.join(exp, "d", "sub"))
    with open(os.path.join(exp, "f"), "wb") as f:
        f.write(b"0123456789" * 500)
    with open(os.path.join(exp, "d", "a"), "wb") as f:
        f.write(b"a")
    os.symlink("f", os.path.join(exp, "link"))
    os.symlink("../../..", os.path.join(exp, "up"))
    os.mkfifo(os.path.join(exp, "fifo"))
    for path in ("", "d", "d/sub", "f", "d/a", "fifo"):  # every identity may use them
        os.chmod(os.path.join(exp, path), 0o777 if path in ("", "d", "d/sub") else 0o666)
    os.chmod(root, 0o755)
    return exp


def check_tree(root: str) -> None:
    """Nothing but the export under `root`, and no device node or setuid root file in it."""
    if sorted(os.listdir(root)) != ["e"]:
        raise Violation(f"files appeared beside the export: {sorted(os.listdir(root))}")
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, "e")):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                raise Violation(f"a device node was made: {dirpath}/{name}")


async def run_sequence(serve: Callable[[trio.SocketStream], Any], reqs: list[Request],
                       timeout: float, patience: float = 1.0) -> int:
    """Serve one connection with `serve(stream)` and play `reqs` on it; returns the number
    of requests answered. Raises Violation."""
    a, b = p9.socketpair()
    answered = 0
    done = trio.Event()

    async def server() -> None:
        try:
            await serve(b)
        finally:
            done.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server)
            s = Session(a, timeout, patience)
            try:
                for req in reqs:
                    await s.request(req)
                    answered += 1
                    if s.closed:
                        break
            finally:
                await a.aclose()
            with trio.move_on_after(timeout) as scope:
                await done.wait()
            if scope.cancelled_caught:
                nursery.cancel_scope.cancel()
                raise Violation("the server did not end the connection after the client "
                                "closed")
    except BaseExceptionGroup as group:  # the nursery's wrapping: the Violation itself
        match, _ = group.split(Violation)
        if match is None:
            raise
        first: BaseException = match
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return answered
