"""futex(2): decode the operation, read and change the futex words; the wait queues are
the kernel's (`sentry/kernel/futex.py`, `t.kernel.futexes`).

Why even for single-threaded programs: glibc calls futex there too (FUTEX_WAKE after a
`pthread_once`-style initialisation in iconv/locale code), and aborts with "The futex
facility returned an unexpected error code" on ENOSYS.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

import trio

from sentry.errors import SyscallError
from sentry.kernel.futex import BITSET_MATCH_ANY as FUTEX_BITSET_MATCH_ANY
from sentry.kernel.futex import Key, key_of, set_waiters
from sentry.kernel.pidns import task_of
from sentry.kernel.robust import FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS
from sentry.kernel.table import Level, syscall

from .sys_file import i32

if TYPE_CHECKING:
    from sentry.kernel.task import Task

FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI = 6, 7, 8
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10
FUTEX_WAIT_REQUEUE_PI, FUTEX_CMP_REQUEUE_PI, FUTEX_LOCK_PI2 = 11, 12, 13
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
TIMESPEC = struct.Struct("<qq")


def _load(t: Task, addr: int) -> int:
    if addr & 3:
        raise SyscallError(errno.EINVAL)
    return struct.unpack("<I", t.mem_read(addr, 4))[0]


async def _wait(t: Task, key: Key, addr: int, val: int, deadline: float | None,
                bitset: int) -> int:
    if _load(t, addr) != val & 0xFFFFFFFF:
        raise SyscallError(errno.EAGAIN)
    return await t.kernel.futexes.wait(key, deadline, bitset)


def _deadline(t: Task, addr: int, *, absolute: bool, realtime: bool) -> float | None:
    """The trio deadline for a futex timeout (relative for FUTEX_WAIT, absolute else)."""
    if not addr:
        return None
    sec, nsec = TIMESPEC.unpack(t.mem_read(addr, TIMESPEC.size))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise SyscallError(errno.EINVAL)
    span = sec + nsec / 1e9
    now = trio.current_time()
    if not absolute:
        return now + span
    import time

    ref = time.clock_gettime(time.CLOCK_REALTIME if realtime else time.CLOCK_MONOTONIC)
    return now + (span - ref)


def _wake_op(t: Task, uaddr2: int, encoded: int) -> bool:
    """FUTEX_WAKE_OP's atomic operation on *uaddr2; returns the comparison's result."""
    op = (encoded >> 28) & 0xF
    cmp = (encoded >> 24) & 0xF
    oparg = (encoded >> 12) & 0xFFF
    cmparg = encoded & 0xFFF
    if op & 8:  # FUTEX_OP_OPARG_SHIFT
        oparg = 1 << (oparg & 31)
        op &= 7
    old = _load(t, uaddr2)
    if op == 0:
        new = oparg
    elif op == 1:
        new = old + oparg
    elif op == 2:
        new = old | oparg
    elif op == 3:
        new = old & ~oparg
    elif op == 4:
        new = old ^ oparg
    else:
        raise SyscallError(errno.ENOSYS)
    t.mem_write(uaddr2, struct.pack("<I", new & 0xFFFFFFFF))
    s_old = old - (1 << 32) if old & 0x80000000 else old
    if cmp == 0:
        return s_old == cmparg
    if cmp == 1:
        return s_old != cmparg
    if cmp == 2:
        return s_old < cmparg
    if cmp == 3:
        return s_old <= cmparg
    if cmp == 4:
        return s_old > cmparg
    if cmp == 5:
        return s_old >= cmparg
    raise SyscallError(errno.ENOSYS)


def _store(t: Task, addr: int, val: int) -> None:
    t.mem_write(addr, struct.pack("<I", val & 0xFFFFFFFF))


async def _lock_pi(t: Task, uaddr: int, key: Key, deadline: float | None,
                   trylock: bool) -> int:
    """futex_lock_pi: take a free word (keeping FUTEX_OWNER_DIED), else queue behind the
    owner the word names, FUTEX_WAITERS set, until FUTEX_UNLOCK_PI or the owner's end hands
    the lock over. FUTEX_WAITERS is set atomically first (`set_waiters`), which keeps the
    application's own cmpxchg fast paths off the word while the Sentry rewrites it."""
    if uaddr & 3:
        raise SyscallError(errno.EINVAL)
    uval = _load(t, uaddr)
    tid, vtid = t.tid, t.pidns.vpid(t.tid)  # the word holds the namespace's number
    if uval & FUTEX_TID_MASK == vtid:
        raise SyscallError(errno.EDEADLK)
    pi = t.kernel.futexes.pi
    st = pi.top_waiter(key)
    if st is not None:
        owner = st.owner
        if not uval & FUTEX_WAITERS:
            set_waiters(t, uaddr)
    else:
        uval = set_waiters(t, uaddr)
        if not uval & FUTEX_TID_MASK:  # free (perhaps unlocked just now): take it
            _store(t, uaddr, (uval & FUTEX_OWNER_DIED) | vtid)
            return 0
        found = task_of(t, uval & FUTEX_TID_MASK)
        if found is None:  # attach_to_pi_owner, handle_exit_race
            raise SyscallError(errno.ESRCH)
        owner = found.tid
    if trylock:
        raise SyscallError(errno.EAGAIN)
    w = await pi.wait(key, owner, tid, deadline)
    if w.owner_died:  # the owner ended holding it: the new owner's fixup_pi_state_owner
        _store(t, uaddr, FUTEX_OWNER_DIED | FUTEX_WAITERS | vtid)
    return 0


