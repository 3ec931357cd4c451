"""Framing: size[4] type[1] tag[2] body, bytes in → (tag, message) out. No I/O here.

`FrameDecoder` is the receive half (the h11 shape: `receive_data(bytes)`, then
`next_message()` until it returns None, meaning "need more data"). `encode_frame` is the
send half. A frame whose size field is impossible (below 7 or above `max_size`) breaks the
stream and raises a non-recoverable ProtocolError; a well-framed message with an unknown
type or a bad body is consumed and raises a *recoverable* ProtocolError carrying the tag,
so a server can answer it with Rlerror and carry on.
"""

from __future__ import annotations

import struct

from ._errors import ProtocolError
from ._messages import (
    REGISTRY,
    Attr,
    Message,
    Qid,
    Rclunk,
    Rgetattr,
    Rwalk,
    Tclunk,
    Tgetattr,
    Twalk,
    Twalkgetattr,
)
from ._wire import WireStruct, _FixedRun

_HDR = struct.Struct("<IBH")
HEADER_SIZE = 7


def _fixed_decoders() -> dict[int, tuple[int, struct.Struct, type]]:
    """type -> (frame size, body struct, class) for messages whose body is one run of plain
    integers (Tclunk, Tgetattr, Tlopen, Tread ...).

    Why: at one request in flight the codec is a good part of a metadata request's cost;
    such a body decodes with one unpack_from and the class call, skipping the generic
    Reader and layout walk. Any other size takes the generic path (which reports it).
    """
    out = {}
    for mtype, cls in REGISTRY.items():
        layout = cls._layout
        segs = layout.segments
        seg = segs[0] if len(segs) == 1 else None
        if layout.fixed_format is None or not isinstance(seg, _FixedRun) or not seg.simple:
            continue
        st = seg.st
        out[mtype] = (HEADER_SIZE + st.size, st, cls)
    return out


_FIXED = _fixed_decoders()
_IO_HDR = struct.Struct("<IBHIQI")  # size type tag fid offset count: Tread, Twrite's head
_TREAD = 116
_TWRITE = 118
TGETATTR = Tgetattr.type
TWALK = Twalk.type
TCLUNK = Tclunk.type
#: The request types C's metadata loop may answer (p9/_cmeta.py).
META_TYPES = frozenset({TGETATTR, TWALK, TCLUNK, Twalkgetattr.type})
_META_HDR = struct.Struct("<IBHI")  # size type tag fid: Tgetattr, Twalk, Tclunk's head
_TGETATTR_SIZE = _META_HDR.size + 8  # then request_mask[8]
_TCLUNK_SIZE = _META_HDR.size
_WALK1 = struct.Struct("<IHH")  # newfid[4] nwname[2] len[2] of a one-name Twalk
_WALK1_SIZE = _META_HDR.size + _WALK1.size  # the frame without the name's bytes
_U64 = struct.Struct("<Q")


def encode_frame_parts(tag: int, msg: Message) -> list:
    """The frame for `msg` as a list of byte strings (header first), for scatter-gather I/O.

    Why: an Rread or Twrite payload then reaches the socket without being copied into one
    frame first.
    """
    parts: list = [b""]
    msg._layout.put(parts, msg)
    size = HEADER_SIZE
    for p in parts:
        size += len(p)
    try:
        parts[0] = _HDR.pack(size, msg.type, tag)
    except struct.error as e:
        raise ProtocolError(f"tag {tag!r} or frame size {size} does not fit", remote=False) from e
    return parts


def encode_frame(tag: int, msg: Message) -> bytes:
    """Return the full frame for `msg` under `tag`."""
    return b"".join(encode_frame_parts(tag, msg))


def _fixed_format(cls: type[WireStruct]) -> str:
    """The struct format of a class whose fields are all fixed-width."""
    fmt = cls._layout.fixed_format
    if fmt is None:
        raise TypeError(f"{cls.__name__} has variable-width fields")
    return fmt


