"""Fast Rreaddir packing: one struct call per entry instead of the generic field layout.

Why: a 100,000-entry directory read through the generic `encode_dirents` costs several
microseconds per entry (a layout walk and a nested Qid per entry). The wire format of an
entry is fixed: qid[13] offset[8] type[1] name[s], so one precompiled `struct.Struct` packs
everything but the name bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable

from ._errors import ProtocolError

#: qid.type[1] qid.version[4] qid.path[8] offset[8] type[1] name length[2]
ENTRY = struct.Struct("<BIQQBH")
ENTRY_FIXED = ENTRY.size  # 24


class PackedDirents:
    """Rreaddir data a file model already packed (`File.readdir` may return one).

    Why: a file model that keeps its directory snapshot in its own rows can pack the slice a
    Treaddir asks for directly (see `pack_rows`), building no `Dirent` objects at all.
    """

    __slots__ = ("data", "count")

    def __init__(self, data: bytes, count: int) -> None:
        self.data = data
        self.count = count

    def __len__(self) -> int:
        return self.count


def pack_dirents(entries: Iterable, limit: int) -> tuple[bytes, int]:
    """Pack as many whole `Dirent`s as fit in `limit` bytes: (data, how many)."""
    pack = ENTRY.pack
    parts: list = []
    append = parts.append
    used = 0
    try:
        for e in entries:
            name = e.name
            size = ENTRY_FIXED + len(name)
            used += size
            if used > limit:
                break
            q = e.qid
            append(pack(q.type, q.version, q.path, e.offset, e.type, len(name)))
            append(name)
        return b"".join(parts), len(parts) >> 1
    except (struct.error, TypeError) as exc:
        raise ProtocolError(f"directory entry does not fit the wire: {exc}", remote=False) from exc


def pack_rows(rows: Iterable[tuple[int, int, int, int, bytes]], limit: int) -> PackedDirents:
    """Pack `(qid_type, qid_path, offset, dirent_type, name)` rows (qid version 0)."""
    pack = ENTRY.pack
    parts: list = []
    append = parts.append
    used = 0
    try:
        for qtype, qpath, offset, dtype, name in rows:
            used += ENTRY_FIXED + len(name)
            if used > limit:
                break
            append(pack(qtype, 0, qpath, offset, dtype, len(name)))
            append(name)
        return PackedDirents(b"".join(parts), len(parts) >> 1)
    except (struct.error, TypeError) as exc:
        raise ProtocolError(f"directory entry does not fit the wire: {exc}", remote=False) from exc


# -- Treaddirattr: entries with their attributes (our dialect) ---------------------------------
#
# Each entry is a Rreaddir entry (`ENTRY` and the name) followed by valid[8]; when valid is
# not 0, qid.type[1] qid.path[8] and the 18 fields of `Attr` follow (what Rgetattr carries
# after its valid mask; the qid is the file's as a getattr saw it, which may differ from the
# entry's if the name was replaced in between). valid 0: no attributes (the client asks
# for that entry alone, as after a Treaddir).

#: valid[8]
VALID = struct.Struct("<Q")
#: qid.type[1] qid.path[8] mode uid gid[4 each] nlink rdev size blksize blocks atime_sec
#: atime_nsec mtime_sec mtime_nsec ctime_sec ctime_nsec btime_sec btime_nsec gen
#: data_version[8 each]
ATTRS = struct.Struct("<BQIII15Q")
#: The smallest entry: one with a one-byte name and no attributes.
ATTR_ENTRY_MIN = ENTRY_FIXED + 1 + VALID.size
#: The size of an entry with attributes, less its name.
ATTR_ENTRY_FIXED = ENTRY_FIXED + VALID.size + ATTRS.size

#: One file's attributes for `pack_attr_rows`: (valid, qid_type, qid_path, and the 18 `Attr`
#: fields in order); None for none.
AttrRow = tuple[int, ...]


def pack_attr_rows(rows: Iterable[tuple[int, int, int, int, bytes]], limit: int,
                   attrs_of: Callable[[bytes], AttrRow | None]) -> tuple[bytes, int]:
    """Pack `(qid_type, qid_path, offset, dirent_type, name)` rows (qid version 0), each
    followed by `attrs_of(name)` (asked only for the rows that fit), into at most `limit`
    bytes: (data, how many rows went in)."""
    pack = ENTRY.pack
    vpack = VALID.pack
    apack = ATTRS.pack
    parts: list = []
    append = parts.append
    used = 0
    n = 0
    try:
        for qtype, qpath, offset, dtype, name in rows:
            if used + ATTR_ENTRY_FIXED + len(name) > limit:
                if used + ENTRY_FIXED + VALID.size + len(name) > limit:
                    break
                a = None  # room for the entry, not for its attributes
            else:
                a = attrs_of(name) if name != b"." and name != b".." else None
            append(pack(qtype, 0, qpath, offset, dtype, len(name)))
            append(name)
            if a is None:
                append(vpack(0))
                used += ENTRY_FIXED + len(name) + VALID.size
            else:
                append(vpack(a[0]))
                append(apack(*a[1:]))
                used += ATTR_ENTRY_FIXED + len(name)
            n += 1
        return b"".join(parts), n
    except (struct.error, TypeError) as exc:
        raise ProtocolError(f"directory entry does not fit the wire: {exc}", remote=False) from exc


def decode_attr_entries(buf: bytes) -> list[tuple[tuple[int, int, int, int, bytes],
                                                   tuple[int, ...] | None]]:
    """Unpack Rreaddirattr data: ((qid_type, qid_path, offset, dirent_type, name),
    (valid, qid_type, qid_path, *Attr fields) or None) per entry."""
    out = []
    pos = 0
    end = len(buf)
    unpack = ENTRY.unpack_from
    vunpack = VALID.unpack_from
    aunpack = ATTRS.unpack_from
    try:
        while pos < end:
            qtype, _, qpath, offset, dtype, ln = unpack(buf, pos)
            pos += ENTRY_FIXED
            name = buf[pos:pos + ln]
            pos += ln
            (valid,) = vunpack(buf, pos)
            pos += VALID.size
            a = None
            if valid:
                a = (valid, *aunpack(buf, pos))
                pos += ATTRS.size
            if len(name) != ln or pos > end:
                raise ProtocolError("Rreaddirattr: an entry runs past the end of the data")
            out.append(((qtype, qpath, offset, dtype, name), a))
    except struct.error as exc:
        raise ProtocolError("Rreaddirattr: an entry runs past the end of the data") from exc
    return out
