"""The sans-I/O codec: tables of (message, bytes) both ways, properties, hostile input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import p9
from p9 import _framing, _wire
from p9._messages import REGISTRY, Message, register

# (tag, message, exact frame bytes): hand-assembled from the 9P2000.L spec (diod protocol.md).
TABLE = [
    (0xFFFF, p9.Tversion(8192, b"9P2000.L"),
     b"\x15\x00\x00\x00" b"\x64" b"\xff\xff" b"\x00\x20\x00\x00" b"\x08\x00" b"9P2000.L"),
    (1, p9.Rlerror(2), b"\x0b\x00\x00\x00\x07\x01\x00\x02\x00\x00\x00"),
    (1, p9.Rerror(13), b"\x0b\x00\x00\x00\x6b\x01\x00\x0d\x00\x00\x00"),
    (7, p9.Twalk(1, 2, (b"a", b"\xff\xfe")),
     b"\x18\x00\x00\x00\x6e\x07\x00" b"\x01\x00\x00\x00" b"\x02\x00\x00\x00" b"\x02\x00"
     b"\x01\x00a" b"\x02\x00\xff\xfe"),
    (3, p9.Rwalk((p9.Qid(0x80, 1, 0x0102030405060708),)),
     b"\x16\x00\x00\x00\x6f\x03\x00\x01\x00" b"\x80\x01\x00\x00\x00\x08\x07\x06\x05\x04\x03\x02\x01"),
    (2, p9.Tread(5, 1 << 33, 4096),
     b"\x17\x00\x00\x00\x74\x02\x00\x05\x00\x00\x00" b"\x00\x00\x00\x00\x02\x00\x00\x00" b"\x00\x10\x00\x00"),
    (2, p9.Rread(b"hello"), b"\x10\x00\x00\x00\x75\x02\x00\x05\x00\x00\x00hello"),
    (4, p9.Tgetattr(9, 0x3FFF), b"\x13\x00\x00\x00\x18\x04\x00\x09\x00\x00\x00\xff\x3f\x00\x00\x00\x00\x00\x00"),
    (5, p9.Tfsync(3, 1), b"\x0f\x00\x00\x00\x32\x05\x00\x03\x00\x00\x00\x01\x00\x00\x00"),
    (6, p9.Rflush(), b"\x07\x00\x00\x00\x6d\x06\x00"),
    (8, p9.Tunlinkat(1, b"d", 0x200), b"\x12\x00\x00\x00\x4c\x08\x00\x01\x00\x00\x00\x01\x00d\x00\x02\x00\x00"),
]


@pytest.mark.parametrize(("tag", "msg", "frame"), TABLE)
def test_table_both_ways(tag: int, msg: Message, frame: bytes) -> None:
    assert p9.encode_frame(tag, msg) == frame
    assert p9.decode_frame(frame) == (tag, msg)


@pytest.mark.parametrize(("tag", "msg", "frame"), TABLE)
def test_table_byte_at_a_time_with_trailing_data(tag: int, msg: Message, frame: bytes) -> None:
    dec = p9.FrameDecoder(8192)
    trailing = p9.encode_frame(9, p9.Tclunk(4))
    stream = frame + trailing
    got = []
    for i in range(len(stream)):
        dec.receive_data(stream[i : i + 1])
        while (item := dec.next_message()) is not None:
            got.append(item)
    assert got == [(tag, msg), (9, p9.Tclunk(4))]
    assert dec.buffered == 0


def test_whole_table_in_one_chunk() -> None:
    dec = p9.FrameDecoder(8192)
    dec.receive_data(b"".join(f for _, _, f in TABLE) + b"\x15\x00")
    got = []
    while (item := dec.next_message()) is not None:
        got.append(item)
    assert got == [(t, m) for t, m, _ in TABLE]
    assert dec.buffered == 2


def test_tfsync_without_datasync_is_accepted() -> None:
    assert p9.decode_frame(b"\x0b\x00\x00\x00\x32\x05\x00\x03\x00\x00\x00") == (5, p9.Tfsync(3, 0))


def test_registry_refuses_duplicates() -> None:
    class Dup(Message):
        __slots__ = ()
        type = 100

    with pytest.raises(ValueError, match="duplicate message type 100"):
        register(Dup)


def test_every_9p2000l_message_is_present() -> None:
    numbers = {6 + 1, 8, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 30, 31,
               32, 33, 40, 41, 50, 51, 52, 53, 54, 55, 70, 71, 72, 73, 74, 75, 76, 77, 100, 101,
               102, 103, 104, 105, 107, 108, 109, 110, 111, 116, 117, 118, 119, 120, 121, 122, 123}
    assert numbers <= set(REGISTRY)


def test_every_message_class_is_exported() -> None:
    """p9/__init__.py lists the message classes by name (so type checkers see them)."""
    for cls in REGISTRY.values():
        assert cls.__name__ in p9.__all__
        assert getattr(p9, cls.__name__) is cls
    assert len(set(p9.__all__)) == len(p9.__all__)


# --- hostile input ------------------------------------------------------------------------------


def _err(frame: bytes, msize: int = 8192) -> p9.ProtocolError:
    dec = p9.FrameDecoder(msize)
    dec.receive_data(frame)
    with pytest.raises(p9.ProtocolError) as info:
        dec.next_message()
    return info.value


def test_size_larger_than_msize_is_fatal_before_the_body_arrives() -> None:
    e = _err(struct.pack("<I", 1 << 30))
    assert not e.recoverable and "exceeds msize" in str(e)


def test_size_below_header_is_fatal() -> None:
    assert not _err(b"\x03\x00\x00\x00\x64\x00\x00").recoverable


def test_unknown_type_is_recoverable_with_tag() -> None:
    e = _err(b"\x07\x00\x00\x00\xfe\x2a\x00")
    assert e.recoverable and e.tag == 42 and e.msg_type == 0xFE


def test_string_running_past_the_end() -> None:
    e = _err(b"\x0d\x00\x00\x00\x64\x01\x00\x00\x20\x00\x00\xff\x00")
    assert e.recoverable and e.tag == 1 and "truncated" in str(e)


def test_truncated_fixed_fields() -> None:
    assert "truncated" in str(_err(b"\x09\x00\x00\x00\x74\x01\x00\x01\x00"))


def test_lying_list_count_does_not_loop_or_allocate() -> None:
    # Twalk claiming 65535 names but carrying one.
    e = _err(b"\x12\x00\x00\x00\x6e\x01\x00" + b"\x00" * 8 + b"\xff\xff" + b"\x01\x00a")
    assert e.recoverable


def test_lying_data_count() -> None:
    assert _err(b"\x0b\x00\x00\x00\x75\x01\x00\xff\xff\xff\xff").recoverable


def test_trailing_bytes_inside_a_frame() -> None:
    assert "trailing" in str(_err(b"\x0c\x00\x00\x00\x78\x01\x00\x01\x00\x00\x00\x00"))


def test_local_encoding_errors_are_local() -> None:
    with pytest.raises(p9.ProtocolError) as info:
        p9.Tread(-1, 0, 0).encode()
    assert info.value.remote is False
    with pytest.raises(p9.ProtocolError):
        p9.Twalk(1, 2, (b"x" * 70000,)).encode()


def test_dirents_round_trip_and_limit() -> None:
    ents = [p9.Dirent(p9.Qid(0, 0, i), i + 1, 8, b"n%d\xff" % i) for i in range(10)]
    data, n = p9.encode_dirents(ents, 100)
    assert n == 3 and len(data) <= 100
    assert p9.decode_dirents(data) == ents[:3]
    with pytest.raises(p9.ProtocolError):
        p9.decode_dirents(data[:-1])


# --- properties -----------------------------------------------------------------------------------


def _strategy(kind: _wire.Kind) -> st.SearchStrategy:
    if isinstance(kind, _wire.Int):
        return st.integers(0, (1 << kind.bits) - 1)
    if isinstance(kind, _wire.OptionalTrailingU32):
        return st.integers(0, 0xFFFFFFFF)
    if isinstance(kind, _wire.Str):
        return st.binary(max_size=40)
    if isinstance(kind, _wire.Data):
        return st.binary(max_size=200)
    if isinstance(kind, _wire.List):
        return st.lists(_strategy(kind.item), max_size=5).map(tuple)
    if isinstance(kind, _wire.Nested):
        return _struct_strategy(kind.nested)
    raise AssertionError(kind)


def _struct_strategy(cls: type) -> st.SearchStrategy:
    return st.builds(cls, *[_strategy(k) for _, k in cls._layout.fields])


@pytest.mark.parametrize("cls", sorted(REGISTRY.values(), key=lambda c: c.type), ids=lambda c: c.__name__)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_round_trip_every_type(cls: type[Message], data: st.DataObject) -> None:
    msg = data.draw(_struct_strategy(cls))
    tag = data.draw(st.integers(0, 0xFFFF))
    frame = p9.encode_frame(tag, msg)
    assert p9.decode_frame(frame) == (tag, msg)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.integers(7, 400))
def test_arbitrary_bytes_never_crash(blob: bytes, msize: int) -> None:
    dec = p9.FrameDecoder(msize)
    dec.receive_data(blob)
    for _ in range(len(blob) + 1):
        try:
            if dec.next_message() is None:
                break
        except p9.ProtocolError as e:
            if not e.recoverable:
                break


@pytest.mark.parametrize("cls", sorted(REGISTRY.values(), key=lambda c: c.type), ids=lambda c: c.__name__)
@settings(max_examples=10, deadline=None)
@given(body=st.binary(max_size=80))
def test_arbitrary_bodies_never_crash(cls: type[Message], body: bytes) -> None:
    try:
        cls.decode(body)
    except p9.ProtocolError:
        pass


# --- versions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "answer"),
    [
        (b"9P2000.L", b"9P2000.L"),
        (b"9P2000.L.runpsc.1", b"9P2000.L.runpsc.1"),
        (b"9P2000.L.Google.13", b"9P2000.L.Google.3"),
        (b"9P2000.L.Google.2", b"9P2000.L.Google.2"),
        (b"9P2000.L.Google.0", b"9P2000.L"),
        (b"9P2000.L.other", b"9P2000.L"),
        (b"9P2000.u", None),
        (b"9P2000", None),
    ],
)
def test_server_version_choice(requested: bytes, answer: bytes | None) -> None:
    d = p9.server_choose(requested)
    assert (d.version if d else None) == answer


def test_client_version_acceptance() -> None:
    assert p9.client_accept(b"9P2000.L.runpsc.1", b"9P2000.L") == p9.PLAIN
    assert p9.client_accept(b"9P2000.L.runpsc.1", b"unknown") is None
    assert p9.client_accept(b"9P2000.L.runpsc.1", b"9P2000.L.runpsc.1").multigetattr
    assert p9.client_accept(b"9P2000.L.Google.3", b"9P2000.L.Google.2").walkgetattr
    assert p9.client_accept(b"9P2000.L", b"9P2000.L.Google.5") is None


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_chunking_of_a_valid_stream_yields_the_same_messages(data: st.DataObject) -> None:
    classes = sorted(REGISTRY.values(), key=lambda c: c.type)
    msgs = [data.draw(_struct_strategy(data.draw(st.sampled_from(classes)))) for _ in range(4)]
    stream = b"".join(p9.encode_frame(i, msg) for i, msg in enumerate(msgs))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    dec = p9.FrameDecoder(1 << 16)
    got = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        dec.receive_data(stream[a:b])
        assert dec.wanted(1) >= 1
        while (item := dec.next_message()) is not None:
            got.append(item)
    assert got == list(enumerate(msgs))


# --- the server's metadata short path (FrameDecoder.next_meta, encode_r*) --------------------


@settings(max_examples=60, deadline=None)
@given(tag=st.integers(0, 0xFFFF), valid=st.integers(0, (1 << 64) - 1),
       qids=st.lists(_struct_strategy(p9.Qid), max_size=1), attr=_struct_strategy(p9.Attr))
def test_short_path_replies_are_encode_frame_bytes(tag, valid, qids, attr) -> None:
    qid = qids[0] if qids else p9.Qid(0, 0, 0)
    assert _framing.encode_rgetattr(tag, valid, qid, attr) == p9.encode_frame(
        tag, p9.Rgetattr(valid, qid, attr))
    assert _framing.encode_rwalk(tag, qids) == p9.encode_frame(tag, p9.Rwalk(tuple(qids)))
    assert _framing.encode_rclunk(tag) == p9.encode_frame(tag, p9.Rclunk())


def _drain(dec: p9.FrameDecoder, got: list) -> None:
    """What a server's reader does: the short path first, else the generic decode."""
    while True:
        q = dec.next_meta()
        if q is not None:
            got.append(("meta", *q))
            continue
        item = dec.next_message()
        if item is None:
            return
        got.append(item)


