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
from sentry.platform.ptrace import NR_FUTEX

if TYPE_CHECKING:
    from .task import Task

FUTEX_WAKE_OP, FUTEX_PRIVATE_FLAG = 5, 128
FUTEX_WAITERS = 0x80000000
#: FUTEX_WAKE_OP's encoded operation "*uaddr2 |= 1 << 31" (FUTEX_OP_OR with
#: FUTEX_OP_OPARG_SHIFT, oparg 31; the comparison is irrelevant: nobody waits on the host).
_OR_WAITERS = ((2 | 8) << 28) | (31 << 12)

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


def set_waiters(t: Task, addr: int) -> int:
    """Set FUTEX_WAITERS in the futex word at `addr` atomically, as the application's own
    cmpxchg sees it, and return the word after. A host FUTEX_WAKE_OP injected into `t`'s
    stopped stub does the atomic OR (waking no one: no application thread waits on the
    host). Once the bit is set, no user-space fast path (lock: 0 -> tid; unlock: tid -> 0)
    can change the word, so the PI operations rewrite it with plain writes safely.
    EFAULT for a word the application cannot write."""
    r = t.stub.inject(NR_FUTEX, addr, FUTEX_WAKE_OP | FUTEX_PRIVATE_FLAG, 0, 0, addr,
                      _OR_WAITERS)
    if r < 0:
        raise SyscallError(-r)
    word: int = int.from_bytes(t.mem_read(addr, 4), "little")
    return word


async def sleep_until_set(event: trio.Event, deadline: float | None) -> None:
    """A futex waiter's sleep: until `event` is set, or ETIMEDOUT at the trio `deadline`."""
    if deadline is None:
        await event.wait()
        return
    with trio.move_on_at(deadline):
        await event.wait()
    if not event.is_set():
        raise SyscallError(errno.ETIMEDOUT)


@dataclass(slots=True)
class _Waiter:
    bitset: int
    event: trio.Event = field(default_factory=trio.Event)
    #: A FUTEX_WAIT_REQUEUE_PI waiter: the lock waiter it becomes on `to` (the PI futex it
    #: may only be requeued to), `where` once requeued there, `locked` if a requeue took
    #: the lock for it.
    pi: PiWaiter | None = None
    to: Key | None = None
    where: PiState | None = None
    locked: bool = False


class Futexes:
    """The wait queues of one kernel (`Kernel.futexes`), each in FIFO order, and its
    priority-inheritance futexes (`pi`)."""

    def __init__(self) -> None:
        self._queues: dict[Key, list[_Waiter]] = {}
        self.pi = PiFutexes()

    def __len__(self) -> int:
        """How many addresses have waiters now."""
        return len(self._queues)

    def wake(self, key: Key, n: int, bitset: int = BITSET_MATCH_ANY, *,
             strict: bool = False) -> int:
        """Wake up to `n` waiters of `key` whose bitset meets `bitset`; return how many.
        A FUTEX_WAIT_REQUEUE_PI waiter stops the wake there (futex_wake's EINVAL, raised
        if `strict`, the syscalls' way; the kernel's own wakes just stop)."""
        q = self._queues.get(key)
        woken = 0
        if not q:
            return 0
        for w in list(q):
            if woken >= n:
                break
            if w.pi is not None:
                if strict:
                    raise SyscallError(errno.EINVAL)
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
            await sleep_until_set(w.event, deadline)
        finally:
            self._dequeue(key, w)
        return 0

    def _dequeue(self, key: Key, w: _Waiter) -> None:
        """Take `w` off `key`'s queue if it is still there (woken ones were taken off)."""
        q = self._queues.get(key)
        if q is not None and w in q:
            q.remove(w)
            if not q:
                del self._queues[key]

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

    async def wait_requeue_pi(self, key: Key, to: Key, tid: int,
                              deadline: float | None) -> _Waiter:
        """FUTEX_WAIT_REQUEUE_PI's sleep on `key` until a plain wake (the waiter is
        returned with neither `locked` nor `where`), a CMP_REQUEUE_PI taking PI futex `to`
        for it (`locked`), or a requeue to `to` and then the lock's hand-over
        (`where`); ETIMEDOUT at the trio `deadline`, wherever it waits then."""
        w = _Waiter(BITSET_MATCH_ANY, to=to)
        w.pi = PiWaiter(tid, w.event)
        self._queues.setdefault(key, []).append(w)
        try:
            await sleep_until_set(w.event, deadline)
        finally:
            self._dequeue(key, w)
            st = w.where
            if st is not None and w.pi in st.waiters:
                st.waiters.remove(w.pi)
                if not st.waiters and self.pi.states.get(to) is st:
                    del self.pi.states[to]
        return w

    def waiters(self, key: Key) -> list[_Waiter]:
        """The waiters of `key` in queue order (a copy)."""
        return list(self._queues.get(key, ()))

    def take(self, key: Key, w: _Waiter) -> None:
        """Remove waiter `w` from `key`'s queue (a CMP_REQUEUE_PI moves it on)."""
        q = self._queues[key]
        q.remove(w)
        if not q:
            del self._queues[key]

    def requeue(self, key: Key, to: Key, limit: int) -> int:
        """Move up to `limit` waiters of `key` to the end of `to`'s queue; return how many.
        EINVAL at a FUTEX_WAIT_REQUEUE_PI waiter (only CMP_REQUEUE_PI moves those)."""
        q = self._queues.get(key, [])
        moved = 0
        while q and moved < limit:
            if q[0].pi is not None:
                raise SyscallError(errno.EINVAL)
            self._queues.setdefault(to, []).append(q.pop(0))
            moved += 1
        if not q:
            self._queues.pop(key, None)
        return moved


