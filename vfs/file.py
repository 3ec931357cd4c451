"""Open file descriptions: one interface for every kind of open file.

`FileDescription` is Linux's `struct file`: the offset, the status flags and a reference
count shared by every fd that points at it (dup, fork, SCM_RIGHTS). Public methods
(`read`, `pwrite`, `seek`, `getdents64`, `ioctl` ...) do the checks that are the same for
every file (access mode, O_PATH, negative offsets, O_APPEND) and call the `do_*` hooks a
subclass overrides. The defaults answer Linux's errno for a file that does not support the
operation (as gVisor's FileDescriptionDefaultImpl does): EINVAL for read/write, ESPIPE for
positional I/O and seek, ENOTDIR for getdents, ENOTTY for ioctl, ENODEV for fallocate.

Readiness for poll/epoll: `readiness(mask)` answers now, `waitq` notifies changes, and
`wait_ready(mask)` awaits until something in `mask` (or POLLERR/POLLHUP) is ready.

Change notification: a file opened by the VFS carries its `notifier`, to which reads,
writes, fallocate, listings and the last close report IN_ACCESS, IN_MODIFY and
IN_CLOSE_WRITE/NOWRITE (vfs.notify).
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import trio

from .abi import (
    DT_DIR,
    O_ACCMODE,
    O_APPEND,
    O_NOATIME,
    O_PATH,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLNVAL,
    POLLOUT,
    POLLRDNORM,
    POLLWRNORM,
    SEEK_CUR,
    SEEK_DATA,
    SEEK_END,
    SEEK_HOLE,
    SEEK_SET,
    SETFL_MASK,
    Stat,
    StatFS,
    pack_dirents64,
)
from .errors import error
from .notify import IN_ACCESS, IN_CLOSE_NOWRITE, IN_CLOSE_WRITE, IN_MODIFY

#: relatime: an atime older than this is updated by any access (fs/inode.c).
_RELATIME_NS = 24 * 3600 * 1_000_000_000
#: mount(2)'s MS_NOATIME and MS_NODIRATIME (vfs/mount.py names them too).
_MS_NOATIME, _MS_NODIRATIME = 0x400, 0x800

if TYPE_CHECKING:
    from .creds import Credentials
    from .dentry import Dentry
    from .mount import VirtualDentry
    from .notify import Notifier

MAX_RW = 0x7FFFF000  # MAX_RW_COUNT: Linux caps one read/write at this many bytes
MAX_OFF = (1 << 63) - 1


class Memory(Protocol):
    """Application memory as ioctl needs it (the Sentry's Task satisfies this)."""

    def mem_read(self, addr: int, n: int) -> bytes: ...

    def mem_write(self, addr: int, data: bytes) -> None: ...


class WaitQueue:
    """Callbacks to run when a file's readiness may have changed."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[Any] = []

    def subscribe(self, fn: Any) -> None:
        """Call `fn(mask)` on every notify until unsubscribed."""
        self._waiters.append(fn)

    def unsubscribe(self, fn: Any) -> None:
        try:
            self._waiters.remove(fn)
        except ValueError:
            pass

    def notify(self, mask: int) -> None:
        """Tell every subscriber that events in `mask` may now be ready."""
        if self._waiters:
            for fn in list(self._waiters):
                fn(mask)

    async def wait_for(self, ready: Callable[[], int], want: int = -1) -> int:
        """Wait until `ready()` is non-zero and return it; it is looked at again after each
        notify of events in `want` (by default any)."""
        while True:
            got = ready()
            if got:
                return got
            event = trio.Event()

            def wake(m: int, event: trio.Event = event) -> None:
                if m & want:
                    event.set()

            self.subscribe(wake)
            try:
                await event.wait()
            finally:
                self.unsubscribe(wake)


class FileDescription:
    """An open file. Subclass and override the `do_*` hooks a file supports.

    Attributes:
        vd: the (mount, dentry) it was opened at (anonymous files get an internal mount).
        flags: access mode and status flags (O_APPEND, O_NONBLOCK ...) as open gave them.
        offset: the file position.
        refs: references held (fd table slots, in-flight syscalls); `dec_ref` to zero
            calls `release`.
    """

    #: True if pread/pwrite/seek make sense (regular files, block devices, directories).
    seekable = False
    #: True if every readiness change is announced on `waitq` (what epoll's EPOLLET needs);
    #: False for files whose readiness only the host kernel sees (host fds).
    notifies_readiness = True
    #: Where this file's accesses and changes are reported (set by the VFS's open).
    notifier: Notifier | None = None

    def __init__(self, vd: VirtualDentry | None = None, flags: int = 0) -> None:
        self.vd = vd
        self.flags = flags
        self.offset = 0
        self.refs = 1
        self._waitq: WaitQueue | None = None

    # -- references ------------------------------------------------------------------------

    def inc_ref(self) -> FileDescription:
        self.refs += 1
        return self

    async def dec_ref(self) -> None:
        """Drop one reference; the last one releases the file (close(2) semantics)."""
        self.refs -= 1
        if self.refs == 0:
            if self.notifier is not None and self.vd is not None:
                self.notifier.closed(self.vd.dentry,
                                     IN_CLOSE_WRITE if self.writable else IN_CLOSE_NOWRITE)
            await self.release()

    def _notify(self, mask: int) -> None:
        if self.notifier is not None and self.vd is not None:
            self.notifier.file(self.vd.dentry, mask)

    def accessed(self) -> None:
        """A read or listing: the inode's atime, under Linux's default relatime rule
        (touch_atime): updated when it is not after the last change or is a day old;
        never through O_NOATIME or on a noatime mount (nodiratime: directories)."""
        vd = self.vd
        if vd is None or self.flags & O_NOATIME:
            return
        ino = vd.dentry.inode
        if vd.mount.flags & (_MS_NOATIME | (_MS_NODIRATIME if ino.is_dir else 0)):
            return
        now = time.time_ns()
        a = ino.atime_ns
        if a <= ino.mtime_ns or a <= ino.ctime_ns or now - a >= _RELATIME_NS:
            ino.atime_ns = now

    async def release(self) -> None:
        """The last reference is gone: flush and free (override to do more)."""

    async def flush(self) -> None:
        """close(2) of one fd (even if other references remain); write-back hook."""

    def closed_by(self, owner: int) -> None:
        """Process `owner` (the kernel's id for it) closed one fd of this file: what a
        flush hook that looks at the closing process does (an mqueue's notification)."""

    # -- flags ----------------------------------------------------------------------------

    @property
    def readable(self) -> bool:
        return self.flags & O_ACCMODE in (O_RDONLY, O_RDWR) and not self.flags & O_PATH

    @property
    def writable(self) -> bool:
        return self.flags & O_ACCMODE in (O_WRONLY, O_RDWR) and not self.flags & O_PATH

    @property
    def is_path(self) -> bool:
        return bool(self.flags & O_PATH)

    def get_status_flags(self) -> int:
        """F_GETFL: access mode and status flags."""
        return self.flags & ~0o2000000  # never O_CLOEXEC (that is per-fd)

    def set_status_flags(self, flags: int) -> None:
        """F_SETFL: change only the flags Linux lets change."""
        self.flags = (self.flags & ~SETFL_MASK) | (flags & SETFL_MASK)

    @property
    def waitq(self) -> WaitQueue:
        q = self._waitq
        if q is None:
            q = self._waitq = WaitQueue()
        return q

    # -- I/O (public, checked) -------------------------------------------------------------

    async def read(self, n: int) -> bytes:
        """read(2) of up to `n` bytes at the file position."""
        if not self.readable:
            raise error(errno.EBADF)
        if n < 0:
            raise error(errno.EINVAL)
        data = await self.do_read(min(n, MAX_RW))
        if data and self.notifier is not None:
            self._notify(IN_ACCESS)
        return data

    async def read_upto(self, n: int, fits: int) -> bytes:
        """read(2) of up to `n` bytes into a buffer whose first `fits` bytes (fewer than
        `n`) can be written before a fault. Linux copies what fits and returns the short
        count; a file with nothing to read still answers 0, and one with data but no room
        for a byte gives data the caller then fails to copy (EFAULT). Files whose Linux
        read copies in units (a pipe's pages) override this."""
        return await self.read(max(fits, 1))

    async def pread(self, n: int, offset: int) -> bytes:
        """pread64(2): read at `offset` without moving the file position."""
        if not self.readable:
            raise error(errno.EBADF)
        if offset < 0 or n < 0:
            raise error(errno.EINVAL)
        data = await self.do_pread(min(n, MAX_RW), offset)
        if data and self.notifier is not None:
            self._notify(IN_ACCESS)
        return data

    async def write(self, data: bytes) -> int:
        """write(2) at the file position (the end, with O_APPEND)."""
        if not self.writable:
            raise error(errno.EBADF)
        n = await self.do_write(data)
        if n > 0 and self.notifier is not None:
            self._notify(IN_MODIFY)
        return n

    async def pwrite(self, data: bytes, offset: int) -> int:
        """pwrite64(2): write at `offset` (Linux appends anyway under O_APPEND)."""
        if not self.writable:
            raise error(errno.EBADF)
        if offset < 0:
            raise error(errno.EINVAL)
        n = await self.do_pwrite(data, offset)
        if n > 0 and self.notifier is not None:
            self._notify(IN_MODIFY)
        return n

    async def seek(self, offset: int, whence: int) -> int:
        """lseek(2); returns the new position. A whence past SEEK_HOLE is EINVAL for
        every file, before the file's own rules (ESPIPE for a pipe), as Linux."""
        if self.flags & O_PATH:
            raise error(errno.EBADF)
        if not 0 <= whence <= SEEK_HOLE:
            raise error(errno.EINVAL)
        return await self.do_seek(offset, whence)

    async def getdents64(self, size: int) -> bytes:
        """getdents64(2): linux_dirent64 records filling at most `size` bytes."""
        if self.flags & O_PATH:
            raise error(errno.EBADF)
        data = await self.do_getdents64(size)
        if self.notifier is not None:
            self._notify(IN_ACCESS)
        return data

    async def ioctl(self, cmd: int, arg: int, mem: Memory | None = None) -> int:
        """ioctl(2); `mem` lets the file read/write the argument in application memory."""
        if self.flags & O_PATH:
            raise error(errno.EBADF)
        return await self.do_ioctl(cmd, arg, mem)

    async def truncate(self, size: int) -> None:
        """ftruncate(2) (the VFS checked permissions via the open mode)."""
        if size < 0:
            raise error(errno.EINVAL)
        if not self.writable:
            raise error(errno.EBADF if self.flags & O_PATH else errno.EINVAL)
        await self.do_truncate(size)

    async def fallocate(self, mode: int, offset: int, length: int) -> None:
        """fallocate(2), with vfs_fallocate's checks (punch hole needs KEEP_SIZE ...)."""
        if offset < 0 or length <= 0:
            raise error(errno.EINVAL)
        if mode & ~0x7F:  # beyond FALLOC_FL_SUPPORTED_MASK (a negative mode too)
            raise error(errno.EOPNOTSUPP)
        if mode & 0x2 and (not mode & 0x1 or mode & 0x10):  # PUNCH_HOLE
            raise error(errno.EOPNOTSUPP)
        if not self.writable:
            raise error(errno.EBADF)
        await self.do_fallocate(mode, offset, length)
        self._notify(IN_MODIFY)

    async def fsync(self, datasync: bool = False) -> None:
        if self.flags & O_PATH:
            raise error(errno.EBADF)
        await self.do_fsync(datasync)

    async def stat(self) -> Stat:
        """fstat(2) (allowed on O_PATH descriptors too)."""
        vd = self.vd
        if vd is None:
            raise error(errno.EBADF)
        st = await self.file_stat(vd)
        st.mnt_id = vd.mount.id
        if vd.dentry is vd.mount.root:
            st.attributes |= 0x2000  # STATX_ATTR_MOUNT_ROOT
        return st

    async def file_stat(self, vd: VirtualDentry) -> Stat:
        """The attributes fstat gives: the filesystem's of the dentry; a remote
        filesystem may ask through what the description holds open instead."""
        return await vd.mount.fs.stat(vd.dentry)

    async def chmod(self, creds: Credentials, mode: int) -> None:
        """fchmod(2) of a file opened without a dentry of ours (a host fd); the VFS's
        fchmodat serves every file that has one."""
        raise error(errno.EBADF)

    async def statfs(self) -> StatFS:
        vd = self.vd
        if vd is None:
            raise error(errno.EBADF)
        return await vd.mount.fs.statfs()

    # -- readiness ---------------------------------------------------------------------------

    def readiness(self, mask: int) -> int:
        """The poll events in `mask` (plus POLLERR/POLLHUP) that are ready now."""
        return mask & (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM)

    async def wait_ready(self, mask: int) -> int:
        """Wait until some event in `mask` (or POLLERR/POLLHUP) is ready; return them."""
        return await self.waitq.wait_for(lambda: self.readiness(mask), mask | POLLERR | POLLHUP)

    # -- hooks with Linux's defaults ------------------------------------------------------

    async def do_read(self, n: int) -> bytes:
        raise error(errno.EINVAL)

    async def do_pread(self, n: int, offset: int) -> bytes:
        raise error(errno.ESPIPE)

    async def do_write(self, data: bytes) -> int:
        raise error(errno.EINVAL)

    async def do_pwrite(self, data: bytes, offset: int) -> int:
        raise error(errno.ESPIPE)

    async def do_seek(self, offset: int, whence: int) -> int:
        raise error(errno.ESPIPE)

    async def do_getdents64(self, size: int) -> bytes:
        raise error(errno.ENOTDIR)

    async def do_ioctl(self, cmd: int, arg: int, mem: Memory | None) -> int:
        raise error(errno.ENOTTY)

    async def do_truncate(self, size: int) -> None:
        raise error(errno.EINVAL)

    async def do_fallocate(self, mode: int, offset: int, length: int) -> None:
        raise error(errno.ENODEV)

    async def do_fsync(self, datasync: bool) -> None:
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} flags={self.flags:#o} off={self.offset} vd={self.vd!r}>"


class RegularFD(FileDescription):
    """A seekable file with a size: read/write move the offset over do_pread/do_pwrite.

    Subclasses implement `do_pread`, `do_pwrite`, `file_size()` and optionally
    `seek_data_hole`.
    """

    seekable = True

    def file_size(self) -> int:
        raise NotImplementedError

    async def pwrite(self, data: bytes, offset: int) -> int:
        """pwrite64(2); under O_APPEND Linux writes at the end whatever the offset."""
        if self.flags & O_APPEND and self.writable:
            offset = self.file_size()
        if not data and self.writable and offset >= 0:
            return 0  # (generic_write_checks: nothing written, no time changed)
        return await super().pwrite(data, offset)

    async def read(self, n: int) -> bytes:
        data = await super().read(n)
        self.accessed()  # (even for 0 bytes, as tmpfs: ext4 returns before that)
        return data

    async def pread(self, n: int, offset: int) -> bytes:
        data = await super().pread(n, offset)
        self.accessed()
        return data

    async def do_read(self, n: int) -> bytes:
        data = await self.do_pread(n, self.offset)
        self.offset += len(data)
        return data

    async def do_write(self, data: bytes) -> int:
        if not data:  # (generic_write_checks: nothing written, no time changed)
            return 0
        if self.flags & O_APPEND:
            self.offset = self.file_size()
        n = await self.do_pwrite(data, self.offset)
        self.offset += n
        return n

    async def do_seek(self, offset: int, whence: int) -> int:
        if whence == SEEK_SET:
            new = offset
        elif whence == SEEK_CUR:
            new = self.offset + offset
        elif whence == SEEK_END:
            new = self.file_size() + offset
        elif whence in (SEEK_DATA, SEEK_HOLE):
            new = await self.seek_data_hole(offset, whence)
        else:
            raise error(errno.EINVAL, whence)
        if new < 0:
            raise error(errno.EINVAL)
        if new > MAX_OFF:
            raise error(errno.EOVERFLOW)
        self.offset = new
        return new

    async def seek_data_hole(self, offset: int, whence: int) -> int:
        """Default: the whole file is data (Linux's generic_file_llseek_size)."""
        size = self.file_size()
        if offset < 0 or offset >= size:
            raise error(errno.ENXIO)
        return offset if whence == SEEK_DATA else size


class DirectoryFD(FileDescription):
    """An open directory: getdents64 with stable cookies, seek to a cookie.

    Subclasses implement `entries(cookie)`: the entries after position `cookie`, each as
    (next_cookie, ino, d_type, name), starting with "." (cookie 0 → next 1) and ".."
    (→ 2). A cookie stays valid while entries come and go (Linux's dcache_readdir).
    """

    seekable = True

    async def entries(self, cookie: int) -> list[tuple[int, int, int, bytes]]:
        raise NotImplementedError

    @staticmethod
    def dots(d: Dentry, cookie: int) -> list[tuple[int, int, int, bytes]]:
        """The "." (next cookie 1) and ".." (2) entries of the directory `d` still due
        after `cookie`: how a listing kept in the dentry cache begins."""
        out: list[tuple[int, int, int, bytes]] = []
        if cookie < 1:
            out.append((1, d.inode.ino, DT_DIR, b"."))
        if cookie < 2:
            out.append((2, d.parent.inode.ino, DT_DIR, b".."))
        return out

    async def do_getdents64(self, size: int) -> bytes:
        if self.vd is not None and self.vd.dentry.dead:
            raise error(errno.ENOENT)  # (IS_DEADDIR: the directory was removed)
        ents = await self.entries(self.offset)
        self.accessed()
        out, n = pack_dirents64(ents, size)
        if n:
            self.offset = ents[n - 1][0]
        elif ents:
            raise error(errno.EINVAL)  # (not even the first record fits)
        return out

    async def do_seek(self, offset: int, whence: int) -> int:
        if whence == SEEK_CUR:
            offset += self.offset
        elif whence != SEEK_SET:
            raise error(errno.EINVAL)
        if offset < 0:
            raise error(errno.EINVAL)
        self.offset = offset
        return offset

    async def do_read(self, n: int) -> bytes:
        raise error(errno.EISDIR)

    async def do_pread(self, n: int, offset: int) -> bytes:
        raise error(errno.EISDIR)


class PathFD(FileDescription):
    """An O_PATH descriptor: it names a file; only fstat, fchdir, *at() and close work."""

    async def read(self, n: int) -> bytes:
        raise error(errno.EBADF)

    async def pread(self, n: int, offset: int) -> bytes:
        raise error(errno.EBADF)

    def readiness(self, mask: int) -> int:
        return POLLNVAL
