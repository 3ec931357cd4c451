"""Inodes and dentries: what a filesystem hands the VFS for each file it knows.

Who holds what (as in gVisor's vfs README): a `Dentry` is a name in a directory, owned by its
filesystem, with a pointer to its parent and to its `Inode`; a directory has exactly one
dentry, a file with hard links has one per name. The VFS reads the inode's cached
`mode`/`uid`/`gid` for permission checks on every path component, so filesystems keep those
fields current (goferfs refreshes them from the server under its shared-cache policy).
`Dentry.children` is the name cache; for tmpfs it *is* the directory.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .abi import S_IFDIR, S_IFLNK, S_IFMT, Stat

if TYPE_CHECKING:
    from .filesystem import Filesystem


def now_ns() -> int:
    """The time file timestamps take (Linux uses the coarse realtime clock)."""
    return time.time_ns()


class Inode:
    """A file's attributes; filesystems subclass it to add their data."""

    __slots__ = ("ino", "mode", "uid", "gid", "nlink", "size", "blocks", "rdev",
                 "atime_ns", "mtime_ns", "ctime_ns", "btime_ns", "xattrs", "__weakref__")

    def __init__(self, ino: int, mode: int, uid: int = 0, gid: int = 0, rdev: int = 0) -> None:
        t = now_ns()
        self.ino = ino
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.nlink = 2 if mode & S_IFMT == S_IFDIR else 1
        self.size = 0
        self.blocks = 0
        self.rdev = rdev
        self.atime_ns = self.mtime_ns = self.ctime_ns = t
        self.btime_ns: int | None = t
        self.xattrs: dict[bytes, bytes] | None = None

    @property
    def is_dir(self) -> bool:
        return self.mode & S_IFMT == S_IFDIR

    @property
    def is_symlink(self) -> bool:
        return self.mode & S_IFMT == S_IFLNK

    @property
    def type(self) -> int:
        return self.mode & S_IFMT

    def set_attrs(self, *, mode: int | None = None, uid: int | None = None,
                  gid: int | None = None, atime_ns: int | None = None,
                  mtime_ns: int | None = None, ctime_ns: int | None = None) -> None:
        """Store the attributes a setattr gives (None: unchanged); `mode` is the whole
        mode, file type included, as the VFS passes it."""
        if mode is not None:
            self.mode = mode
        if uid is not None:
            self.uid = uid
        if gid is not None:
            self.gid = gid
        if atime_ns is not None:
            self.atime_ns = atime_ns
        if mtime_ns is not None:
            self.mtime_ns = mtime_ns
        if ctime_ns is not None:
            self.ctime_ns = ctime_ns

    def to_stat(self, dev: int) -> Stat:
        return Stat(
            mode=self.mode, ino=self.ino, dev=dev, nlink=self.nlink, uid=self.uid,
            gid=self.gid, rdev=self.rdev, size=self.size, blocks=self.blocks,
            atime_ns=self.atime_ns, mtime_ns=self.mtime_ns, ctime_ns=self.ctime_ns,
            btime_ns=self.btime_ns,
        )


class Dentry:
    """A name in a directory, pointing at an inode.

    Attributes:
        name: the component name (b"/" for a filesystem root).
        parent: the parent dentry (a root is its own parent).
        inode: the file's attributes.
        fs: the filesystem that owns this dentry.
        children: name → child dentry cache (authoritative in tmpfs).
        mounted: how many mounts sit on this dentry (0 on the fast path).
        seq: this entry's position cookie in its parent's directory listing.
        dead: set once unlinked/rmdir'd, so later creates inside it fail with ENOENT.
        hot: set by a lookup that found it cached, cleared by the dentry bound's sweep
            (`dcache.py`: a second chance, cheaper on the hot path than an LRU move).
    """

    __slots__ = ("name", "parent", "inode", "fs", "children", "mounted", "seq", "dead", "hot",
                 "__weakref__")

    def __init__(self, fs: Filesystem, name: bytes, parent: Dentry | None, inode: Inode) -> None:
        self.fs = fs
        self.name = name
        self.parent = parent if parent is not None else self
        self.inode = inode
        self.children: dict[bytes, Dentry] = {}
        self.mounted = 0
        self.seq = 0
        self.dead = False
        self.hot = False

    @property
    def is_root(self) -> bool:
        return self.parent is self

    def __repr__(self) -> str:
        return f"<Dentry {self.name!r} ino={self.inode.ino} mode={self.inode.mode:o}>"
