"""Advisory file locks: POSIX record locks, OFD locks (fcntl) and whole-file flock locks.

Why in the Sentry and per inode: locks belong to the file, not to a path or an fd, so they
are kept per (filesystem, inode number) and shared by every open description of the file.
Owners follow Linux: a POSIX record lock is owned by the process (and dropped when the
process closes *any* fd of the file), an OFD lock and a flock lock by the open file
description (dropped when its last reference goes). Conflicts are only between different
owners, and only if one of the two is a write (exclusive) lock.

Waiting (F_SETLKW, flock without LOCK_NB) awaits a trio Event that every change replaces,
so a blocked task never blocks the Sentry.

The tables are the kernel's (`Kernel.file_locks`, one `FileLocks` per sandbox): two
sandboxes in one Sentry process never see each other's locks, even on a shared filesystem,
as two machines would not.
"""

from __future__ import annotations

import errno
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

import trio

from sentry.errors import SyscallError
from vfs.abi import SEEK_CUR, SEEK_END, SEEK_SET

F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2
LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8
OFF_MAX = (1 << 63) - 1
#: Seconds a blocked lock request waits before checking for owners that vanished silently.
RECHECK = 0.2


@dataclass(slots=True)
class _Record:
    owner: Any
    pid: int
    type: int
    lo: int
    hi: int | None  # exclusive end; None = to the end of any file


