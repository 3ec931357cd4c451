"""File I/O syscalls: read/write and friends, open/close, the fd table, fcntl, ioctl, pipes.

Each handler is a thin layer: decode the arguments from registers and application memory
(the Task's mem_* helpers raise SyscallError(EFAULT) on a bad pointer), look up the open
file in the Task's FDTable, and call the `vfs` FileDescription / VirtualFilesystem method
that does the work. Errors are `OSError(errno)` from vfs or `SyscallError` from here; the
dispatcher turns both into ``-errno``.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

import trio

from sentry.errors import SyscallError
from sentry.kernel import dnotify, fasync, file_locks
from sentry.kernel.table import Level, syscall
from sentry.socket import Control, Socket, hostsock
from sentry.socket.hostsocket import HostSocket
from vfs.abi import (
    AT_FDCWD,
    O_APPEND,
    O_ASYNC,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECT,
    O_LARGEFILE,
    O_NONBLOCK,
    O_TMPFILE,
    O_TRUNC,
    O_WRONLY,
    POLLIN,
)
from vfs.file import MAX_RW
from vfs.fs.devpts import TerminalFD
from vfs.restricted import RESOLVE_ALL, RESOLVE_BENEATH, RESOLVE_CACHED, RESOLVE_IN_ROOT

from .sys_memfd import seals_fcntl
from .sys_tty import tty_ioctl

if TYPE_CHECKING:
    from sentry.kernel.task import Task
    from vfs.mount import FSContext
    from vfs.virtualfs import VirtualFilesystem

#: How much application memory one step of a big read/write/sendfile copies at a time: the
#: Sentry never holds more than this of one transfer, whatever the count asked for.
CHUNK = 1 << 20
#: fcntl commands.
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW, F_SETOWN, F_GETOWN = 5, 6, 7, 8, 9
F_SETSIG, F_GETSIG, F_SETOWN_EX, F_GETOWN_EX = 10, 11, 15, 16
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
F_SETLEASE, F_GETLEASE, F_NOTIFY = 1024, 1025, 1026
F_DUPFD_CLOEXEC, F_SETPIPE_SZ, F_GETPIPE_SZ = 1030, 1031, 1032
F_ADD_SEALS, F_GET_SEALS = 1033, 1034
FD_CLOEXEC = 1
F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2
#: ioctl requests handled here rather than by the file.
FIONREAD, FIONBIO, FIONCLEX, FIOCLEX, FIOASYNC = 0x541B, 0x5421, 0x5450, 0x5451, 0x5452
CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 2, 4
#: struct flock on x86_64: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t.
FLOCK = struct.Struct("<hh4xqqi4x")


def i32(v: int) -> int:
    """A register as a C int (fds, flags, modes are ints; the upper half is ignored)."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def i64(v: int) -> int:
    """A register as a signed 64-bit value (offsets, lengths that may be negative)."""
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >> 63 else v


def vfs_of(t: Task) -> tuple[VirtualFilesystem, FSContext]:
    """The sandbox's VFS and `t`'s FS context, for a file syscall. ENOSYS in a kernel that
    has none (programs read from the host: the platform's bring-up set-up)."""
    vfs, fs = t.kernel.vfs, t.fs
    if vfs is None or fs is None:
        raise SyscallError(errno.ENOSYS)
    return vfs, fs


def dirfd_of(t: Task, dirfd: int) -> Any:
    """The starting directory of an *at call: None for AT_FDCWD, else the open file."""
    dirfd &= 0xFFFFFFFF  # i32, inlined: every *at call passes here
    if dirfd & 0x80000000:
        dirfd -= 1 << 32
        if dirfd == AT_FDCWD:
            return None
    return t.fdtable.get(dirfd)


# -- read and write ------------------------------------------------------------------------


#: TASK_SIZE_MAX on x86_64: no user buffer may reach past it (Linux's access_ok).
TASK_SIZE = (1 << 47) - 4096


def access_ok(addr: int, n: int) -> None:
    """Linux's access_ok: EFAULT for a range outside the user address space, even when the
    call would transfer nothing (a read at EOF still fails)."""
    if addr < 0 or addr + n > TASK_SIZE:
        raise SyscallError(errno.EFAULT)


def _count(n: int) -> int:
    """A size_t count: Linux's access_ok fails anything past the address space (EFAULT)."""
    n &= 0xFFFFFFFFFFFFFFFF
    if n >> 63:
        raise SyscallError(errno.EFAULT)
    return min(n, MAX_RW)


def _buffer(addr: int, count: int) -> int:
    """vfs_read/vfs_write's checks of a user buffer: access_ok over the whole count, then
    the count capped at MAX_RW_COUNT."""
    n = _count(count)
    access_ok(addr, count & 0xFFFFFFFFFFFFFFFF)
    return n


async def _deliver(t: Task, f: Any, addr: int, data: bytes) -> int:
    """Copy read `data` to the application; on EFAULT undo the offset move of a file."""
    try:
        t.mem_write(addr, data)
    except SyscallError:
        if data and getattr(f, "seekable", False):
            f.offset -= len(data)
        raise
    return len(data)


