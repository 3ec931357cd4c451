"""The target-neutral operation interface every conformance target implements.

Why: the same case must run unchanged against the host kernel (the oracle), a 9P server
through our client, the in-process VFS and a FUSE mount. Cases therefore speak only to this
small, path-based, async interface. Paths are bytes relative to the case directory (so
non-UTF-8 names work everywhere); open files are small integer handles owned by the target.

Every operation raises `OSError` with a Linux errno on failure, the way the syscall it
models would fail. A target that cannot perform an operation at all answers the errno Linux
gives for an unsupported operation (`ENOSYS`/`EOPNOTSUPP`), never a Python exception.
"""

from __future__ import annotations

import errno
import stat as statmod
from abc import ABC, abstractmethod
from dataclasses import dataclass

# utimensat's special values (linux/stat.h).
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2

# renameat2 flags (linux/fs.h).
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

# setxattr flags.
XATTR_CREATE = 1
XATTR_REPLACE = 2

# Lock types, as fcntl(2) spells them.
F_RDLCK = 0
F_WRLCK = 1
F_UNLCK = 2


@dataclass(frozen=True, slots=True)
class Creds:
    """Who performs an operation: filesystem uid, gid and supplementary groups."""

    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()

    @property
    def is_root(self) -> bool:
        return self.uid == 0


ROOT = Creds()


@dataclass(frozen=True, slots=True)
class Stat:
    """The stat fields a target reports; `comparable()` picks those cases may compare."""

    mode: int
    ino: int
    nlink: int
    uid: int
    gid: int
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    rdev: int = 0
    blocks: int = 0

    @property
    def kind(self) -> str:
        return kind_name(statmod.S_IFMT(self.mode))

    @property
    def perm(self) -> int:
        return statmod.S_IMODE(self.mode)

    def comparable(self) -> dict[str, object]:
        """Fields that must agree across targets.

        Inode numbers, times and directory sizes legitimately differ between filesystems;
        cases compare those through relations (same inode, time changed) instead.
        """
        out: dict[str, object] = {"kind": self.kind, "perm": f"0o{self.perm:04o}",
                                  "nlink": self.nlink, "uid": self.uid, "gid": self.gid}
        if self.kind in ("reg", "lnk"):
            out["size"] = self.size
        if self.kind in ("chr", "blk"):
            out["rdev"] = self.rdev
        return out


KIND_NAMES = {
    statmod.S_IFREG: "reg", statmod.S_IFDIR: "dir", statmod.S_IFLNK: "lnk",
    statmod.S_IFIFO: "fifo", statmod.S_IFCHR: "chr", statmod.S_IFBLK: "blk",
    statmod.S_IFSOCK: "sock",
}


def kind_name(fmt: int) -> str:
    """The kind of a file type (S_IFMT bits; a d_type is those bits shifted right by 12)."""
    return KIND_NAMES.get(fmt, f"0o{fmt:o}")


def _unsupported(what: str) -> OSError:
    return OSError(errno.ENOSYS, f"{what} is not supported by this target")


