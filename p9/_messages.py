"""Every 9P2000.L message (and the extensions) as a frozen, slotted value class.

Each class knows its type number (`type`), encodes its body (`encode()` → bytes, without the
size[4] type[1] tag[2] header, which belongs to framing) and decodes one (`decode(body)`).
Field layouts come from the annotations below; `REGISTRY` maps type numbers to classes and
refuses duplicates. Names and strings are bytes end to end.

This module deliberately does not use ``from __future__ import annotations``: the
`Annotated[...]` metadata on each field is read at class creation to compile the layout.
"""

import operator
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from typing import Annotated, Any, ClassVar, TypeVar, dataclass_transform

from ._errors import ProtocolError
from ._wire import (
    DATA,
    STR,
    U8,
    U16,
    U32,
    U64,
    Kind,
    Layout,
    List,
    Nested,
    OptionalTrailingU32,
    Reader,
    WireStruct,
)

u8 = Annotated[int, U8]
u16 = Annotated[int, U16]
u32 = Annotated[int, U32]
u64 = Annotated[int, U64]
s = Annotated[bytes, STR]
data = Annotated[bytes, DATA]
names = Annotated[tuple[bytes, ...], List(STR)]

_W = TypeVar("_W", bound=WireStruct)
_M = TypeVar("_M", bound="Message")


def _fields_of(cls: type) -> list[tuple[str, Kind]]:
    out = []
    for name, ann in cls.__dict__.get("__annotations__", {}).items():
        if getattr(ann, "__origin__", None) is ClassVar or ann is ClassVar:
            continue
        meta = getattr(ann, "__metadata__", None)
        if not meta or not isinstance(meta[0], Kind):
            raise TypeError(f"{cls.__name__}.{name}: annotation {ann!r} has no wire kind")
        out.append((name, meta[0]))
    return out


# -- frozen slotted value classes, built cheaply ---------------------------------------------
#
# Why not dataclasses.dataclass(frozen=True, slots=True): it compiles six functions per class
# with exec and computes a signature for every undocumented class, which made importing p9
# cost ~140 ms for ~90 classes (issue 7; still ~4x `_frozen`'s cost: bench/RESULTS.md). `_frozen` gives the same behaviour (positional and
# keyword __init__ with defaults, __repr__, __eq__, __hash__, frozen FrozenInstanceError,
# __match_args__, pickling) with shared methods; only __init__ is compiled, per class, the
# first time that class is instantiated, so it is as fast as the dataclass one.

_object_setattr = object.__setattr__


def _compile_init(cls: type) -> Any:
    names = cls._fields  # type: ignore[attr-defined]  # set on the class by _frozen
    args = "".join(f", {n}" for n in names)
    body = "".join(f"\n    _set(self, {n!r}, {n})" for n in names) or "\n    pass"
    ns: dict = {}
    exec(f"def __init__(self{args}):{body}", {"_set": _object_setattr}, ns)  # noqa: S102
    init = ns["__init__"]
    init.__defaults__ = cls._defaults or None  # type: ignore[attr-defined]  # set by _frozen
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    return init


def _lazy_init(cls: type) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init = _compile_init(cls)
        cls.__init__ = init  # type: ignore[misc]  # the compiled __init__ replaces this one
        init(self, *args, **kwargs)

    return __init__


def _repr(self: Any) -> str:
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
    return f"{type(self).__qualname__}({inner})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        return self._values(self) == other._values(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(self._values(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> list:
    return [getattr(self, n) for n in self._fields]


def _setstate(self: Any, state: list) -> None:
    for n, v in zip(self._fields, state, strict=True):
        _object_setattr(self, n, v)