async def _read_chunks(t: Task, f: Any, vecs: list[tuple[int, int]], n: int, fits: int,
                       offset: int | None) -> int:
    """A read of `n` (> CHUNK) bytes into the application's iovecs, CHUNK at a time, so the
    Sentry holds at most CHUNK of it. `fits`: the bytes copyable before a fault. A chunk
    after the first is read only while the file is readable now (a pipe with data left, a
    regular file, /dev/zero): Linux's read returns what it has rather than block for more.
    Ends short at a short chunk, a fault or an error after some data, as Linux."""
    done = 0
    while done < n:
        want = min(CHUNK, n - done)
        room = fits - done
        if done and (room <= 0 or not f.readiness(POLLIN) & POLLIN):
            break
        try:
            if offset is not None:
                data = await f.pread(max(min(want, room), min(want, 1)), offset + done)
            elif room >= want:
                data = await f.read(want)
            else:
                data = await f.read_upto(want, max(room, 0))
        except OSError:
            if done:
                break
            raise
        pos, fault = scatter(t, hostsock.skip(vecs, done), data)
        if fault is not None:
            if offset is None and getattr(f, "seekable", False):
                f.offset -= len(data) - pos
            if not done + pos:
                raise fault
            return done + pos
        done += len(data)
        if len(data) < want:
            break
    return done


@syscall("read")
async def sys_read(t: Task, fd: int, buf: int, count: int, *_: int) -> int:
    """Implements Linux syscall read(2)."""
    f = t.fdtable.get(i32(fd))
    if not f.readable:
        raise SyscallError(errno.EBADF)
    n = _buffer(buf, count)
    fits = t.copyable(buf, n, to_app=True)
    if n > CHUNK:
        return await _read_chunks(t, f, [(buf, n)], n, fits, None)
    if isinstance(f, Socket):  # recv(2) with no flags: straight into the program's memory
        # (a host socket answers a partly writable buffer itself: EFAULT or what fits)
        want = n if fits >= n or isinstance(f, HostSocket) else max(fits, 1)
        res = await f.recv_into(t, [(buf, want)], want, 0, 0)
        await res.control.release()
        return res.length or 0
    data = await (f.read(n) if fits >= n else f.read_upto(n, fits))
    return await _deliver(t, f, buf, data)


@syscall("pread64")
async def sys_pread64(t: Task, fd: int, buf: int, count: int, offset: int, *_: int) -> int:
    """Implements Linux syscall pread64(2)."""
    f = t.fdtable.get(i32(fd))
    if not f.readable:
        raise SyscallError(errno.EBADF)
    n = _buffer(buf, count)
    fits = t.copyable(buf, n, to_app=True)
    if n > CHUNK:
        return await _read_chunks(t, f, [(buf, n)], n, fits, i64(offset))
    data = await f.pread(max(fits, min(n, 1)), i64(offset))
    t.mem_write(buf, data)
    return len(data)


async def _write_from(t: Task, f: Any, vecs: list[tuple[int, int]], n: int,
                      offset: int | None) -> int:
    """Write the first `n` bytes of the application's iovecs `vecs` (`n` already capped at
    MAX_RW and cut at the first fault, or 1 so that a bad buffer faults), CHUNK at a time
    so the Sentry holds at most CHUNK of it; a short write, or a fault or error after
    some bytes went, ends it with the count so far (a short count, as Linux). A write of
    nothing is still made once (an empty datagram is sent)."""
    if not f.writable:
        raise SyscallError(errno.EBADF)
    if n <= CHUNK and offset is None and isinstance(f, Socket):  # send(2) with no flags
        return await f.send_from(t, vecs, n, None, Control(), 0)
    if n <= CHUNK and len(vecs) == 1:
        data = t.mem_read(vecs[0][0], n)
        return await (f.write(data) if offset is None else f.pwrite(data, offset))
    done = 0
    while True:
        want = min(CHUNK, n - done)
        try:
            parts, left = [], want
            for base, length in hostsock.skip(vecs, done):
                if left <= 0:
                    break
                if length:
                    parts.append(t.mem_read(base, min(length, left)))
                    left -= min(length, left)
            data = b"".join(parts)
            got = await (f.write(data) if offset is None else f.pwrite(data, offset + done))
        except (OSError, trio.Cancelled):  # an error or a signal after some bytes went
            if done:
                return done
            raise
        done += got
        if got < len(data) or done >= n:
            return done


@syscall("write")
async def sys_write(t: Task, fd: int, buf: int, count: int, *_: int) -> int:
    """Implements Linux syscall write(2)."""
    f = t.fdtable.get(i32(fd))
    if not f.writable:
        raise SyscallError(errno.EBADF)
    n = _buffer(buf, count)
    return await _write_from(t, f, [(buf, n)], max(t.copyable(buf, n, to_app=False), min(n, 1)),
                             None)


@syscall("pwrite64")
async def sys_pwrite64(t: Task, fd: int, buf: int, count: int, offset: int, *_: int) -> int:
    """Implements Linux syscall pwrite64(2)."""
    f = t.fdtable.get(i32(fd))
    off = i64(offset)
    if off < 0:
        raise SyscallError(errno.EINVAL)
    if not f.writable:
        raise SyscallError(errno.EBADF)
    n = _buffer(buf, count)
    return await _write_from(t, f, [(buf, n)], max(t.copyable(buf, n, to_app=False), min(n, 1)),
                             off)