# The replies of `FrameDecoder.next_meta`'s requests, each packed with one struct from the
# values a server has in hand: the same bytes as `encode_frame` of the message (a test
# checks), without building it. Layouts come from the message classes.
_RGETATTR = struct.Struct("<IBH" + _fixed_format(Rgetattr))
_RGETATTR_TYPE = Rgetattr.type
_RWALK1 = struct.Struct("<IBHH" + _fixed_format(Qid))
_RWALK0 = struct.Struct("<IBHH")
_RWALK_TYPE = Rwalk.type
RCLUNK_TYPE = Rclunk.type


def encode_rgetattr(tag: int, valid: int, qid: Qid, attr: Attr) -> bytes:
    """The Rgetattr frame (see above)."""
    return _RGETATTR.pack(_RGETATTR.size, _RGETATTR_TYPE, tag, valid, qid.type, qid.version,
                          qid.path, *attr._values(attr))  # type: ignore[attr-defined]  # set by _messages._frozen


def encode_rwalk(tag: int, qids: list[Qid]) -> bytes:
    """The Rwalk frame for at most one qid (a one-name walk; see above)."""
    if not qids:
        return _RWALK0.pack(_RWALK0.size, _RWALK_TYPE, tag, 0)
    (q,) = qids
    return _RWALK1.pack(_RWALK1.size, _RWALK_TYPE, tag, 1, q.type, q.version, q.path)


def encode_rclunk(tag: int) -> bytes:
    """The Rclunk frame."""
    return _HDR.pack(HEADER_SIZE, RCLUNK_TYPE, tag)


