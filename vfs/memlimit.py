"""One sandbox's memory limit: the bytes everything holding memory for it has charged.

A cgroup-limited container has one memory budget for its tmpfs pages (/tmp, /dev/shm,
memfds, System V shm), the writes to its root overlay (an in-memory upper) and its
processes' anonymous memory. Here the holders charge one `MemoryLimit`: every `Tmpfs`
given it (ENOSPC beyond it, as well as beyond the tmpfs's own size), the Sentry's address
spaces (commit accounting: a writable private or shared anonymous mapping charges its
size when it is made, so mmap/brk/mremap/mprotect/fork fail with ENOMEM, as under Linux's
vm.overcommit_memory=2 with the limit as CommitLimit) and System V segments (at shmget).
It lives in the VFS because tmpfs is here; the Sentry's kernel holds the sandbox's one.
"""

from __future__ import annotations

import errno
import os
from collections import Counter

from .errors import error


def host_memory() -> int:
    """The host's physical memory in bytes (the default limit)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class MemoryLimit:
    """The limit and what is charged against it, by kind ("tmpfs"; "anon": address
    spaces' private commitments; "shmem": shared anonymous memory; "shm": System V).

    Args:
        limit: bytes (None: the host's physical memory).
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = host_memory() if limit is None else limit
        self.charged: Counter[str] = Counter()

    @property
    def used(self) -> int:
        """Bytes charged, all kinds together."""
        return sum(self.charged.values())

    def room(self) -> int:
        """Bytes that may still be charged."""
        return max(0, self.limit - self.used)

    def check(self, n: int, err: int = errno.ENOMEM) -> None:
        """Raise `err` unless `n` more bytes fit (n <= 0 always fits: freeing is allowed)."""
        if n > 0 and self.used + n > self.limit:
            raise error(err)

    def charge(self, kind: str, n: int) -> None:
        """Record `n` bytes (negative: freed) of `kind`; the caller checked first."""
        self.charged[kind] += n