def _iovecs(t: Task, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    cnt = i32(iovcnt)
    if cnt < 0:
        raise SyscallError(errno.EINVAL)
    vecs = t.read_iovecs(iov, cnt)
    total = 0
    for _, length in vecs:
        if length >> 63:
            raise SyscallError(errno.EINVAL)
        total += length
        if total >> 63:
            raise SyscallError(errno.EINVAL)
    return vecs


def _span(t: Task, vecs: list[tuple[int, int]], *, to_app: bool) -> int:
    """The bytes of an iovec list a copy moves before its first fault (see Task.copyable)."""
    total = 0
    for base, length in vecs:
        got = t.copyable(base, length, to_app=to_app)
        total += got
        if got < length:
            break
    return total


def scatter(t: Task, vecs: list[tuple[int, int]],
            data: bytes) -> tuple[int, SyscallError | None]:
    """Copy `data` across the application's iovecs `vecs` in order: how many bytes were
    copied, and the fault that stopped the copy short (None if all of it went)."""
    pos = 0
    for base, length in vecs:
        if pos >= len(data):
            break
        piece = data[pos : pos + length]
        try:
            t.mem_write(base, piece)
        except SyscallError as e:
            return pos, e
        pos += len(piece)
    return pos, None


async def _readv(t: Task, fd: int, iov: int, iovcnt: int, offset: int | None) -> int:
    f = t.fdtable.get(i32(fd))
    vecs = _iovecs(t, iov, iovcnt)
    want = min(sum(n for _, n in vecs), MAX_RW)
    total = min(_span(t, vecs, to_app=True), want)
    if want > CHUNK:
        return await _read_chunks(t, f, vecs, want, total, offset)
    if offset is not None:
        data = await f.pread(max(total, min(want, 1)), offset)
    else:
        data = await (f.read(want) if total >= want else f.read_upto(want, total))
    pos, fault = scatter(t, vecs, data)
    if fault is not None:
        if offset is None and getattr(f, "seekable", False):
            f.offset -= len(data) - pos
        if not pos:
            raise fault
    return pos


async def _writev(t: Task, fd: int, iov: int, iovcnt: int, offset: int | None) -> int:
    f = t.fdtable.get(i32(fd))
    if not f.writable:
        raise SyscallError(errno.EBADF)
    vecs = _iovecs(t, iov, iovcnt)
    want = sum(n for _, n in vecs)
    total = min(max(_span(t, vecs, to_app=False), min(want, 1)), MAX_RW)
    return await _write_from(t, f, vecs, total, offset)


@syscall("readv")
async def sys_readv(t: Task, fd: int, iov: int, iovcnt: int, *_: int) -> int:
    """Implements Linux syscall readv(2)."""
    return await _readv(t, fd, iov, iovcnt, None)


@syscall("writev")
async def sys_writev(t: Task, fd: int, iov: int, iovcnt: int, *_: int) -> int:
    """Implements Linux syscall writev(2): one write of the gathered buffers (atomic on pipes)."""
    return await _writev(t, fd, iov, iovcnt, None)


def _pos(offset: int) -> int:
    off = i64(offset)
    if off < 0:
        raise SyscallError(errno.EINVAL)
    return off


@syscall("preadv")
async def sys_preadv(t: Task, fd: int, iov: int, iovcnt: int, pos_l: int, *_: int) -> int:
    """Implements Linux syscall preadv(2)."""
    return await _readv(t, fd, iov, iovcnt, _pos(pos_l))


@syscall("pwritev")
async def sys_pwritev(t: Task, fd: int, iov: int, iovcnt: int, pos_l: int, *_: int) -> int:
    """Implements Linux syscall pwritev(2)."""
    return await _writev(t, fd, iov, iovcnt, _pos(pos_l))


RWF_HIPRI, RWF_DSYNC, RWF_SYNC = 1, 2, 4


def _rw_flags(t: Task, fd: int, iov: int, iovcnt: int, flags: int) -> int:
    """preadv2/pwritev2's RWF_* flags, checked after the fd and the iovec as Linux does:
    HIPRI (a polling hint, nothing to poll for buffered I/O) and DSYNC/SYNC are taken;
    NOWAIT, APPEND, NOAPPEND, ATOMIC, DONTCACHE and unknown bits are EOPNOTSUPP."""
    t.fdtable.get(i32(fd))
    _iovecs(t, iov, iovcnt)
    flags &= 0xFFFFFFFF
    if flags & ~(RWF_HIPRI | RWF_DSYNC | RWF_SYNC):
        raise SyscallError(errno.EOPNOTSUPP)
    return flags


@syscall("preadv2", level=Level.PARTIAL, note="RWF_HIPRI, RWF_DSYNC and RWF_SYNC taken, "
         "other flags EOPNOTSUPP; offset -1 reads at the position")
async def sys_preadv2(t: Task, fd: int, iov: int, iovcnt: int, pos_l: int, _h: int,
                      flags: int) -> int:
    """Implements Linux syscall preadv2(2) (no flag changes what a read does)."""
    _rw_flags(t, fd, iov, iovcnt, flags)
    off = i64(pos_l)
    return await _readv(t, fd, iov, iovcnt, None if off == -1 else _pos(off))


@syscall("pwritev2", level=Level.PARTIAL, note="RWF_HIPRI, RWF_DSYNC and RWF_SYNC taken, "
         "other flags EOPNOTSUPP; offset -1 writes at the position")
async def sys_pwritev2(t: Task, fd: int, iov: int, iovcnt: int, pos_l: int, _h: int,
                       flags: int) -> int:
    """Implements Linux syscall pwritev2(2); RWF_DSYNC/RWF_SYNC sync the file after the
    write, as O_DSYNC/O_SYNC would (a file that cannot sync, a pipe, is written alone)."""
    flags = _rw_flags(t, fd, iov, iovcnt, flags)
    off = i64(pos_l)
    n = await _writev(t, fd, iov, iovcnt, None if off == -1 else _pos(off))
    if flags & (RWF_DSYNC | RWF_SYNC):
        try:
            await t.fdtable.get(i32(fd)).fsync(not flags & RWF_SYNC)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EROFS):
                raise
    return n


