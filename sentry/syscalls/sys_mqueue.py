"""POSIX message queues: mq_open, mq_unlink, mq_timedsend, mq_timedreceive, mq_notify,
mq_getsetattr on the IPC namespace's mqueue filesystem (vfs/fs/mqueue.py, `ipc_of(t)`).
A queue descriptor is an fd of that filesystem's file, pollable; a blocked send or receive
sleeps until the queue changes, its absolute CLOCK_REALTIME timeout passes (ETIMEDOUT) or a
signal comes (EINTR, restarted under SA_RESTART as in Linux)."""

from __future__ import annotations

import errno
import math
import struct
import time
from typing import TYPE_CHECKING

import trio

from sentry.errors import SyscallError
from sentry.kernel import signals, sigstate
from sentry.kernel.ipc import ipc_of
from sentry.kernel.table import syscall
from sentry.socket import Socket
from sentry.socket.netlink import NetlinkSocket
from vfs.abi import (
    MAY_READ,
    MAY_WRITE,
    O_ACCMODE,
    O_CREAT,
    O_EXCL,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
)
from vfs.creds import CAP_SYS_RESOURCE
from vfs.fs.mqueue import MQ_PRIO_MAX, MqueueFD, MqueueInode
from vfs.mount import VirtualDentry
from vfs.perm import check, check_sticky

if TYPE_CHECKING:
    from sentry.kernel.task import Task

_O_CLOEXEC = 0o2000000
_NAME_MAX = 255
_HARD_MSGMAX, _HARD_MSGSIZEMAX = 65536, 16 << 20
_MQ_ATTR = struct.Struct("<qqqq32x")  # mq_flags, mq_maxmsg, mq_msgsize, mq_curmsgs
_TIMESPEC = struct.Struct("<qq")
_SIGEVENT = struct.Struct("<Qii")  # sigev_value, sigev_signo, sigev_notify
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD = 0, 1, 2
SI_MESGQ = -3
#: SIGEV_THREAD's cookie and the values its last byte is set to (ipc/mqueue.c).
NOTIFY_COOKIE_LEN, NOTIFY_WOKENUP, NOTIFY_REMOVED = 32, 1, 2


def _name(t: Task, addr: int) -> bytes:
    name = t.read_cstring(addr, 4096)
    if len(name) > _NAME_MAX:
        raise SyscallError(errno.ENAMETOOLONG)
    if b"/" in name:
        raise SyscallError(errno.EACCES)
    if not name:
        raise SyscallError(errno.ENOENT)
    return name


@syscall("mq_open")
def sys_mq_open(t: Task, name_addr: int, oflag: int, mode: int, attr: int, *_: int) -> int:
    """Implements Linux syscall mq_open(2): open or create a queue of the sandbox's IPC
    namespace (glibc strips the leading slash)."""
    ns = ipc_of(t)
    fs = ns.mqueue
    oflag &= 0xFFFFFFFF
    name = _name(t, name_addr)
    d = fs.root.children.get(name)
    if d is None:
        if not oflag & O_CREAT:
            raise SyscallError(errno.ENOENT)
        privileged = t.creds.has_cap(CAP_SYS_RESOURCE)
        maxmsg = min(fs.msg_max, fs.msg_default)
        msgsize = min(fs.msgsize_max, fs.msgsize_default)
        if attr:
            _, maxmsg, msgsize, _ = _MQ_ATTR.unpack(t.mem_read(attr, _MQ_ATTR.size))
            if maxmsg <= 0 or msgsize <= 0:
                raise SyscallError(errno.EINVAL)
            if (maxmsg > (_HARD_MSGMAX if privileged else fs.msg_max)
                    or msgsize > (_HARD_MSGSIZEMAX if privileged else fs.msgsize_max)):
                raise SyscallError(errno.EINVAL)
        if fs.queues >= fs.queues_max and not privileged:
            raise SyscallError(errno.ENOSPC)
        umask = t.fs.umask if t.fs is not None else 0o022
        d = fs.create(name, mode & 0o777 & ~umask, t.creds.fsuid, t.creds.fsgid, maxmsg,
                      msgsize)
    else:
        if oflag & O_CREAT and oflag & O_EXCL:
            raise SyscallError(errno.EEXIST)
        acc = oflag & O_ACCMODE
        if acc == O_ACCMODE:
            raise SyscallError(errno.EINVAL)  # only for an existing queue, as in Linux
        check(t.creds, d.inode, {O_RDONLY: MAY_READ, O_WRONLY: MAY_WRITE,
                                 O_RDWR: MAY_READ | MAY_WRITE}[acc])
    assert isinstance(d.inode, MqueueInode)
    f = MqueueFD(oflag & (O_ACCMODE | O_NONBLOCK), d.inode.queue)
    f.vd = VirtualDentry(ns.mq_mount, d)
    return t.fdtable.install(f, cloexec=bool(oflag & _O_CLOEXEC))