@dataclass(slots=True)
class _FileLocks:
    records: list[_Record] = field(default_factory=list)
    flocks: dict[int, tuple[Any, int]] = field(default_factory=dict)  # id(fdesc) -> (f, type)
    changed: trio.Event = field(default_factory=trio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


def _key(f: Any) -> tuple[Any, ...]:
    vd = getattr(f, "vd", None)
    if vd is None:
        return ("anon", id(f))
    return (id(vd.mount.fs), vd.dentry.inode.ino)


def posix_owner(tgid: int) -> tuple[str, int]:
    """The owner of a task's POSIX record locks: its process (thread group)."""
    return ("posix", tgid)


def _overlap(a_lo: int, a_hi: int | None, b_lo: int, b_hi: int | None) -> bool:
    return (b_hi is None or a_lo < b_hi) and (a_hi is None or b_lo < a_hi)


async def _wait_change(fl: _FileLocks) -> None:
    """Wait for a lock change; look again now and then in case an owner vanished silently."""
    with trio.move_on_after(RECHECK):
        await fl.changed.wait()


async def byte_range(f: Any, whence: int, start: int, length: int) -> tuple[int, int | None]:
    """Turn struct flock's (whence, start, len) into [lo, hi) (hi None = to EOF and beyond)."""
    if whence == SEEK_SET:
        base = 0
    elif whence == SEEK_CUR:
        base = f.offset
    elif whence == SEEK_END:
        base = (await f.stat()).size
    else:
        raise SyscallError(errno.EINVAL)
    lo = base + start
    if length > 0:
        end = lo + length
        if end - 1 > OFF_MAX:
            raise SyscallError(errno.EOVERFLOW)
        hi: int | None = end
    elif length == 0:
        hi = None
    else:
        hi, lo = lo, lo + length
    if lo < 0:
        raise SyscallError(errno.EINVAL)
    return lo, hi


def _remove_range(fl: _FileLocks, owner: Any, lo: int, hi: int | None) -> None:
    """Cut [lo, hi) out of `owner`'s records, splitting the ones that straddle it."""
    out = []
    for r in fl.records:
        if r.owner != owner or not _overlap(lo, hi, r.lo, r.hi):
            out.append(r)
            continue
        if r.lo < lo:
            out.append(_Record(r.owner, r.pid, r.type, r.lo, lo))
        if hi is not None and (r.hi is None or r.hi > hi):
            out.append(_Record(r.owner, r.pid, r.type, hi, r.hi))
    fl.records = out


def _merge(fl: _FileLocks, owner: Any) -> None:
    """Coalesce `owner`'s adjacent or overlapping records of the same type (as Linux does)."""
    mine = sorted((r for r in fl.records if r.owner == owner), key=lambda r: r.lo)
    rest = [r for r in fl.records if r.owner != owner]
    merged: list[_Record] = []
    for r in mine:
        last = merged[-1] if merged else None
        if last is not None and last.type == r.type and last.hi is not None and r.lo <= last.hi:
            last.hi = None if r.hi is None else max(last.hi, r.hi)
        else:
            merged.append(_Record(r.owner, r.pid, r.type, r.lo, r.hi))
    fl.records = rest + merged


class FileLocks:
    """One kernel's lock tables, per (filesystem, inode number).

    `live` is the kernel's process table (pid -> process): a POSIX lock whose process is
    no longer in it is dropped, whatever path its fds took.
    """

    def __init__(self, live: Container[int]) -> None:
        self._files: dict[tuple[Any, ...], _FileLocks] = {}
        self._live = live

    def __len__(self) -> int:
        """How many files have locks (or waiters' state) now."""
        return len(self._files)

    def _locks(self, f: Any, create: bool = True) -> _FileLocks | None:
        if not create and not self._files:  # (every close asks; most sandboxes lock nothing)
            return None
        k = _key(f)
        fl = self._files.get(k)
        if fl is None and create:
            fl = self._files[k] = _FileLocks()
        if fl is not None:
            self._purge_released(fl)
        return fl

    def _released(self, owner: Any) -> bool:
        """A lock whose owner is gone without telling us: a description released with a
        bare dec_ref, or a process that exited without its fds being closed through
        `on_close`."""
        if isinstance(owner, tuple):
            return owner[1] not in self._live
        return getattr(owner, "refs", 1) <= 0

    def _purge_released(self, fl: _FileLocks) -> None:
        """Drop locks of descriptions that were released behind our back (a path that
        closed them with a bare dec_ref), so they cannot block anyone forever."""
        if any(self._released(r.owner) for r in fl.records):
            fl.records = [r for r in fl.records if not self._released(r.owner)]
        dead = [k for k, (f, _) in fl.flocks.items() if self._released(f)]
        for k in dead:
            del fl.flocks[k]

    def _gc(self, f: Any, fl: _FileLocks) -> None:
        if not fl.records and not fl.flocks:
            self._files.pop(_key(f), None)

    def test(self, f: Any, owner: Any, ltype: int, lo: int,
             hi: int | None) -> tuple[int, int, int | None, int] | None:
        """F_GETLK: the first lock of another owner that would block (type, lo, hi, pid)."""
        fl = self._locks(f, create=False)
        if fl is None:
            return None
        for r in fl.records:
            if r.owner != owner and (ltype == F_WRLCK or r.type == F_WRLCK) and _overlap(
                lo, hi, r.lo, r.hi
            ):
                return (r.type, r.lo, r.hi, r.pid)
        return None

    async def set_record(self, f: Any, owner: Any, pid: int, ltype: int, lo: int,
                         hi: int | None, *, wait: bool) -> None:
        """F_SETLK(W) / F_OFD_SETLK(W): take, change or (F_UNLCK) drop a record lock.

        Raises SyscallError(EAGAIN) on a conflict when not waiting.
        """
        fl = self._locks(f)
        assert fl is not None
        if ltype == F_UNLCK:
            _remove_range(fl, owner, lo, hi)
            fl.notify()
            self._gc(f, fl)
            return
        while self.test(f, owner, ltype, lo, hi) is not None:
            if not wait:
                raise SyscallError(errno.EAGAIN)
            await _wait_change(fl)
            fl = self._locks(f)
            assert fl is not None
        _remove_range(fl, owner, lo, hi)
        fl.records.append(_Record(owner, pid, ltype, lo, hi))
        _merge(fl, owner)
        fl.notify()

    async def flock(self, f: Any, operation: int) -> None:
        """flock(2) on open description `f` (LOCK_SH / LOCK_EX / LOCK_UN, optionally
        LOCK_NB)."""
        op = operation & ~LOCK_NB
        if op not in (LOCK_SH, LOCK_EX, LOCK_UN):
            raise SyscallError(errno.EINVAL)
        fl = self._locks(f)
        assert fl is not None
        me = id(f)
        if op == LOCK_UN:
            if fl.flocks.pop(me, None) is not None:
                fl.notify()
            self._gc(f, fl)
            return
        held = fl.flocks.get(me)
        if held is not None and held[1] == op:
            return
        if held is not None:
            # Linux converts by dropping the old lock first (not atomically).
            del fl.flocks[me]
            fl.notify()
        while any(other != me and (op == LOCK_EX or typ == LOCK_EX)
                  for other, (_, typ) in fl.flocks.items()):
            if operation & LOCK_NB:
                self._gc(f, fl)
                raise SyscallError(errno.EWOULDBLOCK)
            await _wait_change(fl)
            fl = self._locks(f)
            assert fl is not None
        fl.flocks[me] = (f, op)
        fl.notify()

    def on_close(self, tgid: int, f: Any) -> None:
        """Process `tgid` closed an fd of `f`: its POSIX record locks on the file go."""
        fl = self._locks(f, create=False)
        if fl is None:
            return
        owner = posix_owner(tgid)
        if any(r.owner == owner for r in fl.records):
            fl.records = [r for r in fl.records if r.owner != owner]
            fl.notify()
            self._gc(f, fl)

    def on_release(self, f: Any) -> None:
        """The last reference to open description `f` went: drop its OFD and flock locks."""
        fl = self._locks(f, create=False)
        if fl is None:
            return
        before = (len(fl.records), len(fl.flocks))
        fl.records = [r for r in fl.records if r.owner is not f]
        fl.flocks.pop(id(f), None)
        if (len(fl.records), len(fl.flocks)) != before:
            fl.notify()
        self._gc(f, fl)
