"""tmpfs: files in memory, with Linux's link counts, times, sparse files and size limit.

File data lives in one memfd per regular file (created on first write), so that sparse
files, SEEK_DATA/SEEK_HOLE, fallocate and st_blocks behave exactly as Linux's shmem does
(they *are* shmem), and so that a later issue can map a file's pages shared into an
application. The directory tree is the dentry tree: `Dentry.children` is the directory.
Each entry gets a sequence number when it enters a directory; listings go newest first
(as Linux's tmpfs) and cookies derived from the numbers stay valid while other entries
come and go.

File seals (fcntl F_ADD_SEALS, for memfd_create's files, which are tmpfs files) are the
inode's, as in shmem: every file starts with F_SEAL_SEAL (no seal can be added), and the
seals it has refuse writes, growing, shrinking and changes of the exec bits with EPERM.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource

from ..abi import (
    FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_PUNCH_HOLE,
    FALLOC_FL_ZERO_RANGE,
    RENAME_EXCHANGE,
    S_IFDIR,
    S_IFLNK,
    S_IFMT,
    S_IFREG,
    S_ISGID,
    S_ISUID,
    SEEK_DATA,
    TMPFS_MAGIC,
    Stat,
    StatFS,
    dtype_of,
)
from ..creds import Credentials
from ..dentry import Dentry, Inode, now_ns
from ..errors import error
from ..file import DirectoryFD, FileDescription, RegularFD
from ..filesystem import Filesystem, InodeCounter
from ..memlimit import MemoryLimit
from ..perm import mode_after_write

MAX_FILE_SIZE = (1 << 63) - 1
BOGO_DIRENT_SIZE = 20  # shmem's directory size per entry
XATTR_CREATE, XATTR_REPLACE = 1, 2
XATTR_SIZE_MAX = 65536

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
_nofile_raised = False
#: File seals (fcntl F_ADD_SEALS), Linux's values.
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 0x1, 0x2, 0x4, 0x8
F_SEAL_FUTURE_WRITE, F_SEAL_EXEC = 0x10, 0x20
F_SEAL_ALL = 0x3F


def _memfd() -> int:
    global _nofile_raised
    if not _nofile_raised:
        _nofile_raised = True
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            except (ValueError, OSError):
                pass
    return os.memfd_create("runpsc-tmpfs", os.MFD_CLOEXEC)


class TmpfsInode(Inode):
    """A tmpfs inode: symlink target, directory cookie counter, file memfd, seals."""

    __slots__ = ("target", "next_seq", "memfd", "opens", "seals")

    def __init__(self, ino: int, mode: int, uid: int, gid: int, rdev: int = 0) -> None:
        super().__init__(ino, mode, uid, gid, rdev)
        self.target = b""
        self.next_seq = 3
        self.memfd = -1
        self.opens = 0
        self.seals = F_SEAL_SEAL

    def free_data(self) -> None:
        if self.memfd >= 0:
            os.close(self.memfd)
            self.memfd = -1


class Tmpfs(Filesystem):
    """An in-memory filesystem.

    Args:
        size: byte limit for file data (ENOSPC beyond it); None for no limit.
        mode: permission bits of the root directory.
        uid, gid: owner of the root directory.
        nr_inodes: limit on files (ENOSPC); None for none.
        memory: the sandbox's memory limit, which file data is charged to as well (ENOSPC
            when it is used up, whatever this tmpfs's own size), as shmem pages are charged
            to a container's memory cgroup.
    """

    fstype = "tmpfs"
    magic = TMPFS_MAGIC

    def __init__(self, *, size: int | None = None, mode: int = 0o1777, uid: int = 0,
                 gid: int = 0, nr_inodes: int | None = None,
                 memory: MemoryLimit | None = None) -> None:
        super().__init__()
        self.size_limit = size
        self.memory = memory
        self.nr_inodes = nr_inodes
        self.used = 0
        self.inodes = 0
        self._ino = InodeCounter(1)
        root_inode = self._new_inode(S_IFDIR | (mode & 0o7777), uid, gid)
        self.root = Dentry(self, b"/", None, root_inode)

    # -- helpers ------------------------------------------------------------------------------

    def _new_inode(self, mode: int, uid: int, gid: int, rdev: int = 0) -> TmpfsInode:
        if self.nr_inodes is not None and self.inodes >= self.nr_inodes:
            raise error(errno.ENOSPC)
        self.inodes += 1
        ino = TmpfsInode(self._ino(), mode, uid, gid, rdev)
        if mode & S_IFMT == S_IFDIR:
            ino.size = 2 * BOGO_DIRENT_SIZE  # what Linux's shmem reports
        return ino

    def _add(self, parent: Dentry, child: Dentry) -> None:
        pi = _inode(parent)
        child.seq = pi.next_seq
        pi.next_seq += 1
        child.parent = parent
        parent.children[child.name] = child
        pi.size += BOGO_DIRENT_SIZE
        if child.inode.is_dir:
            pi.nlink += 1
        t = now_ns()
        pi.mtime_ns = pi.ctime_ns = t

    def _remove(self, parent: Dentry, child: Dentry) -> None:
        del parent.children[child.name]
        pi = parent.inode
        pi.size -= BOGO_DIRENT_SIZE
        if child.inode.is_dir:
            pi.nlink -= 1
        t = now_ns()
        pi.mtime_ns = pi.ctime_ns = t

    def _drop_link(self, child: Dentry) -> None:
        ino = _inode(child)
        ino.nlink -= 1 if not ino.is_dir else ino.nlink
        ino.ctime_ns = now_ns()
        child.dead = True
        if ino.nlink <= 0:
            self._maybe_free(ino)

    def _maybe_free(self, ino: TmpfsInode) -> None:
        if ino.nlink <= 0 and ino.opens == 0:
            self.inodes -= 1
            if ino.memfd >= 0:
                self._account(-ino.size)
                ino.free_data()

    def _reserve(self, ino: TmpfsInode, new_size: int) -> None:
        grow = new_size - ino.size
        if grow > 0 and self.size_limit is not None and self.used + grow > self.size_limit:
            raise error(errno.ENOSPC)
        if self.memory is not None:
            self.memory.check(grow, errno.ENOSPC)

    def _account(self, delta: int) -> None:
        """File data grew (or shrank) by `delta` bytes, checked by `_reserve` first."""
        self.used += delta
        if self.memory is not None:
            self.memory.charge("tmpfs", delta)

    def _resize(self, ino: TmpfsInode, new_size: int) -> None:
        if new_size > MAX_FILE_SIZE:
            raise error(errno.EFBIG)
        self._reserve(ino, new_size)
        if ino.memfd < 0:
            if new_size == 0:
                return
            ino.memfd = _memfd()
        os.ftruncate(ino.memfd, new_size)
        self._account(new_size - ino.size)
        ino.size = new_size

    # -- Filesystem interface ------------------------------------------------------------------

    async def stat(self, d: Dentry) -> Stat:
        ino = _inode(d)
        st = ino.to_stat(self.dev)
        if ino.memfd >= 0:
            st.blocks = os.fstat(ino.memfd).st_blocks
        elif ino.type == S_IFLNK:
            st.size = len(ino.target)
        return st

    async def setattr(self, d: Dentry, *, mode: int | None = None, uid: int | None = None,
                      gid: int | None = None, size: int | None = None,
                      atime_ns: int | None = None, mtime_ns: int | None = None,
                      ctime_ns: int | None = None) -> None:
        ino = _inode(d)
        if mode is not None and ino.seals & F_SEAL_EXEC and (ino.mode ^ mode) & 0o111:
            raise error(errno.EPERM)
        if size is not None:
            self.truncate(ino, size)
        ino.set_attrs(mode=mode, uid=uid, gid=gid, atime_ns=atime_ns, mtime_ns=mtime_ns,
                      ctime_ns=ctime_ns)

    def truncate(self, ino: TmpfsInode, size: int) -> None:
        """Set the size of a regular file (setattr's size, and ftruncate of an fd opened
        without a name)."""
        if ino.type != S_IFREG:
            raise error(errno.EINVAL)
        if (size < ino.size and ino.seals & F_SEAL_SHRINK
                or size > ino.size and ino.seals & F_SEAL_GROW):
            raise error(errno.EPERM)
        if size != ino.size:
            self._resize(ino, size)
        # Linux (6.x shmem) moves mtime/ctime on every truncate, even to the same size
        ino.mtime_ns = ino.ctime_ns = now_ns()

    async def readlink(self, d: Dentry) -> bytes:
        ino = _inode(d)
        if ino.type != S_IFLNK:
            raise error(errno.EINVAL)
        return ino.target

    async def statfs(self) -> StatFS:
        limit = self.size_limit if self.size_limit is not None else 1 << 40
        blocks = limit // 4096
        free = max(0, (limit - self.used) // 4096)
        files = self.nr_inodes if self.nr_inodes is not None else 1 << 20
        return StatFS(type=TMPFS_MAGIC, blocks=blocks, bfree=free, bavail=free, files=files,
                      ffree=max(0, files - self.inodes), fsid=self.dev)

    async def mknod(self, parent: Dentry, name: bytes, mode: int, rdev: int, uid: int,
                    gid: int) -> Dentry:
        d = Dentry(self, name, parent, self._new_inode(mode, uid, gid, rdev))
        self._add(parent, d)
        return d

    async def mkdir(self, parent: Dentry, name: bytes, mode: int, uid: int, gid: int) -> Dentry:
        return await self.mknod(parent, name, (mode & ~S_IFMT) | S_IFDIR, 0, uid, gid)

    async def symlink(self, parent: Dentry, name: bytes, target: bytes, uid: int,
                      gid: int) -> Dentry:
        ino = self._new_inode(S_IFLNK | 0o777, uid, gid)
        ino.target = target
        ino.size = len(target)
        d = Dentry(self, name, parent, ino)
        self._add(parent, d)
        return d

    async def link(self, parent: Dentry, name: bytes, target: Dentry) -> Dentry:
        ino = target.inode
        ino.nlink += 1
        ino.ctime_ns = now_ns()
        d = Dentry(self, name, parent, ino)
        self._add(parent, d)
        return d

    async def unlink(self, parent: Dentry, child: Dentry) -> None:
        self._remove(parent, child)
        self._drop_link(child)

    async def rmdir(self, parent: Dentry, child: Dentry) -> None:
        if child.children:
            raise error(errno.ENOTEMPTY)
        self._remove(parent, child)
        self._drop_link(child)

    async def rename(self, old_parent: Dentry, child: Dentry, new_parent: Dentry,
                     new_name: bytes, replaced: Dentry | None, flags: int) -> None:
        if flags & RENAME_EXCHANGE and replaced is not None:
            old_name = child.name
            self._remove(old_parent, child)
            self._remove(new_parent, replaced)
            replaced.name = old_name
            child.name = new_name
            self._add(new_parent, child)
            self._add(old_parent, replaced)
            t = now_ns()
            child.inode.ctime_ns = replaced.inode.ctime_ns = t
            return
        if replaced is not None:
            if replaced.inode.is_dir and replaced.children:
                raise error(errno.ENOTEMPTY)
            self._remove(new_parent, replaced)
            self._drop_link(replaced)
        self._remove(old_parent, child)
        child.name = new_name
        self._add(new_parent, child)
        child.inode.ctime_ns = now_ns()

    async def open(self, d: Dentry, flags: int, creds: Credentials) -> FileDescription:
        ino = _inode(d)
        if ino.is_dir:
            return TmpfsDirFD(None, flags, d)
        if ino.type != S_IFREG:
            raise error(errno.ENXIO)
        ino.opens += 1
        fd = TmpfsFileFD(None, flags, self, ino)
        fd.writer = creds
        return fd

    async def tmpfile(self, parent: Dentry, mode: int, uid: int, gid: int) -> Dentry:
        ino = self._new_inode(mode, uid, gid)
        ino.nlink = 0
        return Dentry(self, b"#%d" % ino.ino, parent, ino)

    async def getxattr(self, d: Dentry, name: bytes) -> bytes:
        x = d.inode.xattrs
        if not x or name not in x:
            raise error(errno.ENODATA)
        return x[name]

    async def setxattr(self, d: Dentry, name: bytes, value: bytes, flags: int) -> None:
        if len(value) > XATTR_SIZE_MAX:
            raise error(errno.E2BIG)
        ino = d.inode
        x = ino.xattrs
        if x is None:
            x = ino.xattrs = {}
        if flags & XATTR_CREATE and name in x:
            raise error(errno.EEXIST)
        if flags & XATTR_REPLACE and name not in x:
            raise error(errno.ENODATA)
        x[name] = bytes(value)
        ino.ctime_ns = now_ns()

    async def listxattr(self, d: Dentry) -> list[bytes]:
        return list(d.inode.xattrs or ())

    async def removexattr(self, d: Dentry, name: bytes) -> None:
        x = d.inode.xattrs
        if not x or name not in x:
            raise error(errno.ENODATA)
        del x[name]
        d.inode.ctime_ns = now_ns()


class TmpfsFileFD(RegularFD):
    """An open tmpfs regular file: reads and writes go to the inode's memfd."""

    def __init__(self, vd: object, flags: int, fs: Tmpfs, inode: TmpfsInode) -> None:
        super().__init__(None, flags)
        self.fs = fs
        self.inode = inode
        #: who writes (the opener): decides whether writes drop set-uid/set-gid
        self.writer: Credentials | None = None

    def file_size(self) -> int:
        return self.inode.size

    async def do_pread(self, n: int, offset: int) -> bytes:
        ino = self.inode
        if ino.memfd < 0 or offset >= ino.size:
            return b""
        return os.pread(ino.memfd, min(n, ino.size - offset), offset)

    async def do_pwrite(self, data: bytes, offset: int) -> int:
        ino = self.inode
        if not data:
            return 0
        end = offset + len(data)
        if end > MAX_FILE_SIZE:
            raise error(errno.EFBIG)
        if ino.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_GROW):
            if ino.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) or end > ino.size:
                raise error(errno.EPERM)
        if end > ino.size:
            self.fs._reserve(ino, end)
        if ino.mode & (S_ISUID | S_ISGID):
            mode = mode_after_write(self.writer, ino.mode, ino.gid)
            if mode != ino.mode:
                ino.mode = mode
                ino.ctime_ns = now_ns()
        if ino.memfd < 0:
            ino.memfd = _memfd()
        n = os.pwrite(ino.memfd, data, offset)
        if offset + n > ino.size:
            self.fs._account(offset + n - ino.size)
            ino.size = offset + n
        ino.mtime_ns = ino.ctime_ns = now_ns()
        return n

    async def seek_data_hole(self, offset: int, whence: int) -> int:
        ino = self.inode
        if offset < 0 or offset >= ino.size:
            raise error(errno.ENXIO)
        if ino.memfd < 0:
            if whence == SEEK_DATA:
                raise error(errno.ENXIO)
            return ino.size
        try:
            return os.lseek(ino.memfd, offset, whence)
        except OSError as e:
            raise error(e.errno or errno.EIO) from None

    async def do_truncate(self, size: int) -> None:
        self.fs.truncate(self.inode, size)

    async def do_fallocate(self, mode: int, offset: int, length: int) -> None:
        ino = self.inode
        if mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
            raise error(errno.EOPNOTSUPP)
        end = offset + length
        if end > MAX_FILE_SIZE:
            raise error(errno.EFBIG)
        if mode & FALLOC_FL_PUNCH_HOLE:
            if ino.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE):
                raise error(errno.EPERM)
        elif ino.seals & F_SEAL_GROW and end > ino.size:
            raise error(errno.EPERM)
        if not mode & FALLOC_FL_KEEP_SIZE and end > ino.size:
            self.fs._reserve(ino, end)
        if ino.memfd < 0:
            if mode & FALLOC_FL_PUNCH_HOLE:
                return
            ino.memfd = _memfd()
        if _libc.fallocate(ino.memfd, mode, offset, length) != 0:
            e = ctypes.get_errno()
            raise error(e)
        if not mode & FALLOC_FL_KEEP_SIZE and end > ino.size:
            self.fs._account(end - ino.size)
            ino.size = end
        ino.mtime_ns = ino.ctime_ns = now_ns()

    async def release(self) -> None:
        ino = self.inode
        ino.opens -= 1
        self.fs._maybe_free(ino)

    @property
    def memfd(self) -> int:
        """The host fd holding the data (for shared mappings); -1 while empty."""
        return self.inode.memfd


