"""Donated host files of one goferfs: the descriptors a local gofer gave with read-only
opens (Tlopenfd), one per inode, read with pread and mapped into programs directly.

Why per inode and bounded: a file opened again (every exec opens libc) reuses it without a
round trip, and each costs the Sentry a descriptor, so at most `limit` are kept, the least
recently used closed first (a later open asks for one again).
"""

from __future__ import annotations

import os
from collections import OrderedDict

from .inode import GoferInode

#: Donated descriptors kept per filesystem.
MAX_DONATED = 256


class DonatedFiles:
    """The inodes holding a donated descriptor (`GoferInode.host_fd`), least recently used
    first.

    Attributes:
        limit: at most this many are kept.
    """

    def __init__(self) -> None:
        self.limit = MAX_DONATED
        self._lru: OrderedDict[int, GoferInode] = OrderedDict()

    def keep(self, ino: GoferInode, fd: int) -> None:
        """Make `fd` the donated descriptor of `ino` (closing one it had)."""
        self.drop(ino)
        ino.host_fd = fd
        self._lru[id(ino)] = ino
        while len(self._lru) > self.limit:
            _, old = self._lru.popitem(last=False)
            self._close(old)

    def use(self, ino: GoferInode) -> int:
        """`ino`'s donated descriptor (-1 if none), noted as just used."""
        fd = ino.host_fd
        if fd >= 0:
            self._lru.move_to_end(id(ino))
        return fd

    def drop(self, ino: GoferInode) -> None:
        """Close `ino`'s donated descriptor, if any."""
        if self._lru.pop(id(ino), None) is not None:
            self._close(ino)

    def release(self) -> None:
        """Close every one (the filesystem's release)."""
        for ino in self._lru.values():
            self._close(ino)
        self._lru.clear()

    @staticmethod
    def _close(ino: GoferInode) -> None:
        if ino.host_fd >= 0:
            os.close(ino.host_fd)
            ino.host_fd = -1
