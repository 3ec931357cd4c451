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
from sentry.kernel.futex import Key, key_of
from sentry.kernel.table import Level, syscall

if TYPE_CHECKING:
    from sentry.kernel.task import Task

FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10
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


@syscall(
    "futex",
    level=Level.PARTIAL,
    note="WAIT, WAKE, REQUEUE, CMP_REQUEUE, WAKE_OP and the BITSET forms; PI and "
    "robust-list futexes are not supported (ENOSYS)",
)
async def sys_futex(t: Task, uaddr: int, op: int, val: int, timeout: int, uaddr2: int,
                    val3: int) -> int:
    """Implements Linux syscall futex(2) for wait/wake/requeue (no priority inheritance)."""
    op &= 0xFFFFFFFF
    cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    realtime = bool(op & FUTEX_CLOCK_REALTIME)
    val &= 0xFFFFFFFF
    if realtime and cmd not in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
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
        return futexes.wake(key, min(val, 0x7FFFFFFF))
    if cmd == FUTEX_WAKE_BITSET:
        if not val3 & 0xFFFFFFFF:
            raise SyscallError(errno.EINVAL)
        return futexes.wake(key, min(val, 0x7FFFFFFF), val3 & 0xFFFFFFFF)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if cmd == FUTEX_CMP_REQUEUE and _load(t, uaddr) != val3 & 0xFFFFFFFF:
            raise SyscallError(errno.EAGAIN)
        woken = futexes.wake(key, min(val, 0x7FFFFFFF))
        limit = timeout & 0x7FFFFFFF  # val2 travels in the timeout argument
        moved = futexes.requeue(key, key_of(t, uaddr2, private), limit)
        return woken + (moved if cmd == FUTEX_CMP_REQUEUE else 0)
    if cmd == FUTEX_WAKE_OP:
        if uaddr & 3:
            raise SyscallError(errno.EINVAL)
        hit = _wake_op(t, uaddr2, val3 & 0xFFFFFFFF)
        woken = futexes.wake(key, min(val, 0x7FFFFFFF))
        if hit:
            woken += futexes.wake(key_of(t, uaddr2, private), timeout & 0x7FFFFFFF)
        return woken
    raise SyscallError(errno.ENOSYS)