def _unlock_pi(t: Task, uaddr: int, key: Key) -> int:
    """futex_unlock_pi: only the owner the word names (EPERM); the first waiter becomes
    the owner (word = its tid | FUTEX_WAITERS), or the word is 0 when none waits."""
    (uval,) = struct.unpack("<I", t.mem_read(uaddr, 4))  # get_user: any alignment
    if uval & FUTEX_TID_MASK != t.pidns.vpid(t.tid):
        raise SyscallError(errno.EPERM)
    if uaddr & 3:
        raise SyscallError(errno.EINVAL)
    w = t.kernel.futexes.pi.hand_over(key)
    _store(t, uaddr, FUTEX_WAITERS | t.pidns.vpid(w.tid) if w is not None else 0)
    if w is not None:
        w.event.set()
    return 0


async def _wait_requeue_pi(t: Task, uaddr: int, key: Key, val: int, uaddr2: int,
                           key2: Key, deadline: float | None) -> int:
    """futex_wait_requeue_pi: wait on condition word `uaddr` (EAGAIN unless it holds
    `val`) until FUTEX_CMP_REQUEUE_PI hands over PI futex `uaddr2` (0: the caller owns it),
    or a plain wake comes first (EAGAIN), or the deadline (ETIMEDOUT)."""
    if uaddr == uaddr2 or uaddr2 & 3:
        raise SyscallError(errno.EINVAL)
    if _load(t, uaddr) != val:
        raise SyscallError(errno.EAGAIN)
    w = await t.kernel.futexes.wait_requeue_pi(key, key2, t.tid, deadline)
    if w.locked:
        return 0
    if w.where is None:
        raise SyscallError(errno.EAGAIN)  # woken on `uaddr` before any requeue
    assert w.pi is not None
    if w.pi.owner_died:  # handed over at its owner's end: fixup_pi_state_owner
        _store(t, uaddr2, FUTEX_OWNER_DIED | FUTEX_WAITERS | t.pidns.vpid(t.tid))
    return 0


