"""The interface a filesystem implements to plug into the VFS.

The VFS does everything that is the same for every filesystem: path resolution (symlinks,
`..`, mounts, trailing slashes), permission checks, name validation, umask and set-gid
inheritance, the errno for misuse. A filesystem is called only once those checks passed,
with dentries it produced itself. Each method's docstring lists the errors the filesystem
itself may raise; anything a filesystem does not support answers with Linux's errno from the
default implementation here, so a filesystem overrides only what it has.
"""

from __future__ import annotations

import errno
import itertools
import os
from typing import TYPE_CHECKING

from .abi import TMPFS_MAGIC, Stat, StatFS
from .dentry import Dentry, Inode
from .errors import error

if TYPE_CHECKING:
    from .creds import Credentials
    from .file import FileDescription
    from .mount import VirtualDentry

_anon_minor = itertools.count(64)


def alloc_anon_dev() -> int:
    """A fresh anonymous device number (major 0), one per filesystem instance, like Linux."""
    return os.makedev(0, next(_anon_minor))


class Filesystem:
    """Base class of every filesystem instance (one per mount source, shareable by binds).

    Attributes:
        fstype: the name /proc/mounts shows ("tmpfs", "proc" ...).
        dev: st_dev of every file here.
        root: the root dentry.
        magic: statfs f_type.
    """

    fstype = "none"
    magic = TMPFS_MAGIC
    #: True if writes may reach something outside the sandbox (goferfs); informational.
    remote = False

    def __init__(self) -> None:
        self.dev = alloc_anon_dev()
        self.root: Dentry = None  # type: ignore[assignment]  # set by subclasses

    # -- lookup and attributes ---------------------------------------------------------------

    async def lookup(self, parent: Dentry, names: list[bytes]) -> list[Dentry]:
        """Resolve `names` one after the other starting at directory `parent`.

        Returns the dentries found, in order: a prefix of `names`. It stops early (and
        returns the shorter list) at the first name that does not exist, and right after a
        dentry that is not a directory (a symlink or a file: the VFS decides what follows).
        Names are never empty, ".", ".." or longer than NAME_MAX. A remote filesystem
        resolves the whole list in one round trip. Errors: EIO and friends from a server.
        """
        out: list[Dentry] = []
        d = parent
        for name in names:
            child = d.children.get(name)
            if child is None:
                break
            out.append(child)
            if child.inode.mode & 0o170000 != 0o040000:
                break
            d = child
        return out

    async def stat(self, d: Dentry) -> Stat:
        """The attributes of `d` (st_dev is this filesystem's)."""
        return d.inode.to_stat(self.dev)

    async def setattr(self, d: Dentry, *, mode: int | None = None, uid: int | None = None,
                      gid: int | None = None, size: int | None = None,
                      atime_ns: int | None = None, mtime_ns: int | None = None,
                      ctime_ns: int | None = None) -> None:
        """Change attributes; permission checks were done. Errors: EFBIG, ENOSPC, EPERM."""
        raise error(errno.EPERM)

    async def readlink(self, d: Dentry) -> bytes:
        """The target of symlink `d`. Errors: EINVAL if `d` is not a symlink."""
        raise error(errno.EINVAL)

    async def jump_link(self, vd: VirtualDentry) -> VirtualDentry | None:
        """The file symlink `vd` stands for, if it is a "magic link" (Linux's
        nd_jump_link: /proc/PID/fd/N reopens the very file, even one no path reaches);
        None for a symlink holding a path. Errors: EACCES (the caller may not follow it).
        """
        return None

    async def statfs(self) -> StatFS:
        return StatFS(type=self.magic)

    # -- namespace changes (parent is a directory the caller may write and search) -----------

    async def mknod(self, parent: Dentry, name: bytes, mode: int, rdev: int, uid: int,
                    gid: int) -> Dentry:
        """Create a regular file, fifo, socket or device node `name` (which does not exist).

        Errors: ENOSPC, EPERM (type not supported), EROFS.
        """
        raise error(errno.EPERM)

    async def bind_socket(self, parent: Dentry, name: bytes, mode: int, uid: int,
                          gid: int) -> Dentry:
        """The node a unix socket's bind makes (`mode` is S_IFSOCK | permissions): an
        ordinary socket node here; a filesystem backed by the host makes one that only the
        sandbox sees, so a bind never leaves a file behind on the host."""
        return await self.mknod(parent, name, mode, 0, uid, gid)

    async def mkdir(self, parent: Dentry, name: bytes, mode: int, uid: int, gid: int) -> Dentry:
        """Create directory `name` (which does not exist). Errors: ENOSPC, EMLINK, EPERM."""
        raise error(errno.EPERM)

    async def symlink(self, parent: Dentry, name: bytes, target: bytes, uid: int,
                      gid: int) -> Dentry:
        """Create symlink `name` → `target`. Errors: ENOSPC, EPERM."""
        raise error(errno.EPERM)

    async def link(self, parent: Dentry, name: bytes, target: Dentry) -> Dentry:
        """Make `name` another name of non-directory `target`. Errors: EMLINK, EPERM."""
        raise error(errno.EPERM)

    async def unlink(self, parent: Dentry, child: Dentry) -> None:
        """Remove non-directory `child` from `parent`. Errors: EPERM, EBUSY."""
        raise error(errno.EPERM)

    async def rmdir(self, parent: Dentry, child: Dentry) -> None:
        """Remove directory `child`; the VFS checked it is not a mount point.

        Errors: ENOTEMPTY.
        """
        raise error(errno.EPERM)

    async def rename(self, old_parent: Dentry, child: Dentry, new_parent: Dentry,
                     new_name: bytes, replaced: Dentry | None, flags: int) -> None:
        """Move `child` to `new_parent`/`new_name`, replacing `replaced` (already checked
        compatible: same type class, empty if a directory) or exchanging with it when
        flags has RENAME_EXCHANGE. Errors: ENOTEMPTY (race), EMLINK, EXDEV.
        """
        raise error(errno.EPERM)

    async def open(self, d: Dentry, flags: int, creds: Credentials) -> FileDescription:
        """Open `d` (not a symlink; permission checks done). Errors: ENXIO, EISDIR ..."""
        raise error(errno.EOPNOTSUPP)

    async def tmpfile(self, parent: Dentry, mode: int, uid: int, gid: int) -> Dentry:
        """O_TMPFILE: a dentry for a new unnamed regular file (nlink 0) in `parent`, which
        the VFS then opens and `link` may name later. Errors: EOPNOTSUPP."""
        raise error(errno.EOPNOTSUPP)

    # -- extended attributes -------------------------------------------------------------------

    async def getxattr(self, d: Dentry, name: bytes) -> bytes:
        """Errors: ENODATA if absent, EOPNOTSUPP if unsupported."""
        raise error(errno.EOPNOTSUPP)

    async def setxattr(self, d: Dentry, name: bytes, value: bytes, flags: int) -> None:
        """flags: XATTR_CREATE (EEXIST) / XATTR_REPLACE (ENODATA)."""
        raise error(errno.EOPNOTSUPP)

    async def listxattr(self, d: Dentry) -> list[bytes]:
        raise error(errno.EOPNOTSUPP)

    async def removexattr(self, d: Dentry, name: bytes) -> None:
        raise error(errno.EOPNOTSUPP)

    # -- life cycle ----------------------------------------------------------------------------

    async def sync(self) -> None:
        """Write back anything cached (sync(2), unmount)."""

    async def release(self) -> None:
        """Give back what the filesystem holds, its owner being done with it. Unmounting
        does not call it: a detached filesystem stays alive for what still refers to it."""


class InodeCounter:
    """Inode numbers for in-memory filesystems."""

    def __init__(self, start: int = 1) -> None:
        self._next = itertools.count(start)

    def __call__(self) -> int:
        return next(self._next)


__all__ = ["Filesystem", "InodeCounter", "alloc_anon_dev", "Dentry", "Inode"]
