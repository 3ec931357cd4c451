"""Where the loader reads executables from.

The loader asks an `ExecSource` to open a path for execution; the Sentry's source reads
through the VFS (so a root the host cannot see still runs). `HostFiles` reads a host
directory tree instead; it exists for bring-up and for tests of the loader alone.
"""

from __future__ import annotations

import errno
import os
import stat as st
from dataclasses import dataclass
from typing import Any, Protocol

from sentry.errors import SyscallError

_AT_EACCESS = 0x200


@dataclass(slots=True)
class ExecFile:
    """An executable opened for loading.

    `fdesc` is what file mappings keep (it has async `pread(n, offset)`), `mode`/`uid`/`gid`
    come from its stat, `path` is the name it was opened by; `dev`/`ino` are its identity
    as stat shows it (what /proc/PID/maps prints for the program's mappings); `nosuid`
    says its mount ignores set-user-ID and set-group-ID bits.
    """

    path: bytes
    fdesc: Any
    mode: int
    uid: int
    gid: int
    size: int
    dev: int = 0
    ino: int = 0
    nosuid: bool = False


class ExecSource(Protocol):
    async def open_exec(self, path: bytes) -> ExecFile:
        """Open `path` for execve: ENOENT, ENOTDIR, ELOOP … from lookup, EACCES if it is not
        a regular file or not executable for the caller."""
        ...


class _HostFD:
    """A read-only host file with the FileDescription calls the loader and mm use."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.refs = 1

    def inc_ref(self) -> _HostFD:
        self.refs += 1
        return self

    async def dec_ref(self) -> None:
        self.refs -= 1
        if self.refs == 0 and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    async def pread(self, n: int, offset: int) -> bytes:
        return os.pread(self.fd, n, offset)

    def __del__(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class HostFiles:
    """Executables from a host directory `root` (default `/`), for bring-up and tests."""

    def __init__(self, root: str = "/") -> None:
        self.root = root

    async def open_exec(self, path: bytes) -> ExecFile:
        if not path:
            raise SyscallError(errno.ENOENT)
        full = os.path.join(self.root, os.fsdecode(path).lstrip("/"))
        try:
            fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise SyscallError(e.errno or errno.ENOENT) from None
        s = os.fstat(fd)
        f = _HostFD(fd)
        if not st.S_ISREG(s.st_mode) or not s.st_mode & 0o111:
            raise SyscallError(errno.EACCES)
        return ExecFile(path, f, s.st_mode, s.st_uid, s.st_gid, s.st_size, s.st_dev, s.st_ino)


class VfsFiles:
    """Executables read through the sandbox's VFS, as the calling process sees paths.

    execve's permission rules: the file must be a regular file on a mount without noexec
    and executable for `creds` (X_OK), else EACCES.
    """

    def __init__(self, vfs: Any, ctx: Any, creds: Any) -> None:
        self.vfs, self.ctx, self.creds = vfs, ctx, creds

    async def open_exec(self, path: bytes) -> ExecFile:
        if not path:
            raise SyscallError(errno.ENOENT)
        try:
            fdesc = await self.vfs.open(self.ctx, self.creds, None, path, os.O_RDONLY)
        except OSError as e:
            raise SyscallError(e.errno or errno.EACCES) from None
        s = await fdesc.stat()
        if not st.S_ISREG(s.mode):
            raise SyscallError(errno.EACCES)
        try:
            await self.vfs.faccessat(self.ctx, self.creds, None, path, os.X_OK, _AT_EACCESS)
        except OSError as e:
            raise SyscallError(e.errno or errno.EACCES) from None
        mount = getattr(getattr(fdesc, "vd", None), "mount", None)
        if mount is not None and getattr(mount, "flags", 0) & 8:  # MS_NOEXEC
            raise SyscallError(errno.EACCES)
        nosuid = mount is not None and bool(getattr(mount, "flags", 0) & 2)  # MS_NOSUID
        return ExecFile(path, fdesc, s.mode, s.uid, s.gid, s.size, s.dev, s.ino, nosuid)