def _frozen(cls: type[_W], fields: list[tuple[str, Kind]]) -> type[_W]:
    """`cls` rebuilt as a frozen class with __slots__ for `fields` (see above)."""
    names = tuple(n for n, _ in fields)
    ns = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    defaults = []
    for n in names:
        if n in ns:
            defaults.append(ns.pop(n))
        elif defaults:
            raise TypeError(f"{cls.__name__}: non-default field {n!r} follows a default")
    ns["__slots__"] = names
    ns["__match_args__"] = names
    ns["_fields"] = names
    ns["_defaults"] = tuple(defaults)
    ns["_values"] = operator.attrgetter(*names) if names else staticmethod(_no_values)
    for key, fn in (("__repr__", _repr), ("__eq__", _eq), ("__hash__", _hash),
                    ("__setattr__", _frozen_setattr), ("__delattr__", _frozen_delattr),
                    ("__getstate__", _getstate), ("__setstate__", _setstate)):
        ns.setdefault(key, fn)
    meta: type = type(cls)
    new: Any = meta(cls.__name__, cls.__bases__, ns)  # a class made at run time
    new.__qualname__ = cls.__qualname__
    new.__init__ = _lazy_init(new)
    return new


def _no_values(self: Any) -> tuple:
    return ()


# dataclass_transform: type checkers see the fields as a frozen dataclass's (the __init__
# signature, frozen attributes), which is what `_frozen` builds at run time.
@dataclass_transform(frozen_default=True)
def wire_struct(cls: type[_W]) -> type[_W]:
    """Make `cls` a frozen slotted value class with a compiled wire layout (Qid, Attr ...)."""
    fields = _fields_of(cls)
    cls = _frozen(cls, fields)
    cls._layout = Layout(cls, fields)
    return cls


@wire_struct
class Qid:
    """The server's identity of a file: type byte, version, and a unique path number."""

    _layout: ClassVar[Layout]
    type: u8
    version: u32
    path: u64


@wire_struct
class Attr:
    """The attributes of Rgetattr after its valid mask and qid (all P9_GETATTR_* fields)."""

    _layout: ClassVar[Layout]
    mode: u32 = 0
    uid: u32 = 0
    gid: u32 = 0
    nlink: u64 = 0
    rdev: u64 = 0
    size: u64 = 0
    blksize: u64 = 0
    blocks: u64 = 0
    atime_sec: u64 = 0
    atime_nsec: u64 = 0
    mtime_sec: u64 = 0
    mtime_nsec: u64 = 0
    ctime_sec: u64 = 0
    ctime_nsec: u64 = 0
    btime_sec: u64 = 0
    btime_nsec: u64 = 0
    gen: u64 = 0
    data_version: u64 = 0


@wire_struct
class SetAttr:
    """The values of Tsetattr after its valid mask (used where SetattrMask bits say)."""

    _layout: ClassVar[Layout]
    mode: u32 = 0
    uid: u32 = 0
    gid: u32 = 0
    size: u64 = 0
    atime_sec: u64 = 0
    atime_nsec: u64 = 0
    mtime_sec: u64 = 0
    mtime_nsec: u64 = 0


qid = Annotated[Qid, Nested(Qid)]
attr = Annotated[Attr, Nested(Attr)]
setattr_t = Annotated[SetAttr, Nested(SetAttr)]


@wire_struct
class FullStat:
    """One result of Rmultigetattr: qid, valid mask and attributes."""

    _layout: ClassVar[Layout]
    qid: qid
    valid: u64
    attr: attr


@wire_struct
class Dirent:
    """One directory entry inside Rreaddir's data."""

    _layout: ClassVar[Layout]
    qid: qid
    offset: u64
    type: u8
    name: s


