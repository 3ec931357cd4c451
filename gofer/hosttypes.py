"""What the host layer reports: attributes (`Attr`), filesystem statistics (`StatFS`),
directory entries (`DirEntry`) and 9P qid types, plain values with no 9P encoding."""

from __future__ import annotations

import stat
from dataclasses import dataclass
from typing import NamedTuple

from p9 import QidType

# Plain ints (compared and stored per directory entry, where an IntFlag costs more).
QTDIR = int(QidType.DIR)
QTSYMLINK = int(QidType.SYMLINK)
QTFILE = int(QidType.FILE)


def qid_type_of(mode: int) -> int:
    """The 9P qid type for a st_mode."""
    if stat.S_ISDIR(mode):
        return QTDIR
    if stat.S_ISLNK(mode):
        return QTSYMLINK
    return QTFILE


@dataclass(frozen=True, slots=True)
class Attr:
    """What Rgetattr reports: the stat fields, plus btime when asked and available."""

    qid_type: int
    qid_path: int
    mode: int
    uid: int
    gid: int
    nlink: int
    rdev: int
    size: int
    blksize: int
    blocks: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    btime: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class StatFS:
    """What Rstatfs reports."""

    type: int
    bsize: int
    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int
    fsid: int
    namelen: int


class DirEntry(NamedTuple):
    """One Rreaddir entry: its qid, the offset of the next entry, its d_type and name.

    A named tuple, not a dataclass: a 100,000-entry directory builds 100,000 of them.
    """

    qid_type: int
    qid_path: int
    offset: int
    dtype: int
    name: bytes
