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

import ctypes
import errno
import fcntl
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "Export",
    "Node",
    "OpenFile",
    "Attr",
    "StatFS",
    "DirEntry",
    "ProcFD",
    "check_name",
    "SETATTR_MODE",
    "SETATTR_UID",
    "SETATTR_GID",
    "SETATTR_SIZE",
    "SETATTR_ATIME",
    "SETATTR_MTIME",
    "SETATTR_CTIME",
    "SETATTR_ATIME_SET",
    "SETATTR_MTIME_SET",
]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
# pread(2) into a caller's buffer: os.preadv would issue preadv2, which the confined gofer's
# seccomp allow-list does not include.
_pread = _libc.pread
_pread.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long)
_pread.restype = ctypes.c_ssize_t

QTDIR = 0x80
QTSYMLINK = 0x02
QTFILE = 0x00

SETATTR_MODE = 0x1
SETATTR_UID = 0x2
SETATTR_GID = 0x4
SETATTR_SIZE = 0x8
SETATTR_ATIME = 0x10
SETATTR_MTIME = 0x20
SETATTR_CTIME = 0x40
SETATTR_ATIME_SET = 0x80
SETATTR_MTIME_SET = 0x100

_UTIME_NOW = (1 << 30) - 1
_UTIME_OMIT = (1 << 30) - 2
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


# --- openat2 -----------------------------------------------------------------------------

_SYS_OPENAT2 = 437
_RESOLVE_NO_XDEV = 0x01
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_O_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_HOW_XDEV = _OpenHow(
    _O_PATH_FLAGS, 0, _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS | _RESOLVE_BENEATH | _RESOLVE_NO_XDEV
)
_HOW_SUBMOUNTS = _OpenHow(
    _O_PATH_FLAGS, 0, _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS | _RESOLVE_BENEATH
)
_HOW_SIZE = ctypes.sizeof(_OpenHow)


def _probe_openat2() -> bool:
    root = os.open("/", os.O_PATH | os.O_CLOEXEC)
    try:
        fd = _libc.syscall(_SYS_OPENAT2, root, b".", ctypes.byref(_HOW_SUBMOUNTS), _HOW_SIZE)
    finally:
        os.close(root)
    if fd >= 0:
        os.close(fd)
        return True
    return False


HAVE_OPENAT2 = _probe_openat2()


def lookup_resolve(export: Export) -> int | None:
    """The RESOLVE_* flags `Node.walk` looks names up with, for a lookup made elsewhere by
    openat2(2) alone (p9's C walk, `p9.File.walk_source`); None when `Node.walk` does more:
    without openat2, or with submounts (a pseudo filesystem is refused after the lookup)."""
    if not HAVE_OPENAT2 or export.submounts:
        return None
    return _HOW_XDEV.resolve


# statx, for btime and the mount id
_SYS_STATX = 332
_AT_EMPTY_PATH = 0x1000
_AT_SYMLINK_NOFOLLOW = 0x100
_STATX_BASIC = 0x7FF
_STATX_BTIME = 0x800
_STATX_MNT_ID = 0x1000
_STATX = struct.Struct("=IIQIIIHxxQQQQ16s16s16s16sIIIIQ")
_STATX_SIZE = 256


def _statx(fd: int, mask: int) -> tuple:
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    r = _libc.syscall(
        _SYS_STATX, fd, b"", _AT_EMPTY_PATH | _AT_SYMLINK_NOFOLLOW, mask, buf
    )
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return _STATX.unpack_from(buf.raw)


def _mnt_id(fd: int) -> int:
    return _statx(fd, _STATX_MNT_ID)[-1]


_TS = struct.Struct("=qIi")  # struct statx_timestamp