@syscall("lseek")
async def sys_lseek(t: Task, fd: int, offset: int, whence: int, *_: int) -> int:
    """Implements Linux syscall lseek(2)."""
    f = t.fdtable.get(i32(fd))
    return await f.seek(i64(offset), i32(whence) & 0xFFFFFFFF)


# -- open and close ------------------------------------------------------------------------


async def do_open(t: Task, dirfd: int, path: int, flags: int, mode: int) -> int:
    """openat(2) body shared by open, creat and openat."""
    flags &= 0xFFFFFFFF  # (a C int's bits)
    name = t.read_cstring(path, 4096)
    d = dirfd_of(t, dirfd)
    # Linux on 64-bit forces O_LARGEFILE (F_GETFL shows it); O_CLOEXEC is per-fd.
    vfs, fs = vfs_of(t)
    fdesc = await vfs.open(
        fs, t.creds, d, name, (flags | O_LARGEFILE) & ~O_CLOEXEC,
        (mode & 0o7777) if flags & (O_CREAT | O_TMPFILE) else 0,
    )
    try:
        return t.fdtable.install(fdesc, cloexec=bool(flags & O_CLOEXEC))
    except SyscallError:
        await fdesc.dec_ref()
        raise


@syscall("open")
async def sys_open(t: Task, path: int, flags: int, mode: int, *_: int) -> int:
    """Implements Linux syscall open(2)."""
    return await do_open(t, AT_FDCWD, path, flags, mode)


@syscall("openat")
async def sys_openat(t: Task, dirfd: int, path: int, flags: int, mode: int, *_: int) -> int:
    """Implements Linux syscall openat(2)."""
    return await do_open(t, dirfd, path, flags, mode)


#: openat2's checks (build_open_flags): the flags open(2) knows, those O_PATH allows, and
#: the struct open_how (flags, mode, resolve) of OPEN_HOW_SIZE_VER0 bytes.
VALID_OPEN_FLAGS = 0o37777703
O_PATH_FLAGS = 0o200000 | 0o400000 | 0o10000000 | O_CLOEXEC  # DIRECTORY NOFOLLOW PATH CLOEXEC
OPEN_HOW = struct.Struct("<QQQ")


@syscall("openat2", level=Level.PARTIAL,
         note="every RESOLVE_* flag; RESOLVE_CACHED never answers EAGAIN for an uncached "
              "path (nothing is uncached); O_TMPFILE ignores the RESOLVE_* scoping")
async def sys_openat2(t: Task, dirfd: int, path: int, how: int, size: int, *_: int) -> int:
    """Implements Linux syscall openat2(2): struct open_how's size rules (EINVAL below
    24 bytes, E2BIG above a page or with non-zero unknown fields), openat2's strict flag
    and mode checks, and the RESOLVE_* walk restrictions (vfs/restricted.py)."""
    size &= 0xFFFFFFFFFFFFFFFF
    if size < OPEN_HOW.size:
        raise SyscallError(errno.EINVAL)
    if size > 4096:
        raise SyscallError(errno.E2BIG)
    raw = t.mem_read(how, size)
    if any(raw[OPEN_HOW.size:]):
        raise SyscallError(errno.E2BIG)
    flags, mode, resolve = OPEN_HOW.unpack_from(raw)
    cloexec = bool(flags & O_CLOEXEC)
    flags &= ~O_CLOEXEC
    if flags & ~VALID_OPEN_FLAGS or resolve & ~RESOLVE_ALL:
        raise SyscallError(errno.EINVAL)
    if resolve & RESOLVE_BENEATH and resolve & RESOLVE_IN_ROOT:
        raise SyscallError(errno.EINVAL)
    creates = flags & O_CREAT or flags & O_TMPFILE == O_TMPFILE
    if (mode & ~0o7777) if creates else mode:
        raise SyscallError(errno.EINVAL)
    if flags & (O_CREAT | 0o200000) == O_CREAT | 0o200000:  # O_DIRECTORY with O_CREAT
        raise SyscallError(errno.EINVAL)
    if flags & 0o20000000 and (flags & O_TMPFILE != O_TMPFILE or not flags & 3):
        raise SyscallError(errno.EINVAL)  # O_TMPFILE needs O_DIRECTORY and write access
    if flags & 0o10000000 and flags & ~O_PATH_FLAGS:
        raise SyscallError(errno.EINVAL)
    if resolve & RESOLVE_CACHED and flags & (O_TRUNC | O_CREAT | 0o20000000):
        raise SyscallError(errno.EAGAIN)
    name = t.read_cstring(path, 4096)
    d = dirfd_of(t, dirfd)
    vfs, fs = vfs_of(t)
    if not flags & 0o10000000:
        flags |= O_LARGEFILE
    fdesc = await vfs.open(fs, t.creds, d, name, flags, mode if creates else 0,
                           resolve=resolve)
    try:
        return t.fdtable.install(fdesc, cloexec=cloexec)
    except SyscallError:
        await fdesc.dec_ref()
        raise


