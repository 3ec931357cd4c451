"""System V message queues (Linux's ipc/msg.c): typed messages, the queue's byte and count
limit, and the selection rules of msgrcv."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import trio

from .perm import IpcPerm, now

if TYPE_CHECKING:
    from sentry.kernel.pidns import PidNamespace

    from .namespace import IpcNamespace

MSG_STAT, MSG_INFO, MSG_STAT_ANY = 11, 12, 13
MSG_NOERROR, MSG_EXCEPT, MSG_COPY = 0o10000, 0o20000, 0o40000
#: struct msqid64_ds after its perm: stime, rtime, ctime, cbytes, qnum, qbytes, lspid,
#: lrpid, two unused.
MSQID_TAIL = struct.Struct("<qqqQQQiiQQ")


class MsgQueue:
    def __init__(self, ns: IpcNamespace, perm: IpcPerm, qbytes: int) -> None:
        self.ns = ns
        self.perm = perm
        self.messages: list[tuple[int, bytes]] = []
        self.cbytes = 0
        self.qbytes = qbytes
        self.stime = self.rtime = 0
        self.ctime = now()
        self.lspid = self.lrpid = 0
        self._changed = trio.Event()

    def pack(self, pidns: PidNamespace) -> bytes:
        """struct msqid64_ds, the pids as `pidns` (the caller's) numbers them."""
        return self.perm.pack() + MSQID_TAIL.pack(self.stime, self.rtime, self.ctime,
                                                  self.cbytes, len(self.messages),
                                                  self.qbytes, pidns.vpid(self.lspid),
                                                  pidns.vpid(self.lrpid), 0, 0)

    def changed(self) -> None:
        """Wake every blocked sender and receiver to look again (a message came or went,
        the limit changed, the queue was removed)."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait(self) -> None:
        await self._changed.wait()

    def fits(self, size: int) -> bool:
        return self.cbytes + size <= self.qbytes and len(self.messages) + 1 <= self.qbytes

    def put(self, mtype: int, data: bytes, pid: int) -> None:
        self.messages.append((mtype, data))
        self.cbytes += len(data)
        self.ns.msg_bytes += len(data)
        self.ns.msg_count += 1
        self.stime, self.lspid = now(), pid
        self.changed()

    def select(self, msgtyp: int, flags: int) -> int:
        """The index of the message msgrcv takes, or -1: the first (type 0), the first of
        that type (or of another with MSG_EXCEPT), or the first of the lowest type not above
        -msgtyp."""
        if msgtyp == 0:
            return 0 if self.messages else -1
        if msgtyp > 0:
            for i, (t, _) in enumerate(self.messages):
                if (t != msgtyp) if flags & MSG_EXCEPT else (t == msgtyp):
                    return i
            return -1
        best = -1
        for i, (t, _) in enumerate(self.messages):
            if t <= -msgtyp and (best < 0 or t < self.messages[best][0]):
                best = i
        return best

    def take(self, i: int, pid: int) -> tuple[int, bytes]:
        mtype, data = self.messages.pop(i)
        self.cbytes -= len(data)
        self.ns.msg_bytes -= len(data)
        self.ns.msg_count -= 1
        self.rtime, self.lrpid = now(), pid
        self.changed()
        return mtype, data

    def removed(self) -> None:
        self.ns.msg_bytes -= self.cbytes
        self.ns.msg_count -= len(self.messages)
        self.messages.clear()
        self.cbytes = 0
        self.changed()
