"""System V semaphore sets (Linux's ipc/sem.c): atomic operation arrays, the queue of
blocked operations completed by whoever changes a value, and SEM_UNDO adjustments kept
per process and applied when it exits."""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from .perm import IPC_NOWAIT, IpcPerm, now

if TYPE_CHECKING:
    from .namespace import IpcNamespace

SEM_UNDO = 0x1000
GETPID, GETVAL, GETALL, GETNCNT, GETZCNT, SETVAL, SETALL = 11, 12, 13, 14, 15, 16, 17
SEM_STAT, SEM_INFO, SEM_STAT_ANY = 18, 19, 20
SEMVMX = 32767
SEMAEM = SEMVMX
#: struct semid64_ds after its perm: otime, unused, ctime, unused, nsems, two unused.
SEMID_TAIL = struct.Struct("<qQqQQQQ")
SEMBUF = struct.Struct("<Hhh")  # sem_num, sem_op, sem_flg


@dataclass
class Sem:
    val: int = 0
    pid: int = 0


@dataclass
class Waiter:
    """A blocked semop: its operations, the one it blocks on, and its outcome (set by the
    operation that completes it, or by removal: EIDRM)."""

    sops: list[tuple[int, int, int]]
    pid: int
    undo: int  # its SEM_UNDO list's key
    blocking: tuple[int, int, int]
    done: trio.Event = field(default_factory=trio.Event)
    error: int = -1  # -1 while waiting; 0 done; an errno


class SemSet:
    def __init__(self, ns: IpcNamespace, perm: IpcPerm, nsems: int) -> None:
        self.ns = ns
        self.perm = perm
        self.sems = [Sem() for _ in range(nsems)]
        self.otime = 0
        self.ctime = now()
        self.waiters: list[Waiter] = []

    def pack(self) -> bytes:
        return self.perm.pack() + SEMID_TAIL.pack(self.otime, 0, self.ctime, 0,
                                                  len(self.sems), 0, 0)

    def attempt(self, sops: list[tuple[int, int, int]], pid: int, undo_key: int
                ) -> tuple[int, int, int] | None:
        """perform_atomic_semop: apply every operation or none. Returns the operation that
        would block (None when all were applied); ERANGE past SEMVMX or SEMAEM."""
        vals = [s.val for s in self.sems]
        undo = self.ns.sem_undo.get(undo_key, {}).get(self.perm.id)
        adj = list(undo) if undo is not None else [0] * len(self.sems)
        for sop in sops:
            num, op, flg = sop
            v = vals[num]
            if op == 0 and v:
                return sop
            v += op
            if v < 0:
                return sop
            if v > SEMVMX:
                raise OSError(errno.ERANGE, "semval")
            if flg & SEM_UNDO:
                a = adj[num] - op
                if a < -SEMAEM - 1 or a > SEMAEM:
                    raise OSError(errno.ERANGE, "semadj")
                adj[num] = a
            vals[num] = v
        for num, _, _ in sops:
            self.sems[num].pid = pid
        for s, v in zip(self.sems, vals, strict=True):
            s.val = v
        if any(flg & SEM_UNDO for _, _, flg in sops):
            self.ns.sem_undo.setdefault(undo_key, {})[self.perm.id] = adj
        self.otime = now()
        return None

    def update_queue(self) -> None:
        """Complete every blocked operation that now can, oldest first, until none can."""
        progress = True
        while progress:
            progress = False
            for w in list(self.waiters):
                try:
                    blocking = self.attempt(w.sops, w.pid, w.undo)
                except OSError as e:
                    self._finish(w, e.errno or errno.ERANGE)
                    continue
                if blocking is None:
                    self._finish(w, 0)
                    progress = True
                else:
                    w.blocking = blocking

    def _finish(self, w: Waiter, err: int) -> None:
        w.error = err
        self.waiters.remove(w)
        w.done.set()

    def count(self, num: int, zero: bool) -> int:
        """GETZCNT (zero) / GETNCNT: blocked operations waiting on semaphore `num`."""
        n = 0
        for w in self.waiters:
            bnum, op, flg = w.blocking
            if bnum == num and not flg & IPC_NOWAIT and (op == 0 if zero else op < 0):
                n += 1
        return n

    def set_values(self, values: dict[int, int], pid: int) -> None:
        """SETVAL/SETALL: new values, their undo adjustments cleared, waiters retried."""
        for num, v in values.items():
            self.sems[num].val = v
            self.sems[num].pid = pid
            for undo in self.ns.sem_undo.values():
                adj = undo.get(self.perm.id)
                if adj is not None:
                    adj[num] = 0
        self.ctime = now()
        self.update_queue()

    def removed(self) -> None:
        """IPC_RMID: blocked operations fail with EIDRM; undo records go."""
        for w in list(self.waiters):
            self._finish(w, errno.EIDRM)
        for undo in self.ns.sem_undo.values():
            undo.pop(self.perm.id, None)

    def undo_exit(self, adj: list[int], pid: int) -> None:
        """exit_sem: add a process's adjustments, clamped to [0, SEMVMX]."""
        for num, a in enumerate(adj):
            if a:
                s = self.sems[num]
                s.val = min(max(s.val + a, 0), SEMVMX)
                s.pid = pid
        self.update_queue()