# Kernel interfaces that are never served, even from an export with `submounts` (say "/"):
# procfs (other processes' memory, environment and magic links), sysfs, devpts, debugfs,
# tracefs, securityfs, cgroup v1/v2, bpffs, efivarfs, pstore, configfs, fusectl, binfmt_misc,
# selinuxfs, mqueue, nsfs.
PSEUDO_FS_TYPES = frozenset({
    0x9FA0, 0x62656572, 0x1CD1, 0x64626720, 0x74726163, 0x73636673, 0x27E0EB, 0x63677270,
    0xCAFE4A11, 0xDE5E81E4, 0x6165676C, 0x62656570, 0x65735543, 0x42494E4D, 0xF97CFF8C,
    0x19800202, 0x6E736673,
})


def _fs_type(fd: int) -> int:
    buf = ctypes.create_string_buffer(120)
    if _libc.fstatfs(fd, buf) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return struct.unpack_from("=q", buf.raw)[0]


def _refuse_pseudo_fs(fd: int, name: str) -> None:
    try:
        ftype = _fs_type(fd)
    except BaseException:
        os.close(fd)
        raise
    if ftype in PSEUDO_FS_TYPES:
        os.close(fd)
        raise OSError(errno.ENOENT, f"{name!r} is a kernel pseudo filesystem ({ftype:#x}), not exported")


# --- the /proc/<pid>/fd directory ----------------------------------------------------------


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


# --- attributes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attr:
    """What Rgetattr reports: the stat fields, plus btime when asked and available."""

    qid_type: int
    qid_path: int
    mode: int
    uid: int
    gid: int
    nlink: int
    rdev: int
    size: int
    blksize: int
    blocks: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    btime: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class StatFS:
    """What Rstatfs reports."""

    type: int
    bsize: int
    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int
    fsid: int
    namelen: int


class DirEntry(NamedTuple):
    """One Rreaddir entry: its qid, the offset of the next entry, its d_type and name.

    A named tuple, not a dataclass: a 100,000-entry directory builds 100,000 of them.
    """

    qid_type: int
    qid_path: int
    offset: int
    dtype: int
    name: bytes


def qid_type_of(mode: int) -> int:
    """The 9P qid type for a st_mode."""
    if stat.S_ISDIR(mode):
        return QTDIR
    if stat.S_ISLNK(mode):
        return QTSYMLINK
    return QTFILE


