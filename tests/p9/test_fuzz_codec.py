"""The codec under random frames, valid and malformed (tests/p9/fuzz9p.py's requests, and
replies the same way): decoding raises nothing but p9.ProtocolError, a frame of a right size
never desynchronises the stream whatever its body, what decodes re-encodes to itself, and
the servers' short paths (`peek_io`, `next_meta`) agree with the generic decoder on every
frame. Derandomized; bench/p9_fuzz.py runs the same for as long as asked."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.p9.fuzz9p import DataChooser, check_codec, request


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_random_frames_decode_in_sync(data: st.DataObject) -> None:
    ch = DataChooser(data)
    frames = [request(ch, allow_fatal=False).frame for _ in range(ch.int(1, 8))]
    cuts = sorted(ch.int(0, sum(map(len, frames))) for _ in range(ch.int(0, 6)))
    check_codec(frames, cuts)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(blob=st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_the_protocol_error(blob: bytes) -> None:
    check_codec([blob], [], raw=True)
