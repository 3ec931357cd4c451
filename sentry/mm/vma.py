"""A mapping of an application address space, as the Sentry records it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

PAGE = 4096

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE = 0x01, 0x02, 0x03
MAP_FIXED, MAP_ANONYMOUS, MAP_GROWSDOWN = 0x10, 0x20, 0x100
MAP_DENYWRITE, MAP_EXECUTABLE, MAP_LOCKED, MAP_NORESERVE = 0x800, 0x1000, 0x2000, 0x4000
MAP_POPULATE, MAP_NONBLOCK, MAP_STACK, MAP_HUGETLB = 0x8000, 0x10000, 0x20000, 0x40000
MAP_SYNC, MAP_FIXED_NOREPLACE = 0x80000, 0x100000


def page_down(x: int) -> int:
    return x & ~(PAGE - 1)


def page_up(x: int) -> int:
    return (x + PAGE - 1) & ~(PAGE - 1)


@dataclass(slots=True)
class Vma:
    """[start, end) with its protection and what backs it.

    `file` is the vfs FileDescription of a file mapping (None for anonymous memory) and
    `offset` the file offset of `start`. Private file mappings are copies filled from the
    file, or, for a file with a host descriptor to map (a donated goferfs file), a host
    MAP_PRIVATE of it (`host_file`). Shared mappings of files with a host memfd (tmpfs) map that memfd
    (`host_shared`); other shared file mappings are copies written back on
    msync/munmap/exit.
    """

    start: int
    end: int
    prot: int
    shared: bool = False
    file: Any = None
    offset: int = 0
    name: bytes = b""
    growsdown: bool = False
    host_shared: bool = False  # a host MAP_SHARED of the file's memfd: no copy, no writeback
    host_file: bool = False  # a host MAP_PRIVATE of the file's host descriptor: no copy
    #: (dev, ino, vfs dentry or None) of the file an anonymous copy was loaded from (the
    #: loader's program and interpreter segments): /proc/PID/maps shows it as Linux shows
    #: the file mapping, with `offset`.
    origin: tuple[int, int, Any] | None = None
    locked: bool = False  # mlock'ed (VM_LOCKED): counted in VmLck and against RLIMIT_MEMLOCK
    #: A shared anonymous mapping's memory, as one object kept by splits, mremap and fork
    #: (whose stub inherits the host mapping): what shared futex keys name.
    anon: object | None = None

    def slice(self, start: int, end: int) -> Vma:
        """The part [start, end) of this mapping, with its file offset adjusted."""
        return replace(self, start=start, end=end, offset=self.offset + (start - self.start))