_DT_QID = {4: QTDIR, 10: QTSYMLINK}


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
    """

    name: str
    path: str
    readonly: bool = False
    submounts: bool = False
    allow_devices: bool = False
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
        self._root_mnt = _mnt_id(fd)

    def close(self) -> None:
        """Release the root descriptor."""
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def root(self) -> Node:
        """A new reference to the export root (a fresh O_PATH descriptor)."""
        fd = os.open(".", _O_PATH_FLAGS | os.O_DIRECTORY, dir_fd=self.root_fd)
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
            how = _HOW_SUBMOUNTS if exp.submounts else _HOW_XDEV
            fd = _libc.syscall(_SYS_OPENAT2, self.fd, os.fsencode(name), ctypes.byref(how), _HOW_SIZE)
            if fd < 0:
                e = ctypes.get_errno()
                if e == errno.EXDEV:  # RESOLVE_NO_XDEV: a mount point the export does not cover
                    raise OSError(errno.ENOENT, f"{name!r} is a mount point (not exported)")
                raise OSError(e, f"{os.strerror(e)}: {name!r}")
            if exp.submounts:
                _refuse_pseudo_fs(fd, name)
            return fd
        fd = os.open(name, _O_PATH_FLAGS, dir_fd=self.fd)
        if not exp.submounts and _mnt_id(fd) != exp._root_mnt:
            os.close(fd)
            raise OSError(errno.ENOENT, f"{name!r} is a mount point (not exported)")
        if exp.submounts:
            _refuse_pseudo_fs(fd, name)
        return fd

    def path_names(self) -> list[str]:
        """The logical path from the export root (for messages and re-walks)."""
        names: list[str] = []
        node: Node | None = self
        while node is not None and node.parent is not None:
            names.append(node.name)
            node = node.parent
        return names[::-1]

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

    def _statx_attr(self) -> Attr:
        f = _statx(self.fd, _STATX_BASIC | _STATX_BTIME)
        mode = f[6]
        qpath = self.export.qid_path_of(os.makedev(f[17], f[18]), f[7])
        a, b, c, m = (_TS.unpack(t) for t in (f[11], f[12], f[13], f[14]))
        return Attr(
            qid_type_of(mode), qpath, mode, f[4], f[5], f[3], os.makedev(f[15], f[16]), f[8],
            f[1], f[9], a[0] * 10**9 + a[1], m[0] * 10**9 + m[1], c[0] * 10**9 + c[1],
            (b[0], b[1]) if f[0] & _STATX_BTIME else None,
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
    ) -> None:
        """Change attributes in Linux's order of effect: owner, mode, size, times.

        `valid` holds SETATTR_* bits (9P2000.L's). ATIME/MTIME without the *_SET bit mean
        "now" (which needs only write access); with it, the explicit (sec, nsec) given.

        Raises:
            OSError(EROFS): read-only export. OSError(EPERM/EACCES): from the host.
        """
        if not valid & ~SETATTR_CTIME:
            return
        self.export.mutating()
        pf = self.procfd
        st = os.stat(self.fd)
        if valid & (SETATTR_UID | SETATTR_GID):
            os.chown(
                str(self.fd),
                uid if valid & SETATTR_UID else -1,
                gid if valid & SETATTR_GID else -1,
                dir_fd=pf.dirfd,
            )
        if valid & SETATTR_MODE:
            if stat.S_ISLNK(st.st_mode):
                raise OSError(errno.EOPNOTSUPP, "cannot chmod a symlink")
            os.chmod(str(self.fd), stat.S_IMODE(mode), dir_fd=pf.dirfd)
        if valid & SETATTR_SIZE:
            if stat.S_ISDIR(st.st_mode):
                raise OSError(errno.EISDIR, "truncate of a directory")
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, "truncate of a non-regular file")
            fd = pf.open(self.fd, os.O_WRONLY | os.O_NONBLOCK)
            try:
                os.ftruncate(fd, size)
            finally:
                os.close(fd)
        if valid & (SETATTR_ATIME | SETATTR_MTIME):
            times = (_Timespec * 2)()
            for i, (bit, setbit, value) in enumerate(
                ((SETATTR_ATIME, SETATTR_ATIME_SET, atime), (SETATTR_MTIME, SETATTR_MTIME_SET, mtime))
            ):
                if not valid & bit:
                    times[i].tv_sec, times[i].tv_nsec = 0, _UTIME_OMIT
                elif valid & setbit:
                    times[i].tv_sec, times[i].tv_nsec = value
                else:
                    times[i].tv_sec, times[i].tv_nsec = 0, _UTIME_NOW
            r = _libc.utimensat(pf.dirfd, str(self.fd).encode(), times, 0)
            if r < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))

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
        cur = os.open(".", _O_PATH_FLAGS | os.O_DIRECTORY, dir_fd=self.fd) if stat.S_ISDIR(
            st.st_mode) else -1
        if cur < 0:
            return  # not a directory: the create itself answers ENOTDIR
        try:
            for _ in range(4096):
                if (st.st_dev, st.st_ino) == want:
                    return
                up = os.open("..", _O_PATH_FLAGS | os.O_DIRECTORY, dir_fd=cur)
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
        """mknodat(2) here (fifos, sockets, regular files; devices only with CAP_MKNOD)."""
        check_name(name, creating=True)
        self.export.mutating()
        self._still_beneath()
        os.mknod(name, mode, os.makedev(major, minor), dir_fd=self.fd)
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

    def chown_new(self, name: str, uid: int, gid: int) -> None:
        """Give a just-created entry an owner (used when identities are not switched)."""
        os.chown(name, uid, gid, dir_fd=self.fd, follow_symlinks=False)

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
        return os.getxattr(self.procfd.path(self.fd), name)

    def listxattr(self) -> list[str]:
        """The names of the node's extended attributes."""
        return os.listxattr(self.procfd.path(self.fd))

    def setxattr(self, name: str, value: bytes, flags: int = 0) -> None:
        """Set extended attribute `name` (flags: XATTR_CREATE/XATTR_REPLACE)."""
        self.export.mutating()
        os.setxattr(self.procfd.path(self.fd), name, value, flags)

    def removexattr(self, name: str) -> None:
        """Remove extended attribute `name`."""
        self.export.mutating()
        os.removexattr(self.procfd.path(self.fd), name)

    # -- filesystem ------------------------------------------------------------------------

    def statfs(self) -> StatFS:
        """fstatfs of the filesystem holding the node."""
        buf = ctypes.create_string_buffer(120)
        if _libc.fstatfs(self.fd, buf) < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        (ftype, bsize, blocks, bfree, bavail, files, ffree, fsid0, fsid1, namelen) = struct.unpack_from(
            "=qqQQQQQiiq", buf.raw
        )
        return StatFS(
            ftype, bsize, blocks, bfree, bavail, files, ffree,
            (fsid0 & 0xFFFFFFFF) | ((fsid1 & 0xFFFFFFFF) << 32), namelen,
        )


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Timespec), ctypes.c_int]
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]

