"""poll, ppoll, select, pselect6 and the epoll family: wait until one of several open files
is ready.

Each call scans every file's `readiness(mask)`; if nothing is ready it awaits all the
files' `wait_ready(mask)` at once in a trio nursery (the first to return ends the wait),
under a cancel scope for the timeout and inside `Task.sleep_interruptibly`, so a handled
signal ends it with EINTR (poll and select are never restarted after a handler: Linux's
-ERESTARTNOHAND). Then it scans again. The Sentry's other tasks run meanwhile.

ppoll and pselect6 swap in the caller's temporary signal mask for the wait, the way
rt_sigsuspend does (`ThreadSignals.saved_mask`): if the call ends with EINTR and a signal
is deliverable, the handler's frame keeps the original mask for sigreturn to restore;
otherwise the original mask is restored before returning, as Linux's
`restore_saved_sigmask_unless` does.

epoll: an `EpollFD` is a vfs FileDescription (installed in the fd table, pollable,
closable) holding the interest list; epoll_wait scans it the same way. Level-triggered
items are scanned; EPOLLET items are reported once per readiness notification of their
file, or, for host fds and sockets held on the host, once per edge the host kernel
reports through an edge-triggered host epoll (see `EpollFD`); EPOLLONESHOT disarms after
one report. epoll_ctl refuses what Linux's file_can_poll refuses (regular files,
directories, null/zero/full/urandom, a host fd the host's epoll refuses) with EPERM.
"""

from __future__ import annotations

import errno
import math
import os
import select
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from sentry.errors import SyscallError
from sentry.kernel import signals as S
from sentry.kernel import sigstate
from sentry.kernel.table import Level, syscall
from sentry.socket import Socket
from sentry.socket.hostsocket import HostSocket
from vfs.abi import (
    O_RDONLY,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLNVAL,
    POLLOUT,
    POLLPRI,
    POLLRDBAND,
    POLLRDNORM,
    POLLWRBAND,
    POLLWRNORM,
    Stat,
    StatFS,
)
from vfs.file import FileDescription
from vfs.fs.host import HostFD

from .anon import anon_statfs

if TYPE_CHECKING:
    from sentry.kernel.pidns import PidNamespace
    from sentry.kernel.task import Task

_NS = 1_000_000_000
#: struct pollfd: int fd; short events; short revents.
POLLFD = struct.Struct("<ihh")
#: What select's three sets mean in poll events (Linux fs/select.c).
POLLIN_SET = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR
POLLOUT_SET = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR
POLLEX_SET = POLLPRI
#: The default RLIMIT_NOFILE soft limit when the fd table does not say.
_NOFILE = 1024


def _i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _nofile(t: Task) -> int:
    return int(getattr(t.fdtable, "limit", _NOFILE))


async def _wait_any(files: list[tuple[Any, int]], deadline: float | None) -> None:
    """Return once any of `files` may be ready (its `wait_ready(mask)` returned) or the
    deadline passed; the caller scans again."""
    with trio.move_on_at(math.inf if deadline is None else deadline):
        if not files:
            await trio.sleep_forever()
        if len(files) == 1:  # no nursery and task to start and cancel for one file
            await files[0][0].wait_ready(files[0][1])
            return
        async with trio.open_nursery() as nursery:
            async def one(f: Any, mask: int) -> None:
                await f.wait_ready(mask)
                nursery.cancel_scope.cancel()

            for f, mask in files:
                nursery.start_soon(one, f, mask)


async def _scan_loop(t: Task, scan: Any, deadline: float | None) -> int:
    """Call `scan()` (-> (count, files to wait on)) until it counts something, the deadline
    passes, or a signal interrupts (SyscallError(EINTR))."""
    while True:
        n, files = scan()
        if n or (deadline is not None and trio.current_time() >= deadline):
            return n
        await t.sleep_interruptibly(_wait_any(files, deadline))


# timeouts ------------------------------------------------------------------------------------


def _deadline(sec: int, nsec: int) -> float:
    if sec < 0 or not 0 <= nsec < _NS:
        raise SyscallError(errno.EINVAL)
    return trio.current_time() + sec + nsec / _NS