def _cmp_requeue_pi(t: Task, key: Key, uaddr: int, uaddr2: int, key2: Key, nr_wake: int,
                    nr_requeue: int, cmpval: int) -> int:
    """futex_requeue with requeue_pi: EAGAIN unless `uaddr` holds `cmpval`; the first
    waiter takes PI futex `uaddr2` if it is free (futex_proxy_trylock_atomic: its tid and
    FUTEX_WAITERS in the word) and is woken owning it; the others (up to `nr_requeue`,
    plus the first if it did not get the lock) queue behind the owner as lock waiters.
    Every waiter must be a FUTEX_WAIT_REQUEUE_PI one for `uaddr2` (EINVAL). Returns how
    many were woken or requeued."""
    if nr_wake != 1 or nr_requeue < 0 or uaddr2 & 3 or key == key2:
        raise SyscallError(errno.EINVAL)
    if _load(t, uaddr) != cmpval:
        raise SyscallError(errno.EAGAIN)
    futexes = t.kernel.futexes
    queue = futexes.waiters(key)
    if not queue:
        return 0
    if any(w.pi is None or w.to != key2 for w in queue):
        raise SyscallError(errno.EINVAL)
    pi = futexes.pi
    st = pi.top_waiter(key2)
    count = 0
    if st is not None:
        owner = st.owner
        _ = set_waiters(t, uaddr2)
    else:
        uval = set_waiters(t, uaddr2)
        first = queue[0]
        if not uval & FUTEX_TID_MASK:  # free: the first waiter takes it now
            assert first.pi is not None
            _store(t, uaddr2, (uval & FUTEX_OWNER_DIED) | FUTEX_WAITERS
                   | t.pidns.vpid(first.pi.tid))
            futexes.take(key, first)
            first.locked = True
            first.event.set()
            queue.pop(0)
            count = 1
            owner = first.pi.tid
        else:
            found = task_of(t, uval & FUTEX_TID_MASK)
            if found is None:
                raise SyscallError(errno.ESRCH)
            owner = found.tid
    for w in queue:
        if count - nr_wake >= nr_requeue:
            break
        assert w.pi is not None
        futexes.take(key, w)
        w.where = pi.enqueue(key2, owner, w.pi)
        count += 1
    return count


@syscall(
    "futex",
    level=Level.PARTIAL,
    note="WAIT, WAKE, REQUEUE, CMP_REQUEUE, WAKE_OP, the BITSET forms, LOCK_PI, LOCK_PI2,"
    " TRYLOCK_PI, UNLOCK_PI, WAIT_REQUEUE_PI and CMP_REQUEUE_PI (no priority is"
    " inherited: the host schedules the threads); robust lists and PI locks are"
    " released at exit",
)
async def sys_futex(t: Task, uaddr: int, op: int, val: int, timeout: int, uaddr2: int,
                    val3: int) -> int:
    """Implements Linux syscall futex(2) for wait/wake/requeue, the PI locks and the
    requeue of condition waiters to a PI lock (no priority inheritance)."""
    op &= 0xFFFFFFFF
    cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    realtime = bool(op & FUTEX_CLOCK_REALTIME)
    val &= 0xFFFFFFFF
    deadline: float | None = None
    if cmd == FUTEX_WAIT_REQUEUE_PI:
        deadline = _deadline(t, timeout, absolute=True, realtime=realtime)
    if cmd in (FUTEX_LOCK_PI, FUTEX_LOCK_PI2):
        # LOCK_PI's timeout is on CLOCK_REALTIME, LOCK_PI2's on CLOCK_MONOTONIC unless
        # FUTEX_CLOCK_REALTIME; both absolute; read before the flags are checked
        deadline = _deadline(t, timeout, absolute=True,
                             realtime=cmd == FUTEX_LOCK_PI or realtime)
    if realtime and cmd not in (FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_LOCK_PI2,
                                FUTEX_WAIT_REQUEUE_PI):
        raise SyscallError(errno.ENOSYS)
    futexes = t.kernel.futexes
    private = bool(op & FUTEX_PRIVATE_FLAG)
    key = key_of(t, uaddr, private)
    if cmd == FUTEX_WAIT:
        return await _wait(t, key, uaddr, val, _deadline(t, timeout, absolute=False,
                                                   realtime=realtime), FUTEX_BITSET_MATCH_ANY)
    if cmd == FUTEX_WAIT_BITSET:
        if not val3 & 0xFFFFFFFF:
            raise SyscallError(errno.EINVAL)
        return await _wait(t, key, uaddr, val, _deadline(t, timeout, absolute=True,
                                                   realtime=realtime), val3 & 0xFFFFFFFF)
    if cmd == FUTEX_WAKE:
        if uaddr & 3:
            raise SyscallError(errno.EINVAL)
        return futexes.wake(key, min(val, 0x7FFFFFFF), strict=True)
    if cmd == FUTEX_WAKE_BITSET:
        if not val3 & 0xFFFFFFFF:
            raise SyscallError(errno.EINVAL)
        return futexes.wake(key, min(val, 0x7FFFFFFF), val3 & 0xFFFFFFFF, strict=True)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if cmd == FUTEX_CMP_REQUEUE and _load(t, uaddr) != val3 & 0xFFFFFFFF:
            raise SyscallError(errno.EAGAIN)
        woken = futexes.wake(key, min(val, 0x7FFFFFFF), strict=True)
        limit = timeout & 0x7FFFFFFF  # val2 travels in the timeout argument
        moved = futexes.requeue(key, key_of(t, uaddr2, private), limit)
        return woken + (moved if cmd == FUTEX_CMP_REQUEUE else 0)
    if cmd in (FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_TRYLOCK_PI):
        return await _lock_pi(t, uaddr, key, None if cmd == FUTEX_TRYLOCK_PI else deadline,
                              cmd == FUTEX_TRYLOCK_PI)
    if cmd == FUTEX_UNLOCK_PI:
        return _unlock_pi(t, uaddr, key)
    if cmd == FUTEX_WAIT_REQUEUE_PI:
        return await _wait_requeue_pi(t, uaddr, key, val, uaddr2, key_of(t, uaddr2, private),
                                      deadline)
    if cmd == FUTEX_CMP_REQUEUE_PI:
        return _cmp_requeue_pi(t, key, uaddr, uaddr2, key_of(t, uaddr2, private), val,
                               i32(timeout), val3 & 0xFFFFFFFF)
    if cmd == FUTEX_WAKE_OP:
        if uaddr & 3:
            raise SyscallError(errno.EINVAL)
        hit = _wake_op(t, uaddr2, val3 & 0xFFFFFFFF)
        woken = futexes.wake(key, min(val, 0x7FFFFFFF), strict=True)
        if hit:
            woken += futexes.wake(key_of(t, uaddr2, private), timeout & 0x7FFFFFFF, strict=True)
        return woken
    raise SyscallError(errno.ENOSYS)


