"""Host file operations with Linux semantics, over O_PATH descriptors, never path strings.

Every object the gofer has reached is a `Node` holding an O_PATH descriptor. A walk moves
one validated component at a time with openat2(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
RESOLVE_BENEATH | RESOLVE_NO_XDEV) and O_NOFOLLOW (openat(O_NOFOLLOW) plus a mount-id check
where openat2 is missing), so a symlink is returned as a symlink and never followed, and a
mount point inside an export (a bind mount of / for instance) is not crossed unless the
export allows submounts. `..` is the logical parent the node was reached from, clamped at
the export root, so a directory moved out of the export cannot lead a client outside it.

Operations that need a real descriptor reopen the node through our own /proc/<pid>/fd
directory (an fd the confined gofer keeps although /proc is not mounted in its namespace),
or act on the parent with the *at variants. All errors are OSError; the server maps them to
Rlerror in one place. Read-only exports raise EROFS for every mutation here, so no caller
can forget it.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

from p9 import SetattrMask

from .hostcalls import (
    HAVE_OPENAT2,
    HOW_SUBMOUNTS,
    HOW_XDEV,
    O_PATH_FLAGS,
    STATX_BASIC,
    STATX_BTIME,
    STATX_MNT_ID,
    STATX_TS,
    UTIME_NOW,
    UTIME_OMIT,
    Timespec,
    fstatfs,
    mnt_id,
    openat2,
    refuse_pseudo_fs,
    statx,
    utimensat,
)
from .hosttypes import Attr, StatFS, qid_type_of
from .openfile import OpenFile
from .procfd import ProcFD

__all__ = ["Export", "Node", "check_name", "lookup_resolve"]

_AT_REMOVEDIR = 0x200
_NAME_MAX = 255

# Flags a client may pass to open; everything else (O_CREAT, O_DIRECT, O_ASYNC, ...) is
# dropped. O_CLOEXEC and O_NOCTTY are always added.
_OPEN_FLAGS_ALLOWED = (
    os.O_ACCMODE
    | os.O_TRUNC
    | os.O_APPEND
    | os.O_NONBLOCK
    | os.O_DSYNC
    | os.O_SYNC
    | os.O_DIRECTORY
    | os.O_NOFOLLOW
    | os.O_NOATIME
    | os.O_LARGEFILE
)


def _check_xattr_name(name: str) -> None:
    """An xattr name reaches the kernel as a C string: one with a NUL in it could only be
    cut short there, so it is refused (EINVAL, as a name is for the other calls)."""
    if "\0" in name:
        raise OSError(errno.EINVAL, f"invalid xattr name {name!r}")


def check_name(name: str, *, creating: bool = False) -> None:
    """Refuse a name that is not one path component.

    Raises:
        OSError(EINVAL): empty, or contains '/' or NUL.
        OSError(ENAMETOOLONG): longer than NAME_MAX bytes.
        OSError(EEXIST): '.' or '..' when `creating` (what mkdir(2) says for them).
    """
    if not name or "/" in name or "\0" in name:
        raise OSError(errno.EINVAL, f"invalid name {name!r}")
    if len(os.fsencode(name)) > _NAME_MAX:
        raise OSError(errno.ENAMETOOLONG, f"name too long {name[:32]!r}...")
    if creating and name in (".", ".."):
        raise OSError(errno.EEXIST, f"cannot create {name!r}")


def lookup_resolve(export: Export) -> int | None:
    """The RESOLVE_* flags `Node.walk` looks names up with, for a lookup made elsewhere by
    openat2(2) alone (p9's C walk, `p9.File.walk_source`); None when `Node.walk` does more:
    without openat2, or with submounts (a pseudo filesystem is refused after the lookup)."""
    if not HAVE_OPENAT2 or export.submounts:
        return None
    return int(HOW_XDEV.resolve)


# --- exports and nodes --------------------------------------------------------------------


@dataclass(eq=False)
class Export:
    """One exported host directory.

    Args:
        name: the aname clients attach with.
        path: the host directory (used once, to open the root; kept for messages).
        readonly: every mutation raises EROFS.
        submounts: let walks cross mount points inside the export (off by default, so a bind
            mount placed inside the export cannot lead out of it).
        allow_devices: let clients open device nodes (off: exports behave as if mounted nodev).
        allow_mknod: let a privileged client (one whose identity holds CAP_MKNOD: root, on a
            root gofer) create block and character device nodes (off: EPERM for everyone).
    """

    name: str
    path: str
    readonly: bool = False
    submounts: bool = False
    allow_devices: bool = False
    allow_mknod: bool = False
    procfd: ProcFD | None = None
    root_fd: int = -1
    root_dev: int = 0
    _devs: dict[int, int] = field(default_factory=dict)

    def open(self, procfd: ProcFD) -> None:
        """Open the export root (an O_PATH descriptor); called before confinement."""
        fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.procfd = procfd
        self.root_fd = fd
        st = os.stat(fd)
        self.root_dev = st.st_dev
        self._devs = {st.st_dev: 0}
        self._root_mnt = mnt_id(fd)

    def close(self) -> None:
        """Release the root descriptor."""
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def root(self) -> Node:
        """A new reference to the export root (a fresh O_PATH descriptor)."""
        fd = os.open(".", O_PATH_FLAGS | os.O_DIRECTORY, dir_fd=self.root_fd)
        return Node(fd, self, None, "")

    def qid_path(self, st: os.stat_result) -> int:
        """A qid path unique within the export: the inode, tagged by device when not the root's."""
        return self.qid_path_of(st.st_dev, st.st_ino)

    def qid_path_of(self, dev: int, ino: int) -> int:
        """`qid_path` from a device number and an inode number."""
        idx = self._devs.get(dev)
        if idx is None:
            idx = self._devs[dev] = len(self._devs)
        return ino ^ (idx << 56)

    def dev_tag(self, dev: int) -> int:
        """What `qid_path_of` xors into the inode numbers of device `dev` (0 for a device
        no qid was made for yet), for callers that tag many inodes of one device."""
        return self._devs.get(dev, 0) << 56

    def mutating(self) -> None:
        """Raise EROFS if the export is read-only."""
        if self.readonly:
            raise OSError(errno.EROFS, f"export {self.name!r} is read-only")


class Node:
    """A file the gofer has reached: an O_PATH descriptor, its logical parent and name.

    Nodes are reference-counted (`ref`, `release`) because a walk shares ancestors between
    fids; the descriptor closes when the last reference goes, then the parent is released.
    """

    __slots__ = ("fd", "export", "parent", "name", "refs")

    def __init__(self, fd: int, export: Export, parent: Node | None, name: str) -> None:
        self.fd = fd
        self.export = export
        self.parent = parent
        self.name = name
        self.refs = 1

    def __repr__(self) -> str:
        return f"<Node fd={self.fd} {self.export.name}:{self.name!r}>"

    def ref(self) -> Node:
        """Take another reference and return self."""
        self.refs += 1
        return self

    def release(self) -> None:
        """Drop one reference; close the descriptor (and release the parent) at zero."""
        node: Node | None = self
        while node is not None:
            node.refs -= 1
            if node.refs > 0:
                return
            if node.fd >= 0:
                os.close(node.fd)
                node.fd = -1
            node = node.parent

    @property
    def procfd(self) -> ProcFD:
        assert self.export.procfd is not None
        return self.export.procfd

    def chown(self, uid: int, gid: int) -> None:
        """Change owner and/or group (-1: unchanged).

        Raises:
            OSError(EPERM): not allowed; also for an id the gofer's user namespace does not
                map (a non-root gofer's; the kernel says EINVAL), which natively is EPERM.
        """
        try:
            os.chown(str(self.fd), uid, gid, dir_fd=self.procfd.dirfd)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            raise OSError(errno.EPERM, f"cannot give the file to {uid}:{gid}") from None

    # -- walking ---------------------------------------------------------------------------

    def walk(self, name: str) -> Node:
        """The child `name` (a new reference); '..' is the logical parent, clamped at the root.

        Raises:
            OSError(ENOENT/ENOTDIR/EACCES): from the host lookup.
            OSError(ENOENT): also when `name` is a mount point the export does not cover (no
                submounts, or a kernel pseudo filesystem): it looks absent, the way clients
                such as the Sentry's goferfs expect an unreachable name to look.
            OSError(EINVAL): `name` is not a single component.
        """
        check_name(name)
        if name in (".", ".."):
            if not stat.S_ISDIR(os.stat(self.fd).st_mode):
                raise OSError(errno.ENOTDIR, f"{name!r} from a non-directory")
            return (self.parent or self).ref() if name == ".." else self.ref()
        return Node(self._lookup(name), self.export, self.ref(), name)

    def _lookup(self, name: str) -> int:
        exp = self.export
        if HAVE_OPENAT2:
            try:
                fd = openat2(self.fd, name, HOW_SUBMOUNTS if exp.submounts else HOW_XDEV)
            except OSError as e:
                if e.errno == errno.EXDEV:  # RESOLVE_NO_XDEV: a mount point the export does not cover
                    raise OSError(errno.ENOENT, f"{name!r} is a mount point (not exported)") from None
                raise
        else:
            fd = os.open(name, O_PATH_FLAGS, dir_fd=self.fd)
            if not exp.submounts and mnt_id(fd) != exp._root_mnt:
                os.close(fd)
                raise OSError(errno.ENOENT, f"{name!r} is a mount point (not exported)")
        if exp.submounts:
            refuse_pseudo_fs(fd, name)
        return fd

    # -- attributes ------------------------------------------------------------------------

    def stat(self) -> os.stat_result:
        """fstat of the node itself (never follows a symlink)."""
        return os.stat(self.fd)

    def qid(self, st: os.stat_result | None = None) -> tuple[int, int]:
        """(qid type, qid path)."""
        st = st or os.stat(self.fd)
        return qid_type_of(st.st_mode), self.export.qid_path(st)

    def getattr(self, *, btime: bool = False) -> Attr:
        """The node's attributes; with `btime`, one statx(2) instead of fstat(2)."""
        if btime:
            return self._statx_attr()
        st = os.stat(self.fd)
        return Attr(
            qid_type_of(st.st_mode),
            self.export.qid_path(st),
            st.st_mode,
            st.st_uid,
            st.st_gid,
            st.st_nlink,
            st.st_rdev,
            st.st_size,
            st.st_blksize,
            st.st_blocks,
            st.st_atime_ns,
            st.st_mtime_ns,
            st.st_ctime_ns,
            None,
        )

    def entry_attrs(self, dirfd: int, name: bytes) -> tuple[int, ...] | None:
        """What a Tgetattr (basic fields and btime) of the fid `walk(name)` would give for
        the entry `name` of this directory, opened as `dirfd`, as the row
        `p9.pack_attr_rows` takes; None where `walk` would not give the file itself (a
        mount point: another mount), or the name is gone. One statx(2) by name, never
        following a symlink, so nothing outside the directory is looked at."""
        try:
            f = statx(dirfd, STATX_BASIC | STATX_BTIME | STATX_MNT_ID, name)
        except OSError:
            return None
        if f[19] != self.export._root_mnt:
            return None
        mode = f[6]
        a, b, c, m = (STATX_TS.unpack(t) for t in (f[11], f[12], f[13], f[14]))
        has_btime = f[0] & STATX_BTIME
        return (
            STATX_BASIC | STATX_BTIME if has_btime else STATX_BASIC,
            qid_type_of(mode), self.export.qid_path_of(os.makedev(f[17], f[18]), f[7]),
            mode, f[4], f[5], f[3], os.makedev(f[15], f[16]), f[8], f[1], f[9],
            a[0], a[1], m[0], m[1], c[0], c[1],
            b[0] if has_btime else 0, b[1] if has_btime else 0, 0, 0,
        )

    def _statx_attr(self) -> Attr:
        f = statx(self.fd, STATX_BASIC | STATX_BTIME)
        mode = f[6]
        qpath = self.export.qid_path_of(os.makedev(f[17], f[18]), f[7])
        a, b, c, m = (STATX_TS.unpack(t) for t in (f[11], f[12], f[13], f[14]))
        return Attr(
            qid_type_of(mode), qpath, mode, f[4], f[5], f[3], os.makedev(f[15], f[16]), f[8],
            f[1], f[9], a[0] * 10**9 + a[1], m[0] * 10**9 + m[1], c[0] * 10**9 + c[1],
            (b[0], b[1]) if f[0] & STATX_BTIME else None,
        )

    def setattr(
        self,
        valid: int,
        *,
        mode: int = 0,
        uid: int = -1,
        gid: int = -1,
        size: int = 0,
        atime: tuple[int, int] = (0, 0),
        mtime: tuple[int, int] = (0, 0),
        size_fd: int = -1,
    ) -> None:
        """Change attributes in Linux's order of effect: owner, mode, size, times.

        `valid` holds `p9.SetattrMask` bits. ATIME/MTIME without the *_SET bit mean
        "now" (which needs only write access); with it, the explicit (sec, nsec) given.
        `size_fd`: a descriptor of this file already open for writing (the fid's): the size
        is set through it, as ftruncate(2) does, whatever the file's mode says now.

        Raises:
            OSError(EROFS): read-only export. OSError(EPERM/EACCES): from the host.
        """
        if not valid & ~int(SetattrMask.CTIME):  # (int: an IntFlag inverts known bits only)
            return
        self.export.mutating()
        pf = self.procfd
        st = os.stat(self.fd)
        if valid & (SetattrMask.UID | SetattrMask.GID):
            self.chown(uid if valid & SetattrMask.UID else -1, gid if valid & SetattrMask.GID else -1)
        if valid & SetattrMask.MODE:
            if stat.S_ISLNK(st.st_mode):
                raise OSError(errno.EOPNOTSUPP, "cannot chmod a symlink")
            os.chmod(str(self.fd), stat.S_IMODE(mode), dir_fd=pf.dirfd)
        if valid & SetattrMask.SIZE:
            if stat.S_ISDIR(st.st_mode):
                raise OSError(errno.EISDIR, "truncate of a directory")
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, "truncate of a non-regular file")
            if size_fd >= 0:
                os.ftruncate(size_fd, size)
            else:
                self._truncate(size)
        if valid & (SetattrMask.ATIME | SetattrMask.MTIME):
            times = (Timespec * 2)()
            for i, (bit, setbit, value) in enumerate(
                ((SetattrMask.ATIME, SetattrMask.ATIME_SET, atime), (SetattrMask.MTIME, SetattrMask.MTIME_SET, mtime))
            ):
                if not valid & bit:
                    times[i].tv_sec, times[i].tv_nsec = 0, UTIME_OMIT
                elif valid & setbit:
                    times[i].tv_sec, times[i].tv_nsec = value
                else:
                    times[i].tv_sec, times[i].tv_nsec = 0, UTIME_NOW
            utimensat(pf.dirfd, str(self.fd), times)

    def _truncate(self, size: int) -> None:
        """truncate(2): through a write reopen, so the host checks write permission."""
        fd = self.procfd.open(self.fd, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)

    # -- opening ---------------------------------------------------------------------------

    def is_fifo(self) -> bool:
        """Whether opening this node may block (a FIFO), so the caller opens it off-loop."""
        return stat.S_ISFIFO(os.stat(self.fd).st_mode)

    def open(self, flags: int) -> OpenFile:
        """Open the node for I/O with Linux open flags (creation flags are ignored).

        Raises:
            OSError(ELOOP): the node is a symlink. OSError(EACCES): a device node on an export
            without allow_devices. OSError(EROFS): write access or O_TRUNC on a read-only
            export. Others from the host open(2).
        """
        flags &= _OPEN_FLAGS_ALLOWED
        st = os.stat(self.fd)
        mode = st.st_mode
        writing = (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC
        if writing:
            self.export.mutating()
        if stat.S_ISLNK(mode):
            raise OSError(errno.ELOOP, "is a symlink")
        if (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and not self.export.allow_devices:
            raise OSError(errno.EACCES, "device nodes cannot be opened through this export")
        if flags & os.O_DIRECTORY and not stat.S_ISDIR(mode):
            raise OSError(errno.ENOTDIR, "not a directory")
        flags &= ~os.O_NOFOLLOW
        if self.export.readonly and not flags & os.O_NOATIME:
            # Reading a read-only export should not even touch access times on the host.
            try:
                return OpenFile(self._reopen(flags | os.O_NOATIME, mode), self, mode)
            except PermissionError:  # O_NOATIME needs ownership or CAP_FOWNER
                pass
        return OpenFile(self._reopen(flags, mode), self, mode)

    def _reopen(self, flags: int, mode: int) -> int:
        if stat.S_ISDIR(mode):
            return os.open(".", flags | os.O_CLOEXEC | os.O_DIRECTORY, dir_fd=self.fd)
        return self.procfd.open(self.fd, flags)

    # -- creating --------------------------------------------------------------------------

    def _still_beneath(self) -> None:
        """Refuse to add entries to a directory the host has moved out of the export.

        A node keeps referring to its directory wherever the host moves it (like an open
        descriptor); '..' is clamped logically, and this physical check, walking '..' up to
        the export root or the top of the mount tree, keeps new files from being created
        outside the export through such a node. Costs one openat and fstat per level, and
        runs only before creating something.

        Raises:
            OSError(ENOENT): the directory is no longer beneath the export root.
        """
        exp = self.export
        root = os.stat(exp.root_fd)
        want = (root.st_dev, root.st_ino)
        st = os.stat(self.fd)
        cur = os.open(".", O_PATH_FLAGS | os.O_DIRECTORY, dir_fd=self.fd) if stat.S_ISDIR(
            st.st_mode) else -1
        if cur < 0:
            return  # not a directory: the create itself answers ENOTDIR
        try:
            for _ in range(4096):
                if (st.st_dev, st.st_ino) == want:
                    return
                up = os.open("..", O_PATH_FLAGS | os.O_DIRECTORY, dir_fd=cur)
                os.close(cur)
                cur = up
                pst = os.stat(cur)
                if (pst.st_dev, pst.st_ino) == (st.st_dev, st.st_ino):
                    break  # the top: '..' is itself
                st = pst
        finally:
            os.close(cur)
        raise OSError(errno.ENOENT, "directory was moved out of the export")

    def create(self, name: str, flags: int, mode: int) -> tuple[Node, OpenFile]:
        """Create and open regular file `name` here (Tlcreate); never follows a symlink.

        Returns the new node (a reference) and the open file.

        Raises:
            OSError(EEXIST): O_EXCL and the name exists. OSError(ELOOP): the name is a symlink.
            OSError(EROFS): read-only export.
        """
        check_name(name, creating=True)
        self.export.mutating()
        self._still_beneath()
        flags = (flags & _OPEN_FLAGS_ALLOWED & ~os.O_DIRECTORY) | (flags & os.O_EXCL)
        fd = os.open(
            name,
            flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK,
            stat.S_IMODE(mode),
            dir_fd=self.fd,
        )
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EEXIST, f"{name!r} exists and is not a regular file")
            # O_NONBLOCK stays: it only guarded against an existing FIFO; on a regular file
            # it changes nothing (Linux has no mandatory locks; leases are not used here).
            pfd = self.procfd.open(fd, os.O_PATH)
        except BaseException:
            os.close(fd)
            raise
        node = Node(pfd, self.export, self.ref(), name)
        return node, OpenFile(fd, node, st.st_mode)

    def mkdir(self, name: str, mode: int) -> os.stat_result:
        """mkdirat(2) here; returns the new directory's stat."""
        check_name(name, creating=True)
        self.export.mutating()
        self._still_beneath()
        os.mkdir(name, stat.S_IMODE(mode) | (mode & stat.S_ISVTX), dir_fd=self.fd)
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def mknod(self, name: str, mode: int, major: int, minor: int) -> os.stat_result:
        """mknodat(2) here: fifos, sockets, regular files; block and character devices only on
        an export with allow_mknod, and then only for a caller with CAP_MKNOD (the host
        kernel decides: a root gofer acting for a non-root user has dropped it).

        Raises:
            OSError(EPERM): a device node, on an export without allow_mknod.
        """
        check_name(name, creating=True)
        self.export.mutating()
        if (stat.S_ISBLK(mode) or stat.S_ISCHR(mode)) and not self.export.allow_mknod:
            raise OSError(errno.EPERM, f"export {self.export.name!r} does not allow device nodes")
        self._still_beneath()
        if major > 0xFFF or minor > 0xFFFFF:  # the kernel's dev_t is 32 bits: glibc's EINVAL
            raise OSError(errno.EINVAL, "device number out of range", name)
        # mknodat(2) takes a umode_t: the kernel keeps the low 16 bits of a C caller's mode_t
        os.mknod(name, mode & 0xFFFF, os.makedev(major, minor), dir_fd=self.fd)
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def symlink(self, name: str, target: str) -> os.stat_result:
        """symlinkat(2) here; the target is data and is never resolved by the gofer."""
        check_name(name, creating=True)
        if not target or "\0" in target:
            raise OSError(errno.ENOENT if not target else errno.EINVAL, "bad symlink target")
        self.export.mutating()
        self._still_beneath()
        os.symlink(target, name, dir_fd=self.fd)
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def readlink(self) -> str:
        """The symlink's target, as data."""
        if not stat.S_ISLNK(os.stat(self.fd).st_mode):
            raise OSError(errno.EINVAL, "not a symlink")
        return os.readlink("", dir_fd=self.fd)

    def link_into(self, directory: Node, name: str) -> None:
        """Hard-link this node as `directory`/`name` (Tlink). Never links a symlink's target.

        Raises:
            OSError(EXDEV): the directory is in another export. OSError(EPERM): a directory.
        """
        check_name(name, creating=True)
        if directory.export is not self.export:
            raise OSError(errno.EXDEV, "link across exports")
        self.export.mutating()
        directory._still_beneath()
        os.link(
            str(self.fd), name, src_dir_fd=self.procfd.dirfd, dst_dir_fd=directory.fd,
            follow_symlinks=True,
        )

    def rename(self, old: str, newdir: Node, new: str) -> None:
        """renameat(2) of `old` here to `new` in `newdir` (Trenameat)."""
        for n in (old, new):
            check_name(n)
            if n in (".", ".."):
                raise OSError(errno.EBUSY if n == "." else errno.EINVAL, f"cannot rename {n!r}")
        if newdir.export is not self.export:
            raise OSError(errno.EXDEV, "rename across exports")
        self.export.mutating()
        newdir._still_beneath()
        os.rename(old, new, src_dir_fd=self.fd, dst_dir_fd=newdir.fd)

    def rename_self(self, newdir: Node, new: str) -> None:
        """Rename this node to `new` in `newdir` (old-style Trename), following it logically."""
        if self.parent is None:
            raise OSError(errno.EBUSY, "cannot rename the export root")
        self._check_still_named()
        self.parent.rename(self.name, newdir, new)
        old_parent = self.parent
        self.parent = newdir.ref()
        self.name = new
        old_parent.release()

    def _check_still_named(self) -> None:
        assert self.parent is not None
        mine = os.stat(self.fd)
        try:
            there = os.stat(self.name, dir_fd=self.parent.fd, follow_symlinks=False)
        except FileNotFoundError:
            raise OSError(errno.ENOENT, f"{self.name!r} was removed") from None
        if (mine.st_dev, mine.st_ino) != (there.st_dev, there.st_ino):
            raise OSError(errno.ENOENT, f"{self.name!r} was replaced")

    def unlink(self, name: str, flags: int = 0) -> None:
        """unlinkat(2) here; flags may hold AT_REMOVEDIR."""
        check_name(name)
        if name in (".", ".."):
            raise OSError(errno.EINVAL if name == "." else errno.ENOTEMPTY, f"cannot remove {name!r}")
        self.export.mutating()
        if flags & _AT_REMOVEDIR:
            os.rmdir(name, dir_fd=self.fd)
        else:
            os.unlink(name, dir_fd=self.fd)

    def remove_self(self) -> None:
        """Remove the file this node names (old-style Tremove)."""
        if self.parent is None:
            raise OSError(errno.EBUSY, "cannot remove the export root")
        self.export.mutating()
        self._check_still_named()
        isdir = stat.S_ISDIR(os.stat(self.fd).st_mode)
        self.parent.unlink(self.name, _AT_REMOVEDIR if isdir else 0)

    # -- xattrs ----------------------------------------------------------------------------

    def getxattr(self, name: str) -> bytes:
        """The value of extended attribute `name`."""
        _check_xattr_name(name)
        return os.getxattr(self.procfd.path(self.fd), name)

    def listxattr(self) -> list[str]:
        """The names of the node's extended attributes."""
        return os.listxattr(self.procfd.path(self.fd))

    def setxattr(self, name: str, value: bytes, flags: int = 0) -> None:
        """Set extended attribute `name` (flags: XATTR_CREATE/XATTR_REPLACE)."""
        _check_xattr_name(name)
        if flags & ~(os.XATTR_CREATE | os.XATTR_REPLACE):  # setxattr(2)'s check (and a u32
            raise OSError(errno.EINVAL, f"xattr flags {flags:#x}")  # beyond a C int)
        self.export.mutating()
        os.setxattr(self.procfd.path(self.fd), name, value, flags)

    def removexattr(self, name: str) -> None:
        """Remove extended attribute `name`."""
        _check_xattr_name(name)
        self.export.mutating()
        os.removexattr(self.procfd.path(self.fd), name)

    # -- filesystem ------------------------------------------------------------------------

    def statfs(self) -> StatFS:
        """fstatfs of the filesystem holding the node."""
        ftype, bsize, blocks, bfree, bavail, files, ffree, fsid0, fsid1, namelen = fstatfs(self.fd)
        return StatFS(
            ftype, bsize, blocks, bfree, bavail, files, ffree,
            (fsid0 & 0xFFFFFFFF) | ((fsid1 & 0xFFFFFFFF) << 32), namelen,
        )