@dataclass(slots=True)
class PiWaiter:
    """A thread blocked in FUTEX_LOCK_PI. `owner_died` is set when the owner ended holding
    the lock: the waiter, now the owner, writes the futex word itself."""

    tid: int
    event: trio.Event = field(default_factory=trio.Event)
    owner_died: bool = False


@dataclass(slots=True)
class PiState:
    """Linux's futex_pi_state without the rt_mutex: the owner the waiters queue behind."""

    owner: int
    waiters: list[PiWaiter] = field(default_factory=list)


class PiFutexes:
    """The priority-inheritance futexes of one kernel (`Futexes.pi`) that have waiters, by
    key. Ownership passes in FIFO order; no priority is inherited (the Sentry schedules no
    thread: the host does)."""

    def __init__(self) -> None:
        self.states: dict[Key, PiState] = {}

    def top_waiter(self, key: Key) -> PiState | None:
        """The state of `key` if a thread waits on it (futex_top_waiter)."""
        st = self.states.get(key)
        return st if st is not None and st.waiters else None

    async def wait(self, key: Key, owner: int, tid: int, deadline: float | None) -> PiWaiter:
        """Queue `tid` behind `owner` until the lock is handed over (the waiter is returned,
        the word already written unless `owner_died`) or the trio `deadline` passes
        (ETIMEDOUT; the word keeps FUTEX_WAITERS, as Linux's)."""
        st = self.states.get(key)
        if st is None:
            st = self.states[key] = PiState(owner)
        w = PiWaiter(tid)
        st.waiters.append(w)
        try:
            await sleep_until_set(w.event, deadline)
        finally:
            if w in st.waiters:
                st.waiters.remove(w)
            if not st.waiters and self.states.get(key) is st:
                del self.states[key]
        return w

    def enqueue(self, key: Key, owner: int, w: PiWaiter) -> PiState:
        """Queue lock waiter `w` behind `owner` on PI futex `key` (a requeued
        FUTEX_WAIT_REQUEUE_PI waiter, which sleeps on its own event)."""
        st = self.states.get(key)
        if st is None:
            st = self.states[key] = PiState(owner)
        st.waiters.append(w)
        return st

    def hand_over(self, key: Key) -> PiWaiter | None:
        """FUTEX_UNLOCK_PI's wake_futex_pi: the first waiter becomes the owner (the caller
        writes the word first, then sets the returned waiter's event)."""
        st = self.top_waiter(key)
        if st is None:
            return None
        w = st.waiters.pop(0)
        st.owner = w.tid
        if not st.waiters:
            del self.states[key]
        return w

    def owner_exited(self, tid: int) -> None:
        """exit_pi_state_list: each lock thread `tid` owned with waiters goes to the first
        of them, which learns that its owner died."""
        for key in [k for k, st in self.states.items() if st.owner == tid and st.waiters]:
            w = self.hand_over(key)
            if w is not None:
                w.owner_died = True
                w.event.set()
