"""poll, ppoll, select, pselect6: wait until one of several open files is ready.

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
"""

from __future__ import annotations

import errno
import math
import struct
from typing import TYPE_CHECKING, Any

import trio

from sentry.kernel import signals as S
from vfs.abi import (
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
)

from .table import SyscallError, syscall

if TYPE_CHECKING:
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
    s = S.ts(t)
    s.saved_mask, s.mask = s.mask, new & ~S._UNBLOCKABLE & S._MASK64


def _restore_mask(t: Task, eintr: bool) -> None:
    """Restore the original mask now unless a handler is about to run for EINTR (its frame
    saves the original mask; sigreturn restores it)."""
    s = S.ts(t)
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


__all__ = ["sys_poll", "sys_ppoll", "sys_pselect6", "sys_select"]
