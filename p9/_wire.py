"""Field kinds and the decode buffer of the 9P2000.L codec (no I/O here).

Every message layout is a sequence of fields; each field has a *kind* that knows how to put
a value into a list of byte parts and take one out of a `Reader`. Runs of fixed-width fields
are merged into one `struct.Struct`, which keeps encoding and decoding of the hot messages
(Tread, Rread, Twalk, Rgetattr) to a handful of C calls.

The `Reader` never raises while decoding: running past the end sets `overrun` and yields
zero values, so a message is checked once, after decoding (the habit of gVisor's p9 buffer).
Lists stop at the first overrun, so a lying count cannot make the decoder loop or allocate.
"""

from __future__ import annotations

import operator
import struct
from typing import Any, ClassVar, Protocol

from ._errors import ProtocolError


class Reader:
    """Little-endian reads from a byte view that record overrun instead of raising."""

    __slots__ = ("buf", "pos", "end", "overrun")

    def __init__(self, buf: bytes | bytearray | memoryview, pos: int = 0, end: int | None = None):
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end
        self.overrun = False

    def unpack(self, st: struct.Struct, zeros: tuple) -> tuple:
        p = self.pos
        q = p + st.size
        if q > self.end:
            self.overrun = True
            self.pos = self.end
            return zeros
        self.pos = q
        return st.unpack_from(self.buf, p)

    def take(self, n: int) -> bytes:
        p = self.pos
        q = p + n
        if q > self.end:
            self.overrun = True
            self.pos = self.end
            return b""
        self.pos = q
        return bytes(self.buf[p:q])

    @property
    def remaining(self) -> int:
        return self.end - self.pos


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


class WireStruct(Protocol):
    """A class with a compiled wire layout: message classes and `wire_struct`s (Qid ...)."""

    _layout: ClassVar[Layout]