@syscall("creat")
async def sys_creat(t: Task, path: int, mode: int, *_: int) -> int:
    """Implements Linux syscall creat(2): open(path, O_CREAT|O_WRONLY|O_TRUNC, mode)."""
    return await do_open(t, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode)


@syscall("close")
async def sys_close(t: Task, fd: int, *_: int) -> int:
    """Implements Linux syscall close(2)."""
    f = t.fdtable.remove(i32(fd))
    await t.kernel.close_file(t.tgid, f)
    return 0


@syscall("close_range")
async def sys_close_range(t: Task, first: int, last: int, flags: int, *_: int) -> int:
    """Implements Linux syscall close_range(2): CLOSE_RANGE_CLOEXEC, and
    CLOSE_RANGE_UNSHARE (a table shared through CLONE_FILES is copied first, as
    unshare(CLONE_FILES), and the range closed in the copy)."""
    first &= 0xFFFFFFFF
    last &= 0xFFFFFFFF
    flags &= 0xFFFFFFFF
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
        raise SyscallError(errno.EINVAL)
    if flags & CLOSE_RANGE_UNSHARE:
        t.kernel.unshare_files(t)
    removed = t.fdtable.close_range(first, last, cloexec_only=bool(flags & CLOSE_RANGE_CLOEXEC))
    await t.kernel.close_files(t.tgid, removed)
    return 0


# -- duplication and fcntl -----------------------------------------------------------------


@syscall("dup")
def sys_dup(t: Task, fd: int, *_: int) -> int:
    """Implements Linux syscall dup(2)."""
    return t.fdtable.dup(i32(fd))


async def _dup3(t: Task, oldfd: int, newfd: int, cloexec: bool) -> int:
    old = t.fdtable.dup_to(oldfd, newfd, cloexec=cloexec)
    if old is not None:
        await t.kernel.close_file(t.tgid, old)
    return newfd


@syscall("dup2")
async def sys_dup2(t: Task, oldfd: int, newfd: int, *_: int) -> int:
    """Implements Linux syscall dup2(2)."""
    oldfd, newfd = i32(oldfd), i32(newfd)
    if oldfd == newfd:
        t.fdtable.get(oldfd)
        return newfd
    return await _dup3(t, oldfd, newfd, False)


@syscall("dup3")
async def sys_dup3(t: Task, oldfd: int, newfd: int, flags: int, *_: int) -> int:
    """Implements Linux syscall dup3(2)."""
    oldfd, newfd, flags = i32(oldfd), i32(newfd), i32(flags)
    if flags & ~O_CLOEXEC or oldfd == newfd:
        raise SyscallError(errno.EINVAL)
    return await _dup3(t, oldfd, newfd, bool(flags & O_CLOEXEC))


@syscall(
    "fcntl",
    level=Level.PARTIAL,
    note="dup, fd and status flags, POSIX/OFD record locks, file seals; F_SETOWN(_EX)/"
    "F_SETSIG with O_ASYNC: SIGIO or the F_SETSIG signal on pipes, sockets, ttys and inotify; "
    "F_NOTIFY (dnotify) for changes made through the sandbox's VFS; leases not supported "
    "(EINVAL)",
)
async def sys_fcntl(t: Task, fd: int, cmd: int, arg: int, *_: int) -> int:
    """Implements Linux syscall fcntl(2)."""
    fd, cmd = i32(fd), i32(cmd)
    table = t.fdtable
    f = table.get(fd)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        min_fd = i32(arg)
        if min_fd < 0 or min_fd >= table.limit:
            raise SyscallError(errno.EINVAL)
        return table.dup(fd, min_fd=min_fd, cloexec=cmd == F_DUPFD_CLOEXEC)
    if cmd == F_GETFD:
        return FD_CLOEXEC if table.get_cloexec(fd) else 0
    if cmd == F_SETFD:
        table.set_cloexec(fd, bool(arg & FD_CLOEXEC))
        return 0
    if f.is_path and cmd not in (F_GETFL,):
        raise SyscallError(errno.EBADF)
    if cmd == F_GETFL:
        return f.get_status_flags()
    if cmd == F_SETFL:
        was = f.flags
        f.set_status_flags(i32(arg) & 0xFFFFFFFF & ~O_DIRECT | (f.flags & O_DIRECT))
        if (was ^ f.flags) & O_ASYNC and \
                not fasync.set_async(t, f, fd, bool(f.flags & O_ASYNC)):
            f.set_status_flags(f.get_status_flags() & ~O_ASYNC)  # (no fasync: not kept)
        return 0
    if cmd in (F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW):
        return await _fcntl_lock(t, f, cmd, arg)
    if cmd in (F_GETOWN, F_SETOWN, F_GETOWN_EX, F_SETOWN_EX, F_GETSIG, F_SETSIG):
        return _fcntl_owner(t, f, cmd, arg)
    if cmd in (F_GETPIPE_SZ, F_SETPIPE_SZ):
        pipe_size = getattr(f, "pipe_size", None)
        if pipe_size is None:
            raise SyscallError(errno.EBADF)
        return pipe_size(t.creds, None if cmd == F_GETPIPE_SZ else i32(arg))
    if cmd == F_GET_SEALS or cmd == F_ADD_SEALS:
        return seals_fcntl(t, f, cmd, arg)
    if cmd == F_NOTIFY:
        return dnotify.fcntl_notify(t, f, fd, arg)
    raise SyscallError(errno.EINVAL)


