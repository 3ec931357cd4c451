"""System V semaphores: semget, semop, semtimedop, semctl over the kernel's IPC namespace
(`ipc_of(t)`, sentry/kernel/ipc/sem.py). A blocked semop sleeps until the operation that
makes it possible completes it, a signal interrupts it (EINTR: never restarted, as in Linux),
its timeout passes (EAGAIN) or the set is removed (EIDRM)."""

from __future__ import annotations

import errno
import math
import struct
from typing import TYPE_CHECKING

import trio

from sentry.errors import SyscallError
from sentry.kernel.ipc import ipc_of
from sentry.kernel.ipc.perm import (
    IPC_64,
    IPC_INFO,
    IPC_NOWAIT,
    IPC_RMID,
    IPC_SET,
    IPC_STAT,
    PERM64,
    new_perm,
    now,
)
from sentry.kernel.ipc.sem import (
    GETALL,
    GETNCNT,
    GETPID,
    GETVAL,
    GETZCNT,
    SEM_INFO,
    SEM_STAT,
    SEM_STAT_ANY,
    SEMBUF,
    SEMVMX,
    SETALL,
    SETVAL,
    SemSet,
    Waiter,
)
from sentry.kernel.table import syscall

if TYPE_CHECKING:
    from sentry.kernel.task import Task

_SEMINFO = struct.Struct("<10i")
_TIMESPEC = struct.Struct("<qq")
SEMUSZ = 20  # Linux's SEMUSZ: sizeof(struct sem_undo)


