"""Host file descriptors as sandbox files: the caller's stdin, stdout and stderr.

Why careful: these descriptions are shared with the user's shell, so we never set
O_NONBLOCK on them (a shell left with a non-blocking terminal misbehaves after we exit).
Instead a read first waits in trio until the host fd is readable
(`trio.lowlevel.wait_readable`) and then reads once; a write to a pipe or terminal waits
until writable and writes at most PIPE_BUF bytes at a time, which a writable pipe always
accepts at once. Regular files never block, so they are read and written directly.
The application's own O_NONBLOCK (a status flag of our description) turns "not ready"
into EAGAIN. Only terminal ioctls from a safe list reach the host; TIOCSTI (typing into
the user's terminal), TIOCSCTTY and TIOCSPGRP never do.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import stat as _st
import struct

import trio

from ..abi import (
    O_APPEND,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    PIPE_BUF,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLOUT,
    Stat,
    StatFS,
)
from ..creds import CAP_FOWNER, Credentials
from ..errors import error
from ..file import FileDescription, Memory

TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TCSBRK, TCXONC, TCFLSH = 0x5409, 0x540A, 0x540B
TIOCGPGRP, TIOCOUTQ, TIOCGWINSZ, TIOCSWINSZ = 0x540F, 0x5411, 0x5413, 0x5414
FIONREAD, FIONBIO, TIOCGSID = 0x541B, 0x5421, 0x5429
TERMIOS_SIZE = 36
_libc = ctypes.CDLL(None, use_errno=True)
_libc.tee.restype = ctypes.c_ssize_t
_SPLICE_F_NONBLOCK = 2
#: What one `HostFD.peek` copies at most: a host pipe's default capacity, what the scratch
#: pipe holds.
_PIPE_PEEK = 65536

#: ioctl → (direction, argument size): "r" the host fills the argument, "w" the host reads
#: it, "v" the argument is a plain integer.
SAFE_IOCTLS: dict[int, tuple[str, int]] = {
    TCGETS: ("r", TERMIOS_SIZE),
    TCSETS: ("w", TERMIOS_SIZE),
    TCSETSW: ("w", TERMIOS_SIZE),
    TCSETSF: ("w", TERMIOS_SIZE),
    TIOCGWINSZ: ("r", 8),
    TIOCSWINSZ: ("w", 8),
    TIOCGPGRP: ("r", 4),
    TIOCGSID: ("r", 4),
    TIOCOUTQ: ("r", 4),
    FIONREAD: ("r", 4),
    TCSBRK: ("v", 0),
    TCXONC: ("v", 0),
    TCFLSH: ("v", 0),
}


class HostFD(FileDescription):
    """A sandbox file backed by a host fd (a dup of it: closing ours leaves the caller's).

    Args:
        hostfd: the host descriptor to serve (it is duplicated).
        flags: the access mode the application sees; default from the host's F_GETFL.
    """

    notifies_readiness = False  # the host kernel sees readiness changes, not our waitq

    def fasync_reason(self, mask: int) -> int:
        """O_ASYNC is kept (whether the host file has fasync is the host's to say); the
        host's events are not followed: no signal."""
        return 0

    def __init__(self, hostfd: int, flags: int | None = None, *,
                 own_offset: bool = False) -> None:
        host_flags = fcntl.fcntl(hostfd, fcntl.F_GETFL)
        if flags is None:
            flags = host_flags & (O_RDONLY | O_WRONLY | O_RDWR | O_APPEND)
        super().__init__(None, flags)
        self.fd = os.dup(hostfd)
        st = os.fstat(self.fd)
        self.mode = st.st_mode
        self.is_regular = _st.S_ISREG(st.st_mode) or _st.S_ISBLK(st.st_mode)
        self.seekable = self.is_regular
        self.host_nonblock = bool(host_flags & O_NONBLOCK)
        self._closed = False
        # A regular file sharing another description's host descriptor (a reopen the
        # host refused the Sentry: _reopen_host) keeps its own offset, as a new open
        # description does; None: the host description's offset is ours.
        self._pos: int | None = 0 if own_offset and self.is_regular else None

    @classmethod
    def stdio(cls) -> list[HostFD]:
        """HostFDs for this process's fds 0, 1 and 2 (the Sentry installs them as 0, 1, 2)."""
        return [cls(0), cls(1), cls(2)]

    def _poll(self, events: int) -> int:
        p = select.poll()
        p.register(self.fd, events)
        got = p.poll(0)
        return got[0][1] if got else 0

    async def release(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.fd)

    # -- I/O -------------------------------------------------------------------------------------

    async def do_read(self, n: int) -> bytes:
        if self._pos is not None:
            data = os.pread(self.fd, n, self._pos)
            self._pos += len(data)
            return data
        if self.is_regular:
            return os.read(self.fd, n)
        while True:
            await self._readable()
            try:
                return os.read(self.fd, n)
            except BlockingIOError:
                if self.flags & O_NONBLOCK:
                    raise error(errno.EAGAIN) from None

    async def _readable(self) -> None:
        """Wait until the host says the file has something to read (or hung up): EAGAIN
        at once for a non-blocking description."""
        while not self._poll(POLLIN | POLLHUP | POLLERR):
            if self.flags & O_NONBLOCK:
                raise error(errno.EAGAIN)
            await trio.lowlevel.wait_readable(self.fd)

    async def peek(self, n: int) -> bytes:
        """Up to `n` bytes a host pipe holds, left unread (tee(2)'s source): the host's
        tee into a scratch host pipe, read back. Waits for data as a read does; b"" at EOF."""
        n = min(n, _PIPE_PEEK)
        while True:
            await self._readable()
            r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            try:
                got = _libc.tee(self.fd, w, ctypes.c_size_t(n), _SPLICE_F_NONBLOCK)
                if got < 0:
                    e = ctypes.get_errno()
                    if e != errno.EAGAIN:
                        raise error(e)
                    if self.flags & O_NONBLOCK:
                        raise error(errno.EAGAIN)
                    continue  # taken meanwhile: wait again
                return os.read(r, got) if got else b""
            finally:
                os.close(r)
                os.close(w)

    async def do_write(self, data: bytes) -> int:
        if self._pos is not None:
            if self.flags & O_APPEND:
                self._pos = os.fstat(self.fd).st_size
            done = os.pwrite(self.fd, data, self._pos)
            self._pos += done
            return done
        if self.is_regular:
            return os.write(self.fd, data)
        done = 0
        view = memoryview(data)
        while done < len(view):
            if not self._poll(POLLOUT | POLLERR | POLLHUP):
                if self.flags & O_NONBLOCK:
                    if done:
                        return done
                    raise error(errno.EAGAIN)
                await trio.lowlevel.wait_writable(self.fd)
                continue
            try:
                done += os.write(self.fd, view[done : done + PIPE_BUF])
            except BlockingIOError:
                continue
            except BrokenPipeError:
                if done:
                    return done
                raise error(errno.EPIPE) from None
        return done

    async def do_pread(self, n: int, offset: int) -> bytes:
        if not self.seekable:
            raise error(errno.ESPIPE)
        return os.pread(self.fd, n, offset)

    async def do_pwrite(self, data: bytes, offset: int) -> int:
        if not self.seekable:
            raise error(errno.ESPIPE)
        return os.pwrite(self.fd, data, offset)

    async def do_seek(self, offset: int, whence: int) -> int:
        """The host's lseek answers: ESPIPE for a pipe or terminal, 0 for /dev/null. An own
        offset moves here (SEEK_DATA/SEEK_HOLE: the whole file is data, as on a
        filesystem without holes)."""
        if self._pos is not None:
            size = os.fstat(self.fd).st_size
            if whence == os.SEEK_SET:
                pos = offset
            elif whence == os.SEEK_CUR:
                pos = self._pos + offset
            elif whence == os.SEEK_END:
                pos = size + offset
            elif whence in (os.SEEK_DATA, os.SEEK_HOLE):
                if offset < 0 or offset >= size:
                    raise error(errno.ENXIO)
                pos = offset if whence == os.SEEK_DATA else size
            else:
                raise error(errno.EINVAL)
            if pos < 0:
                raise error(errno.EINVAL)
            self._pos = pos
            return pos
        try:
            return os.lseek(self.fd, offset, whence)
        except OSError as e:
            raise error(e.errno or errno.EIO) from None

    async def do_fsync(self, datasync: bool) -> None:
        if not self.is_regular:
            raise error(errno.EINVAL)
        os.fsync(self.fd)

    async def stat(self) -> Stat:
        s = os.fstat(self.fd)
        return Stat(mode=s.st_mode, ino=s.st_ino, dev=s.st_dev, nlink=s.st_nlink, uid=s.st_uid,
                    gid=s.st_gid, rdev=s.st_rdev, size=s.st_size, blksize=s.st_blksize,
                    blocks=s.st_blocks, atime_ns=s.st_atime_ns, mtime_ns=s.st_mtime_ns,
                    ctime_ns=s.st_ctime_ns)

    async def statfs(self) -> StatFS:
        """fstatfs(2) of the host file: its filesystem (a pipe's or terminal's too)."""
        buf = ctypes.create_string_buffer(120)
        if _libc.fstatfs(self.fd, buf) < 0:
            raise error(ctypes.get_errno())
        ftype, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen, frsize, flags = \
            struct.unpack_from("<qqQQQQQQqqq", buf.raw)
        return StatFS(ftype, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen,
                      frsize, flags)

    async def chmod(self, creds: Credentials, mode: int) -> None:
        """fchmod(2) of the host file, pipe or socket, by its owner (host ids) or CAP_FOWNER.

        A host device (the caller's terminal, /dev/null) is refused with EPERM whoever asks:
        its mode is the whole host's, and the sandbox's root is not the host's (a program
        could otherwise make the host's /dev/null unwritable for everyone).
        """
        st = os.fstat(self.fd)
        if _st.S_ISCHR(st.st_mode) or _st.S_ISBLK(st.st_mode):
            raise error(errno.EPERM)
        if creds.fsuid != st.st_uid and not creds.has_cap(CAP_FOWNER):
            raise error(errno.EPERM)
        try:
            os.fchmod(self.fd, mode)
        except OSError as e:
            raise error(e.errno or errno.EIO) from None

    async def do_truncate(self, size: int) -> None:
        if not self.is_regular:
            raise error(errno.EINVAL)
        try:
            os.ftruncate(self.fd, size)
        except OSError as e:
            raise error(e.errno or errno.EIO) from None

    # -- ioctl -------------------------------------------------------------------------------------

    async def do_ioctl(self, cmd: int, arg: int, mem: Memory | None) -> int:
        if cmd == FIONBIO:
            if mem is None:
                raise error(errno.EFAULT)
            on = struct.unpack("<i", mem.mem_read(arg, 4))[0]
            self.flags = self.flags | O_NONBLOCK if on else self.flags & ~O_NONBLOCK
            return 0
        spec = SAFE_IOCTLS.get(cmd)
        if spec is None:
            raise error(errno.ENOTTY)
        kind, size = spec
        try:
            if kind == "v":
                return fcntl.ioctl(self.fd, cmd, arg)
            if mem is None:
                raise error(errno.EFAULT)
            if kind == "r":
                out = fcntl.ioctl(self.fd, cmd, bytes(size))
                mem.mem_write(arg, out)
            else:
                fcntl.ioctl(self.fd, cmd, mem.mem_read(arg, size))
        except OSError as e:
            if e.errno is None:
                raise
            raise error(e.errno) from None
        return 0

    # -- readiness ---------------------------------------------------------------------------------

    def readiness(self, mask: int) -> int:
        if self.is_regular:
            return mask & (POLLIN | POLLOUT)
        return self._poll(mask) & (mask | POLLERR | POLLHUP)

    async def wait_ready(self, mask: int) -> int:
        """Wait until the host says the file is ready for something in `mask`. The wait is
        a private host epoll watching exactly `mask` (POLLPRI too, which trio cannot wait
        for), itself waited on by trio. A file the host's epoll refuses (EPERM: a regular
        file, /dev/null) is always ready for reading and writing and never for anything
        else, so a wait for anything else sleeps until cancelled, as Linux's poll does."""
        while True:
            got = self.readiness(mask)
            if got:
                return got
            if self.is_regular:
                await trio.sleep_forever()
            ep = select.epoll()
            try:
                try:
                    ep.register(self.fd, mask & 0xFFFF)
                except PermissionError:
                    await trio.sleep_forever()
                await trio.lowlevel.wait_readable(ep.fileno())
            finally:
                ep.close()