def _fcntl_owner(t: Task, f: Any, cmd: int, arg: int) -> int:
    """F_{GET,SET}OWN(_EX) and F_{GET,SET}SIG: the file's owner for signal-driven I/O."""
    if cmd == F_GETOWN:
        kind, pid = fasync.get_owner(f)
        pid = t.pidns.vpid(pid)
        return -pid if kind == fasync.F_OWNER_PGRP else pid
    if cmd == F_SETOWN:
        who = i32(arg)
        if who == -(1 << 31):
            raise SyscallError(errno.EINVAL)
        fasync.set_owner(t, f, fasync.F_OWNER_PGRP if who < 0 else fasync.F_OWNER_PID,
                         abs(who))
        return 0
    if cmd == F_GETOWN_EX:
        kind, pid = fasync.get_owner(f)
        t.mem_write(arg, struct.pack("<ii", kind, t.pidns.vpid(pid)))
        return 0
    if cmd == F_SETOWN_EX:
        kind, pid = struct.unpack("<ii", t.mem_read(arg, 8))
        if kind not in (fasync.F_OWNER_TID, fasync.F_OWNER_PID, fasync.F_OWNER_PGRP):
            raise SyscallError(errno.EINVAL)
        fasync.set_owner(t, f, kind, pid)
        return 0
    if cmd == F_GETSIG:
        return fasync.owner(f).signum
    fasync.set_signal(f, arg)
    return 0


async def _fcntl_lock(t: Task, f: Any, cmd: int, arg: int) -> int:
    raw = t.mem_read(arg, FLOCK.size)
    ltype, whence, start, length, pid = FLOCK.unpack(raw)
    ofd = cmd in (F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW)
    if ofd and pid != 0:
        raise SyscallError(errno.EINVAL)
    if ltype not in (F_RDLCK, F_WRLCK, F_UNLCK):
        raise SyscallError(errno.EINVAL)
    lo, hi = await file_locks.byte_range(f, whence, start, length)
    owner: Any = f if ofd else file_locks.posix_owner(t.tgid)
    if cmd in (F_GETLK, F_OFD_GETLK):
        if ltype == F_UNLCK:
            raise SyscallError(errno.EINVAL)
        found = t.kernel.file_locks.test(f, owner, ltype, lo, hi)
        if found is None:
            t.mem_write(arg, FLOCK.pack(F_UNLCK, whence, start, length, pid))
        else:
            ctype, clo, chi, cpid = found
            t.mem_write(arg, FLOCK.pack(ctype, 0, clo, 0 if chi is None else chi - clo, cpid))
        return 0
    if ltype == F_RDLCK and not f.readable or ltype == F_WRLCK and not f.writable:
        raise SyscallError(errno.EBADF)
    wait = cmd in (F_SETLKW, F_OFD_SETLKW)
    await t.kernel.file_locks.set_record(f, owner, -1 if ofd else t.tgid, ltype, lo, hi, wait=wait)
    return 0


@syscall("flock")
async def sys_flock(t: Task, fd: int, operation: int, *_: int) -> int:
    """Implements Linux syscall flock(2): whole-file locks owned by the open description."""
    f = t.fdtable.get(i32(fd))
    await t.kernel.file_locks.flock(f, i32(operation))
    return 0


# -- ioctl ---------------------------------------------------------------------------------


@syscall(
    "ioctl",
    level=Level.PARTIAL,
    note="FIOCLEX, FIONCLEX, FIONBIO, FIOASYNC, FIONREAD; SIOCGIFINDEX, SIOCGIFNAME on sockets; the "
    "sandbox's terminals (devpts: termios, window size, process groups, controlling "
    "terminal, ptys); a safe subset on a host terminal; anything else ENOTTY",
)
async def sys_ioctl(t: Task, fd: int, cmd: int, arg: int, *_: int) -> int:
    """Implements Linux syscall ioctl(2) for the generic requests; the rest goes to the file."""
    fd = i32(fd)
    cmd &= 0xFFFFFFFF
    f = t.fdtable.get(fd)
    if cmd == FIOCLEX:
        t.fdtable.set_cloexec(fd, True)
        return 0
    if cmd == FIONCLEX:
        t.fdtable.set_cloexec(fd, False)
        return 0
    if f.is_path:
        raise SyscallError(errno.EBADF)
    if cmd == FIONBIO:
        on = struct.unpack("<i", t.mem_read(arg, 4))[0]
        flags = f.get_status_flags()
        f.set_status_flags(flags | O_NONBLOCK if on else flags & ~O_NONBLOCK)
        return 0
    if cmd == FIOASYNC:
        on = bool(struct.unpack("<i", t.mem_read(arg, 4))[0])
        if on != bool(f.flags & O_ASYNC):
            if not fasync.set_async(t, f, fd, on):
                raise SyscallError(errno.ENOTTY)  # (ioctl_fioasync: no fasync)
            f.set_status_flags(f.get_status_flags() ^ O_ASYNC)
        return 0
    if cmd == FIONREAD and hasattr(f, "file_size"):
        # Regular files answer the bytes left before EOF (Linux's file_ioctl).
        t.mem_write(arg, struct.pack("<i", max(0, min(f.file_size() - f.offset, 0x7FFFFFFF))))
        return 0
    if isinstance(f, TerminalFD):
        return await tty_ioctl(t, f, cmd, arg)
    return await f.ioctl(cmd, arg, t)