class Target(ABC):
    """One filesystem under test, seen through the conformance operations.

    A target instance is bound to a root directory (the case directory) and to credentials;
    `derive()` gives the same filesystem with another root or other credentials.
    `features` names optional abilities cases may need (see `FEATURES`).
    """

    #: who this view of the target acts as
    creds: Creds = ROOT
    #: optional abilities, a subset of FEATURES
    features: frozenset[str] = frozenset()

    @abstractmethod
    def derive(self, *, root: bytes | None = None, creds: Creds | None = None) -> Target:
        """The same filesystem rooted at `root` (relative to this root) or acting as `creds`."""

    @abstractmethod
    def abspath(self, path: bytes) -> bytes:
        """How an absolute symlink inside this target spells `path` (relative to the root)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release handles still open on this view of the target."""

    # -- files -----------------------------------------------------------------------------
    @abstractmethod
    async def open(self, path: bytes, flags: int, mode: int = 0o666) -> int: ...

    @abstractmethod
    async def close(self, h: int) -> None: ...

    @abstractmethod
    async def read(self, h: int, n: int) -> bytes: ...

    @abstractmethod
    async def write(self, h: int, data: bytes) -> int: ...

    @abstractmethod
    async def pread(self, h: int, n: int, off: int) -> bytes: ...

    @abstractmethod
    async def pwrite(self, h: int, data: bytes, off: int) -> int: ...

    @abstractmethod
    async def lseek(self, h: int, off: int, whence: int) -> int: ...

    @abstractmethod
    async def ftruncate(self, h: int, size: int) -> None: ...

    @abstractmethod
    async def truncate(self, path: bytes, size: int) -> None: ...

    async def fsync(self, h: int) -> None:
        raise _unsupported("fsync")

    @abstractmethod
    async def fstat(self, h: int) -> Stat: ...

    @abstractmethod
    async def stat(self, path: bytes, follow: bool = True) -> Stat: ...

    # -- namespace -------------------------------------------------------------------------
    @abstractmethod
    async def mkdir(self, path: bytes, mode: int = 0o777) -> None: ...

    @abstractmethod
    async def rmdir(self, path: bytes) -> None: ...

    @abstractmethod
    async def unlink(self, path: bytes) -> None: ...

    @abstractmethod
    async def rename(self, old: bytes, new: bytes, flags: int = 0) -> None: ...

    @abstractmethod
    async def link(self, old: bytes, new: bytes, follow: bool = False) -> None:
        """linkat(2); `follow` is AT_SYMLINK_FOLLOW (link what a symlink `old` names)."""

    @abstractmethod
    async def symlink(self, target: bytes, path: bytes) -> None: ...

    @abstractmethod
    async def readlink(self, path: bytes) -> bytes: ...

    @abstractmethod
    async def mknod(self, path: bytes, mode: int, dev: int = 0) -> None: ...

    @abstractmethod
    async def listdir(self, path: bytes) -> list[bytes]:
        """All names in directory `path` except `.` and `..`, in the filesystem's order."""

    @abstractmethod
    async def opendir(self, path: bytes) -> int: ...

    @abstractmethod
    async def getdents(self, h: int, count: int) -> list[bytes]:
        """Up to about `count` further names from directory handle `h` ([] at the end)."""

    # -- attributes ------------------------------------------------------------------------
    @abstractmethod
    async def chmod(self, path: bytes, mode: int, follow: bool = True) -> None:
        """fchmodat2(2); not `follow` is AT_SYMLINK_NOFOLLOW (EOPNOTSUPP on a symlink)."""

    @abstractmethod
    async def fchmod(self, h: int, mode: int) -> None: ...

    @abstractmethod
    async def chown(self, path: bytes, uid: int, gid: int, follow: bool = True) -> None: ...

    @abstractmethod
    async def utimens(self, path: bytes, atime_ns: int, mtime_ns: int,
                      follow: bool = True) -> None:
        """Set times; each may be UTIME_NOW or UTIME_OMIT as in utimensat(2)."""

    async def setxattr(self, path: bytes, name: bytes, value: bytes, flags: int = 0) -> None:
        raise OSError(errno.EOPNOTSUPP, "xattrs are not supported by this target")

    async def getxattr(self, path: bytes, name: bytes) -> bytes:
        raise OSError(errno.EOPNOTSUPP, "xattrs are not supported by this target")

    async def listxattr(self, path: bytes) -> list[bytes]:
        raise OSError(errno.EOPNOTSUPP, "xattrs are not supported by this target")

    async def removexattr(self, path: bytes, name: bytes) -> None:
        raise OSError(errno.EOPNOTSUPP, "xattrs are not supported by this target")

    # -- locks -----------------------------------------------------------------------------
    async def setlk(self, h: int, kind: int, start: int, length: int) -> None:
        """Take or release a non-blocking byte-range lock owned by handle `h` (OFD locks:
        two handles conflict even in one process). EAGAIN on conflict."""
        raise _unsupported("byte-range locks")

    async def getlk(self, h: int, kind: int, start: int,
                    length: int) -> tuple[int, int, int] | None:
        """The first lock (kind, start, length) that would block `kind` on the range, or None."""
        raise _unsupported("byte-range locks")

    # -- calls relative to an open handle, access, allocation -------------------------------
    async def statat(self, h: int, path: bytes, follow: bool = True,
                     empty_path: bool = False) -> Stat:
        """fstatat(2) relative to directory handle `h`; `empty_path` is AT_EMPTY_PATH."""
        raise _unsupported("calls relative to a handle")

    async def mkdirat(self, h: int, path: bytes, mode: int = 0o777) -> None:
        """mkdirat(2) relative to directory handle `h`."""
        raise _unsupported("calls relative to a handle")

    async def flink(self, h: int, new: bytes) -> None:
        """Give the open file behind `h` (an O_TMPFILE) the name `new`: linkat(2) with
        AT_EMPTY_PATH."""
        raise _unsupported("calls relative to a handle")

    async def readdir_kinds(self, h: int) -> list[tuple[bytes, str]]:
        """Rewind directory handle `h` and read it whole: (name, kind from d_type) of every
        entry but `.` and `..`, in the filesystem's order."""
        raise _unsupported("d_type")

    async def access(self, path: bytes, mode: int, follow: bool = True) -> None:
        """faccessat2(2) with AT_EACCESS (checked as this view's credentials)."""
        raise _unsupported("access")

    async def fallocate(self, h: int, mode: int, off: int, length: int) -> None:
        """fallocate(2) on handle `h`."""
        raise _unsupported("fallocate")

    # -- process state ---------------------------------------------------------------------
    @abstractmethod
    def umask(self, mask: int) -> int:
        """Set the creation mask used by this target's creating operations; return the old."""


#: Optional abilities: "fifo-io" (opening fifos moves data between the two ends),
#: "unpriv" (credentials other than root are honoured), "xattr", "locks", "mknod-dev",
#: "at-handle" (statat, mkdirat, flink, O_TMPFILE), "dtype" (readdir_kinds), "access",
#: "fallocate".
FEATURES = frozenset({"fifo-io", "unpriv", "xattr", "locks", "mknod-dev", "at-handle",
                      "dtype", "access", "fallocate"})