@syscall("mq_unlink")
async def sys_mq_unlink(t: Task, name_addr: int, *_: int) -> int:
    """Implements Linux syscall mq_unlink(2): the name goes; open descriptors keep the
    queue."""
    fs = ipc_of(t).mqueue
    name = _name(t, name_addr)
    d = fs.root.children.get(name)
    if d is None:
        raise SyscallError(errno.ENOENT)
    check(t.creds, fs.root.inode, MAY_WRITE)
    try:
        check_sticky(t.creds, fs.root.inode, d.inode)
    except OSError:
        raise SyscallError(errno.EACCES) from None  # what Linux answers here, not EPERM
    await fs.unlink(fs.root, d)
    return 0


def _queue(t: Task, mqd: int) -> MqueueFD:
    f = t.fdtable.get(_fd(mqd))
    if not isinstance(f, MqueueFD):
        raise SyscallError(errno.EBADF)
    return f


def _fd(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _deadline(t: Task, addr: int) -> float:
    """The trio deadline of an absolute CLOCK_REALTIME timeout (inf without one)."""
    if not addr:
        return math.inf
    sec, nsec = _TIMESPEC.unpack(t.mem_read(addr, _TIMESPEC.size))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise SyscallError(errno.EINVAL)
    return trio.current_time() + (sec + nsec / 1e9 - time.clock_gettime(time.CLOCK_REALTIME))


@syscall("mq_timedsend")
async def sys_mq_timedsend(t: Task, mqd: int, msg: int, length: int, prio: int,
                           timeout: int, *_: int) -> int:
    """Implements Linux syscall mq_timedsend(2)."""
    if prio & 0xFFFFFFFF >= MQ_PRIO_MAX:
        raise SyscallError(errno.EINVAL)
    deadline = _deadline(t, timeout)
    f = _queue(t, mqd)
    if not f.writable:
        raise SyscallError(errno.EBADF)
    q = f.queue
    if length > q.msgsize:
        raise SyscallError(errno.EMSGSIZE)
    data = t.mem_read(msg, length) if length else b""
    with trio.move_on_at(deadline):
        while q.full:
            if f.nonblocking:
                raise SyscallError(errno.EAGAIN)
            await q.changed()
        q.put(data, prio & 0xFFFFFFFF, t.tgid, t.creds.uid)
        return 0
    raise SyscallError(errno.ETIMEDOUT)


@syscall("mq_timedreceive")
async def sys_mq_timedreceive(t: Task, mqd: int, msg: int, length: int, prio_addr: int,
                              timeout: int, *_: int) -> int:
    """Implements Linux syscall mq_timedreceive(2): the oldest message of the highest
    priority."""
    deadline = _deadline(t, timeout)
    f = _queue(t, mqd)
    if not f.readable:
        raise SyscallError(errno.EBADF)
    q = f.queue
    if length < q.msgsize:
        raise SyscallError(errno.EMSGSIZE)
    with trio.move_on_at(deadline):
        while not q.messages:
            if f.nonblocking:
                raise SyscallError(errno.EAGAIN)
            q.receivers += 1
            try:
                await q.changed()
            finally:
                q.receivers -= 1
        data, prio = q.take()
        t.mem_write(msg, data)
        if prio_addr:
            t.mem_write(prio_addr, struct.pack("<I", prio))
        return len(data)
    raise SyscallError(errno.ETIMEDOUT)


@syscall("mq_notify")
def sys_mq_notify(t: Task, mqd: int, sevp: int, *_: int) -> int:
    """Implements Linux syscall mq_notify(2): one process is told (a signal with
    si_code SI_MESGQ, or SIGEV_THREAD's cookie sent to its netlink socket) when a message
    arrives in the empty queue; NULL unregisters."""
    ev = None
    sock: NetlinkSocket | None = None
    cookie = b""
    if sevp:
        value, signo, how = _SIGEVENT.unpack(t.mem_read(sevp, _SIGEVENT.size))
        if how not in (SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD):
            raise SyscallError(errno.EINVAL)
        if how == SIGEV_SIGNAL and not 0 <= signo <= 64:
            raise SyscallError(errno.EINVAL)
        if how == SIGEV_THREAD:
            # glibc's SIGEV_THREAD: sival_ptr is a cookie, sigev_signo a netlink socket
            # its helper thread reads (netlink_getsockbyfilp's errors).
            cookie = t.mem_read(value, NOTIFY_COOKIE_LEN)
            f = t.fdtable.get(signo)
            if not isinstance(f, Socket):
                raise SyscallError(errno.ENOTSOCK)
            if not isinstance(f, NetlinkSocket):
                raise SyscallError(errno.EINVAL)
            sock = f
        ev = (value, signo, how)
    q = _queue(t, mqd).queue
    if ev is None:
        if q.notify is not None and q.notify[0] == t.tgid:
            q.unregister()
        return 0
    if q.notify is not None:
        raise SyscallError(errno.EBUSY)
    value, signo, how = ev
    kernel, owner = t.kernel, t.tgid

    def fire(pid: int, uid: int) -> None:
        """`pid` sent the message that notifies: si_pid is its number in the owner's
        namespace, and only a sender outside it forces SIGKILL/SIGSTOP on an init."""
        target = kernel.procs.get(owner)
        if how == SIGEV_SIGNAL and target is not None and signo:
            ns = target.pidns
            signals.send(None, target, signo,
                         sigstate.siginfo(signo, SI_MESGQ, ns.vpid(pid), uid, value=value),
                         force=not ns.sees(pid))
        elif sock is not None:
            sock.deliver(cookie[:-1] + bytes([NOTIFY_WOKENUP]))

    def removed() -> None:
        if sock is not None:
            sock.deliver(cookie[:-1] + bytes([NOTIFY_REMOVED]))

    q.notify = (owner, how, signo if how == SIGEV_SIGNAL else 0, fire, removed)
    return 0


@syscall("mq_getsetattr")
def sys_mq_getsetattr(t: Task, mqd: int, new: int, old: int, *_: int) -> int:
    """Implements Linux syscall mq_getsetattr(2): only O_NONBLOCK can change."""
    flags = None
    if new:
        flags, *_rest = _MQ_ATTR.unpack(t.mem_read(new, _MQ_ATTR.size))
        if flags & ~O_NONBLOCK:
            raise SyscallError(errno.EINVAL)
    f = _queue(t, mqd)
    q = f.queue
    if old:
        t.mem_write(old, _MQ_ATTR.pack(f.flags & O_NONBLOCK, q.maxmsg, q.msgsize,
                                       len(q.messages)))
    if flags is not None:
        f.flags = (f.flags & ~O_NONBLOCK) | flags
    return 0