_FLOCK = struct.Struct("hhqqi4x")

LOCK_SUCCESS = 0
LOCK_BLOCKED = 1
LOCK_ERROR = 2


class OpenFile:
    """An open descriptor for a node (what a fid holds after Tlopen/Tlcreate)."""

    __slots__ = ("fd", "node", "mode", "_dir")

    def __init__(self, fd: int, node: Node, mode: int) -> None:
        self.fd = fd
        self.node = node
        self.mode = mode
        self._dir: list[DirEntry] | None = None

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self._dir = None

    def read(self, offset: int, count: int) -> bytes:
        """pread(2)."""
        if stat.S_ISDIR(self.mode):
            raise OSError(errno.EISDIR, "read of a directory")
        if stat.S_ISFIFO(self.mode) or stat.S_ISCHR(self.mode):
            return os.read(self.fd, count)
        return os.pread(self.fd, count, offset)

    def readinto(self, offset: int, buf: memoryview) -> int:
        """pread(2) into the writable `buf` (what `read` does, without allocating a result)."""
        if stat.S_ISDIR(self.mode):
            raise OSError(errno.EISDIR, "read of a directory")
        if stat.S_ISFIFO(self.mode) or stat.S_ISCHR(self.mode):
            return os.readv(self.fd, [buf])
        n = len(buf)
        if n == 0:
            return 0
        if not 0 <= offset < 1 << 63:
            raise OSError(errno.EINVAL, f"read offset {offset} beyond loff_t")
        r = _pread(self.fd, ctypes.addressof(ctypes.c_char.from_buffer(buf)), n, offset)
        if r < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return r

    def write(self, offset: int, data: bytes) -> int:
        """pwrite(2) (which appends on an O_APPEND descriptor, as Linux does)."""
        if stat.S_ISFIFO(self.mode) or stat.S_ISCHR(self.mode):
            return os.write(self.fd, data)
        return os.pwrite(self.fd, data, offset)

    def fsync(self, datasync: bool = False) -> None:
        """fsync(2) or fdatasync(2)."""
        (os.fdatasync if datasync else os.fsync)(self.fd)

    def fallocate(self, mode: int, offset: int, length: int) -> None:
        """fallocate(2) with its mode bits (KEEP_SIZE, PUNCH_HOLE, ...)."""
        self.node.export.mutating()
        if _libc.fallocate(self.fd, mode, offset, length) < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))

    def lock(self, ltype: int, start: int, length: int) -> int:
        """Set or clear a byte-range lock without waiting; returns LOCK_SUCCESS/BLOCKED.

        Open-file-description locks (F_OFD_SETLK), so two fids conflict with each other as two
        processes' POSIX locks would, although the gofer is one process. A client asking to
        block is answered LOCK_BLOCKED and retries, as 9P2000.L intends.
        """
        try:
            fcntl.fcntl(self.fd, fcntl.F_OFD_SETLK, _FLOCK.pack(ltype, os.SEEK_SET, start, length, 0))
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                return LOCK_BLOCKED
            raise
        return LOCK_SUCCESS

    def getlock(self, ltype: int, start: int, length: int) -> tuple[int, int, int, int]:
        """F_OFD_GETLK: (type, start, length, pid) of a conflicting lock, or F_UNLCK."""
        out = fcntl.fcntl(self.fd, fcntl.F_OFD_GETLK, _FLOCK.pack(ltype, os.SEEK_SET, start, length, 0))
        t, _w, s, ln, pid = _FLOCK.unpack(out)
        return t, s, ln, pid

    def entries(self, offset: int) -> list[tuple[int, int, int, int, bytes]]:
        """The directory snapshot to serve `offset` from (offset 0 takes a fresh one).

        Offsets are positions in a snapshot taken when a client starts reading at 0, so they
        stay stable across calls whatever happens to the directory meanwhile, and each call
        costs only what it returns. '.' and '..' come first, as getdents(2) gives them. Entry
        i (0-based) has offset i + 1, the cookie of the entry after it. Rows are plain tuples
        in `DirEntry`'s field order (building 100,000 named tuples costs measurably more).
        """
        if not stat.S_ISDIR(self.mode):
            raise OSError(errno.ENOTDIR, "readdir of a non-directory")
        if offset < 0:
            raise OSError(errno.EINVAL, f"bad readdir offset {offset}")
        if offset == 0 or self._dir is None:
            self._dir = self._snapshot()
        return self._dir

    def readdir(self, offset: int) -> Iterator[DirEntry]:
        """The entries from `offset` on (see `entries`)."""
        d = self.entries(offset)
        return (DirEntry._make(d[i]) for i in range(offset, len(d)))

    def _snapshot(self) -> list[tuple[int, int, int, int, bytes]]:
        node = self.node
        exp = node.export
        entries: list[tuple[int, int, int, int, bytes]] = []
        for name, n in ((b".", node), (b"..", node.parent or node)):
            st = os.stat(n.fd)
            entries.append((QTDIR, exp.qid_path(st), len(entries) + 1, 4, name))
        idx = exp._devs.get(os.stat(node.fd).st_dev, 0) << 56
        append = entries.append
        # A bytes path gives bytes names (no re-encoding per entry); the path names this
        # open directory through our fd directory, so nothing is resolved on the host.
        off = len(entries)
        with os.scandir(os.fsencode(node.procfd.path(self.fd))) as it:
            for e in it:
                off += 1
                # Regular files first: the common case costs one cached d_type check.
                if e.is_file(follow_symlinks=False):
                    append((QTFILE, e.inode() ^ idx, off, 8, e.name))
                elif e.is_dir(follow_symlinks=False):
                    append((QTDIR, e.inode() ^ idx, off, 4, e.name))
                elif e.is_symlink():
                    append((QTSYMLINK, e.inode() ^ idx, off, 10, e.name))
                else:
                    append((QTFILE, e.inode() ^ idx, off, _dtype(e), e.name))
        return entries


def _dtype(e: os.DirEntry) -> int:
    # os.DirEntry caches d_type; these calls do not stat unless d_type was DT_UNKNOWN.
    if e.is_symlink():
        return 10
    if e.is_dir(follow_symlinks=False):
        return 4
    if e.is_file(follow_symlinks=False):
        return 8
    try:
        m = e.stat(follow_symlinks=False).st_mode
    except OSError:
        return 0
    return {stat.S_IFIFO: 1, stat.S_IFCHR: 2, stat.S_IFBLK: 6, stat.S_IFSOCK: 12}.get(stat.S_IFMT(m), 0)