class Kind:
    """How one field is encoded. Subclasses set `fixed` to a struct format or None."""

    fixed: str | None = None
    #: For fixed kinds built from a struct class, the class (values are nested objects).
    nested: type[WireStruct] | None = None

    def put(self, parts: list, value: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def get(self, r: Reader) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class Int(Kind):
    """An unsigned little-endian integer of 1, 2, 4 or 8 bytes."""

    def __init__(self, fmt: str, bits: int):
        self.fixed = fmt
        self.bits = bits

    def __repr__(self) -> str:
        return f"u{self.bits}"


class Str(Kind):
    """A 9P string: u16 length then that many bytes. Values are bytes, never decoded."""

    def put(self, parts: list, value: bytes) -> None:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise ProtocolError(f"string field needs bytes, got {value!r}", remote=False)
        if len(value) > 0xFFFF:
            raise ProtocolError(f"string of {len(value)} bytes exceeds 65535", remote=False)
        parts.append(_U16.pack(len(value)))
        parts.append(value)

    def get(self, r: Reader) -> bytes:
        (n,) = r.unpack(_U16, (0,))
        return r.take(n)

    def __repr__(self) -> str:
        return "str"


class Data(Kind):
    """Counted data: u32 count then that many bytes (Rread, Twrite, Rreaddir)."""

    def put(self, parts: list, value: bytes) -> None:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise ProtocolError(f"data field needs bytes, got {type(value)!r}", remote=False)
        parts.append(_U32.pack(len(value)))
        parts.append(value)

    def get(self, r: Reader) -> bytes:
        (n,) = r.unpack(_U32, (0,))
        return r.take(n)

    def __repr__(self) -> str:
        return "data"


class OptionalTrailingU32(Kind):
    """A u32 that old peers omit at the very end of a message; absent decodes as 0."""

    def put(self, parts: list, value: int) -> None:
        try:
            parts.append(_U32.pack(value))
        except struct.error as e:
            raise ProtocolError(f"value {value!r} does not fit u32", remote=False) from e

    def get(self, r: Reader) -> int:
        if r.remaining == 0:
            return 0
        return r.unpack(_U32, (0,))[0]

    def __repr__(self) -> str:
        return "u32?"


class Nested(Kind):
    """A struct class (Qid, Attr, ...) embedded in a message."""

    nested: type[WireStruct]

    def __init__(self, cls: type[WireStruct]):
        self.nested = cls
        self.layout: Layout = cls._layout
        if self.layout.fixed_format is not None:
            self.fixed = self.layout.fixed_format

    def put(self, parts: list, value: Any) -> None:
        self.layout.put(parts, value)

    def get(self, r: Reader) -> Any:
        return self.layout.get(r)

    def __repr__(self) -> str:
        return self.nested.__name__


class List(Kind):
    """A u16 count followed by that many items of one kind."""

    def __init__(self, item: Kind):
        self.item = item

    def put(self, parts: list, value: Any) -> None:
        if len(value) > 0xFFFF:
            raise ProtocolError(f"list of {len(value)} items exceeds 65535", remote=False)
        parts.append(_U16.pack(len(value)))
        for v in value:
            self.item.put(parts, v)

    def get(self, r: Reader) -> tuple:
        (n,) = r.unpack(_U16, (0,))
        out = []
        get = self.item.get
        for _ in range(n):
            v = get(r)
            if r.overrun:
                break
            out.append(v)
        return tuple(out)

    def __repr__(self) -> str:
        return f"list[{self.item!r}]"


class _FixedRun:
    """Consecutive fixed-width fields packed with one struct.Struct."""

    def __init__(self, names: list[str], kinds: list[Kind]):
        self.names = names
        fmt = "<"
        self.slices: list[tuple[int, int, type[WireStruct] | None]] = []  # (start, stop, nested class)
        i = 0
        for k in kinds:
            assert k.fixed is not None
            f = k.fixed
            n = len(f)
            fmt += f
            self.slices.append((i, i + n, k.nested))
            i += n
        self.st = struct.Struct(fmt)
        self.zeros = (0,) * i
        self.simple = all(c is None for _, _, c in self.slices)
        self.getter = operator.attrgetter(*names)
        self.single = len(names) == 1
        # Encoding reads nested struct fields through dotted names ("qid.path"), so one
        # attrgetter call yields the flat tuple to pack.
        dotted: list[str] = []
        for name, (_, _, cls) in zip(names, self.slices, strict=True):
            dotted.extend([name] if cls is None else [f"{name}.{d}" for d in _dotted(cls)])
        self.flat_getter = operator.attrgetter(*dotted)
        self.flat_single = len(dotted) == 1

    def put(self, parts: list, obj: Any) -> None:
        try:
            vals = self.flat_getter(obj)
        except AttributeError as e:
            raise ProtocolError(f"a field of {self.names!r} is missing: {e}", remote=False) from e
        if self.flat_single:
            vals = (vals,)
        try:
            parts.append(self.st.pack(*vals))
        except struct.error as e:
            raise ProtocolError(
                f"a field of {self.names!r} does not fit: {vals!r}", remote=False
            ) from e

    def get(self, r: Reader, out: list) -> None:
        vals = r.unpack(self.st, self.zeros)
        if self.simple:
            out.extend(vals)
            return
        for start, stop, cls in self.slices:
            if cls is None:
                out.append(vals[start])
            else:
                out.append(cls._layout.build_fixed(vals[start:stop]))


def _dotted(cls: type[WireStruct]) -> list[str]:
    """Dotted names of every scalar inside fixed struct class `cls`, in wire order."""
    out: list[str] = []
    for name, kind in cls._layout.fields:
        if kind.nested is None:
            out.append(name)
        else:
            out.extend(f"{name}.{d}" for d in _dotted(kind.nested))
    return out


class _VarField:
    def __init__(self, name: str, kind: Kind):
        self.name = name
        self.kind = kind
        self.getter = operator.attrgetter(name)

    def put(self, parts: list, obj: Any) -> None:
        self.kind.put(parts, self.getter(obj))

    def get(self, r: Reader, out: list) -> None:
        out.append(self.kind.get(r))


class Layout:
    """The compiled field layout of a message or struct class."""

    def __init__(self, cls: type, fields: list[tuple[str, Kind]]):
        self.cls = cls
        self.fields = fields
        self.segments: list[_FixedRun | _VarField] = []
        run_names: list[str] = []
        run_kinds: list[Kind] = []
        for name, kind in fields:
            if kind.fixed is not None:
                run_names.append(name)
                run_kinds.append(kind)
                continue
            if run_names:
                self.segments.append(_FixedRun(run_names, run_kinds))
                run_names, run_kinds = [], []
            self.segments.append(_VarField(name, kind))
        if run_names:
            self.segments.append(_FixedRun(run_names, run_kinds))
        fixed = [k.fixed for _, k in fields if k.fixed is not None]
        if fields and len(fixed) == len(fields):
            self.fixed_format: str | None = "".join(fixed)
            self.fixed_size = struct.calcsize("<" + self.fixed_format)
        else:
            self.fixed_format = None
            self.fixed_size = 0 if not fields else -1

    def put(self, parts: list, obj: Any) -> None:
        for seg in self.segments:
            seg.put(parts, obj)

    def get(self, r: Reader) -> Any:
        out: list = []
        for seg in self.segments:
            seg.get(r, out)
        return self.cls(*out)

    def build_fixed(self, flat: tuple) -> Any:
        (seg,) = self.segments
        assert isinstance(seg, _FixedRun)
        if seg.simple:
            return self.cls(*flat)
        out: list = []
        for start, stop, cls in seg.slices:
            out.append(flat[start] if cls is None else cls._layout.build_fixed(flat[start:stop]))
        return self.cls(*out)


U8 = Int("B", 8)
U16 = Int("H", 16)
U32 = Int("I", 32)
U64 = Int("Q", 64)
STR = Str()
DATA = Data()
