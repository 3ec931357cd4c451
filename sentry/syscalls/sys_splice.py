"""splice, tee and vmsplice: moving data through pipes (fs/splice.c).

One side of a splice is a pipe of the sandbox (`vfs.fs.pipefs`: its `Pipe` is used
directly, for the room, the page-sized units and SPLICE_F_NONBLOCK) or of the host (the
stdio of `runpsc do`, read and written as any file; tee peeks it with the host's tee,
`HostFD.peek`); the other side is any open file, reached only through the
`FileDescription` interface (read/write, pread/pwrite with an offset), so every file kind
(tmpfs, overlay and gofer files, devices, sockets) works the same way. Pages are copied, never shared: a later write to a spliced file does
not change what the pipe holds (Linux may share page-cache pages; POSIX leaves it open).
"""

from __future__ import annotations

import errno
import stat
import struct
from typing import TYPE_CHECKING, Any

from sentry.errors import SyscallError
from sentry.kernel.table import Level, syscall
from vfs.abi import O_APPEND, O_NONBLOCK
from vfs.file import MAX_RW
from vfs.fs.host import HostFD
from vfs.fs.pipefs import DEFAULT_CAPACITY, PipeFD

from .sys_file import i32, is_directory, scatter

if TYPE_CHECKING:
    from sentry.kernel.task import Task
    from vfs.fs.pipefs import Pipe

SPLICE_F_MOVE, SPLICE_F_NONBLOCK, SPLICE_F_MORE, SPLICE_F_GIFT = 1, 2, 4, 8
SPLICE_F_ALL = 15
_NOTE = ("pages are copied, not shared; SPLICE_F_NONBLOCK does not reach a host pipe (the "
         "stdio of runpsc do)")


def _pipe(f: Any) -> Pipe | None:
    """get_pipe_info: the sandbox pipe behind an open file, or None."""
    return f.pipe if isinstance(f, PipeFD) else None


def _host_pipe(f: Any) -> bool:
    """A pipe of the host (the stdio of `runpsc do`): a pipe for splice's rules, moved
    through its FileDescription's read and write."""
    return isinstance(f, HostFD) and stat.S_ISFIFO(f.mode)


async def _through_host_pipe(src: Any, pin: int | None, dst: Any, pout: int | None,
                             n: int) -> int:
    """A splice with a host pipe on one side and no sandbox pipe: at most a pipe's worth
    read from `src` and written to `dst` (SPLICE_F_NONBLOCK does not reach the host)."""
    want = min(n, DEFAULT_CAPACITY)
    data = await (src.read(want) if pin is None else src.pread(want, pin))
    if not data:
        return 0
    return await (dst.write(data) if pout is None else dst.pwrite(data, pout))


def _sigpipe(f: PipeFD) -> Any:
    return f.vfs.sigpipe if f.vfs is not None else None


async def _wait_room(t: Task, f: PipeFD, pipe: Pipe, nonblock: bool) -> None:
    """wait_for_space: EPIPE (and SIGPIPE) without readers, EAGAIN when full and not
    blocking, else sleep until a slot frees."""
    while True:
        if pipe.readers == 0:
            hook = _sigpipe(f)
            if hook is not None:
                hook()
            raise SyscallError(errno.EPIPE)
        if not pipe.full():
            return
        if nonblock:
            raise SyscallError(errno.EAGAIN)
        await t.sleep_interruptibly(pipe.wait_change())


async def _wait_data(t: Task, pipe: Pipe, nonblock: bool) -> bool:
    """Wait until the pipe holds data (True) or has no writer left (False, EOF)."""
    while not pipe.nbytes:
        if pipe.writers == 0:
            return False
        if nonblock:
            raise SyscallError(errno.EAGAIN)
        await t.sleep_interruptibly(pipe.wait_change())
    return True


def _read_offset(t: Task, ptr: int) -> int:
    (off,) = struct.unpack("<q", t.mem_read(ptr, 8))
    if off < 0:
        raise SyscallError(errno.EINVAL)
    return off


async def _file_to_pipe(t: Task, src: Any, off: int | None, dst: PipeFD, n: int,
                        nonblock: bool) -> int:
    """splice_file_to_pipe: at most the pipe's free slots, from the file's position or
    `off` (pread)."""
    pipe = dst.pipe
    await _wait_room(t, dst, pipe, nonblock)
    want = min(n, pipe.room())
    data = await (src.read(want) if off is None else src.pread(want, off))
    if not data:
        return 0
    return await pipe.write(data, True, _sigpipe(dst))


