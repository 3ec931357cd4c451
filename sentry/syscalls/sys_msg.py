"""System V message queues: msgget, msgsnd, msgrcv, msgctl over the kernel's IPC namespace
(`ipc_of(t)`, sentry/kernel/ipc/msg.py). Blocked senders and receivers sleep until the
queue changes, a signal interrupts them (EINTR, never restarted, as in Linux) or the queue
is removed (EIDRM)."""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.ipc import ipc_of
from sentry.kernel.ipc.msg import (
    MSG_COPY,
    MSG_EXCEPT,
    MSG_INFO,
    MSG_NOERROR,
    MSG_STAT,
    MSG_STAT_ANY,
    MsgQueue,
)
from sentry.kernel.ipc.perm import (
    CAP_SYS_RESOURCE,
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
from sentry.kernel.table import syscall

if TYPE_CHECKING:
    from sentry.kernel.task import Task

_MSGINFO = struct.Struct("<7iH2x")
_MSGSSZ, _MSGSEG = 16, 0xFFFF
_QBYTES_AT = 48 + 8 * 5  # msg_qbytes in struct msqid64_ds


def _int(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _long(v: int) -> int:
    return v - (1 << 64) if v & (1 << 63) else v


@syscall("msgget")
def sys_msgget(t: Task, key: int, flags: int, *_: int) -> int:
    """Implements Linux syscall msgget(2): find or create a queue."""
    ns = ipc_of(t)
    key, flags = _int(key), _int(flags)

    def create() -> MsgQueue:
        q = MsgQueue(ns, new_perm(key, flags, t.creds), ns.limits.msgmnb)
        ns.msg.add(q, ns.limits.msgmni)
        return q

    return ns.msg.get(key, flags, t.creds, lambda q: None, create)


async def _queue_wait(t: Task, q: MsgQueue) -> None:
    await t.sleep_interruptibly(q.wait())
    if q.perm.deleted:
        raise SyscallError(errno.EIDRM)


@syscall("msgsnd")
async def sys_msgsnd(t: Task, msqid: int, msgp: int, msgsz: int, flags: int, *_: int) -> int:
    """Implements Linux syscall msgsnd(2): queue a message, waiting for room unless
    IPC_NOWAIT (EAGAIN)."""
    ns = ipc_of(t)
    msqid, flags, msgsz = _int(msqid), _int(flags), _long(msgsz)
    (mtype,) = struct.unpack("<q", t.mem_read(msgp, 8))
    if msgsz > ns.limits.msgmax or msgsz < 0 or msqid < 0 or mtype < 1:
        raise SyscallError(errno.EINVAL)
    data = t.mem_read(msgp + 8, msgsz) if msgsz else b""
    q = ns.msg.find(msqid)
    while True:
        q.perm.check(t.creds, 2)
        if q.fits(msgsz):
            q.put(mtype, data, t.tgid)
            return 0
        if flags & IPC_NOWAIT:
            raise SyscallError(errno.EAGAIN)
        await _queue_wait(t, q)


@syscall("msgrcv")
async def sys_msgrcv(t: Task, msqid: int, msgp: int, msgsz: int, msgtyp: int, flags: int,
                     *_: int) -> int:
    """Implements Linux syscall msgrcv(2): MSG_NOERROR, MSG_EXCEPT, MSG_COPY, IPC_NOWAIT."""
    ns = ipc_of(t)
    msqid, flags, msgsz, msgtyp = _int(msqid), _int(flags), _long(msgsz), _long(msgtyp)
    if flags & MSG_COPY:
        if flags & MSG_EXCEPT or not flags & IPC_NOWAIT:
            raise SyscallError(errno.EINVAL)
    if msqid < 0 or msgsz < 0:
        raise SyscallError(errno.EINVAL)
    q = ns.msg.find(msqid)
    while True:
        q.perm.check(t.creds, 4)
        if flags & MSG_COPY:
            i = msgtyp if 0 <= msgtyp < len(q.messages) else -1
        else:
            i = q.select(msgtyp, flags)
        if i >= 0:
            mtype, data = q.messages[i]
            if len(data) > msgsz and not flags & MSG_NOERROR:
                raise SyscallError(errno.E2BIG)
            if not flags & MSG_COPY:
                q.take(i, t.tgid)
            n = min(len(data), msgsz)
            t.mem_write(msgp, struct.pack("<q", mtype) + data[:n])
            return n
        if flags & IPC_NOWAIT:
            raise SyscallError(errno.ENOMSG)
        await _queue_wait(t, q)


@syscall("msgctl")
def sys_msgctl(t: Task, msqid: int, cmd: int, buf: int, *_: int) -> int:
    """Implements Linux syscall msgctl(2): IPC_STAT, IPC_SET (msg_qbytes above msgmnb needs
    CAP_SYS_RESOURCE), IPC_RMID, IPC_INFO, MSG_INFO, MSG_STAT(_ANY)."""
    ns = ipc_of(t)
    msqid, cmd = _int(msqid), _int(cmd) & ~IPC_64
    lim = ns.limits
    if cmd in (IPC_INFO, MSG_INFO):
        info = cmd == MSG_INFO
        t.mem_write(buf, _MSGINFO.pack(
            len(ns.msg) if info else lim.msgmni * lim.msgmnb // 1024,
            ns.msg_count if info else lim.msgmnb, lim.msgmax, lim.msgmnb, lim.msgmni,
            _MSGSSZ, ns.msg_bytes if info else lim.msgmnb, _MSGSEG))
        return ns.msg.max_index()
    if cmd in (MSG_STAT, MSG_STAT_ANY):
        q = ns.msg.at_index(msqid, t.creds if cmd == MSG_STAT else None)
        t.mem_write(buf, q.pack(t.pidns))
        return q.perm.id
    if cmd not in (IPC_STAT, IPC_SET, IPC_RMID) or msqid < 0:
        raise SyscallError(errno.EINVAL)
    if cmd == IPC_SET:
        raw = t.mem_read(buf, _QBYTES_AT + 8)
        _, uid, gid, _, _, mode, *_rest = PERM64.unpack(raw[:PERM64.size])
        (qbytes,) = struct.unpack_from("<Q", raw, _QBYTES_AT)
    q = ns.msg.find(msqid)
    if cmd == IPC_STAT:
        q.perm.check(t.creds, 4)
        t.mem_write(buf, q.pack(t.pidns))
        return 0
    if not q.perm.is_owner(t.creds):
        raise SyscallError(errno.EPERM)
    if cmd == IPC_RMID:
        ns.msg.remove(q)
        q.removed()
        return 0
    if qbytes > lim.msgmnb and not t.creds.has_cap(CAP_SYS_RESOURCE):
        raise SyscallError(errno.EPERM)
    q.perm.set_from(uid, gid, mode)
    q.qbytes = qbytes
    q.ctime = now()
    q.changed()
    return 0
