"""Linux AIO: io_setup, io_submit, io_getevents, io_pgetevents, io_cancel, io_destroy.

Every read, write or sync completes inside io_submit (as Linux's own buffered AIO mostly
does): it runs through the FileDescription interface, and its result waits in the
context's completion queue for io_getevents. RWF_APPEND writes at the file's end;
RWF_NOWAIT is EOPNOTSUPP for a regular file (as tmpfs, which has no FMODE_NOWAIT) and
makes a pipe's, socket's or device's request EAGAIN when it is not ready. IOCB_CMD_POLL
completes at once when the file is ready, else a task of the Kernel waits for it
(`AioContext.polls`) until then, io_cancel (-EINPROGRESS; it completes with what is ready
then, as aio_poll_cancel), io_destroy, execve or the process's end. A context's id is the address of a page
mapped for it in the process, as Linux's ring: libaio peeks at it, finds no ring magic and
asks the kernel. Contexts belong to the process (the thread-group leader's
`aio_contexts`); fork does not pass them on. With IOCB_FLAG_RESFD each completion adds one
to the eventfd named by aio_resfd (`EventFD.signal`).
"""

from __future__ import annotations

import errno
import os
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from sentry.errors import SyscallError
from sentry.kernel.table import Level, syscall
from sentry.mm.vma import MAP_ANONYMOUS, MAP_PRIVATE, PAGE, PROT_READ
from vfs.abi import POLLERR, POLLHUP, POLLIN, POLLOUT
from vfs.file import MAX_RW

from .sys_eventfd import EventFD
from .sys_file import RWF_DSYNC, RWF_HIPRI, RWF_SYNC, i32, i64
from .sys_poll import _masked, _swap_mask

if TYPE_CHECKING:
    from sentry.kernel.task import Task

IOCB_CMD_PREAD, IOCB_CMD_PWRITE, IOCB_CMD_FSYNC, IOCB_CMD_FDSYNC = 0, 1, 2, 3
IOCB_CMD_POLL, IOCB_CMD_NOOP, IOCB_CMD_PREADV, IOCB_CMD_PWRITEV = 5, 6, 7, 8
IOCB_FLAG_RESFD, IOCB_FLAG_IOPRIO = 1, 2
#: struct iocb: data, key, rw_flags, opcode, reqprio, fildes, buf, nbytes, offset,
#: reserved2, flags, resfd
IOCB = struct.Struct("<QIiHhIQQqQII")
IO_EVENT = struct.Struct("<QQqq")
AIO_MAX_NR = 65536  # /proc/sys/fs/aio-max-nr
AIO_RING_HEADER = 32  # struct aio_ring before its events
_NOTE = ("reads, writes and syncs complete in io_submit; RWF_NOWAIT as on tmpfs "
         "(EOPNOTSUPP for a regular file)")
RWF_NOWAIT, RWF_APPEND = 8, 16
_ALL_EVENTS = 0xFFFF
_RWF_AIO = RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND


@dataclass
class AioContext:
    """One io_setup context: what was asked for, its ring's entries (one fewer requests may
    be outstanding), its ring's size, and the completions not yet reaped."""

    max_reqs: int
    nr_events: int
    ring_size: int
    done: deque[bytes] = field(default_factory=deque)
    changed: trio.Event = field(default_factory=trio.Event)
    #: IOCB_CMD_POLL requests in flight by iocb address: the scope of the task waiting and
    #: what is ready now of what it waits for.
    polls: dict[int, tuple[trio.CancelScope, Callable[[], int]]] = field(default_factory=dict)

    def complete(self, data: int, obj: int, res: int) -> None:
        self.done.append(IO_EVENT.pack(data, obj, res, 0))
        self.changed.set()
        self.changed = trio.Event()

    def drop_polls(self) -> None:
        """The context goes (io_destroy, execve): its polls end without a completion."""
        for scope, _ready in self.polls.values():
            scope.cancel()
        self.polls.clear()


def _context(t: Task, ctx: int) -> AioContext:
    c = t.leader.aio_contexts.get(ctx & 0xFFFFFFFFFFFFFFFF)
    if c is None:
        raise SyscallError(errno.EINVAL)
    return c