async def _pipe_to_file(t: Task, src: PipeFD, dst: Any, off: int | None, n: int,
                        nonblock: bool) -> int:
    """do_splice_from: what the pipe holds (waiting for some), written to the file at its
    position or `off` (pwrite); what the file does not take stays in the pipe."""
    pipe = src.pipe
    if not await _wait_data(t, pipe, nonblock):
        return 0
    data = await pipe.read(n, True)
    try:
        done = await (dst.write(data) if off is None else dst.pwrite(data, off))
    except BaseException:
        pipe.unread(data)
        raise
    pipe.unread(data[done:])
    return done


async def _pipe_to_pipe(t: Task, src: PipeFD, dst: PipeFD, n: int, nonblock: bool) -> int:
    """splice_pipe_to_pipe: wait for input, then for room; move what both allow."""
    ipipe, opipe = src.pipe, dst.pipe
    if not await _wait_data(t, ipipe, nonblock):
        return 0
    await _wait_room(t, dst, opipe, nonblock)
    data = await ipipe.read(min(n, opipe.room()), True)
    return await opipe.write(data, True, _sigpipe(dst))


@syscall("splice", level=Level.PARTIAL, note=_NOTE)
async def sys_splice(t: Task, fd_in: int, off_in: int, fd_out: int, off_out: int,
                     length: int, flags: int) -> int:
    """Implements Linux syscall splice(2): pipe to file, file to pipe, pipe to pipe, with
    Linux's order of checks (a zero length is 0 before anything; EBADF, ESPIPE for an
    offset on a pipe, EINVAL without a pipe, for an offset on an unseekable file or an
    O_APPEND destination)."""
    n = length & 0xFFFFFFFFFFFFFFFF
    if not n:
        return 0
    flags &= 0xFFFFFFFF
    if flags & ~SPLICE_F_ALL:
        raise SyscallError(errno.EINVAL)
    src = t.fdtable.get(i32(fd_in))
    dst = t.fdtable.get(i32(fd_out))
    ipipe, opipe = _pipe(src), _pipe(dst)
    ihost, ohost = _host_pipe(src), _host_pipe(dst)
    if ((ipipe is not None or ihost) and off_in) or ((opipe is not None or ohost) and off_out):
        raise SyscallError(errno.ESPIPE)
    pout = _read_offset(t, off_out) if off_out else None
    pin = _read_offset(t, off_in) if off_in else None
    if not src.readable or not dst.writable:
        raise SyscallError(errno.EBADF)
    n = min(n, MAX_RW)
    if ipipe is None and opipe is None and (ihost or ohost):
        if (pin is not None and not getattr(src, "seekable", False)) or is_directory(src) \
                or (pout is not None and not getattr(dst, "seekable", False)) \
                or (not ohost and dst.flags & O_APPEND):
            raise SyscallError(errno.EINVAL)
        done = await _through_host_pipe(src, pin, dst, pout, n)
        for ptr, pos in ((off_in, pin), (off_out, pout)):
            if pos is not None:
                t.mem_write(ptr, struct.pack("<q", pos + done))
        return done
    nonblock = bool(flags & SPLICE_F_NONBLOCK)
    if ipipe is not None and opipe is not None:
        if ipipe is opipe:
            raise SyscallError(errno.EINVAL)
        nonblock |= bool((src.flags | dst.flags) & O_NONBLOCK)
        return await _pipe_to_pipe(t, src, dst, n, nonblock)
    if ipipe is not None:
        if pout is not None and not getattr(dst, "seekable", False):
            raise SyscallError(errno.EINVAL)
        if dst.flags & O_APPEND:
            raise SyscallError(errno.EINVAL)
        nonblock |= bool(src.flags & O_NONBLOCK)
        done = await _pipe_to_file(t, src, dst, pout, n, nonblock)
        if pout is not None:
            t.mem_write(off_out, struct.pack("<q", pout + done))
        return done
    if opipe is not None:
        if pin is not None and not getattr(src, "seekable", False) or is_directory(src):
            raise SyscallError(errno.EINVAL)
        nonblock |= bool(dst.flags & O_NONBLOCK)
        done = await _file_to_pipe(t, src, pin, dst, n, nonblock)
        if pin is not None:
            t.mem_write(off_in, struct.pack("<q", pin + done))
        return done
    raise SyscallError(errno.EINVAL)