# futex2: futex_waitv (5.16), futex_wake, futex_wait, futex_requeue (6.7) -------------------

FUTEX2_SIZE_U32, FUTEX2_SIZE_MASK, FUTEX2_NUMA, FUTEX2_PRIVATE = 0x02, 0x03, 0x04, 128
FUTEX2_VALID_MASK = FUTEX2_SIZE_MASK | FUTEX2_NUMA | FUTEX2_PRIVATE
FUTEX_WAITV_MAX = 128
#: struct futex_waitv: u64 val, u64 uaddr, u32 flags, u32 reserved
WAITV = struct.Struct("<QQII")
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1


def _futex2_flags(flags: int, val: int) -> None:
    """futex2_to_flags + futex_flags_valid + futex_validate_input: only 32-bit futexes
    (EINVAL otherwise, as Linux), no NUMA node word here, a value that fits 32 bits."""
    if flags & ~FUTEX2_VALID_MASK or flags & FUTEX2_SIZE_MASK != FUTEX2_SIZE_U32:
        raise SyscallError(errno.EINVAL)
    if flags & FUTEX2_NUMA or val >> 32:
        raise SyscallError(errno.EINVAL)


def _futex2_deadline(t: Task, timeout: int, clockid: int) -> float | None:
    """futex2_setup_timeout: an absolute time on CLOCK_MONOTONIC or CLOCK_REALTIME."""
    if not timeout:
        return None
    clockid = i32(clockid)
    if clockid not in (CLOCK_REALTIME, CLOCK_MONOTONIC):
        raise SyscallError(errno.EINVAL)
    return _deadline(t, timeout, absolute=True, realtime=clockid == CLOCK_REALTIME)


def _parse_waitv(t: Task, addr: int, n: int) -> list[tuple[int, int, Key]]:
    """futex_parse_waitv: (address, value, futex key) of `n` entries; EINVAL for bad
    flags, a reserved field or an unaligned address."""
    out = []
    raw = t.mem_read(addr, WAITV.size * n)
    for val, uaddr, flags, reserved in WAITV.iter_unpack(raw):
        if reserved:
            raise SyscallError(errno.EINVAL)
        _futex2_flags(flags, val)
        if uaddr & 3:
            raise SyscallError(errno.EINVAL)
        out.append((uaddr, val, key_of(t, uaddr, bool(flags & FUTEX2_PRIVATE))))
    return out