@syscall("io_setup", level=Level.PARTIAL, note=_NOTE)
async def sys_io_setup(t: Task, nr_events: int, ctxp: int, *_: int) -> int:
    """Implements Linux syscall io_setup(2): *ctxp must be 0 (EINVAL); EAGAIN past
    fs.aio-max-nr events in the sandbox's contexts."""
    nr = nr_events & 0xFFFFFFFF
    (cur,) = struct.unpack("<Q", t.mem_read(ctxp, 8))
    if cur or not nr or nr > 0x10000000 // IO_EVENT.size:
        raise SyscallError(errno.EINVAL)
    used = sum(c.max_reqs for p in t.kernel.procs.values() for c in p.aio_contexts.values())
    if used + nr > AIO_MAX_NR:
        raise SyscallError(errno.EAGAIN)
    # ioctx_alloc's ring: room for twice max(nr, 4 per CPU) events, rounded up to pages
    want = max(nr, 4 * (os.cpu_count() or 1)) * 2
    pages = -(-(AIO_RING_HEADER + IO_EVENT.size * want) // PAGE)
    entries = (pages * PAGE - AIO_RING_HEADER) // IO_EVENT.size
    ring = await t.mm.mmap(0, pages * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
                           name=b"[aio]")
    t.leader.aio_contexts[ring] = AioContext(nr, entries, pages * PAGE)
    try:
        t.mem_write(ctxp, struct.pack("<Q", ring))
    except SyscallError:
        del t.leader.aio_contexts[ring]
        await t.mm.munmap(ring, pages * PAGE)
        raise
    return 0


@syscall("io_destroy", level=Level.PARTIAL, note=_NOTE)
async def sys_io_destroy(t: Task, ctx: int, *_: int) -> int:
    """Implements Linux syscall io_destroy(2): the context, its polls in flight and its
    page go."""
    c = _context(t, ctx)
    del t.leader.aio_contexts[ctx & 0xFFFFFFFFFFFFFFFF]
    c.drop_polls()
    await t.mm.munmap(ctx, c.ring_size)
    return 0


async def _run(t: Task, f: Any, op: int, buf: int, nbytes: int, offset: int,
               rw_flags: int = 0) -> int:
    """One request's work; its result (bytes, or -errno) goes into the completion."""
    seekable = getattr(f, "seekable", False)
    if rw_flags & RWF_NOWAIT and op not in (IOCB_CMD_FSYNC, IOCB_CMD_FDSYNC):
        want = POLLIN if op in (IOCB_CMD_PREAD, IOCB_CMD_PREADV) else POLLOUT
        if not f.readiness(want) & (want | POLLERR | POLLHUP):
            return -errno.EAGAIN  # IOCB_NOWAIT: it would block
    if rw_flags & RWF_APPEND and seekable and op in (IOCB_CMD_PWRITE, IOCB_CMD_PWRITEV):
        offset = (await f.stat()).size  # IOCB_APPEND: at the end, whatever aio_offset says
    try:
        if op in (IOCB_CMD_FSYNC, IOCB_CMD_FDSYNC):
            await f.fsync(op == IOCB_CMD_FDSYNC)
            return 0
        if op in (IOCB_CMD_PREAD, IOCB_CMD_PREADV):
            vecs = t.read_iovecs(buf, nbytes) if op == IOCB_CMD_PREADV else [(buf, nbytes)]
            n = min(sum(ln for _, ln in vecs), MAX_RW)
            data = await (f.pread(n, offset) if seekable else f.read(n))
            pos = 0
            for base, ln in vecs:
                if pos >= len(data):
                    break
                t.mem_write(base, data[pos : pos + ln])
                pos += ln
            return len(data)
        vecs = t.read_iovecs(buf, nbytes) if op == IOCB_CMD_PWRITEV else [(buf, nbytes)]
        data = b"".join(t.mem_read(b, ln) for b, ln in vecs if ln)[:MAX_RW]
        return await (f.pwrite(data, offset) if seekable else f.write(data))
    except OSError as e:
        return -(e.errno or errno.EIO)


async def _submit_one(t: Task, c: AioContext, addr: int) -> None:
    """io_submit_one: the checks that fail the submission itself, then the request."""
    (data, _key, rw_flags, op, _prio, fd, buf, nbytes, offset, reserved2, flags,
     resfd) = IOCB.unpack(t.mem_read(addr, IOCB.size))
    if reserved2 or nbytes >> 63:
        raise SyscallError(errno.EINVAL)
    f = t.fdtable.get(i32(fd))
    signal: EventFD | None = None
    if flags & IOCB_FLAG_RESFD:  # eventfd_ctx_fdget: EBADF, or EINVAL if not an eventfd
        efd = t.fdtable.get(i32(resfd))
        if not isinstance(efd, EventFD):
            raise SyscallError(errno.EINVAL)
        signal = efd
    t.mem_write(addr + 8, b"\0\0\0\0")  # aio_key = KIOCB_KEY
    if op not in (IOCB_CMD_PREAD, IOCB_CMD_PWRITE, IOCB_CMD_FSYNC, IOCB_CMD_FDSYNC,
                  IOCB_CMD_PREADV, IOCB_CMD_PWRITEV, IOCB_CMD_POLL):
        raise SyscallError(errno.EINVAL)
    if op in (IOCB_CMD_FSYNC, IOCB_CMD_FDSYNC):
        if buf or offset or nbytes or rw_flags:
            raise SyscallError(errno.EINVAL)
    elif op == IOCB_CMD_POLL:  # aio_poll's checks
        if buf >> 16 or offset or nbytes or rw_flags:
            raise SyscallError(errno.EINVAL)
    else:
        if rw_flags & ~_RWF_AIO:  # aio_prep_rw, before the mode
            raise SyscallError(errno.EOPNOTSUPP)
        if rw_flags & RWF_NOWAIT and (getattr(f, "is_regular", False)
                                      or getattr(f, "seekable", False)):
            raise SyscallError(errno.EOPNOTSUPP)  # no FMODE_NOWAIT, as tmpfs
        reading = op in (IOCB_CMD_PREAD, IOCB_CMD_PREADV)
        if not (f.readable if reading else f.writable):
            raise SyscallError(errno.EBADF)
    if len(c.done) + len(c.polls) >= c.nr_events - 1:
        raise SyscallError(errno.EAGAIN)
    if op == IOCB_CMD_POLL:
        events = buf | POLLERR | POLLHUP
        ready = f.readiness(events) & events
        if not ready:
            scope = trio.CancelScope()
            c.polls[addr] = (scope, lambda: f.readiness(events) & events)
            t.kernel.start_soon(_poll, t.leader, c, f, events, data, addr, signal, scope)
            return
        c.complete(data, addr, ready)
        if signal is not None:
            signal.signal()
        return
    res = await _run(t, f, op, buf, nbytes, i64(offset), rw_flags)
    if res >= 0 and op in (IOCB_CMD_PWRITE, IOCB_CMD_PWRITEV) and rw_flags & (RWF_DSYNC | RWF_SYNC):
        try:  # as pwritev2: the write made durable (a pipe cannot be synced)
            await f.fsync(not rw_flags & RWF_SYNC)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EROFS):
                res = -(e.errno or errno.EIO)
    c.complete(data, addr, res)
    if signal is not None:
        signal.signal()  # aio_complete's eventfd_signal