@syscall("tee", level=Level.PARTIAL, note=_NOTE)
async def sys_tee(t: Task, fd_in: int, fd_out: int, length: int, flags: int, *_: int) -> int:
    """Implements Linux syscall tee(2): what one pipe holds is copied into another and
    stays unread in the first; both must be pipes, of the sandbox or of the host (a host
    pipe is peeked with the host's tee, `HostFD.peek`), else EINVAL."""
    flags &= 0xFFFFFFFF
    if flags & ~SPLICE_F_ALL:
        raise SyscallError(errno.EINVAL)
    n = length & 0xFFFFFFFFFFFFFFFF
    if not n:
        return 0
    src = t.fdtable.get(i32(fd_in))
    dst = t.fdtable.get(i32(fd_out))
    ipipe, opipe = _pipe(src), _pipe(dst)
    if not src.readable or not dst.writable:
        raise SyscallError(errno.EBADF)
    if (ipipe is None and not _host_pipe(src)) or (opipe is None and not _host_pipe(dst)) \
            or (ipipe is not None and ipipe is opipe):
        raise SyscallError(errno.EINVAL)
    nonblock = bool(flags & SPLICE_F_NONBLOCK or (src.flags | dst.flags) & O_NONBLOCK)
    n = min(n, MAX_RW)
    if ipipe is not None:
        if not await _wait_data(t, ipipe, nonblock):
            return 0
    if opipe is not None:
        await _wait_room(t, dst, opipe, nonblock)
        n = min(n, opipe.room())
    data = ipipe.peek(n) if ipipe is not None else await src.peek(n)
    if not data:
        return 0
    if opipe is not None:
        return await opipe.write(data, True, _sigpipe(dst))
    return await dst.write(data)


def _gather(t: Task, vecs: list[tuple[int, int]], want: int) -> bytes:
    """The first `want` bytes of the program's iovecs `vecs` (vmsplice's source)."""
    parts = []
    for base, ln in vecs:
        if want <= 0:
            break
        take = min(ln, want)
        if take:
            parts.append(t.mem_read(base, take))
        want -= take
    return b"".join(parts)


async def _vmsplice_host(t: Task, f: Any, vecs: list[tuple[int, int]], total: int) -> int:
    """vmsplice on a host pipe: at most a pipe's worth of the memory written to it, or
    (opened only for reading) read from it as readv; bytes past a fault are lost, as they
    cannot go back."""
    if f.writable:
        return await f.write(_gather(t, vecs, min(total, DEFAULT_CAPACITY)))
    data = await f.read(total)
    pos, fault = scatter(t, vecs, data)
    if fault is not None and not pos:
        raise fault
    return pos


@syscall("vmsplice", level=Level.PARTIAL, note=_NOTE)
async def sys_vmsplice(t: Task, fd: int, iov: int, nr_segs: int, flags: int,
                       *_: int) -> int:
    """Implements Linux syscall vmsplice(2): user memory into a pipe opened for writing
    (at most its free slots, EAGAIN with SPLICE_F_NONBLOCK when full), or out of a pipe
    opened only for reading, as readv; EBADF for a file that is not a pipe."""
    flags &= 0xFFFFFFFF
    if flags & ~SPLICE_F_ALL:
        raise SyscallError(errno.EINVAL)
    f = t.fdtable.get(i32(fd))
    if not f.writable and not f.readable:
        raise SyscallError(errno.EBADF)
    segs = nr_segs & 0xFFFFFFFFFFFFFFFF
    vecs = t.read_iovecs(iov, segs if segs <= 1024 else -1)
    total = min(sum(ln for _, ln in vecs), MAX_RW)
    if not total:
        return 0
    pipe = _pipe(f)
    if pipe is None and _host_pipe(f):
        return await _vmsplice_host(t, f, vecs, total)
    if pipe is None:
        raise SyscallError(errno.EBADF)
    assert isinstance(f, PipeFD)
    nonblock = bool(flags & SPLICE_F_NONBLOCK)
    if f.writable:
        await _wait_room(t, f, pipe, nonblock)
        return await pipe.write(_gather(t, vecs, min(total, pipe.room())), True, _sigpipe(f))
    if not await _wait_data(t, pipe, nonblock):
        return 0
    data = await pipe.read(total, True)
    pos, fault = scatter(t, vecs, data)
    if fault is not None:
        pipe.unread(data[pos:])
        if not pos:
            raise fault
    return pos

