"""The inode of a remote file: attributes as the server last answered, plus the state the
caches keep per file (its dentry fid, symlink target, pages, xattrs)."""

from __future__ import annotations

import time
from typing import Literal, cast

import p9

from ...dentry import Dentry, Inode

_NS = 1_000_000_000
#: Rgetattr's valid bit for btime (P9_GETATTR_BTIME).
_BTIME = 0x800


class GoferInode(Inode):
    """Cached attributes of a remote file, its fid (lazily walked) and its page cache."""

    __slots__ = ("fid", "target", "pages", "dirty", "server_size", "opens", "xvalues",
                 "xnames", "read_ok", "server_mtime_ns", "checked", "listed_only", "host_fd",
                 "writers", "lost")

    def __init__(self, st: p9.Stat | tuple[int, ...]) -> None:
        """`st`: the server's attributes, as a `p9.Stat` or as a listing's attribute row
        (`listed_row`)."""
        super().__init__(st.qid.path if isinstance(st, p9.Stat) else st[2], 0)
        self.fid: p9.Fid | None = None
        self.target: bytes | None = None
        self.pages: dict[int, bytearray] = {}
        self.dirty: set[int] = set()
        self.opens = 0
        #: Open file descriptions that may write it (their writes pass through the pages).
        self.writers = 0
        #: A write-back nobody was waiting for (sync(2), syncfs(2), an unmount) lost data
        #: (`pages.LostWrite`): the next write, fsync or close of the file reports EIO.
        self.lost = False
        #: The host descriptor a local gofer donated with a read-only open (`donated.py`),
        #: -1 if none.
        self.host_fd = -1
        # The server opened it for reading once: a later read-only open whose pages are
        # all cached needs no I/O fid (exclusive policy).
        self.read_ok = False
        # Made from a directory listing's attributes and never looked up since: nothing
        # holds its dentry, which the bulk cache may drop (`GoferFS.add_listed`).
        self.listed_only = False
        # exclusive policy: xattr values by name (None: known absent, ENODATA), and the
        # server's list of names (False: the server cannot list them), both dropped by any
        # change that may alter xattrs (chmod rewrites an ACL, chown/write drop capabilities).
        self.xvalues: dict[bytes, bytes | None] | None = None
        self.xnames: frozenset[bytes] | Literal[False] | None = None
        self.server_size = -1
        self.server_mtime_ns = -1
        #: time.monotonic() when the server last gave the attributes (revalidating policy).
        self.checked = 0.0
        self.take(listed_row(st) if isinstance(st, p9.Stat) else st)

    def host_readable(self) -> int:
        """The donated descriptor when reading it gives what the sandbox would read (no
        write of the sandbox is pending in the pages or may be: no writer has it open);
        else -1."""
        return self.host_fd if not self.writers and not self.dirty else -1

    def drop_xattrs(self) -> None:
        """Forget cached xattrs (after a change the server may have applied to them)."""
        self.xvalues = None
        self.xnames = None

    def drop_clean_data(self) -> None:
        """Forget what the server's copy may have changed: clean pages, the symlink target,
        xattrs (revalidating policy, after the server's size or mtime moved). Dirty pages
        stay: they are this sandbox's writes, not yet written back."""
        for idx in [i for i in self.pages if i not in self.dirty]:
            del self.pages[idx]
        self.target = None
        self.drop_xattrs()

    def update(self, st: p9.Stat) -> bool:
        """Take the server's attributes; whether its size or mtime moved since the last."""
        return self.take(listed_row(st))

    def take(self, a: tuple[int, ...]) -> bool:
        """`update` from an attribute row as a Treaddirattr listing gives it (`listed_row`):
        a listed entry's inode is made from its row with no `p9.Stat` in between."""
        before = (self.server_size, self.server_mtime_ns) if self.checked else None
        self.checked = time.monotonic()
        (valid, _, self.ino, self.mode, self.uid, self.gid, self.nlink, self.rdev, size, _,
         self.blocks, atime_sec, atime_nsec, mtime_sec, mtime_nsec, ctime_sec, ctime_nsec,
         btime_sec, btime_nsec) = a[:19]
        if not self.dirty:
            self.size = size
        self.server_size = size
        self.atime_ns = atime_sec * _NS + atime_nsec
        self.mtime_ns = mtime = mtime_sec * _NS + mtime_nsec
        self.ctime_ns = ctime_sec * _NS + ctime_nsec
        self.btime_ns = btime_sec * _NS + btime_nsec if valid & _BTIME else None
        self.server_mtime_ns = mtime
        return before is not None and before != (size, mtime)


def listed_row(st: p9.Stat) -> tuple[int, ...]:
    """`st` as a Treaddirattr attribute row: (valid, qid type, qid path, *Attr fields)
    (`p9.Fid.readdir_attr`), the one form `GoferInode.take` reads."""
    a = st.attr
    return (st.valid, st.qid.type, st.qid.path, a.mode, a.uid, a.gid, a.nlink, a.rdev,
            a.size, a.blksize, a.blocks, a.atime_sec, a.atime_nsec, a.mtime_sec,
            a.mtime_nsec, a.ctime_sec, a.ctime_nsec, a.btime_sec, a.btime_nsec)


class SyntheticInode(GoferInode):
    """A unix socket bound in the sandbox: a node this filesystem keeps in its dentry cache
    and never tells the server about (gVisor's synthetic dentries). It has no fid, no
    xattrs and no data; its attributes change here only."""

    __slots__ = ()

    def __init__(self, ino: int, mode: int, uid: int, gid: int) -> None:
        sec, nsec = divmod(time.time_ns(), _NS)
        super().__init__(p9.Stat(p9.Qid(0, 0, ino), _BTIME, p9.Attr(
            mode=mode, uid=uid, gid=gid, nlink=1, atime_sec=sec, atime_nsec=nsec,
            mtime_sec=sec, mtime_nsec=nsec, ctime_sec=sec, ctime_nsec=nsec, btime_sec=sec,
            btime_nsec=nsec)))
        self.xvalues = {}
        self.xnames = frozenset()


def is_synthetic(d: Dentry) -> bool:
    """Whether `d` is a sandbox-only node (`SyntheticInode`)."""
    return isinstance(d.inode, SyntheticInode)


def inode_of(d: Dentry) -> GoferInode:
    """The inode of a goferfs dentry (a GoferFS builds every one of its dentries with a
    GoferInode; `Dentry.inode` is typed as the base class)."""
    return cast(GoferInode, d.inode)