async def _poll(leader: Task, c: AioContext, f: Any, events: int, data: int, addr: int,
                signal: EventFD | None, scope: trio.CancelScope) -> None:
    """IOCB_CMD_POLL in flight: completes with the events ready; io_cancel completes it
    with what is ready then; io_destroy, execve or the process's end drop it."""
    mask = 0
    with scope:
        async with trio.open_nursery() as nursery:
            async def ready() -> None:
                nonlocal mask
                mask = await f.wait_ready(events)
                nursery.cancel_scope.cancel()

            async def gone() -> None:
                await leader.ended.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(ready)
            nursery.start_soon(gone)
    if c.polls.get(addr, (None,))[0] is not scope or leader.ended.is_set():
        return  # cancelled (io_cancel completes it) or dropped
    del c.polls[addr]
    # aio_poll_wake reports the waker's whole key (a pipe's write: POLLIN|POLLRDNORM), not
    # only what was asked for: what is ready of every event.
    c.complete(data, addr, f.readiness(_ALL_EVENTS) | (mask & events))
    if signal is not None:
        signal.signal()


@syscall("io_submit", level=Level.PARTIAL, note=_NOTE)
async def sys_io_submit(t: Task, ctx: int, nr: int, iocbpp: int, *_: int) -> int:
    """Implements Linux syscall io_submit(2): the number submitted, or the first
    request's error if none was."""
    n = i64(nr)
    if n < 0:
        raise SyscallError(errno.EINVAL)
    c = _context(t, ctx)
    n = min(n, c.nr_events)
    done = 0
    for i in range(n):
        try:
            (addr,) = struct.unpack("<Q", t.mem_read(iocbpp + 8 * i, 8))
            await _submit_one(t, c, addr)
        except SyscallError:
            if done:
                break
            raise
        done += 1
    return done