class FrameDecoder:
    """Accumulate received bytes and cut them into decoded messages.

    Args:
        max_size: the largest frame accepted (the negotiated msize; may be changed later
            through the attribute of the same name).
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._pos = 0
        self._view: memoryview | None = None  # a Twrite's data handed out by take_io
        #: Bytes ever given to `receive_data`; minus `buffered`, it moves only when a frame
        #: was consumed (a server's frame deadline restarts then).
        self.received = 0

    def receive_data(self, data: bytes | bytearray) -> None:
        """Append bytes read from the transport."""
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        self.received += len(data)

    def wanted(self, minimum: int) -> int:
        """How many bytes to ask the transport for: the rest of a partial frame if larger.

        Why: a 1 MiB Rread arriving in small receives costs a syscall and a scheduler pass
        each; asking for the whole remainder at once fetches it in one.
        """
        have = len(self._buf) - self._pos
        if have >= 4:
            size = struct.unpack_from("<I", self._buf, self._pos)[0]
            if HEADER_SIZE <= size <= self.max_size and size - have > minimum:
                return size - have
        return minimum

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed as messages."""
        return len(self._buf) - self._pos

    def peek_io(self) -> tuple[int, int, int, int, int] | None:
        """(type, tag, fid, offset, count) if the next frame is a whole, well-formed Tread
        or Twrite (for a Twrite, count is its data's length), else None. The frame stays
        buffered until `take_io` (or `next_message`) consumes it.

        Why: a server's hot path answers sequential reads and writes without building a
        message, and writes the Twrite data from the receive buffer without copying it.
        """
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < _IO_HDR.size:
            return None
        mtype = buf[pos + 4]
        if mtype != _TREAD and mtype != _TWRITE:
            return None
        size, _, tag, fid, offset, count = _IO_HDR.unpack_from(buf, pos)
        if mtype == _TREAD:
            return (mtype, tag, fid, offset, count) if size == _IO_HDR.size else None
        if size != _IO_HDR.size + count or size > self.max_size or len(buf) - pos < size:
            return None
        return (mtype, tag, fid, offset, count)

    def take_io(self, frame: tuple[int, int, int, int, int]) -> memoryview | None:
        """Consume the frame `peek_io` returned; for a Twrite, a view of its data that stays
        valid until the next `receive_data` (which releases it: copy what you keep)."""
        start = self._pos + _IO_HDR.size
        if frame[0] == _TREAD:
            self._pos = start
            return None
        self._pos = start + frame[4]
        if self._view is not None:
            self._view.release()
        view = self._view = memoryview(self._buf)[start : self._pos]
        return view

    def next_meta(self) -> tuple[int, int, int, int, bytes | None] | None:
        """Consume and return (type, tag, fid, x, name) if the next frame is a whole,
        well-formed Tgetattr (x: its request mask, name None), Tclunk (x 0, name None) or
        Twalk of exactly one name (x: newfid); else None, consuming nothing.

        Why: at one request in flight (diodls, a stat per name) these three are nearly
        every request, and building, dispatching and generically encoding a message object
        was half of each one's cost in the server. Anything else, including a Twalk of zero
        or several names, takes `next_message`.
        """
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < _META_HDR.size:
            return None
        mtype = buf[pos + 4]
        if mtype != TGETATTR and mtype != TWALK and mtype != TCLUNK:
            return None
        size, _, tag, fid = _META_HDR.unpack_from(buf, pos)
        if len(buf) - pos < size:
            return None
        if mtype == TCLUNK:
            if size != _TCLUNK_SIZE:
                return None
            self._pos = pos + size
            return (mtype, tag, fid, 0, None)
        if mtype == TGETATTR:
            if size != _TGETATTR_SIZE:
                return None
            self._pos = pos + size
            return (mtype, tag, fid, _U64.unpack_from(buf, pos + _META_HDR.size)[0], None)
        if size < _WALK1_SIZE or size > self.max_size:
            return None
        newfid, nwname, length = _WALK1.unpack_from(buf, pos + _META_HDR.size)
        if nwname != 1 or size != _WALK1_SIZE + length:
            return None
        self._pos = pos + size
        return (mtype, tag, fid, newfid, bytes(buf[pos + _WALK1_SIZE : pos + size]))

    def whole_type(self) -> int:
        """The type of the next frame if it is here whole (and not over `max_size`), else -1;
        consumes nothing."""
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < HEADER_SIZE:
            return -1
        size = struct.unpack_from("<I", buf, pos)[0]
        if size > len(buf) - pos or size > self.max_size or size < HEADER_SIZE:
            return -1
        return buf[pos + 4]

    def take_buffered(self) -> bytes:
        """Remove and return every byte received but not yet consumed (a server's C loop
        continues from them; it hands back what it does not answer with `receive_data`)."""
        rest = bytes(self._buf[self._pos :])
        if self._view is not None:
            self._view.release()
            self._view = None
        self._buf.clear()
        self._pos = 0
        return rest

    def next_message(self) -> tuple[int, Message] | None:
        """Return the next (tag, message), or None when a whole frame is not yet here.

        Raises:
            ProtocolError: recoverable (frame consumed, `tag` set) for an unknown type or a
                malformed body; not recoverable for an impossible size field.
        """
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < HEADER_SIZE:
            if len(buf) - pos >= 4:
                self._check_size(struct.unpack_from("<I", buf, pos)[0])
            return None
        size, mtype, tag = _HDR.unpack_from(buf, pos)
        self._check_size(size)
        if len(buf) - pos < size:
            return None
        self._pos = pos + size
        fixed = _FIXED.get(mtype)
        if fixed is not None and fixed[0] == size:
            return tag, fixed[2](*fixed[1].unpack_from(buf, pos + HEADER_SIZE))
        cls = REGISTRY.get(mtype)
        if cls is None:
            raise ProtocolError(
                f"unknown message type {mtype}", tag=tag, msg_type=mtype, recoverable=True
            )
        try:
            msg = cls.decode(memoryview(buf), pos + HEADER_SIZE, pos + size)
        except ProtocolError as e:
            e.tag = tag
            e.msg_type = mtype
            e.recoverable = True
            raise
        return tag, msg

    def _check_size(self, size: int) -> None:
        if size < HEADER_SIZE:
            raise ProtocolError(f"frame size {size} is below the 7-byte header")
        if size > self.max_size:
            raise ProtocolError(f"frame size {size} exceeds msize {self.max_size}")


def decode_frame(frame: bytes) -> tuple[int, Message]:
    """Decode exactly one complete frame (a convenience for tests and tools)."""
    dec = FrameDecoder(max(len(frame), HEADER_SIZE))
    dec.receive_data(frame)
    out = dec.next_message()
    if out is None or dec.buffered:
        raise ProtocolError(f"not exactly one frame: {len(frame)} bytes")
    return out
