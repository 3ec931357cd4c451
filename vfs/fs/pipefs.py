"""pipefs: pipes and fifos with Linux's capacity, atomicity, EOF and EPIPE.

A `Pipe` is the buffer both ends share (Linux's pipe_inode_info): 64 KiB by default,
resizable with F_SETPIPE_SZ (a power-of-two number of pages, at least one; EBUSY if the
data would not fit; EPERM above /proc/sys/fs/pipe-max-size without CAP_SYS_RESOURCE).
Writes of at most PIPE_BUF bytes are atomic (all or, without space, wait/EAGAIN); larger
writes may be split. The buffer is a ring of page slots as in Linux, so byte counts match. A read with no data waits in trio (or EAGAIN under O_NONBLOCK) and
returns b"" once no writer is left. A write with no reader raises EPIPE after calling
the VFS's `sigpipe` hook, so the Sentry can queue SIGPIPE. Fifos opened by path share the
Pipe of their inode and wait for the other end as Linux does (O_NONBLOCK: a reader
returns at once, a writer gets ENXIO); an anonymous pipe's inode is opened the same way
(its Pipe is known by the inode, as Linux's i_pipe), which /proc/PID/fd/N relies on.
"""

from __future__ import annotations

import errno
import weakref
from collections import deque
from typing import TYPE_CHECKING

import trio

from ..abi import (
    O_ACCMODE,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    PIPEFS_MAGIC,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLOUT,
    POLLRDNORM,
    POLLWRNORM,
    S_IFIFO,
    StatFS,
)
from ..creds import CAP_SYS_RESOURCE, Credentials
from ..dentry import Dentry, Inode
from ..errors import error
from ..file import FileDescription, Memory, WaitQueue
from ..filesystem import Filesystem, InodeCounter
from ..memlimit import MemoryLimit
from ..mount import Mount, VirtualDentry

if TYPE_CHECKING:
    from ..virtualfs import VirtualFilesystem

PAGE = 4096
DEFAULT_CAPACITY = 65536
PIPE_MAX_SIZE = 1048576  # /proc/sys/fs/pipe-max-size
F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032


