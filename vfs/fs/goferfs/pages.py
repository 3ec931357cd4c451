"""goferfs's page cache (exclusive policy): file data in 64 KiB pages per inode, clean
pages bounded per filesystem (least recently used dropped first), dirty pages written back
with any writable fid of the file."""

from __future__ import annotations

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
    """Write every dirty page of `ino` with `fid` (any writable fid of the file)."""
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
        except BaseException:
            ino.dirty.add(idx)
            raise
        ino.server_size = max(ino.server_size, start + len(data))
        ino.drop_xattrs()  # a write drops security.capability on the server