def _inode(d: Dentry) -> TmpfsInode:
    """The inode of a tmpfs dentry (every one a Tmpfs makes holds a TmpfsInode;
    `Dentry.inode` is typed as the base class; no `cast`: a call more on every stat)."""
    return d.inode  # type: ignore[return-value]


class TmpfsDirFD(DirectoryFD):
    """An open tmpfs directory, listed newest entry first as Linux's tmpfs lists it.

    Cookies: 1 after ".", 2 after "..", then `TOP - seq` after the entry with sequence
    number `seq` (a newer entry has a higher seq, so cookies grow along the listing and
    resuming at a cookie continues with the older entries, whatever came and went).
    """

    TOP = 1 << 62

    def __init__(self, vd: object, flags: int, dentry: Dentry) -> None:
        super().__init__(None, flags)
        self.dentry = dentry

    async def entries(self, cookie: int) -> list[tuple[int, int, int, bytes]]:
        d = self.dentry
        out = self.dots(d, cookie)
        top = self.TOP
        below = top - cookie if cookie > 2 else top
        for child in reversed(d.children.values()):
            if child.seq < below:
                out.append((top - child.seq, child.inode.ino, dtype_of(child.inode.mode),
                            child.name))
        return out


__all__ = ["Tmpfs", "TmpfsInode", "TmpfsFileFD", "TmpfsDirFD"]
