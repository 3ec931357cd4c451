"""devpts: /dev/pts as a filesystem of terminals, and the devices that open them.

Why its own filesystem: /dev/pts/N exists exactly while terminal N's master is open, and
its owner is whoever opened /dev/ptmx (Linux's devpts). The names are dentries of the root
made and dropped by `DevPts`; opening one goes through the VFS's device table, where
(5, 2) is ptmx (a new terminal and its master) and (136, N) is terminal N's replica.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from ...abi import DEVPTS_SUPER_MAGIC, S_IFCHR, S_IFDIR, StatFS, dtype_of
from ...creds import Credentials
from ...dentry import Dentry, Inode
from ...errors import error
from ...file import DirectoryFD, FileDescription
from ...filesystem import Filesystem, InodeCounter
from ...mount import FSContext, Mount, VirtualDentry
from .terminal import JobControl, MasterFD, ReplicaFD, Terminal

if TYPE_CHECKING:
    from ...virtualfs import VirtualFilesystem

PTMX = (5, 2)
PTS_MAJOR = 136
TTY_GID = 5  # the group devpts gives terminals (mount option gid=5, mode=620)
MAX_PTYS = 4096  # /proc/sys/kernel/pty/max's default


class DevPtsFS(Filesystem):
    """The directory of terminals: "ptmx" and one character device per open master."""

    fstype = "devpts"
    magic = DEVPTS_SUPER_MAGIC

    def __init__(self) -> None:
        super().__init__()
        self._ino = InodeCounter(1)
        self.root = Dentry(self, b"/", None, Inode(self._ino(), S_IFDIR | 0o755))
        self._seq = 0
        self._add(b"ptmx", S_IFCHR, os.makedev(*PTMX), 0, 0)

    def _add(self, name: bytes, ftype: int, rdev: int, uid: int, gid: int) -> Dentry:
        mode = 0o000 if name == b"ptmx" else 0o620
        d = Dentry(self, name, self.root, Inode(self._ino(), ftype | mode, uid, gid, rdev))
        self._seq += 1
        d.seq = self._seq
        self.root.children[name] = d
        return d

    def _drop(self, name: bytes) -> None:
        d = self.root.children.pop(name, None)
        if d is not None:
            d.dead = True

    async def statfs(self) -> StatFS:
        return StatFS(type=DEVPTS_SUPER_MAGIC)

    async def open(self, d: Dentry, flags: int, creds: Credentials) -> FileDescription:
        if d is self.root:
            return _PtsDirFD(flags, d)
        raise error(errno.ENXIO)


class _PtsDirFD(DirectoryFD):
    """A listing of /dev/pts, in creation order."""

    def __init__(self, flags: int, dentry: Dentry) -> None:
        super().__init__(None, flags)
        self.dentry = dentry

    async def entries(self, cookie: int) -> list[tuple[int, int, int, bytes]]:
        d = self.dentry
        out = self.dots(d, cookie)
        for child in sorted(d.children.values(), key=lambda c: c.seq):
            if child.seq + 2 > cookie:
                out.append((child.seq + 2, child.inode.ino, dtype_of(child.inode.mode),
                            child.name))
        return out


class DevPts:
    """The terminals of one sandbox: allocates indexes, keeps /dev/pts in step, opens ends.

    Attributes:
        control: the Sentry's job control (None: no signals, no controlling terminals).
        terminals: index → terminal, while its master is open.
        mount: where devpts is mounted (set by `install`; TIOCGPTPEER opens through it).
    """

    def __init__(self, vfs: VirtualFilesystem) -> None:
        self.vfs = vfs
        self.fs = DevPtsFS()
        self.control: JobControl | None = None
        self.terminals: dict[int, Terminal] = {}
        self.mount: Mount | None = None
        vfs.devices[(S_IFCHR, *PTMX)] = self._open_ptmx

    def new_terminal(self, creds: Credentials) -> Terminal:
        """A new pty pair: the lowest free index, /dev/pts/N owned by `creds`' fsuid."""
        n = next(i for i in range(MAX_PTYS + 1) if i not in self.terminals)
        if n == MAX_PTYS:
            raise error(errno.ENOSPC)
        term = Terminal(n, self.control)
        self.terminals[n] = term
        self.fs._add(b"%d" % n, S_IFCHR, os.makedev(PTS_MAJOR, n), creds.fsuid, TTY_GID)
        self.vfs.devices[(S_IFCHR, PTS_MAJOR, n)] = self._open_replica
        term.on_master_close = self._master_closed
        return term

    def _master_closed(self, term: Terminal) -> None:
        if self.terminals.get(term.index) is term:
            del self.terminals[term.index]
            self.fs._drop(b"%d" % term.index)
            self.vfs.devices.pop((S_IFCHR, PTS_MAJOR, term.index), None)

    async def _open_ptmx(self, vd: VirtualDentry, flags: int, creds: Credentials) -> MasterFD:
        return MasterFD(vd, flags, self.new_terminal(creds))

    async def _open_replica(self, vd: VirtualDentry, flags: int,
                            creds: Credentials) -> ReplicaFD:
        term = self.terminals.get(os.minor(vd.dentry.inode.rdev))
        if term is None:
            raise error(errno.EIO)
        return self.open_replica(term, flags, vd)

    def replica_path(self, term: Terminal) -> VirtualDentry:
        """Where /dev/pts/N is (ENOENT before `install` mounted devpts)."""
        d = self.fs.root.children.get(b"%d" % term.index)
        if d is None or self.mount is None:
            raise error(errno.EIO)
        return VirtualDentry(self.mount, d)

    def open_replica(self, term: Terminal, flags: int,
                     vd: VirtualDentry | None = None) -> ReplicaFD:
        """Open terminal `term`'s replica (EIO while locked or after its master closed);
        the job control may make it the caller's controlling terminal."""
        if term.locked or not term.master_open:
            raise error(errno.EIO)
        fd = ReplicaFD(vd if vd is not None else self.replica_path(term), flags, term)
        if self.control is not None:
            self.control.opened(term, flags)
        return fd

    def open_pair(self, creds: Credentials, flags: int) -> tuple[MasterFD, ReplicaFD]:
        """openpty(3) in one step, for the side outside the sandbox (`runpsc do` on a
        terminal): an unlocked terminal's master and replica, neither a controlling
        terminal yet."""
        term = self.new_terminal(creds)
        term.locked = False
        master = MasterFD(None, flags, term)
        return master, ReplicaFD(self.replica_path(term), flags, term)


async def install(vfs: VirtualFilesystem, ctx: FSContext, creds: Credentials,
                  dev: bytes = b"/dev") -> DevPts:
    """Mount devpts at `dev`/pts (which must exist, as devfs makes it) and create
    `dev`/ptmx; returns the sandbox's `DevPts`."""
    pts = DevPts(vfs)
    base = dev.rstrip(b"/")
    c = FSContext(ctx.root, ctx.cwd, 0)
    try:
        await vfs.mknodat(c, creds, None, base + b"/ptmx", S_IFCHR | 0o666, os.makedev(*PTMX))
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise
    pts.mount = await vfs.mount(c, creds, pts.fs, None, base + b"/pts", source="devpts")
    return pts