async def _getevents(t: Task, ctx: int, min_nr: int, nr: int, events: int,
                     timeout: int) -> int:
    c = _context(t, ctx)
    lo, hi = i64(min_nr), i64(nr)
    if lo < 0 or hi < 0 or lo > hi:
        raise SyscallError(errno.EINVAL)
    deadline = None
    if timeout:
        sec, nsec = struct.unpack("<qq", t.mem_read(timeout, 16))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            raise SyscallError(errno.EINVAL)
        deadline = trio.current_time() + sec + nsec / 1e9
    got: list[bytes] = []
    while True:
        while c.done and len(got) < hi:
            got.append(c.done.popleft())
        if len(got) >= lo or (deadline is not None and trio.current_time() >= deadline):
            break
        with trio.move_on_at(deadline if deadline is not None else float("inf")):
            await t.sleep_interruptibly(c.changed.wait())
    try:
        if got:
            t.mem_write(events, b"".join(got))
    except SyscallError:
        c.done.extendleft(reversed(got))
        raise
    return len(got)


@syscall("io_getevents", level=Level.PARTIAL, note=_NOTE)
async def sys_io_getevents(t: Task, ctx: int, min_nr: int, nr: int, events: int,
                           timeout: int, *_: int) -> int:
    """Implements Linux syscall io_getevents(2): up to `nr` completions, waiting for
    `min_nr` until the relative `timeout`."""
    return await _getevents(t, ctx, min_nr, nr, events, timeout)


@syscall("io_pgetevents", level=Level.PARTIAL, note=_NOTE)
async def sys_io_pgetevents(t: Task, ctx: int, min_nr: int, nr: int, events: int,
                            timeout: int, usig: int) -> int:
    """Implements Linux syscall io_pgetevents(2): io_getevents under a temporary signal
    mask (struct __aio_sigset)."""
    if not usig:
        return await _getevents(t, ctx, min_nr, nr, events, timeout)
    sigmask, size = struct.unpack("<QQ", t.mem_read(usig, 16))
    _swap_mask(t, sigmask, size)
    return await _masked(t, _getevents(t, ctx, min_nr, nr, events, timeout))


@syscall("io_cancel", level=Level.PARTIAL, note=_NOTE)
def sys_io_cancel(t: Task, ctx: int, iocb: int, result: int, *_: int) -> int:
    """Implements Linux syscall io_cancel(2): only a poll can be in flight; it completes
    now with the events ready (aio_poll_cancel) and the call says -EINPROGRESS. A finished
    request, or an aio_key not KIOCB_KEY, is EINVAL."""
    data, key = struct.unpack("<QI", t.mem_read(iocb, 12))
    if key:
        raise SyscallError(errno.EINVAL)
    c = _context(t, ctx)
    poll = c.polls.pop(iocb, None)
    if poll is None:
        raise SyscallError(errno.EINVAL)
    scope, ready = poll
    scope.cancel()
    c.complete(data, iocb, ready())
    raise SyscallError(errno.EINPROGRESS)
