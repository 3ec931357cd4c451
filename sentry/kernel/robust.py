"""Robust futexes: what Linux's exit_robust_list does for a thread that ends holding locks.

A thread registers (set_robust_list) the head of a list of the robust mutexes it holds;
when it ends, every futex word on the list (and the one in `list_op_pending`) that still
names its tid gets FUTEX_OWNER_DIED, keeping FUTEX_WAITERS, and one waiter is woken, so
the next pthread_mutex_lock returns EOWNERDEAD instead of waiting for ever. The words are
rewritten by the Sentry while other threads may run: not the atomic cmpxchg Linux uses,
which only matters if another thread changes the word of a lock its owner is leaving.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .futex import key_of

if TYPE_CHECKING:
    from .task import Task

FUTEX_WAITERS, FUTEX_OWNER_DIED, FUTEX_TID_MASK = 0x80000000, 0x40000000, 0x3FFFFFFF
ROBUST_LIST_LIMIT = 2048


def _word(mem: Task, addr: int) -> int | None:
    try:
        return struct.unpack("<I", mem.mem_read(addr, 4))[0]
    except OSError:
        return None


def _death(mem: Task, t: Task, addr: int, pi: bool, pending: bool) -> None:
    """handle_futex_death for the futex word at `addr`."""
    if addr % 4:
        return
    val = _word(mem, addr)
    if val is None:
        return
    futexes = t.kernel.futexes
    if pending and not pi and not val:
        futexes.wake(key_of(mem, addr, private=False), 1)
        return
    if val & FUTEX_TID_MASK != t.pidns.vpid(t.tid):  # the word holds its namespace's tid
        return
    try:
        mem.mem_write(addr, struct.pack("<I", (val & FUTEX_WAITERS) | FUTEX_OWNER_DIED))
    except OSError:
        return
    if not pi and val & FUTEX_WAITERS:
        futexes.wake(key_of(mem, addr, private=False), 1)


def exit_robust_list(t: Task, mem: Task | None = None) -> None:
    """Walk `t`'s robust list (read through `mem`, a live thread of the same address
    space, by default `t`) and mark the futexes it still owns; stops quietly at a bad
    pointer or after ROBUST_LIST_LIMIT entries, as Linux."""
    head = t.robust_list
    if not head:
        return
    mem = mem or t
    try:
        nxt, offset, pending = struct.unpack("<QqQ", mem.mem_read(head, 24))
    except OSError:
        return
    pending_pi, pending = bool(pending & 1), pending & ~1
    entry, pi = nxt & ~1, bool(nxt & 1)
    limit = ROBUST_LIST_LIMIT
    while entry != head:
        try:
            (raw,) = struct.unpack("<Q", mem.mem_read(entry, 8))
            ok = True
        except OSError:
            raw, ok = 0, False
        if entry != pending:
            _death(mem, t, (entry + offset) & 0xFFFFFFFFFFFFFFFF, pi, False)
        if not ok:
            return
        entry, pi = raw & ~1, bool(raw & 1)
        limit -= 1
        if not limit:
            break
    if pending:
        _death(mem, t, (pending + offset) & 0xFFFFFFFFFFFFFFFF, pending_pi, True)


def exit_futexes(t: Task, mem: Task | None = None) -> None:
    """What a thread's end does to futexes: its robust list (`exit_robust_list`), then the
    PI futexes it still owns go to their first waiter (exit_pi_state_list)."""
    exit_robust_list(t, mem)
    t.kernel.futexes.pi.owner_exited(t.tid)
