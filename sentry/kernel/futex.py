"""Futex wait queues: one kernel's waiters, keyed by (thread group, user address).

Why in the kernel rather than in the futex handler: the kernel itself wakes futexes
(CLONE_CHILD_CLEARTID at a thread's exit: pthread_join), and each sandbox's queues are its
own (every sandbox's first process is pid 1, so two sandboxes' keys would collide). Waiters
are trio Events, so a wait never blocks the Sentry. A private futex (FUTEX_PRIVATE_FLAG, or
any futex in private memory) is keyed by (thread group, address); a shared one in shared
memory by the memory object and offset (`MemoryManager.shared_key`), so processes mapping
the same file, segment or shared anonymous memory at different addresses meet, as Linux's
get_futex_key makes them.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from sentry.errors import SyscallError

if TYPE_CHECKING:
    from .task import Task

#: A futex's identity: (tgid, address), or (memory object, offset) for a shared one.
Key = tuple[object, int]
BITSET_MATCH_ANY = 0xFFFFFFFF


def key_of(t: Task, addr: int, private: bool) -> Key:
    """The key of the futex at `addr` for thread `t` (get_futex_key)."""
    if not private:
        shared = t.mm.shared_key(addr)
        if shared is not None:
            return shared
    return (t.tgid, addr)


@dataclass(slots=True)
class _Waiter:
    bitset: int
    event: trio.Event = field(default_factory=trio.Event)


class Futexes:
    """The wait queues of one kernel (`Kernel.futexes`), each in FIFO order."""

    def __init__(self) -> None:
        self._queues: dict[Key, list[_Waiter]] = {}

    def __len__(self) -> int:
        """How many addresses have waiters now."""
        return len(self._queues)

    def wake(self, key: Key, n: int, bitset: int = BITSET_MATCH_ANY) -> int:
        """Wake up to `n` waiters of `key` whose bitset meets `bitset`; return how many."""
        q = self._queues.get(key)
        woken = 0
        if not q:
            return 0
        for w in list(q):
            if woken >= n:
                break
            if w.bitset & bitset:
                q.remove(w)
                w.event.set()
                woken += 1
        if not q:
            del self._queues[key]
        return woken

    async def wait(self, key: Key, deadline: float | None, bitset: int) -> int:
        """Sleep on `key` until woken (0) or the trio `deadline` passes (ETIMEDOUT). The
        caller has just compared the futex word: nothing may await in between."""
        w = _Waiter(bitset)
        self._queues.setdefault(key, []).append(w)
        try:
            if deadline is None:
                await w.event.wait()
            else:
                with trio.move_on_at(deadline):
                    await w.event.wait()
                if not w.event.is_set():
                    raise SyscallError(errno.ETIMEDOUT)
        finally:
            q = self._queues.get(key)
            if q is not None and w in q:
                q.remove(w)
                if not q:
                    del self._queues[key]
        return 0

    async def wait_any(self, keys: list[Key], deadline: float | None) -> int:
        """futex_waitv: sleep on every key of `keys` at once until one is woken; return its
        index (the first woken), or ETIMEDOUT at the trio `deadline`. As `wait`, the caller
        has just compared every word."""
        event = trio.Event()
        waiters = [_Waiter(BITSET_MATCH_ANY, event) for _ in keys]
        for key, w in zip(keys, waiters, strict=True):
            self._queues.setdefault(key, []).append(w)
        try:
            if deadline is None:
                await event.wait()
            else:
                with trio.move_on_at(deadline):
                    await event.wait()
                if not event.is_set():
                    raise SyscallError(errno.ETIMEDOUT)
        finally:
            woken = -1
            for i, (key, w) in enumerate(zip(keys, waiters, strict=True)):
                q = self._queues.get(key)
                if q is not None and w in q:
                    q.remove(w)
                    if not q:
                        del self._queues[key]
                elif woken < 0:
                    woken = i
        return woken

    def requeue(self, key: Key, to: Key, limit: int) -> int:
        """Move up to `limit` waiters of `key` to the end of `to`'s queue; return how many."""
        q = self._queues.get(key, [])
        moved = 0
        while q and moved < limit:
            self._queues.setdefault(to, []).append(q.pop(0))
            moved += 1
        if not q:
            self._queues.pop(key, None)
        return moved