# -- pipes ---------------------------------------------------------------------------------


@syscall("pipe2")
async def sys_pipe2(t: Task, fds: int, flags: int, *_: int) -> int:
    """Implements Linux syscall pipe2(2)."""
    return await _pipe(t, fds, i32(flags) & 0xFFFFFFFF)


@syscall("pipe")
async def sys_pipe(t: Task, fds: int, *_: int) -> int:
    """Implements Linux syscall pipe(2)."""
    return await _pipe(t, fds, 0)


async def _pipe(t: Task, fds: int, flags: int) -> int:
    if flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT):
        raise SyscallError(errno.EINVAL)
    from vfs.fs.pipefs import new_pipe

    r, w = new_pipe(vfs_of(t)[0], t.creds, flags & O_NONBLOCK)
    table = t.fdtable
    cloexec = bool(flags & O_CLOEXEC)
    rfd = wfd = -1
    try:
        rfd = table.install(r, cloexec=cloexec)
        wfd = table.install(w, cloexec=cloexec)
        t.mem_write(fds, struct.pack("<ii", rfd, wfd))
    except SyscallError:
        for fd, f in ((rfd, r), (wfd, w)):
            if fd >= 0:
                table.remove(fd)
            await f.dec_ref()
        raise
    return 0


# -- copying between files -----------------------------------------------------------------


async def _copy(src: Any, dst: Any, n: int, in_off: int | None, out_off: int | None) -> int:
    """Move up to `n` bytes from `src` to `dst`; short on EOF or a short write."""
    done = 0
    while done < n:
        want = min(CHUNK, n - done)
        try:
            if in_off is None:
                data = await src.read(want)
            else:
                data = await src.pread(want, in_off + done)
            if not data:
                break
            if out_off is None:
                got = await dst.write(data)
            else:
                got = await dst.pwrite(data, out_off + done)
        except OSError:
            if done:
                break
            raise
        done += got
        if got < len(data):
            if in_off is None and getattr(src, "seekable", False):
                src.offset -= len(data) - got
            break
        if len(data) < want:
            break
    return done


def is_directory(f: Any) -> bool:
    """Whether an open file is a directory (which has no splice_read: EINVAL)."""
    return getattr(f, "vd", None) is not None and f.vd.dentry.inode.is_dir


@syscall("sendfile")
async def sys_sendfile(t: Task, out_fd: int, in_fd: int, offset: int, count: int, *_: int) -> int:
    """Implements Linux syscall sendfile(2): from any readable file that is not a pipe or a
    directory (EINVAL: they have no splice_read), through the FileDescription interface,
    to any writable file not opened O_APPEND; an offset needs a seekable source (ESPIPE)."""
    table = t.fdtable
    src = table.get(i32(in_fd))
    dst = table.get(i32(out_fd))
    if not src.readable or not dst.writable:
        raise SyscallError(errno.EBADF)
    if dst.flags & O_APPEND:
        raise SyscallError(errno.EINVAL)
    seekable = getattr(src, "seekable", False)
    if offset and not seekable:
        raise SyscallError(errno.ESPIPE)
    if is_directory(src) or getattr(src, "pipe", None) is not None:
        raise SyscallError(errno.EINVAL)
    n = _count(count)
    if offset:
        pos = struct.unpack("<q", t.mem_read(offset, 8))[0]
        if pos < 0:
            raise SyscallError(errno.EINVAL)
        done = await _copy(src, dst, n, pos, None)
        t.mem_write(offset, struct.pack("<q", pos + done))
        return done
    return await _copy(src, dst, n, None, None)