class Pipe:
    """The shared buffer of a pipe or fifo, kept as Linux keeps it: a ring of page-sized
    slots (capacity // 4096 of them). A write merges into the last page when it fits,
    otherwise takes whole free slots, so the counts of a non-blocking fill, of POLLOUT and
    of F_SETPIPE_SZ's EBUSY match Linux's exactly. The bytes it holds are charged to
    `memory` (the sandbox's limit) as "pipe", as pipe pages are to a memory cgroup: a write
    that would pass the limit is ENOMEM (nothing written) or a short count."""

    __slots__ = ("pages", "nbytes", "capacity", "readers", "writers", "r_counter",
                 "w_counter", "waitq", "_changed", "memory", "__weakref__")

    def __init__(self, memory: MemoryLimit | None = None) -> None:
        self.pages: deque[list] = deque()  # [bytearray unread, bytes consumed before it]
        self.memory = memory
        self.nbytes = 0
        self.capacity = DEFAULT_CAPACITY
        self.readers = 0
        self.writers = 0
        self.r_counter = 0  # how many readers ever opened (fifo open waits on changes)
        self.w_counter = 0
        self.waitq = WaitQueue()
        self._changed = trio.Event()

    def _count(self, delta: int) -> None:
        """`nbytes` changes by `delta`, and the charge with it."""
        self.nbytes += delta
        if self.memory is not None:
            self.memory.charge("pipe", delta)

    def _fits(self, n: int, done: int) -> bool:
        """Whether `n` more bytes fit in the memory limit; ENOMEM if not and nothing was
        written yet (pipe_write's failed page allocation)."""
        try:
            if self.memory is not None:
                self.memory.check(n)
        except OSError:
            if not done:
                raise
            return False
        return True

    def _notify(self, mask: int) -> None:
        self._changed.set()
        self._changed = trio.Event()
        self.waitq.notify(mask)

    async def wait_change(self) -> None:
        """Wait until a read, a write or an end's open or close changes the pipe."""
        await self._changed.wait()

    @property
    def slots(self) -> int:
        return self.capacity // PAGE

    def full(self) -> bool:
        return len(self.pages) >= self.slots

    def set_capacity(self, size: int, creds: Credentials | None) -> int:
        """F_SETPIPE_SZ: round up to a power-of-two number of pages; return the new size."""
        if size <= 0 or size > 1 << 31:
            raise error(errno.EINVAL)
        if size > PIPE_MAX_SIZE and not (creds and creds.has_cap(CAP_SYS_RESOURCE)):
            raise error(errno.EPERM)
        pages = max(1, -(-size // PAGE))
        pages = 1 << (pages - 1).bit_length()
        if len(self.pages) > pages:
            raise error(errno.EBUSY)
        self.capacity = pages * PAGE
        self._notify(POLLOUT | POLLWRNORM)
        return self.capacity

    # -- the two ends ------------------------------------------------------------------------------

    async def read(self, n: int, nonblock: bool, fits: int | None = None) -> bytes:
        """Up to `n` bytes, waiting for a writer unless `nonblock`. With `fits` (the bytes
        the reader's buffer takes before a fault), as Linux's pipe_read: whole pages only
        while they fit; a page that does not fit stays unread, and EFAULT if the first
        one does not."""
        while not self.nbytes:
            if self.writers == 0:
                return b""
            if nonblock:
                raise error(errno.EAGAIN)
            await self.wait_change()
        was_full = self.full()
        out = bytearray()
        pages = self.pages
        while pages and len(out) < n:
            page = pages[0]
            data = page[0]
            k = min(n - len(out), len(data))
            if fits is not None and len(out) + k > fits:
                if not out:
                    raise error(errno.EFAULT)
                break
            out += data[:k]
            del data[:k]
            page[1] += k
            if not data:
                pages.popleft()
        self._count(-len(out))
        # writers hear of it only if the pipe was full (as Linux's pipe_read: an EPOLLET
        # writer gets no edge from a read that leaves a not-full pipe not full)
        self._notify(POLLOUT | POLLWRNORM if was_full else 0)
        return bytes(out)

    def room(self) -> int:
        """The bytes a splice into this pipe may add now: its free page slots (a splice
        fills fresh pages, never the tail of the last one)."""
        return max(0, self.slots - len(self.pages)) * PAGE

    def peek(self, n: int) -> bytes:
        """Up to `n` unread bytes, left in the pipe (tee)."""
        out = bytearray()
        for data, _ in self.pages:
            if len(out) >= n:
                break
            out += data[: n - len(out)]
        return bytes(out)

    def unread(self, data: bytes) -> None:
        """Put back bytes a splice took but could not deliver, in front of the rest."""
        if data:
            self.pages.appendleft([bytearray(data), 0])
            self._count(len(data))
            self._notify(POLLIN | POLLRDNORM)

    async def write(self, data: bytes, nonblock: bool, on_epipe: object = None) -> int:
        if self.readers == 0:
            self._epipe(on_epipe)
        total = len(data)
        if total == 0:
            return 0
        view = memoryview(data)
        done = 0
        pages = self.pages
        chars = total & (PAGE - 1)
        if chars and pages:
            last = pages[-1]
            if last[1] + len(last[0]) + chars <= PAGE and self._fits(chars, 0):
                last[0] += view[:chars]
                done = chars
                self._count(chars)
                if done == total:
                    self._notify(POLLIN | POLLRDNORM)
                    return done
        while True:
            if self.readers == 0:
                if done:
                    return done
                self._epipe(on_epipe)
            if not self.full():
                k = min(PAGE, total - done)
                if not self._fits(k, done):
                    break
                pages.append([bytearray(view[done : done + k]), 0])
                self._count(k)
                done += k
                if done == total:
                    break
                continue
            if done:
                self._notify(POLLIN | POLLRDNORM)
            if nonblock:
                if done:
                    return done
                raise error(errno.EAGAIN)
            try:
                await self.wait_change()
            except trio.Cancelled:
                if done:  # a signal after some bytes went: the count, as Linux's pipe_write
                    return done
                raise
        self._notify(POLLIN | POLLRDNORM)
        return done

    def _epipe(self, on_epipe: object) -> None:
        if callable(on_epipe):
            on_epipe()
        raise error(errno.EPIPE)

    def open_end(self, acc: int) -> None:
        if acc in (O_RDONLY, O_RDWR):
            self.readers += 1
            self.r_counter += 1
        if acc in (O_WRONLY, O_RDWR):
            self.writers += 1
            self.w_counter += 1
        self._notify(POLLIN | POLLOUT)

    def close_end(self, acc: int) -> None:
        if acc in (O_RDONLY, O_RDWR):
            self.readers -= 1
        if acc in (O_WRONLY, O_RDWR):
            self.writers -= 1
        if self.readers == 0 and self.writers == 0:
            self.pages.clear()
            self._count(-self.nbytes)
        self._notify(POLLIN | POLLOUT | POLLHUP | POLLERR)


class PipeFD(FileDescription):
    """One end of a pipe (or both, for a fifo opened O_RDWR)."""

    def __init__(self, vd: VirtualDentry, flags: int, pipe: Pipe,
                 vfs: VirtualFilesystem | None) -> None:
        super().__init__(vd, flags)
        self.pipe = pipe
        self.vfs = vfs
        self._acc = flags & O_ACCMODE
        self._seen_w = 0  # Linux's f_version: no POLLHUP until a writer came and went

    @property
    def waitq(self) -> WaitQueue:
        return self.pipe.waitq

    async def do_read(self, n: int) -> bytes:
        return await self.pipe.read(n, bool(self.flags & O_NONBLOCK))

    async def read_upto(self, n: int, fits: int) -> bytes:
        if not self.readable:
            raise error(errno.EBADF)
        return await self.pipe.read(n, bool(self.flags & O_NONBLOCK), fits)

    async def do_write(self, data: bytes) -> int:
        hook = self.vfs.sigpipe if self.vfs is not None else None
        return await self.pipe.write(data, bool(self.flags & O_NONBLOCK), hook)

    async def do_fsync(self, datasync: bool) -> None:
        raise error(errno.EINVAL)

    async def do_ioctl(self, cmd: int, arg: int, mem: Memory | None) -> int:
        if cmd == 0x541B:  # FIONREAD
            if mem is None:
                raise error(errno.EFAULT)
            mem.mem_write(arg, self.pipe.nbytes.to_bytes(4, "little"))
            return 0
        raise error(errno.ENOTTY)

    def readiness(self, mask: int) -> int:
        p = self.pipe
        got = 0
        if self._acc in (O_RDONLY, O_RDWR):
            if p.nbytes:
                got |= POLLIN | POLLRDNORM
            if p.writers == 0 and p.w_counter != self._seen_w:
                got |= POLLHUP
        if self._acc in (O_WRONLY, O_RDWR):
            if not p.full():
                got |= POLLOUT | POLLWRNORM
            if p.readers == 0:
                got |= POLLERR
        return got & (mask | POLLHUP | POLLERR)

    def fasync_reason(self, mask: int) -> int:
        """O_ASYNC: the SIGIO reason a notification of the pipe means to this end, as
        Linux's pipe_write (POLL_IN to readers), pipe_read (POLL_OUT to writers, whatever
        room was left) and pipe_release (both, once one side is gone) send them. A write
        notifies POLLIN alone; a read POLLOUT or nothing; a close adds POLLHUP."""
        p = self.pipe
        if mask & POLLHUP:
            if (p.readers == 0) == (p.writers == 0):
                return 0
            return 1 if self._acc in (O_RDONLY, O_RDWR) else 2
        if mask & POLLIN and not mask & POLLOUT and self._acc in (O_RDONLY, O_RDWR):
            return 1  # POLL_IN
        if not mask & POLLIN and self._acc in (O_WRONLY, O_RDWR):
            return 2  # POLL_OUT
        return 0

    def pipe_size(self, creds: Credentials | None = None, new: int | None = None) -> int:
        """F_GETPIPE_SZ (new None) / F_SETPIPE_SZ."""
        if new is None:
            return self.pipe.capacity
        return self.pipe.set_capacity(new, creds)

    async def release(self) -> None:
        self.pipe.close_end(self._acc)


class PipeFS(Filesystem):
    """The internal filesystem anonymous pipes live on (what fstat on a pipe shows)."""

    fstype = "pipefs"
    magic = PIPEFS_MAGIC

    def __init__(self) -> None:
        super().__init__()
        self._ino = InodeCounter(1)
        self.root = Dentry(self, b"pipe:", None, Inode(self._ino(), 0o40700))
        self.mount = Mount(self, self.root, 0, "pipefs")
        #: inode → its Pipe, for every fifo and anonymous pipe (Linux's inode->i_pipe).
        self.pipes: weakref.WeakKeyDictionary[Inode, Pipe] = weakref.WeakKeyDictionary()
        self.memory: MemoryLimit | None = None  # what the pipes' bytes are charged to

    async def statfs(self) -> StatFS:
        return StatFS(type=PIPEFS_MAGIC)


def _pipefs(vfs: VirtualFilesystem) -> PipeFS:
    fs = vfs.pipefs
    if not isinstance(fs, PipeFS):
        fs = vfs.pipefs = PipeFS()
    return fs


def new_pipe(vfs: VirtualFilesystem, creds: Credentials, flags: int = 0) -> tuple[PipeFD, PipeFD]:
    """pipe2(2): (read end, write end); `flags` may hold O_NONBLOCK (O_CLOEXEC is the fd
    table's; O_DIRECT packet mode is not supported and ignored)."""
    fs = _pipefs(vfs)
    ino = Inode(fs._ino(), S_IFIFO | 0o600, creds.fsuid, creds.fsgid)
    d = Dentry(fs, b"pipe:[%d]" % ino.ino, fs.root, ino)
    vd = VirtualDentry(fs.mount, d)
    pipe = fs.pipes[ino] = Pipe(fs.memory)
    nb = flags & O_NONBLOCK
    pipe.open_end(O_RDONLY)
    pipe.open_end(O_WRONLY)
    r = PipeFD(vd, O_RDONLY | nb, pipe, vfs)
    w = PipeFD(vd, O_WRONLY | nb, pipe, vfs)
    return r, w


def install(vfs: VirtualFilesystem, memory: MemoryLimit | None = None) -> None:
    """Let `vfs` open fifo nodes (mknod S_IFIFO) on any filesystem; pipes and fifos charge
    their bytes to `memory`."""
    pipefs = _pipefs(vfs)
    pipefs.memory = memory
    pipes = pipefs.pipes

    async def open_fifo(vd: VirtualDentry, flags: int, creds: Credentials) -> FileDescription:
        ino = vd.dentry.inode
        pipe = pipes.get(ino)
        if pipe is None:
            pipe = pipes[ino] = Pipe(memory)
        acc = flags & O_ACCMODE
        nonblock = bool(flags & O_NONBLOCK)
        if acc == O_ACCMODE:
            raise error(errno.EINVAL)  # fifo_open: neither reading nor writing
        # An anonymous pipe reopened (/proc/PID/fd/N) never waits for the other end.
        fifo = vd.mount.fs is not pipefs
        if acc == O_WRONLY and nonblock and pipe.readers == 0 and fifo:
            raise error(errno.ENXIO)
        pipe.open_end(acc)
        fd = PipeFD(vd, flags, pipe, vfs)
        if acc == O_RDONLY and nonblock and pipe.writers == 0 and fifo:
            fd._seen_w = pipe.w_counter
        try:
            if not fifo:
                pass
            elif acc == O_RDONLY and not nonblock:
                seen = pipe.w_counter
                while pipe.writers == 0 and pipe.w_counter == seen:
                    await pipe.wait_change()
            elif acc == O_WRONLY:
                seen = pipe.r_counter
                while pipe.readers == 0 and pipe.r_counter == seen:
                    await pipe.wait_change()
        except BaseException:
            pipe.close_end(acc)
            raise
        return fd

    vfs.fifo_opener = open_fifo