def _remaining(deadline: float) -> tuple[int, int]:
    left = max(0.0, deadline - trio.current_time())
    ns = int(left * _NS)
    return ns // _NS, ns % _NS


def _write_back(t: Task, addr: int, deadline: float | None, zero: bool, usec: bool) -> None:
    """Linux's poll_select_finish: the time left goes back (not for a zero timeout); a
    fault here is ignored."""
    if not addr or deadline is None or zero:
        return
    sec, ns = _remaining(deadline)
    sec = min(sec, (1 << 63) - 1)  # what is left of a timeout near the largest time_t
    data = struct.pack("<qq", sec, ns // 1000 if usec else ns)
    try:
        t.mem_write(addr, data)
    except SyscallError:
        pass


def _read_timespec(t: Task, addr: int) -> tuple[float | None, bool]:
    """A struct timespec timeout (NULL: forever) -> (deadline, was zero)."""
    if not addr:
        return None, False
    sec, nsec = struct.unpack("<qq", t.mem_read(addr, 16))
    return _deadline(sec, nsec), sec == 0 and nsec == 0


# signal masks ---------------------------------------------------------------------------------


def _swap_mask(t: Task, addr: int, size: int) -> None:
    """Apply the temporary mask of ppoll/pselect6 (NULL: keep the current one)."""
    if not addr:
        return
    if size != 8:
        raise SyscallError(errno.EINVAL)
    (new,) = struct.unpack("<Q", t.mem_read(addr, 8))
    s = sigstate.ts(t)
    s.saved_mask, s.mask = s.mask, new & ~sigstate.UNBLOCKABLE & sigstate.MASK64


def _restore_mask(t: Task, eintr: bool) -> None:
    """Restore the original mask now unless a handler is about to run for EINTR (its frame
    saves the original mask; sigreturn restores it)."""
    s = sigstate.ts(t)
    if s.saved_mask is None:
        return
    if eintr and S.has_deliverable(t):
        return
    s.mask, s.saved_mask = s.saved_mask, None


def _interrupted(e: BaseException) -> bool:
    """Whether `e` ends a wait because of a signal: EINTR, or trio's Cancelled (alone or in
    the group a nursery wraps it in)."""
    if isinstance(e, BaseExceptionGroup):
        return e.subgroup(trio.Cancelled) is not None
    return isinstance(e, trio.Cancelled) or getattr(e, "errno", 0) == errno.EINTR


async def _masked(t: Task, aw: Any) -> int:
    """Await the wait with the temporary mask in force, then restore it as Linux does. An
    interruption arrives as SyscallError(EINTR) or, when the dispatcher's own cancel scope
    (the outermost cancelled one) takes it, as trio.Cancelled."""
    try:
        res = await aw
    except BaseException as e:
        _restore_mask(t, _interrupted(e))
        raise
    _restore_mask(t, False)
    return res


# poll ---------------------------------------------------------------------------------------


async def _poll(t: Task, addr: int, nfds: int, deadline: float | None) -> int:
    if nfds > _nofile(t):
        raise SyscallError(errno.EINVAL)
    raw = t.mem_read(addr, nfds * POLLFD.size) if nfds else b""
    entries = [POLLFD.unpack_from(raw, i * POLLFD.size) for i in range(nfds)]
    revents = [0] * nfds

    def scan() -> tuple[int, list[tuple[Any, int]]]:
        count, files = 0, []
        for i, (fd, events, _) in enumerate(entries):
            r = 0
            if fd >= 0:
                try:
                    f = t.fdtable.get(fd)
                except SyscallError:
                    r = POLLNVAL
                else:
                    mask = (events & 0xFFFF) | POLLERR | POLLHUP
                    r = f.readiness(mask) & (mask | POLLNVAL)
                    if not r:
                        files.append((f, events & 0xFFFF))
            revents[i] = r
            count += bool(r)
        return count, files

    n = await _scan_loop(t, scan, deadline)
    out = b"".join(POLLFD.pack(fd, ev, _i16(r))
                   for (fd, ev, _), r in zip(entries, revents, strict=True))
    if out:
        t.mem_write(addr, out)
    return n


def _i16(v: int) -> int:
    v &= 0xFFFF
    return v - 0x10000 if v & 0x8000 else v


@syscall("poll")
async def sys_poll(t: Task, addr: int, nfds: int, timeout: int, *_: int) -> int:
    """Implements Linux syscall poll(2): timeout in ms, negative for forever."""
    ms = _i32(timeout)
    deadline = None if ms < 0 else trio.current_time() + ms / 1000
    return await _poll(t, addr, nfds & 0xFFFFFFFF, deadline)


@syscall("ppoll")
async def sys_ppoll(t: Task, addr: int, nfds: int, tsp: int, sigmask: int, size: int,
                    *_: int) -> int:
    """Implements Linux syscall ppoll(2): timespec timeout, temporary signal mask."""
    deadline, zero = _read_timespec(t, tsp)
    _swap_mask(t, sigmask, size)
    try:
        return await _masked(t, _poll(t, addr, nfds & 0xFFFFFFFF, deadline))
    finally:
        _write_back(t, tsp, deadline, zero, usec=False)


# select -------------------------------------------------------------------------------------


async def _select(t: Task, nfds: int, rp: int, wp: int, ep: int,
                  deadline: float | None) -> int:
    n = _i32(nfds)
    if n < 0:
        raise SyscallError(errno.EINVAL)
    n = min(n, _nofile(t))
    nbytes = (n + 63) // 64 * 8
    sets = [int.from_bytes(t.mem_read(p, nbytes), "little") if p and nbytes else 0
            for p in (rp, wp, ep)]
    want = sets[0] | sets[1] | sets[2]
    fds: list[tuple[int, Any, int]] = []
    for fd in range(n):
        if not want >> fd & 1:
            continue
        f = t.fdtable.get(fd)  # EBADF for a closed fd, as Linux's max_select_fd
        mask = ((POLLIN_SET if sets[0] >> fd & 1 else 0)
                | (POLLOUT_SET if sets[1] >> fd & 1 else 0)
                | (POLLEX_SET if sets[2] >> fd & 1 else 0))
        fds.append((fd, f, mask))
    res = [0, 0, 0]

    def scan() -> tuple[int, list[tuple[Any, int]]]:
        count, files = 0, []
        res[:] = [0, 0, 0]
        for fd, f, mask in fds:
            r = f.readiness(mask)
            hit = False
            for k, kind in enumerate((POLLIN_SET, POLLOUT_SET, POLLEX_SET)):
                if mask & kind and r & kind:
                    res[k] |= 1 << fd
                    count += 1
                    hit = True
            if not hit and not r:  # (a hang-up select does not ask about is not waited on)
                files.append((f, mask))
        return count, files

    count = await _scan_loop(t, scan, deadline)
    for p, bits in zip((rp, wp, ep), res, strict=True):
        if p and nbytes:
            t.mem_write(p, bits.to_bytes(nbytes, "little"))
    return count


@syscall("select", note="nfds is clamped to RLIMIT_NOFILE rather than the fd table's size")
async def sys_select(t: Task, nfds: int, rp: int, wp: int, ep: int, tvp: int, *_: int) -> int:
    """Implements Linux syscall select(2): the time left is written back to the timeval."""
    deadline, zero = None, False
    if tvp:
        sec, usec = struct.unpack("<qq", t.mem_read(tvp, 16))
        if sec < 0 or usec < 0:
            raise SyscallError(errno.EINVAL)
        sec, usec = sec + usec // 1_000_000, usec % 1_000_000
        deadline, zero = _deadline(sec, usec * 1000), sec == 0 and usec == 0
    try:
        return await _select(t, nfds, rp, wp, ep, deadline)
    finally:
        _write_back(t, tvp, deadline, zero, usec=True)


@syscall("pselect6", note="nfds is clamped to RLIMIT_NOFILE rather than the fd table's size")
async def sys_pselect6(t: Task, nfds: int, rp: int, wp: int, ep: int, tsp: int,
                       sig: int) -> int:
    """Implements Linux syscall pselect6(2): timespec timeout (time left written back) and
    a {sigset_t *, size} pair for the temporary signal mask."""
    deadline, zero = _read_timespec(t, tsp)
    if sig:
        ss, size = struct.unpack("<QQ", t.mem_read(sig, 16))
        _swap_mask(t, ss, size)
    try:
        return await _masked(t, _select(t, nfds, rp, wp, ep, deadline))
    finally:
        _write_back(t, tsp, deadline, zero, usec=False)




# epoll --------------------------------------------------------------------------------------

EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EPOLL_CLOEXEC = 0o2000000
EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET = 1 << 28, 1 << 29, 1 << 30, 1 << 31
#: struct epoll_event is packed on x86_64: u32 events, u64 data.
EPOLL_EVENT = struct.Struct("<IQ")
_EP_MAX_EVENTS = 0x7FFFFFFF // EPOLL_EVENT.size
_EP_PRIVATE = EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE | EPOLLWAKEUP
#: What EPOLLEXCLUSIVE may be combined with (Linux's EPOLLEXCLUSIVE_OK_BITS).
_EXCLUSIVE_OK = POLLIN | POLLOUT | POLLERR | POLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE
_S_IFMT, _S_IFREG, _S_IFDIR = 0o170000, 0o100000, 0o040000
#: Files whose readiness only the host kernel sees, through their host fd `.fd`: EPOLLET
#: on them is served by a host epoll (host files, and sockets held on the host: TCP, UDP).
_HOST_SERVED = (HostFD, HostSocket)


class _Item:
    """One registration: the file, its events (0xFFFF bits 0: disarmed by EPOLLONESHOT),
    the user's data, and `ready`: whether it is on Linux's ready list (set by its file's
    wait-queue callback, by ADD/MOD of a ready file and by a level-triggered report;
    cleared when a wait finds the file not ready or reports it edge-triggered)."""

    __slots__ = ("key", "file", "events", "data", "ready", "sub", "hostfd")

    def __init__(self, key: tuple[int, int], file: Any, events: int, data: int) -> None:
        self.key, self.file, self.events, self.data = key, file, events, data
        self.ready = False
        self.sub: tuple[Any, Any] | None = None  # (wait queue, callback) while subscribed
        self.hostfd = -1  # our dup of a host file's fd, in the epoll's host epoll

    @property
    def edge(self) -> bool:
        """Served edge-triggered: EPOLLET on a file whose edges we can see (its readiness
        changes are notified, or the host kernel reports them for a host fd)."""
        return bool(self.events & EPOLLET) and (self.sub is not None or self.hostfd >= 0)


def notifies(f: Any) -> bool:
    """Whether `f` announces readiness changes on its `waitq` (pipes, signalfd, epoll,
    always-ready devices do; host files served by the host kernel do not)."""
    return bool(getattr(f, "notifies_readiness", True))


class EpollFD(FileDescription):
    """An epoll instance: a file (it lives in the fd table, can be polled and closed) that
    holds an interest list keyed like Linux's, by (fd, open file).

    Level-triggered items are reported on every wait while they are ready. Edge-triggered
    (EPOLLET) items are reported once per edge: the item subscribes to its file's wait
    queue, and each notification with a matching event (new data in a pipe, space freed in
    a full one, a hang-up, a signal queued for a signalfd) flags it, as Linux's
    ep_poll_callback puts it on the ready list; a wait reports a flagged item if the file
    is ready then, and clears the flag. ADD and MOD of a ready file are edges too. A host
    fd's readiness changes happen in the host kernel, which has no hook into our wait
    queues: an EPOLLET host fd is registered, edge-triggered, in a host epoll of this
    EpollFD, whose reports (harvested before every scan, awaited with the other waits)
    flag the item instead. A file that does neither is served level-triggered.
    EPOLLONESHOT disables an item after one report until EPOLL_CTL_MOD.

    Order: `items` is kept in Linux's ready-list order. An item joining the ready list (a
    notification, ADD/MOD of a ready file) moves to the end, and so does each
    level-triggered item reported (so a small `maxevents` still sees every ready item in
    turn); level-triggered items are still scanned every wait, so a file that misses a
    notification is reported anyway, only perhaps out of Linux's order. Any notification of
    an item's file is passed on to this epoll's own wait queue, so an epoll inside another
    (or in poll) hears its edges.
    """

    anon_name = b"anon_inode:[eventpoll]"  # /proc/PID/fd

    def __init__(self, anon_stat: Callable[[], Stat]) -> None:
        super().__init__(None, O_RDONLY)
        self._anon_stat = anon_stat  # the kernel's one anonymous inode (fstat)
        #: (fd, id(file)) -> _Item
        self.items: dict[tuple[int, int], _Item] = {}
        self._edge = trio.Event()
        #: For EPOLLET on host fds: a host epoll holding a dup of each, edge-triggered, so
        #: the host kernel tracks their edges; dup fd -> its item.
        self._host: select.epoll | None = None
        self._host_items: dict[int, _Item] = {}
        #: Empty waits in progress (`_ListWait`), and the interest list's generation: an
        #: ADD, a MOD or an item's notification bumps it and ends those waits.
        self._waits: set[trio.CancelScope] = set()
        self._gen = 0

    def fdinfo(self, pidns: PidNamespace) -> bytes:
        """ep_show_fdinfo: a line per registration (by fd here; Linux's order is its
        tree's, by file address): fd, events (as armed), data, and the file's position,
        inode and device where it has them."""
        out = []
        for (fd, _), it in sorted(self.items.items(), key=lambda kv: kv[0][0]):
            f = it.file
            vd = getattr(f, "vd", None)
            ino = dev = 0
            if vd is not None:
                ino = vd.dentry.inode.ino
            elif getattr(f, "_anon_stat", None) is not None:
                st = f._anon_stat()
                ino, dev = st.ino, (os.major(st.dev) << 20) | os.minor(st.dev)
            out.append(b"tfd: %8d events: %8x data: %16x  pos:%d ino:%x sdev:%x\n" % (
                fd, it.events & 0xFFFFFFFF, it.data & 0xFFFFFFFFFFFFFFFF,
                getattr(f, "offset", 0), ino, dev))
        return b"".join(out)

    @property
    def notifies_readiness(self) -> bool:  # type: ignore[override]  # a class attribute in vfs
        return all(notifies(it.file) for it in self.items.values())

    async def statfs(self) -> StatFS:
        return anon_statfs(await self.stat())

    async def stat(self) -> Stat:
        return self._anon_stat()

    # -- the interest list ------------------------------------------------------------------

    def add(self, key: tuple[int, int], f: Any, events: int, data: int) -> None:
        it = self.items[key] = _Item(key, f, events, data)
        if events & EPOLLET and isinstance(f, _HOST_SERVED):
            self._host_add(it)
        elif notifies(f):
            q = f.waitq

            def cb(mask: int, it: _Item = it) -> None:
                self._notified(it, mask)

            q.subscribe(cb)
            it.sub = (q, cb)
        self._poll_now(it)
        self._rescan()

    def modify(self, key: tuple[int, int], events: int, data: int) -> None:
        it = self.items[key]
        it.events, it.data = events, data
        if it.hostfd >= 0 and not events & EPOLLET:
            self._host_remove(it)
        elif it.hostfd < 0 and events & EPOLLET and isinstance(it.file, _HOST_SERVED):
            self._host_add(it)
        elif it.hostfd >= 0:
            self._host_sync(it)
        self._poll_now(it)
        self._rescan()

    def remove(self, key: tuple[int, int]) -> _Item | None:
        it = self.items.pop(key, None)
        if it is not None and it.sub is not None:
            it.sub[0].unsubscribe(it.sub[1])
            it.sub = None
        if it is not None and it.hostfd >= 0:
            self._host_remove(it)
        return it

    # -- host files: the host kernel's own edge-triggered epoll sees their edges ------------

    def _host_add(self, it: _Item) -> None:
        """Register a private dup of `it`'s host fd in the host epoll (a dup of our own, so
        it can always be unregistered, whatever happens to the file's fd meanwhile)."""
        try:
            if self._host is None:
                self._host = select.epoll()
            fd = os.dup(it.file.fd)
        except OSError:
            return  # served level-triggered
        try:
            self._host.register(fd, select.EPOLLET | it.events & 0xFFFF)
        except OSError:
            os.close(fd)
            return  # the host refuses it: served level-triggered
        it.hostfd = fd
        self._host_items[fd] = it

    def _host_remove(self, it: _Item) -> None:
        fd, it.hostfd = it.hostfd, -1
        self._host_items.pop(fd, None)
        try:
            if self._host is not None:
                self._host.unregister(fd)
        except OSError:
            pass
        os.close(fd)

    def _host_sync(self, it: _Item) -> None:
        """New events for a host item: re-register it (which re-polls it: MOD's edge)."""
        if self._host is None:
            return
        try:
            self._host.modify(it.hostfd, select.EPOLLET | it.events & 0xFFFF)
        except OSError:
            pass

    def _harvest(self) -> None:
        """Take the edges the host epoll collected and flag their items."""
        ep = self._host
        if ep is None or not self._host_items:
            return
        while True:
            try:
                got = ep.poll(0, 64)
            except OSError:
                return
            for fd, ev in got:
                it = self._host_items.get(fd)
                if it is not None:
                    self._notified(it, ev)
            if len(got) < 64:
                return

    def _poll_now(self, it: _Item) -> None:
        """ep_insert/ep_modify: a file already ready is put on the ready list."""
        mask = it.events & 0xFFFF
        if mask and it.file.readiness(mask) & mask:
            self._link(it)
            self._kick()

    def _notified(self, it: _Item, mask: int) -> None:
        armed = it.events & 0xFFFF
        if armed and mask & armed:
            self._link(it)
            self._kick()

    def _link(self, it: _Item) -> None:
        """Put `it` on the ready list: at its end, unless it is there already."""
        if not it.ready and self.items.get(it.key) is it:
            del self.items[it.key]
            self.items[it.key] = it
        it.ready = True

    def _kick(self) -> None:
        self._edge.set()
        self._edge = trio.Event()
        self._rescan()
        self.waitq.notify(POLLIN | POLLRDNORM)

    def _rescan(self) -> None:
        """End the empty waits, so they scan again: a waiter sleeps on the files it saw,
        and an ADD or a MOD may have made another file (or another event) the one to wait
        for, or ready now (Linux's ep_insert/ep_modify poll the file and wake the waiters)."""
        self._gen += 1
        for cs in self._waits:
            cs.cancel()
        self._waits.clear()

    def _live(self) -> list[tuple[tuple[int, int], _Item]]:
        """The items whose file is still open (Linux drops an item at the file's release)."""
        for key in [k for k, it in self.items.items() if it.file.refs <= 0]:
            self.remove(key)
        return list(self.items.items())

    # -- waiting ----------------------------------------------------------------------------

    def ready(self, maxevents: int) -> list[tuple[int, int]]:
        """(events, data) of up to `maxevents` ready items, rotating and disarming as Linux."""
        out: list[tuple[int, int]] = []
        self._harvest()
        for key, it in self._live():
            if len(out) >= maxevents:
                break
            mask = it.events & 0xFFFF  # POLLERR|POLLHUP were added by epoll_ctl; 0: disarmed
            edge = it.edge
            if edge and not it.ready:
                continue
            r = it.file.readiness(mask) & mask if mask else 0
            it.ready = False  # off the ready list: polled, or reported
            if not r:
                continue
            out.append((r, it.data))
            if it.events & EPOLLONESHOT:
                it.events &= _EP_PRIVATE
            del self.items[key]
            self.items[key] = it  # to the end of the list
            it.ready = not edge and not it.events & EPOLLONESHOT  # level: back on the list
        return out

    def waiters(self) -> list[tuple[Any, int]]:
        """What an empty wait awaits: each armed level-triggered item's file, and this
        epoll's edge flag when it has armed edge-triggered items, until the interest list
        changes (one `_ListWait`)."""
        out: list[tuple[Any, int]] = []
        edges = False
        for _, it in self._live():
            if not it.events & 0xFFFF:
                continue
            if it.edge:
                edges = True
            else:
                out.append((it.file, it.events & 0xFFFF))
        if edges:
            out.append((_EdgeWait(self), 0))
        return [(_ListWait(self, out), 0)]

    def readiness(self, mask: int) -> int:
        self._harvest()
        for _, it in self._live():
            m = it.events & 0xFFFF
            if not m:
                continue
            if it.edge and not it.ready:
                continue
            if it.file.readiness(m) & m:
                return mask & (POLLIN | POLLRDNORM)
            it.ready = False  # as ep_read_events_proc drops it from the list
        return 0

    async def wait_ready(self, mask: int) -> int:
        while True:
            got = self.readiness(mask)
            if got:
                return got
            await _wait_any(self.waiters(), None)

    async def release(self) -> None:
        for key in list(self.items):
            self.remove(key)
        if self._host is not None:
            self._host.close()
            self._host = None


class _ListWait:
    """An empty wait on `ep`: on `files` (its `waiters()`), ended early when the interest
    list changes after they were gathered (`EpollFD._rescan`)."""

    def __init__(self, ep: EpollFD, files: list[tuple[Any, int]]) -> None:
        self.ep, self.files, self.gen = ep, files, ep._gen

    async def wait_ready(self, mask: int) -> int:
        ep = self.ep
        if ep._gen != self.gen:
            return POLLIN  # changed between the scan and this wait: scan again
        with trio.CancelScope() as cs:
            ep._waits.add(cs)
            try:
                await _wait_any(self.files, None)
            finally:
                ep._waits.discard(cs)
        return POLLIN


class _EdgeWait:
    """Waits until an edge-triggered item of `ep` is flagged (checked first, so an edge
    between the scan and the wait is not lost)."""

    def __init__(self, ep: EpollFD) -> None:
        self.ep = ep

    async def wait_ready(self, mask: int) -> int:
        ep = self.ep
        while True:
            ep._harvest()
            if any(it.ready and it.edge for it in ep.items.values()):
                return POLLIN
            if ep._host is None or not ep._host_items:
                await ep._edge.wait()
                continue
            async with trio.open_nursery() as nursery:
                async def host_edge(host: int = ep._host.fileno()) -> None:
                    await trio.lowlevel.wait_readable(host)
                    nursery.cancel_scope.cancel()

                async def own_edge(event: trio.Event = ep._edge) -> None:
                    await event.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(host_edge)
                nursery.start_soon(own_edge)


#: Memory character devices (major 1) that have a poll method: random and kmsg; null,
#: zero, full, urandom and the others have none, so epoll refuses them.
_POLLABLE_MEM_DEVICES = {8, 11}
_S_IFCHR = 0o020000


async def _stat_or_none(f: Any) -> Any:
    try:
        return await f.stat()
    except OSError:
        return None


def _pollable(f: Any, st: Any) -> bool:
    """Whether Linux's epoll accepts `f` (file_can_poll): not regular files, directories
    or the memory devices without poll; a host fd the host's own epoll refuses neither."""
    if st is not None:
        kind = st.mode & _S_IFMT
        if kind in (_S_IFREG, _S_IFDIR):
            return False
        if kind == _S_IFCHR and os.major(st.rdev) == 1 and \
                os.minor(st.rdev) not in _POLLABLE_MEM_DEVICES:
            return False
    if isinstance(f, HostFD):
        with select.epoll() as probe:
            try:
                probe.register(f.fd, select.EPOLLIN)
            except PermissionError:
                return False
            except OSError:
                pass
    return True


def _epoll(t: Task, fd: int) -> EpollFD:
    f = t.fdtable.get(_i32(fd))
    if not isinstance(f, EpollFD):
        raise SyscallError(errno.EINVAL)
    return f


def _new_epoll(t: Task, flags: int) -> int:
    if flags & ~EPOLL_CLOEXEC:
        raise SyscallError(errno.EINVAL)
    return t.fdtable.install(EpollFD(t.kernel.anon_inode_stat), cloexec=bool(flags & EPOLL_CLOEXEC))


@syscall("epoll_create")
def sys_epoll_create(t: Task, size: int, *_: int) -> int:
    """Implements Linux syscall epoll_create(2): `size` must be positive and is ignored."""
    if _i32(size) <= 0:
        raise SyscallError(errno.EINVAL)
    return _new_epoll(t, 0)


@syscall("epoll_create1")
def sys_epoll_create1(t: Task, flags: int, *_: int) -> int:
    """Implements Linux syscall epoll_create1(2)."""
    return _new_epoll(t, _i32(flags) & 0xFFFFFFFF)


@syscall("epoll_ctl", level=Level.PARTIAL,
         note="EPOLLET on an epoll fd that itself watches host fds is served "
              "level-triggered; EPOLLEXCLUSIVE and EPOLLWAKEUP are accepted and ignored")
async def sys_epoll_ctl(t: Task, epfd: int, op: int, fd: int, ev: int, *_: int) -> int:
    """Implements Linux syscall epoll_ctl(2): ADD, MOD, DEL on the interest list."""
    op, fd = _i32(op), _i32(fd)
    events = data = 0
    if op != EPOLL_CTL_DEL:
        events, data = EPOLL_EVENT.unpack(t.mem_read(ev, EPOLL_EVENT.size))
        events |= POLLERR | POLLHUP  # always reported, as Linux's epoll_ctl adds them
    ep = t.fdtable.get(_i32(epfd))
    f = t.fdtable.get(fd)
    # (sockets and epolls always have poll: no stat needed to know)
    if not isinstance(f, (EpollFD, Socket)) and not _pollable(f, await _stat_or_none(f)):
        raise SyscallError(errno.EPERM)  # a file without poll: Linux refuses it
    if f is ep or not isinstance(ep, EpollFD):
        raise SyscallError(errno.EINVAL)
    if op != EPOLL_CTL_DEL and events & EPOLLEXCLUSIVE and (
            op == EPOLL_CTL_MOD or isinstance(f, EpollFD) or events & ~_EXCLUSIVE_OK):
        raise SyscallError(errno.EINVAL)  # exclusive: ADD only, simple events, not nested
    key = (fd, id(f))
    ep._live()
    if op == EPOLL_CTL_ADD:
        if key in ep.items:
            raise SyscallError(errno.EEXIST)
        ep.add(key, f, events, data)
    elif op == EPOLL_CTL_MOD:
        if key not in ep.items:
            raise SyscallError(errno.ENOENT)
        if ep.items[key].events & EPOLLEXCLUSIVE:
            raise SyscallError(errno.EINVAL)
        ep.modify(key, events, data)
    elif op == EPOLL_CTL_DEL:
        if ep.remove(key) is None:
            raise SyscallError(errno.ENOENT)
    else:
        raise SyscallError(errno.EINVAL)
    return 0


def _ms_deadline(timeout: int) -> float | None:
    ms = _i32(timeout)
    return None if ms < 0 else trio.current_time() + ms / 1000


async def _epoll_wait(t: Task, epfd: int, addr: int, maxevents: int,
                      deadline: float | None) -> int:
    maxevents = _i32(maxevents)
    if maxevents <= 0 or maxevents > _EP_MAX_EVENTS:
        raise SyscallError(errno.EINVAL)
    ep = _epoll(t, epfd)
    got: list[tuple[int, int]] = []

    def scan() -> tuple[int, list[tuple[Any, int]]]:
        got[:] = ep.ready(maxevents)
        return len(got), ([] if got else ep.waiters())

    n = await _scan_loop(t, scan, deadline)
    if n:
        t.mem_write(addr, b"".join(EPOLL_EVENT.pack(e, d) for e, d in got))
    return n


@syscall("epoll_wait")
async def sys_epoll_wait(t: Task, epfd: int, addr: int, maxevents: int, timeout: int,
                         *_: int) -> int:
    """Implements Linux syscall epoll_wait(2): timeout in ms, negative for forever."""
    return await _epoll_wait(t, epfd, addr, maxevents, _ms_deadline(timeout))


@syscall("epoll_pwait")
async def sys_epoll_pwait(t: Task, epfd: int, addr: int, maxevents: int, timeout: int,
                          sigmask: int, size: int) -> int:
    """Implements Linux syscall epoll_pwait(2): epoll_wait with a temporary signal mask."""
    _swap_mask(t, sigmask, size)
    return await _masked(t, _epoll_wait(t, epfd, addr, maxevents, _ms_deadline(timeout)))


@syscall("epoll_pwait2")
async def sys_epoll_pwait2(t: Task, epfd: int, addr: int, maxevents: int, tsp: int,
                           sigmask: int, size: int) -> int:
    """Implements Linux syscall epoll_pwait2(2): epoll_pwait with a timespec timeout
    (NULL: forever); the timeout is not written back."""
    deadline, _ = _read_timespec(t, tsp)
    _swap_mask(t, sigmask, size)
    return await _masked(t, _epoll_wait(t, epfd, addr, maxevents, deadline))
