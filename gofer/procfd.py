"""ProcFD: reopening O_PATH descriptors through our own /proc/<pid>/fd directory."""

from __future__ import annotations

import os


class ProcFD:
    """Reopens O_PATH descriptors through /proc/<pid>/fd.

    The directory fd is opened once; the confined gofer keeps it after pivot_root even though
    /proc is not mounted in its namespace. `prefix` is a path string to the same directory for
    the few calls Python offers only with paths (xattrs); confinement bind-mounts it at /fd.
    """

    def __init__(self, prefix: str = "/proc/self/fd") -> None:
        self.dirfd = os.open(f"/proc/{os.getpid()}/fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.prefix = prefix

    def open(self, fd: int, flags: int) -> int:
        """A new descriptor for the object `fd` refers to, opened with `flags`."""
        return os.open(str(fd), flags | os.O_CLOEXEC | os.O_NOCTTY, dir_fd=self.dirfd)

    def path(self, fd: int) -> str:
        """A path string that names the object `fd` refers to (for path-only calls)."""
        return f"{self.prefix}/{fd}"

    def rebase(self, prefix: str) -> None:
        """Use the fd directory visible at `prefix` from now on (after confinement).

        The descriptor opened at start-up points into the host's /proc, where '..' leads to
        every process; the bind mount at `prefix` has nothing above it but the empty root.
        """
        new = os.open(prefix, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        os.close(self.dirfd)
        self.dirfd = new
        self.prefix = prefix

    def close(self) -> None:
        os.close(self.dirfd)