def _int(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


@syscall("semget")
def sys_semget(t: Task, key: int, nsems: int, flags: int, *_: int) -> int:
    """Implements Linux syscall semget(2): find or create a set of `nsems` semaphores."""
    ns = ipc_of(t)
    key, nsems, flags = _int(key), _int(nsems), _int(flags)
    lim = ns.limits
    if nsems < 0 or nsems > lim.semmsl:
        raise SyscallError(errno.EINVAL)

    def existing(s: SemSet) -> None:
        if nsems > len(s.sems):
            raise SyscallError(errno.EINVAL)

    def create() -> SemSet:
        if nsems == 0:
            raise SyscallError(errno.EINVAL)
        if ns.sem_count + nsems > lim.semmns:
            raise SyscallError(errno.ENOSPC)
        s = SemSet(ns, new_perm(key, flags, t.creds), nsems)
        ns.sem.add(s, lim.semmni)
        ns.sem_count += nsems
        return s

    return ns.sem.get(key, flags, t.creds, existing, create)


@syscall("semop")
async def sys_semop(t: Task, semid: int, sops: int, nsops: int, *_: int) -> int:
    """Implements Linux syscall semop(2)."""
    return await _semtimedop(t, semid, sops, nsops, 0)


@syscall("semtimedop")
async def sys_semtimedop(t: Task, semid: int, sops: int, nsops: int, timeout: int,
                         *_: int) -> int:
    """Implements Linux syscall semtimedop(2): semop with a relative timeout (EAGAIN)."""
    return await _semtimedop(t, semid, sops, nsops, timeout)


async def _semtimedop(t: Task, semid: int, sops_addr: int, nsops: int, timeout: int) -> int:
    ns = ipc_of(t)
    semid = _int(semid)
    if nsops < 1 or semid < 0:
        raise SyscallError(errno.EINVAL)
    if nsops > ns.limits.semopm:
        raise SyscallError(errno.E2BIG)
    raw = t.mem_read(sops_addr, SEMBUF.size * nsops)
    ops = list(SEMBUF.iter_unpack(raw))
    deadline = math.inf
    if timeout:
        sec, nsec = _TIMESPEC.unpack(t.mem_read(timeout, _TIMESPEC.size))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            raise SyscallError(errno.EINVAL)
        deadline = trio.current_time() + sec + nsec / 1e9
    s = ns.sem.find(semid)
    if max(num for num, _, _ in ops) >= len(s.sems):
        raise SyscallError(errno.EFBIG)
    s.perm.check(t.creds, 2 if any(op for _, op, _ in ops) else 4)
    try:
        blocking = s.attempt(ops, t.tgid, t.sem_undo_key)
    except OSError as e:
        raise SyscallError(e.errno or errno.ERANGE) from None
    if blocking is None:
        s.update_queue()
        return 0
    if blocking[2] & IPC_NOWAIT:
        raise SyscallError(errno.EAGAIN)
    w = Waiter(ops, t.tgid, t.sem_undo_key, blocking)
    s.waiters.append(w)
    try:
        with trio.move_on_at(deadline):
            await t.sleep_interruptibly(w.done.wait())
    except SyscallError:
        if w.error < 0:
            raise
    finally:
        if w in s.waiters:
            s.waiters.remove(w)
    if w.error < 0:
        raise SyscallError(errno.EAGAIN)  # the timeout passed
    if w.error:
        raise SyscallError(w.error)
    return 0


@syscall("semctl")
def sys_semctl(t: Task, semid: int, semnum: int, cmd: int, arg: int, *_: int) -> int:
    """Implements Linux syscall semctl(2): every command (values, counts, pids, STAT, SET,
    RMID, INFO)."""
    ns = ipc_of(t)
    semid, semnum, cmd = _int(semid), _int(semnum), _int(cmd) & ~IPC_64
    lim = ns.limits
    if cmd in (IPC_INFO, SEM_INFO):
        info = cmd == SEM_INFO
        t.mem_write(arg, _SEMINFO.pack(
            lim.semmns, lim.semmni, lim.semmns, lim.semmns, lim.semmsl, lim.semopm,
            lim.semopm, len(ns.sem) if info else SEMUSZ, SEMVMX,
            ns.sem_count if info else SEMVMX))
        return ns.sem.max_index()
    if cmd in (SEM_STAT, SEM_STAT_ANY):
        s = ns.sem.at_index(semid, t.creds if cmd == SEM_STAT else None)
        t.mem_write(arg, s.pack())
        return s.perm.id
    if semid < 0:
        raise SyscallError(errno.EINVAL)
    if cmd not in (IPC_STAT, IPC_SET, IPC_RMID, GETPID, GETVAL, GETALL, GETNCNT, GETZCNT,
                   SETVAL, SETALL):
        raise SyscallError(errno.EINVAL)
    if cmd == SETVAL and not 0 <= _int(arg) <= SEMVMX:
        raise SyscallError(errno.ERANGE)
    s = ns.sem.find(semid)
    n = len(s.sems)
    if cmd == IPC_STAT:
        s.perm.check(t.creds, 4)
        t.mem_write(arg, s.pack())
        return 0
    if cmd in (IPC_SET, IPC_RMID):
        if cmd == IPC_SET:
            _, uid, gid, _, _, mode, *_rest = PERM64.unpack(t.mem_read(arg, PERM64.size))
        if not s.perm.is_owner(t.creds):
            raise SyscallError(errno.EPERM)
        if cmd == IPC_SET:
            s.perm.set_from(uid, gid, mode)
            s.ctime = now()
        else:
            ns.sem.remove(s)
            ns.sem_count -= n
            s.removed()
        return 0
    if cmd == GETALL:
        s.perm.check(t.creds, 4)
        t.mem_write(arg, struct.pack(f"<{n}H", *(x.val for x in s.sems)))
        return 0
    if cmd == SETALL:
        s.perm.check(t.creds, 2)
        vals = struct.unpack(f"<{n}H", t.mem_read(arg, 2 * n))
        if any(v > SEMVMX for v in vals):
            raise SyscallError(errno.ERANGE)
        s.set_values(dict(enumerate(vals)), t.tgid)
        return 0
    if cmd == SETVAL:
        if semnum < 0 or semnum >= n:
            raise SyscallError(errno.EINVAL)
        s.perm.check(t.creds, 2)
        s.set_values({semnum: _int(arg)}, t.tgid)
        return 0
    s.perm.check(t.creds, 4)
    if semnum < 0 or semnum >= n:
        raise SyscallError(errno.EINVAL)
    if cmd == GETVAL:
        return s.sems[semnum].val
    if cmd == GETPID:
        return t.pidns.vpid(s.sems[semnum].pid)
    return s.count(semnum, zero=cmd == GETZCNT)