@syscall("copy_file_range")
async def sys_copy_file_range(t: Task, fd_in: int, off_in: int, fd_out: int, off_out: int,
                              length: int, flags: int) -> int:
    """Implements Linux syscall copy_file_range(2) (a plain copy; no reflinks), with
    Linux's checks in order: flags, fds, the offsets (EFAULT), directories (EISDIR), other
    non-regular files (EINVAL), access modes and O_APPEND (EBADF), files on different
    filesystems (EXDEV, where callers fall back to read and write), offsets that wrap
    (EOVERFLOW), overlapping ranges of one file and negative offsets (EINVAL)."""
    if flags & 0xFFFFFFFF:
        raise SyscallError(errno.EINVAL)
    table = t.fdtable
    src = table.get(i32(fd_in))
    dst = table.get(i32(fd_out))
    pin = struct.unpack("<q", t.mem_read(off_in, 8))[0] if off_in else None
    pout = struct.unpack("<q", t.mem_read(off_out, 8))[0] if off_out else None
    for f in (src, dst):
        if is_directory(f):
            raise SyscallError(errno.EISDIR)
    for f in (src, dst):
        if not hasattr(f, "file_size") or getattr(f, "vd", None) is None:
            raise SyscallError(errno.EINVAL)
    if not src.readable or not dst.writable or dst.flags & O_APPEND:
        raise SyscallError(errno.EBADF)
    if src.vd.mount.fs is not dst.vd.mount.fs:
        raise SyscallError(errno.EXDEV)
    n = length & 0xFFFFFFFFFFFFFFFF
    rpos = src.offset if pin is None else pin
    wpos = dst.offset if pout is None else pout
    if (rpos & 0xFFFFFFFFFFFFFFFF) + n >> 64 or (wpos & 0xFFFFFFFFFFFFFFFF) + n >> 64:
        raise SyscallError(errno.EOVERFLOW)  # generic_copy_file_checks: offsets must not wrap
    size = src.file_size()
    n = 0 if rpos >= size else min(n, size - rpos, MAX_RW)  # shortened to the data there
    if src.vd.dentry.inode is dst.vd.dentry.inode and wpos + n > rpos and wpos < rpos + n:
        raise SyscallError(errno.EINVAL)
    if rpos < 0 or wpos < 0:
        raise SyscallError(errno.EINVAL)
    if n == 0:
        return 0
    done = await _copy(src, dst, n, rpos, wpos)
    if pin is None:
        src.offset += done
    else:
        t.mem_write(off_in, struct.pack("<q", pin + done))
    if pout is None:
        dst.offset += done
    else:
        t.mem_write(off_out, struct.pack("<q", pout + done))
    return done


# -- directories and sync ------------------------------------------------------------------


@syscall("getdents64")
async def sys_getdents64(t: Task, fd: int, dirp: int, count: int, *_: int) -> int:
    """Implements Linux syscall getdents64(2)."""
    f = t.fdtable.get(i32(fd))
    size = count & 0xFFFFFFFF
    before = f.offset
    data = await f.getdents64(size)
    try:
        t.mem_write(dirp, data)
    except SyscallError:
        f.offset = before
        raise
    return len(data)


@syscall("getdents")
async def sys_getdents(t: Task, fd: int, dirp: int, count: int, *_: int) -> int:
    """Implements Linux syscall getdents(2): getdents64 records in the old linux_dirent layout.

    Both layouts have the same record length for a name, so one buffer converts in place:
    d_ino, d_off, d_reclen, the name and its NUL, and d_type in the record's last byte.
    """
    f = t.fdtable.get(i32(fd))
    size = count & 0xFFFFFFFF
    before = f.offset
    data = bytearray(await f.getdents64(size))
    pos = 0
    while pos < len(data):
        reclen = struct.unpack_from("<H", data, pos + 16)[0]
        dtype = data[pos + 18]
        name = bytes(data[pos + 19 : pos + reclen]).split(b"\0", 1)[0]
        rec = bytearray(reclen)
        rec[:18] = data[pos : pos + 18]
        rec[18 : 18 + len(name)] = name
        rec[reclen - 1] = dtype
        data[pos : pos + reclen] = rec
        pos += reclen
    try:
        t.mem_write(dirp, bytes(data))
    except SyscallError:
        f.offset = before
        raise
    return len(data)


@syscall("fsync")
async def sys_fsync(t: Task, fd: int, *_: int) -> int:
    """Implements Linux syscall fsync(2)."""
    await t.fdtable.get(i32(fd)).fsync(False)
    return 0


@syscall("fdatasync")
async def sys_fdatasync(t: Task, fd: int, *_: int) -> int:
    """Implements Linux syscall fdatasync(2)."""
    await t.fdtable.get(i32(fd)).fsync(True)
    return 0


@syscall("syncfs")
async def sys_syncfs(t: Task, fd: int, *_: int) -> int:
    """Implements Linux syscall syncfs(2)."""
    f = t.fdtable.get(i32(fd))
    if f.vd is not None:
        await f.vd.mount.fs.sync()
    return 0


@syscall("sync")
async def sys_sync(t: Task, *_: int) -> int:
    """Implements Linux syscall sync(2)."""
    await vfs_of(t)[0].sync()
    return 0


@syscall("fadvise64")
def sys_fadvise64(t: Task, fd: int, offset: int, length: int, advice: int, *_: int) -> int:
    """Implements Linux syscall fadvise64(2): advice is accepted and has no effect (the page
    cache is the VFS's); errors as Linux: EBADF, ESPIPE on pipes, EINVAL for bad advice."""
    f = t.fdtable.get(i32(fd))
    if i32(advice) not in range(6) or i64(length) < 0:
        raise SyscallError(errno.EINVAL)
    if getattr(f, "vd", None) is not None and f.vd.dentry.inode.type == 0o010000:
        raise SyscallError(errno.ESPIPE)
    if getattr(f, "vd", None) is None and not getattr(f, "seekable", False):
        raise SyscallError(errno.ESPIPE)
    return 0


@syscall("readahead")
def sys_readahead(t: Task, fd: int, offset: int, count: int, *_: int) -> int:
    """Implements Linux syscall readahead(2) as a no-op on readable regular files."""
    f = t.fdtable.get(i32(fd))
    if not f.readable:
        raise SyscallError(errno.EBADF)
    if not hasattr(f, "file_size"):
        raise SyscallError(errno.EINVAL)
    return 0
