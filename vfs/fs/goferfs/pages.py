"""goferfs's page cache (exclusive policy): file data in 64 KiB pages per inode, clean
pages bounded per filesystem (least recently used dropped first), dirty pages written back
with any writable fid of the file."""

from __future__ import annotations

import errno
import logging
from collections import OrderedDict
from typing import Any

import p9

from .inode import GoferInode

CHUNK = 64 * 1024
#: Pages read ahead after a miss (1 MiB), in one pipelined read.
READ_AHEAD = 16
#: Clean pages kept per filesystem before the oldest are dropped (dirty ones stay).
PAGE_CACHE_BYTES = 256 << 20
#: Dirty bytes per file that trigger write-back before fsync/close.
DIRTY_LIMIT = 32 << 20

log = logging.getLogger("vfs.goferfs")


class LostWrite(OSError):
    """EIO: data the program wrote cannot reach the server any more (its file was removed
    or replaced there while the connection was down: the fid came back stale). The
    issue's rule, as Linux reports a failed write-back: the next write/fsync/close says
    EIO, never ESTALE or nothing; the cause is logged."""

    def __init__(self, ino: GoferInode, cause: OSError) -> None:
        super().__init__(errno.EIO, f"Input/output error: written data lost ({cause})")
        log.warning("goferfs: data written to inode %d was lost: %s", ino.ino, cause)


def lost_write(ino: GoferInode, cause: OSError) -> OSError:
    """The error a write, fsync, close or write-back of a file reports for `cause`: a
    stale fid, or a name gone from the server, means the program's data is lost
    (`LostWrite`: the dirty pages, which can never be written, are dropped); anything
    else unchanged."""
    if cause.errno not in (errno.ESTALE, errno.ENOENT):
        return cause
    for idx in ino.dirty:
        ino.pages.pop(idx, None)
    if ino.dirty:  # what is left is what the server last had
        ino.dirty.clear()
        ino.size = min(ino.size, max(ino.server_size, 0))
    return LostWrite(ino, cause)


class PageCache:
    """The use order of every cached page of one filesystem, to bound their memory.

    Attributes:
        limit: clean bytes kept before the least recently used pages are dropped.
    """

    def __init__(self) -> None:
        self.limit = PAGE_CACHE_BYTES
        self._lru: OrderedDict[tuple[int, int], tuple[GoferInode, int]] = OrderedDict()
        self._bytes = 0

    def touch(self, ino: GoferInode, idx: int) -> None:
        """Note a page use; drop the least recently used clean pages past the limit.

        A page counts the bytes it held when cached (a small file's only page is short),
        so thousands of small files do not evict each other (`cp -r` then `diff -r`)."""
        key = (id(ino), idx)
        lru = self._lru
        if key in lru:
            lru.move_to_end(key)
            return
        page = ino.pages.get(idx)
        n = max(len(page) if page is not None else CHUNK, 4096)
        lru[key] = (ino, n)
        self._bytes += n
        while self._bytes > self.limit and lru:
            (_, old_idx), (old, old_n) = lru.popitem(last=False)
            if old_idx in old.dirty:
                lru[(id(old), old_idx)] = (old, old_n)  # written back first, evicted later
                break
            self._bytes -= old_n
            old.pages.pop(old_idx, None)


def truncate_pages(ino: GoferInode, size: int) -> None:
    """The cache after a truncate to `size`: pages past it dropped, the last one zeroed
    past the new end."""
    last = size // CHUNK
    for idx in [i for i in ino.pages if i > last or (i == last and size % CHUNK == 0)]:
        del ino.pages[idx]
        ino.dirty.discard(idx)
    page = ino.pages.get(last)
    if page is not None:
        off = size % CHUNK
        if off < len(page):  # (a short page reads as zeros past its end already)
            page[off:] = bytes(len(page) - off)
    ino.size = size
    ino.server_size = size


def join_views(parts: list[Any]) -> bytes:
    """The bytes of `parts`, releasing the page views among them (a bytearray with a
    live view cannot be resized)."""
    out = b"".join(parts)
    for p in parts:
        if isinstance(p, memoryview):
            p.release()
    parts.clear()
    return out


async def write_dirty(ino: GoferInode, fid: p9.Fid) -> None:
    """Write every dirty page of `ino` with `fid` (any writable fid of the file).

    A page the server refuses stays dirty (written again by the next fsync/close, which
    then reports what fails), but for a stale fid: the file is gone from the server, its
    dirty pages are dropped and `LostWrite` (EIO) raised."""
    for idx in sorted(ino.dirty):
        if idx not in ino.dirty:  # written back by a concurrent call
            continue
        ino.dirty.discard(idx)  # a write while we await dirties it again
        page = ino.pages.get(idx)
        start = idx * CHUNK
        if page is None or start >= ino.size:
            continue
        data = bytes(page[: min(CHUNK, ino.size - start)])
        try:
            await fid.write(start, data)
        except OSError as e:
            ino.dirty.add(idx)
            raise lost_write(ino, e) from e
        except BaseException:
            ino.dirty.add(idx)
            raise
        ino.server_size = max(ino.server_size, start + len(data))
        ino.drop_xattrs()  # a write drops security.capability on the server
