"""The file descriptor table: fd numbers → open file descriptions, with close-on-exec flags.

Why a class of its own: Linux keeps the fd table apart from the open files it points at
(`struct files_struct` vs `struct file`). Several fds (dup) and several tables (fork) may
point at one open file description, which holds the offset and status flags; the
close-on-exec flag belongs to the fd slot, not to the description.

Reference rule (as in gVisor's FDTable): every slot holds one reference on its description.
`install`/`install_at` take over the reference the caller holds; `dup`/`fork` add one by
calling `fdesc.inc_ref()`. Operations that empty slots (`remove`, `install_at` over an open
fd, `close_on_exec`, `close_all`, `close_range`) *return* the descriptions they removed, and
the caller drops those references (the vfs release may be async, this table is not).

Every method is synchronous and runs to completion between two awaits of the single trio
loop, so no lock is needed.
"""

from __future__ import annotations

import errno
from typing import Any, Protocol

from sentry.errors import SyscallError

__all__ = ["FDTable", "DEFAULT_NOFILE", "FileRef"]

#: RLIMIT_NOFILE soft limit a fresh sandbox starts with (Linux's default soft limit).
DEFAULT_NOFILE = 1024
#: Linux's hard ceiling (fs.nr_open default); no table may grow past it.
NR_OPEN = 1024 * 1024


class FileRef(Protocol):
    """What the table needs from an open file description: a way to add a reference."""

    def inc_ref(self) -> Any: ...


class FDTable:
    """One process's (or CLONE_FILES group's) table of file descriptors.

    Args:
        limit: the RLIMIT_NOFILE soft limit; fds >= limit cannot be allocated.
    """

    __slots__ = ("_files", "_cloexec", "limit", "_next")

    def __init__(self, *, limit: int = DEFAULT_NOFILE) -> None:
        self._files: dict[int, Any] = {}
        self._cloexec: set[int] = set()
        self.limit = limit
        self._next = 0  # every fd below this is in use (allocation hint)

    # -- lookup -----------------------------------------------------------------------------

    def get(self, fd: int) -> Any:
        """Return the description at `fd`; `SyscallError(EBADF)` if `fd` is not open."""
        try:
            return self._files[fd]
        except (KeyError, TypeError):
            raise SyscallError(errno.EBADF) from None

    def __contains__(self, fd: object) -> bool:
        return fd in self._files

    def __len__(self) -> int:
        return len(self._files)

    def fds(self) -> list[int]:
        """The open fd numbers, ascending (for /proc/PID/fd and close_range)."""
        return sorted(self._files)

    def items(self) -> list[tuple[int, Any]]:
        """(fd, description) pairs, ascending by fd."""
        return sorted(self._files.items())

    # -- allocation -------------------------------------------------------------------------

    def install(self, fdesc: Any, *, cloexec: bool = False, min_fd: int = 0) -> int:
        """Put `fdesc` in the lowest free slot >= `min_fd` and return its number.

        The slot takes over the caller's reference. Raises `SyscallError(EMFILE)` when no
        slot below the limit is free, `SyscallError(EINVAL)` for a negative `min_fd` or one
        at or above the limit (what F_DUPFD answers).
        """
        if min_fd < 0 or min_fd >= self.limit:
            raise SyscallError(errno.EINVAL)
        fd = max(min_fd, self._next)
        while fd in self._files:
            fd += 1
        if fd >= self.limit:
            raise SyscallError(errno.EMFILE)
        self._files[fd] = fdesc
        if cloexec:
            self._cloexec.add(fd)
        if fd == self._next:
            self._advance_hint()
        return fd

    def install_at(self, fd: int, fdesc: Any, *, cloexec: bool = False) -> Any | None:
        """Put `fdesc` at `fd` (dup2 semantics): whatever was there is closed and returned.

        The slot takes over the caller's reference; the caller must drop the reference of
        the returned previous description, if any. `SyscallError(EBADF)` if `fd` is
        negative or not below the limit (what dup2 answers).
        """
        if fd < 0 or fd >= self.limit:
            raise SyscallError(errno.EBADF)
        old = self._files.get(fd)
        self._files[fd] = fdesc
        if cloexec:
            self._cloexec.add(fd)
        else:
            self._cloexec.discard(fd)
        if fd == self._next:
            self._advance_hint()
        return old

    def dup(self, fd: int, *, min_fd: int = 0, cloexec: bool = False) -> int:
        """dup/F_DUPFD: a new slot for the description at `fd`, with one more reference."""
        fdesc = self.get(fd)
        new = self.install(fdesc, cloexec=cloexec, min_fd=min_fd)
        fdesc.inc_ref()
        return new

    def dup_to(self, oldfd: int, newfd: int, *, cloexec: bool = False) -> Any | None:
        """dup2/dup3 body: `newfd` now names `oldfd`'s description; returns what it replaced.

        `oldfd == newfd` is the caller's business (dup2 returns newfd, dup3 EINVAL).
        """
        fdesc = self.get(oldfd)
        old = self.install_at(newfd, fdesc, cloexec=cloexec)
        fdesc.inc_ref()
        return old

    def _advance_hint(self) -> None:
        n = self._next
        while n in self._files:
            n += 1
        self._next = n

    # -- removal ----------------------------------------------------------------------------

    def remove(self, fd: int) -> Any:
        """close(fd): empty the slot and return its description (caller drops the ref).

        `SyscallError(EBADF)` if `fd` is not open.
        """
        try:
            fdesc = self._files.pop(fd)
        except (KeyError, TypeError):
            raise SyscallError(errno.EBADF) from None
        self._cloexec.discard(fd)
        if fd < self._next:
            self._next = fd
        return fdesc

    def close_range(self, first: int, last: int, *, cloexec_only: bool = False) -> list[Any]:
        """close_range(2): close (or, with `cloexec_only`, mark CLOEXEC) fds first..last.

        Returns the removed descriptions in fd order (empty with `cloexec_only`).
        """
        removed = []
        for fd in [fd for fd in self._files if first <= fd <= last]:
            if cloexec_only:
                self._cloexec.add(fd)
            else:
                removed.append((fd, self.remove(fd)))
        return [f for _, f in sorted(removed, key=lambda p: p[0])]

    def close_on_exec(self) -> list[Any]:
        """execve: close every CLOEXEC fd; returns the removed descriptions."""
        return [self.remove(fd) for fd in sorted(self._cloexec)]

    def close_all(self) -> list[Any]:
        """Process exit: close every fd; returns the removed descriptions."""
        return [self.remove(fd) for fd in sorted(self._files)]

    # -- flags and copies -------------------------------------------------------------------

    def get_cloexec(self, fd: int) -> bool:
        """The FD_CLOEXEC flag of `fd`; `SyscallError(EBADF)` if `fd` is not open."""
        self.get(fd)
        return fd in self._cloexec

    def set_cloexec(self, fd: int, on: bool) -> None:
        """Set or clear FD_CLOEXEC on `fd`; `SyscallError(EBADF)` if `fd` is not open."""
        self.get(fd)
        if on:
            self._cloexec.add(fd)
        else:
            self._cloexec.discard(fd)

    def fork(self) -> FDTable:
        """A copy for fork(2) without CLONE_FILES: same descriptions, one more ref each."""
        child = FDTable(limit=self.limit)
        child._files = dict(self._files)
        child._cloexec = set(self._cloexec)
        child._next = self._next
        for fdesc in child._files.values():
            fdesc.inc_ref()
        return child

    def __repr__(self) -> str:
        return f"FDTable({len(self._files)} open, limit={self.limit})"