@syscall("futex_waitv", level=Level.PARTIAL,
         note="32-bit futexes only (EINVAL), as Linux")
async def sys_futex_waitv(t: Task, waiters: int, nr: int, flags: int, timeout: int,
                          clockid: int, *_: int) -> int:
    """Implements Linux syscall futex_waitv(2): wait on up to 128 futexes at once; EAGAIN if
    any word differs from its value; returns the index of the one woken."""
    nr &= 0xFFFFFFFF
    if flags & 0xFFFFFFFF:
        raise SyscallError(errno.EINVAL)
    if not nr or nr > FUTEX_WAITV_MAX or not waiters:
        raise SyscallError(errno.EINVAL)
    deadline = _futex2_deadline(t, timeout, clockid)
    entries = _parse_waitv(t, waiters, nr)
    for uaddr, val, _key in entries:
        if _load(t, uaddr) != val:
            raise SyscallError(errno.EAGAIN)
    return await t.kernel.futexes.wait_any([k for _, _, k in entries], deadline)


@syscall("futex_wake", level=Level.PARTIAL, note="32-bit futexes only (EINVAL), as Linux")
def sys_futex_wake(t: Task, uaddr: int, mask: int, nr: int, flags: int, *_: int) -> int:
    """Implements Linux syscall futex_wake(2): wake up to `nr` waiters whose bitset meets
    `mask` (0 is EINVAL)."""
    flags &= 0xFFFFFFFF
    _futex2_flags(flags, mask & 0xFFFFFFFFFFFFFFFF)
    if uaddr & 3 or not mask:
        raise SyscallError(errno.EINVAL)
    nr = i32(nr)
    if nr <= 0:
        return 0
    key = key_of(t, uaddr, bool(flags & FUTEX2_PRIVATE))
    return t.kernel.futexes.wake(key, nr, mask & 0xFFFFFFFF, strict=True)


@syscall("futex_wait", level=Level.PARTIAL, note="32-bit futexes only (EINVAL), as Linux")
async def sys_futex_wait(t: Task, uaddr: int, val: int, mask: int, flags: int, timeout: int,
                         clockid: int) -> int:
    """Implements Linux syscall futex_wait(2): sleep while the word equals `val`, until a
    wake whose bitset meets `mask` or the absolute `timeout` on `clockid`."""
    flags &= 0xFFFFFFFF
    val &= 0xFFFFFFFFFFFFFFFF
    mask &= 0xFFFFFFFFFFFFFFFF
    _futex2_flags(flags, val)
    _futex2_flags(flags, mask)
    deadline = _futex2_deadline(t, timeout, clockid)
    if not mask:
        raise SyscallError(errno.EINVAL)
    key = key_of(t, uaddr, bool(flags & FUTEX2_PRIVATE))
    return await _wait(t, key, uaddr, val, deadline, mask)


@syscall("futex_requeue", level=Level.PARTIAL, note="32-bit futexes only (EINVAL), as Linux")
def sys_futex_requeue(t: Task, waiters: int, flags: int, nr_wake: int, nr_requeue: int,
                      *_: int) -> int:
    """Implements Linux syscall futex_requeue(2): if the first futex holds its value, wake
    `nr_wake` of its waiters and move up to `nr_requeue` more to the second."""
    if flags & 0xFFFFFFFF or not waiters:
        raise SyscallError(errno.EINVAL)
    (a1, v1, k1), (_a2, _v2, k2) = _parse_waitv(t, waiters, 2)
    nw, nq = i32(nr_wake), i32(nr_requeue)
    if nw < 0 or nq < 0:
        raise SyscallError(errno.EINVAL)
    if _load(t, a1) != v1:
        raise SyscallError(errno.EAGAIN)
    futexes = t.kernel.futexes
    woken = futexes.wake(k1, nw, strict=True)
    return woken + futexes.requeue(k1, k2, nq)