def test_next_meta_takes_exactly_its_three_requests_a_byte_at_a_time() -> None:
    frames = [
        (1, p9.Tgetattr(5, 0x3FFF)), (2, p9.Tclunk(6)), (3, p9.Twalk(5, 7, (b"\xffname",))),
        (4, p9.Twalk(5, 8, ())), (5, p9.Twalk(5, 9, (b"a", b"b"))), (6, p9.Tread(5, 0, 10)),
        (7, p9.Twalk(5, 10, (b"",))), (8, p9.Tlopen(5, 0)),
    ]
    dec = p9.FrameDecoder(8192)
    got: list = []
    for b in b"".join(p9.encode_frame(t, msg) for t, msg in frames):
        dec.receive_data(bytes([b]))
        _drain(dec, got)
    assert got == [
        ("meta", 24, 1, 5, 0x3FFF, None), ("meta", 120, 2, 6, 0, None),
        ("meta", 110, 3, 5, 7, b"\xffname"), frames[3], frames[4], frames[5],
        ("meta", 110, 7, 5, 10, b""), frames[7],
    ]
    assert dec.buffered == 0


@pytest.mark.parametrize("frame", [
    struct.pack("<IBHIQB", 20, 24, 9, 1, 0, 0),  # Tgetattr with a trailing byte
    struct.pack("<IBHIB", 12, 120, 9, 1, 0),  # Tclunk with a trailing byte
    struct.pack("<IBHIIHH", 20, 110, 9, 1, 2, 1, 5) + b"ab",  # a name length that lies
    struct.pack("<IBHIIHH", 21, 110, 9, 1, 2, 1, 1) + b"ab",  # a name and a stray byte
], ids=["getattr+1", "clunk+1", "walk-short-name", "walk-stray-byte"])
def test_next_meta_leaves_malformed_frames_to_next_message(frame: bytes) -> None:
    dec = p9.FrameDecoder(8192)
    dec.receive_data(frame)
    assert dec.next_meta() is None
    with pytest.raises(p9.ProtocolError) as info:
        dec.next_message()
    assert info.value.recoverable and info.value.tag == 9