class Message:
    """Base of all messages: `type` number, `encode()` and `decode()`."""

    __slots__ = ()
    type: ClassVar[int]
    _layout: ClassVar[Layout]

    def encode(self) -> bytes:
        """Encode the body (everything after size[4] type[1] tag[2])."""
        parts: list = []
        self._layout.put(parts, self)
        return b"".join(parts)

    @classmethod
    def decode(cls, body: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> Any:
        """Decode a body; raise ProtocolError on overrun or leftover bytes."""
        r = Reader(body, start, end)
        msg = cls._layout.get(r)
        if r.overrun:
            raise ProtocolError(f"{cls.__name__}: message body is truncated", msg_type=cls.type)
        if r.pos != r.end:
            raise ProtocolError(
                f"{cls.__name__}: {r.end - r.pos} unexpected trailing bytes", msg_type=cls.type
            )
        return msg


#: Type number → message class. Filled by `register`; refuses duplicates.
REGISTRY: dict[int, type[Message]] = {}


def register(cls: type[Message]) -> None:
    """Add `cls` to REGISTRY, refusing a type number that is already taken."""
    if not 0 <= cls.type <= 255:
        raise ValueError(f"message type {cls.type!r} of {cls.__name__} is not a byte")
    other = REGISTRY.get(cls.type)
    if other is not None:
        raise ValueError(f"duplicate message type {cls.type}: {other.__name__} and {cls.__name__}")
    REGISTRY[cls.type] = cls


@dataclass_transform(frozen_default=True)
def message(number: int) -> Callable[[type[_M]], type[_M]]:
    """Class decorator: frozen slotted value class + layout + registration under `number`."""

    def wrap(cls: type[_M]) -> type[_M]:
        fields = _fields_of(cls)
        cls = _frozen(cls, fields)
        cls.type = number
        cls._layout = Layout(cls, fields)
        register(cls)
        return cls

    return wrap


# --- session -------------------------------------------------------------------------------


@message(100)
class Tversion(Message):
    msize: u32
    version: s


@message(101)
class Rversion(Message):
    msize: u32
    version: s


@message(102)
class Tauth(Message):
    afid: u32
    uname: s
    aname: s
    n_uname: u32


@message(103)
class Rauth(Message):
    aqid: qid


@message(104)
class Tattach(Message):
    fid: u32
    afid: u32
    uname: s
    aname: s
    n_uname: u32


@message(105)
class Rattach(Message):
    qid: qid


@message(7)
class Rlerror(Message):
    ecode: u32


@message(107)
class Rerror(Message):
    """Legacy Rerror number as some 9P2000.L servers send it: with an Rlerror body."""

    ecode: u32


@message(108)
class Tflush(Message):
    oldtag: u16


@message(109)
class Rflush(Message):
    pass


@message(110)
class Twalk(Message):
    fid: u32
    newfid: u32
    wnames: names


@message(111)
class Rwalk(Message):
    qids: Annotated[tuple[Qid, ...], List(Nested(Qid))]


@message(116)
class Tread(Message):
    fid: u32
    offset: u64
    count: u32


@message(117)
class Rread(Message):
    data: data


@message(118)
class Twrite(Message):
    fid: u32
    offset: u64
    data: data


@message(119)
class Rwrite(Message):
    count: u32


@message(120)
class Tclunk(Message):
    fid: u32


@message(121)
class Rclunk(Message):
    pass


@message(122)
class Tremove(Message):
    fid: u32


@message(123)
class Rremove(Message):
    pass


# --- 9P2000.L -------------------------------------------------------------------------------


@message(8)
class Tstatfs(Message):
    fid: u32


@message(9)
class Rstatfs(Message):
    fstype: u32
    bsize: u32
    blocks: u64
    bfree: u64
    bavail: u64
    files: u64
    ffree: u64
    fsid: u64
    namelen: u32


@message(12)
class Tlopen(Message):
    fid: u32
    flags: u32


@message(13)
class Rlopen(Message):
    qid: qid
    iounit: u32


@message(14)
class Tlcreate(Message):
    fid: u32
    name: s
    flags: u32
    mode: u32
    gid: u32


@message(15)
class Rlcreate(Message):
    qid: qid
    iounit: u32


@message(16)
class Tsymlink(Message):
    fid: u32
    name: s
    symtgt: s
    gid: u32


@message(17)
class Rsymlink(Message):
    qid: qid


@message(18)
class Tmknod(Message):
    dfid: u32
    name: s
    mode: u32
    major: u32
    minor: u32
    gid: u32


@message(19)
class Rmknod(Message):
    qid: qid


@message(20)
class Trename(Message):
    fid: u32
    dfid: u32
    name: s


@message(21)
class Rrename(Message):
    pass


@message(22)
class Treadlink(Message):
    fid: u32


@message(23)
class Rreadlink(Message):
    target: s


@message(24)
class Tgetattr(Message):
    fid: u32
    request_mask: u64


@message(25)
class Rgetattr(Message):
    valid: u64
    qid: qid
    attr: attr


@message(26)
class Tsetattr(Message):
    fid: u32
    valid: u32
    attr: setattr_t


@message(27)
class Rsetattr(Message):
    pass


@message(30)
class Txattrwalk(Message):
    fid: u32
    newfid: u32
    name: s


@message(31)
class Rxattrwalk(Message):
    size: u64


@message(32)
class Txattrcreate(Message):
    fid: u32
    name: s
    attr_size: u64
    flags: u32


@message(33)
class Rxattrcreate(Message):
    pass


@message(40)
class Treaddir(Message):
    fid: u32
    offset: u64
    count: u32


@message(41)
class Rreaddir(Message):
    """Directory entries packed as `Dirent`s; see `encode_dirents`/`decode_dirents`."""

    data: data


@message(50)
class Tfsync(Message):
    """Tfsync; Linux sends datasync[4] after fid, older descriptions omit it (decodes as 0)."""

    fid: u32
    datasync: Annotated[int, OptionalTrailingU32()] = 0


@message(51)
class Rfsync(Message):
    pass


@message(52)
class Tlock(Message):
    fid: u32
    lock_type: u8
    flags: u32
    start: u64
    length: u64
    proc_id: u32
    client_id: s


@message(53)
class Rlock(Message):
    status: u8


@message(54)
class Tgetlock(Message):
    fid: u32
    lock_type: u8
    start: u64
    length: u64
    proc_id: u32
    client_id: s


@message(55)
class Rgetlock(Message):
    lock_type: u8
    start: u64
    length: u64
    proc_id: u32
    client_id: s


@message(70)
class Tlink(Message):
    dfid: u32
    fid: u32
    name: s


@message(71)
class Rlink(Message):
    pass


@message(72)
class Tmkdir(Message):
    dfid: u32
    name: s
    mode: u32
    gid: u32


@message(73)
class Rmkdir(Message):
    qid: qid


@message(74)
class Trenameat(Message):
    olddirfid: u32
    oldname: s
    newdirfid: u32
    newname: s


@message(75)
class Rrenameat(Message):
    pass


@message(76)
class Tunlinkat(Message):
    dirfid: u32
    name: s
    flags: u32


@message(77)
class Runlinkat(Message):
    pass


# --- extensions (gVisor's numbers and layouts; negotiated, see p9/README.md) ----------------


@message(28)
class Tlistxattr(Message):
    fid: u32
    size: u64


@message(29)
class Rlistxattr(Message):
    xattrs: names


@message(34)
class Tgetxattr(Message):
    fid: u32
    name: s
    size: u64


@message(35)
class Rgetxattr(Message):
    value: s


@message(36)
class Tsetxattr(Message):
    fid: u32
    name: s
    value: s
    flags: u32


@message(37)
class Rsetxattr(Message):
    pass


@message(38)
class Tremovexattr(Message):
    fid: u32
    name: s


@message(39)
class Rremovexattr(Message):
    pass


@message(124)
class Tflushf(Message):
    fid: u32


@message(125)
class Rflushf(Message):
    pass


@message(126)
class Twalkgetattr(Message):
    fid: u32
    newfid: u32
    wnames: names


@message(127)
class Rwalkgetattr(Message):
    valid: u64
    attr: attr
    qids: Annotated[tuple[Qid, ...], List(Nested(Qid))]


@message(128)
class Tucreate(Message):
    fid: u32
    name: s
    flags: u32
    mode: u32
    gid: u32
    uid: u32


@message(129)
class Rucreate(Message):
    qid: qid
    iounit: u32


@message(130)
class Tumkdir(Message):
    dfid: u32
    name: s
    mode: u32
    gid: u32
    uid: u32


@message(131)
class Rumkdir(Message):
    qid: qid


@message(132)
class Tumknod(Message):
    dfid: u32
    name: s
    mode: u32
    major: u32
    minor: u32
    gid: u32
    uid: u32


@message(133)
class Rumknod(Message):
    qid: qid


@message(134)
class Tusymlink(Message):
    fid: u32
    name: s
    symtgt: s
    gid: u32
    uid: u32


@message(135)
class Rusymlink(Message):
    qid: qid


@message(138)
class Tallocate(Message):
    fid: u32
    mode: u32
    offset: u64
    length: u64


@message(139)
class Rallocate(Message):
    pass


@message(140)
class Tsetattrclunk(Message):
    fid: u32
    valid: u32
    attr: setattr_t


@message(141)
class Rsetattrclunk(Message):
    pass


@message(142)
class Tmultigetattr(Message):
    fid: u32
    wnames: names


@message(143)
class Rmultigetattr(Message):
    stats: Annotated[tuple[FullStat, ...], List(Nested(FullStat))]


@message(144)
class Treaddirattr(Message):
    """Treaddir whose entries carry their attributes (our dialect; `p9._dirents`)."""

    fid: u32
    offset: u64
    count: u32


@message(145)
class Rreaddirattr(Message):
    """`eof`: 1 if no entry follows the last one sent (no empty Treaddirattr needed)."""

    eof: u8
    data: data


@message(146)
class Tlopenfd(Message):
    """Tlopen whose reply may carry the opened file's host descriptor (our dialect, unix
    sockets only): the server decides, per open, whether to give one."""

    fid: u32
    flags: u32


@message(147)
class Rlopenfd(Message):
    """Rlopen, plus `fd`: 1 if one descriptor was sent with this reply's bytes
    (SCM_RIGHTS), 0 if none (the file is then read through Tread as after a Tlopen)."""

    qid: qid
    iounit: u32
    fd: u8


@message(148)
class Topendirattr(Message):
    """Twalk of `wnames` from `fid` to `newfid`, Tlopen of it read-only as a directory and
    Treaddirattr from cookie 0 with `count`, as one request (our dialect): a listing of a
    directory that fits one reply costs one round trip. If any step fails, `newfid` is
    not made and the error is the reply."""

    fid: u32
    newfid: u32
    count: u32
    wnames: names


@message(149)
class Ropendirattr(Message):
    """Rlopen's qid and iounit, then Rreaddirattr's `eof` and `data`."""

    qid: qid
    iounit: u32
    eof: u8
    data: data


# --- helpers --------------------------------------------------------------------------------

_DIRENT_FIXED = 13 + 8 + 1 + 2


def encode_dirents(entries: "list[Dirent] | tuple[Dirent, ...]", limit: int) -> tuple[bytes, int]:
    """Pack as many whole entries as fit in `limit` bytes.

    Returns:
        (data, n): the packed bytes and how many entries went in.
    """
    parts: list = []
    used = 0
    n = 0
    layout = Dirent._layout
    for e in entries:
        size = _DIRENT_FIXED + len(e.name)
        if used + size > limit:
            break
        layout.put(parts, e)
        used += size
        n += 1
    return b"".join(parts), n


def decode_dirents(buf: bytes) -> list[Dirent]:
    """Unpack Rreaddir data; raise ProtocolError if an entry runs past the end."""
    r = Reader(buf)
    out = []
    while r.pos < r.end:
        e = Dirent._layout.get(r)
        if r.overrun:
            raise ProtocolError("Rreaddir: a directory entry runs past the end of the data")
        out.append(e)
    return out


#: Request type → the response type that answers it successfully.
RESPONSE_OF: dict[type[Message], type[Message]] = {
    cls: REGISTRY[cls.type + 1]
    for cls in list(REGISTRY.values())
    if cls.__name__.startswith("T") and cls.type + 1 in REGISTRY
}

__all__ = [
    "REGISTRY", "RESPONSE_OF", "Attr", "Dirent", "FullStat", "Message", "Qid", "SetAttr",
    "decode_dirents", "encode_dirents", "register",
    *(cls.__name__ for cls in REGISTRY.values()),
]
