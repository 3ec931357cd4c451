"""AF_UNIX: stream, datagram and seqpacket sockets, emulated entirely in the Sentry.

Nothing here touches a host socket. Names live in the sandbox: a path binds an S_IFSOCK
node made through the VFS (tmpfs, overlay, goferfs), and the socket is found again by that
node's inode in the sandbox's `UnixNamespace` (a socket file the sandbox did not bind, such
as a host socket reached through a gofer, answers ECONNREFUSED); abstract names are a
dictionary of the same namespace, private to the sandbox.

A message is a `Packet` in the receiver's queue; its bytes count against the sender's
send buffer until read (Linux's sk_wmem_alloc), so a peer that never reads blocks the
writer (EAGAIN when non-blocking) and memory stays bounded. Files passed with SCM_RIGHTS
ride in packets holding a reference each; sockets in flight are counted, and a collector
(`UnixNamespace.collect`, Linux's unix_gc) frees cycles of sockets reachable only from
each other's queues.
"""

from __future__ import annotations

import errno
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from sentry.errors import SyscallError
from sentry.kernel import fasync
from vfs.abi import (
    O_NONBLOCK,
    O_RDWR,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLOUT,
    POLLPRI,
    POLLRDHUP,
    POLLRDNORM,
    POLLWRBAND,
    POLLWRNORM,
    S_IFMT,
    S_IFSOCK,
)
from vfs.creds import CAP_SYS_ADMIN, CAP_SYS_RESOURCE
from vfs.file import FileDescription, Memory
from vfs.perm import MAY_WRITE, check

from . import sockaddr
from .base import (
    AF_UNIX,
    AF_UNSPEC,
    MSG_CMSG_CLOEXEC,
    MSG_DONTWAIT,
    MSG_NOSIGNAL,
    MSG_OOB,
    MSG_PEEK,
    MSG_TRUNC,
    MSG_WAITALL,
    SIOCATMARK,
    SIOCINQ,
    SIOCOUTQ,
    SO_ACCEPTCONN,
    SO_ERROR,
    SO_PEEK_OFF,
    SO_PEERCRED,
    SOCK_DGRAM,
    SOCK_NONBLOCK,
    SOCK_RAW,
    SOCK_SEQPACKET,
    SOCK_STREAM,
    SOL_SOCKET,
    SOMAXCONN,
    Control,
    RecvResult,
    Socket,
    Ucred,
    timed_wait_interrupted,
)
from .options import SocketOptions, pack_int
from .sockfs import sockfs_of

if TYPE_CHECKING:
    from sentry.kernel.task import Task
    from vfs.dentry import Inode

#: net.unix.max_dgram_qlen: a datagram receiver's queue holds this many (plus one).
MAX_DGRAM_QLEN = 10
#: What one queued message costs beyond its bytes (an sk_buff's truesize overhead).
PACKET_OVERHEAD = 576
#: Largest piece a stream write queues at once (unix_stream_sendmsg's skb limit).
STREAM_CHUNK = 32768 + 3776
#: SCM_MAX_FD: most files one message may carry.
SCM_MAX_FD = 253
#: overflowuid/overflowgid: what a credential nobody attached reads as.
OVERFLOW_ID = 65534
SEND_SHUTDOWN, RCV_SHUTDOWN = 2, 1
#: The notifications that may end a blocked receive (or accept) and a blocked send (or
#: connect); 0 (a state change, e.g. room in a backlog) ends either. A reader is not woken
#: by the POLLOUT its peer's read of its own data sends (one wake-up fewer per message).
RECV_WAKE = POLLIN | POLLRDNORM | POLLPRI | POLLHUP | POLLERR | POLLRDHUP
SEND_WAKE = POLLOUT | POLLWRNORM | POLLWRBAND | POLLHUP | POLLERR
UNCONNECTED, LISTENING, CONNECTED = "unconnected", "listening", "connected"


class Packet:
    """One queued message (an sk_buff): bytes still unread, sender, files, credentials."""

    __slots__ = ("data", "sender", "rights", "creds", "cost", "uid")

    def __init__(self, data: bytes, sender: UnixSocket, rights: list[FileDescription],
                 creds: Ucred | None, uid: int = 0) -> None:
        self.data = data
        self.sender = sender
        self.rights = rights
        self.creds = creds
        self.uid = uid  # whose files in flight these are (Linux's fp->user)
        self.cost = len(data) + PACKET_OVERHEAD
        sender.wmem += self.cost

    def uncharge(self) -> None:
        """The receiver consumed it (or it was dropped): the sender's buffer frees."""
        if self.cost:
            s = self.sender
            s.wmem -= self.cost
            self.cost = 0
            s.waitq.notify(POLLOUT | POLLWRNORM | POLLWRBAND)
            if s.async_nospace and s._writable():
                s.wake_async(fasync.POLL_OUT)


class UnixNamespace:
    """One sandbox's AF_UNIX state: names, sockets, files in flight.

    Kept in the Kernel (`kernel.socket_state[AF_UNIX]`), so two sandboxes never see each
    other's abstract names or sockets.
    """

    def __init__(self) -> None:
        self.abstract: dict[bytes, UnixSocket] = {}
        self.by_inode: weakref.WeakKeyDictionary[Inode, UnixSocket] = \
            weakref.WeakKeyDictionary()
        self.sockets: dict[UnixSocket, None] = {}  # every open socket, in creation order
        self.inflight: dict[UnixSocket, int] = {}  # sockets carried in messages -> count
        self.user_inflight: dict[int, int] = {}  # uid -> files it has in flight
        self._autobind = 0
        self._collecting = False

    def autobind_name(self) -> bytes:
        """A free abstract name of five hex digits (unix_autobind)."""
        for _ in range(0x100000):
            self._autobind = (self._autobind + 1) & 0xFFFFF
            name = b"\0%05x" % self._autobind
            if name not in self.abstract:
                return name
        raise SyscallError(errno.ENOSPC)

    def check_inflight(self, task: Task) -> None:
        """too_many_unix_fds: ETOOMANYREFS once a user without CAP_SYS_RESOURCE or
        CAP_SYS_ADMIN has more files in flight than its RLIMIT_NOFILE."""
        cr = task.creds
        if self.user_inflight.get(cr.uid, 0) > task.fdtable.limit and \
                not cr.has_cap(CAP_SYS_RESOURCE) and not cr.has_cap(CAP_SYS_ADMIN):
            raise SyscallError(errno.ETOOMANYREFS)

    def carried(self, files: list[FileDescription], delta: int, uid: int) -> None:
        if files:
            n = self.user_inflight.get(uid, 0) + delta * len(files)
            if n > 0:
                self.user_inflight[uid] = n
            else:
                self.user_inflight.pop(uid, None)
        for f in files:
            if isinstance(f, UnixSocket):
                n = self.inflight.get(f, 0) + delta
                if n:
                    self.inflight[f] = n
                else:
                    self.inflight.pop(f, None)

    async def collect(self) -> None:
        """unix_gc: free the sockets whose every reference is a message in flight and that
        no socket with an outside reference can reach through queued messages."""
        if self._collecting or not self.inflight:
            return
        self._collecting = True
        try:
            candidates = {s for s, n in self.inflight.items() if s.refs == n}
            if not candidates:
                return
            alive: set[UnixSocket] = set()
            todo = [s for s in self.sockets if s not in candidates]
            while todo:
                s = todo.pop()
                for f in s.queued_files():
                    if isinstance(f, UnixSocket) and f in candidates and f not in alive:
                        alive.add(f)
                        todo.append(f)
            dead = candidates - alive
            if not dead:
                return
            drop: list[FileDescription] = []
            for s in dead:
                drop.extend(s.purge())
            for f in drop:
                await f.dec_ref()
        finally:
            self._collecting = False


def unix_namespace(kernel: Any) -> UnixNamespace:
    ns = kernel.socket_state.get(AF_UNIX)
    if ns is None:
        ns = kernel.socket_state[AF_UNIX] = UnixNamespace()
    return ns


def create(task: Task, type: int, protocol: int) -> UnixSocket:
    """The AF_UNIX factory: socket(AF_UNIX, type, protocol)."""
    if protocol and protocol != AF_UNIX:
        raise SyscallError(errno.EPROTONOSUPPORT)
    if type == SOCK_RAW:
        type = SOCK_DGRAM  # as Linux's unix_create
    if type not in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET):
        raise SyscallError(errno.ESOCKTNOSUPPORT)
    return UnixSocket(task, type, protocol)


class UnixSocket(Socket):
    """One AF_UNIX socket."""

    accepts_scm = True  # SCM_RIGHTS and SCM_CREDENTIALS are this family's (__scm_send)

    def __init__(self, task: Task, type: int, protocol: int) -> None:
        kernel = task.kernel
        super().__init__(kernel, AF_UNIX, type, protocol,
                         sockfs_of(kernel).new_inode(task.creds), O_RDWR)
        self.ns = unix_namespace(kernel)
        self.ns.sockets[self] = None
        self.opts = SocketOptions()
        self.state = UNCONNECTED
        self.peer: UnixSocket | None = None
        self.name: bytes | None = None  # the bound sockaddr (getsockname)
        self.bound_inode: Inode | None = None
        self.bound_path: bytes | None = None  # for /proc/net/unix
        self.queue: deque[Packet] = deque()
        #: The queued one-byte message sent with MSG_OOB (Linux's oob_skb): the mark.
        self.oob: Packet | None = None
        self.accept_q: deque[UnixSocket] = deque()
        self.backlog = 0
        self.wmem = 0
        #: SO_PEEK_OFF: where the next MSG_PEEK starts (-1: off, every peek at the start);
        #: peeks move it forward, reads back (sk_peek_offset_fwd/bwd).
        self.peek_off = -1
        self.shut = 0  # RCV_SHUTDOWN | SEND_SHUTDOWN
        self.err = 0
        self.dead = False
        self.embryo = False
        self.peercred: Ucred | None = None
        self.passed_creds = Ucred(task.tgid, task.creds.uid, task.creds.gid)

    # -- helpers ---------------------------------------------------------------------------

    @property
    def connection(self) -> bool:
        return self.type in (SOCK_STREAM, SOCK_SEQPACKET)

    def _creds_of(self, task: Task) -> Ucred:
        return Ucred(task.tgid, task.creds.uid, task.creds.gid)

    def queued_files(self) -> list[FileDescription]:
        """Files carried by messages queued here (and at connections not yet accepted)."""
        out: list[FileDescription] = []
        for p in self.queue:
            out.extend(p.rights)
        for emb in self.accept_q:
            out.append(emb)
            out.extend(emb.queued_files())
        return out

    def purge(self) -> list[FileDescription]:
        """Drop every queued message (and pending connection); return the files whose
        references the caller must drop."""
        drop: list[FileDescription] = []
        self.oob = None
        while self.queue:
            p = self.queue.popleft()
            p.uncharge()
            self.ns.carried(p.rights, -1, p.uid)
            drop.extend(p.rights)
            p.rights = []
        while self.accept_q:
            emb = self.accept_q.popleft()
            emb.embryo = True  # never accepted: its client sees ECONNRESET
            drop.append(emb)
        return drop

    async def _wait(self, task: Task, socks: tuple[UnixSocket, ...], send: bool) -> None:
        """Sleep until something that may unblock a send (or a receive) happens on
        `socks` (`SEND_WAKE`, `RECV_WAKE`), or EAGAIN when the socket's
        SO_SNDTIMEO/SO_RCVTIMEO runs out."""
        ev = trio.Event()
        want = SEND_WAKE if send else RECV_WAKE

        def wake(mask: int) -> None:
            if not mask or mask & want:
                ev.set()

        for s in socks:
            s.waitq.subscribe(wake)
        try:
            timeout = self.opts.timeout(send)
            if timeout is None:
                await ev.wait()
            else:
                try:
                    with trio.move_on_after(timeout):
                        await ev.wait()
                except trio.Cancelled:
                    timed_wait_interrupted(task)
                    raise
                if not ev.is_set():
                    raise SyscallError(errno.EAGAIN)
        finally:
            for s in socks:
                s.waitq.unsubscribe(wake)

    def _nonblock(self, flags: int) -> bool:
        return bool(flags & MSG_DONTWAIT or self.flags & O_NONBLOCK)

    async def _resolve(self, task: Task, addr: bytes) -> UnixSocket:
        """unix_find_other: the socket bound at `addr` (ECONNREFUSED if none, EPROTOTYPE
        for another type)."""
        name, abstract = sockaddr.unix_decode(addr)
        if abstract:
            other = self.ns.abstract.get(name)
            if other is None:
                raise SyscallError(errno.ECONNREFUSED)
        else:
            if not name:
                raise SyscallError(errno.EINVAL)
            vfs, fs = task.kernel.vfs, task.fs
            if vfs is None or fs is None:
                raise SyscallError(errno.ECONNREFUSED)
            vd = await vfs.resolve(fs, task.creds, None, name)
            ino = vd.dentry.inode
            if ino.mode & S_IFMT != S_IFSOCK:
                raise SyscallError(errno.ECONNREFUSED)
            check(task.creds, ino, MAY_WRITE)
            found = self.ns.by_inode.get(ino)
            if found is None:
                raise SyscallError(errno.ECONNREFUSED)
            other = found
        if other.dead:
            raise SyscallError(errno.ECONNREFUSED)
        if other.type != self.type:
            raise SyscallError(errno.EPROTOTYPE)
        return other

    # -- names -----------------------------------------------------------------------------

    def _set_name(self, name: bytes, abstract: bool) -> None:
        self.name = sockaddr.unix_encode(name, abstract)

    def _autobind(self) -> None:
        name = self.ns.autobind_name()
        self.ns.abstract[name] = self
        self._set_name(name, True)

    async def bind(self, task: Task, addr: bytes) -> None:
        sockaddr.unix_check(addr)
        if len(addr) == sockaddr.SUN_PATH_OFFSET:
            if self.name is not None:
                raise SyscallError(errno.EINVAL)
            self._autobind()
            return
        name, abstract = sockaddr.unix_decode(addr)
        if abstract:
            if self.name is not None:
                raise SyscallError(errno.EINVAL)
            if name in self.ns.abstract:
                raise SyscallError(errno.EADDRINUSE)
            self.ns.abstract[name] = self
            self._set_name(name, True)
            return
        vfs, fs = task.kernel.vfs, task.fs
        if vfs is None or fs is None:
            raise SyscallError(errno.EOPNOTSUPP)
        try:
            await vfs.mknodat(fs, task.creds, None, name, S_IFSOCK | 0o777, bind=True)
        except OSError as e:
            if e.errno == errno.EEXIST:
                raise SyscallError(errno.EADDRINUSE) from None
            raise
        if self.name is not None:  # as unix_bind_bsd: the node made goes again
            await vfs.unlinkat(fs, task.creds, None, name)
            raise SyscallError(errno.EINVAL)
        vd = await vfs.resolve(fs, task.creds, None, name, follow=False)
        self.bound_inode = vd.dentry.inode
        self.ns.by_inode[self.bound_inode] = self
        self.bound_path = name
        self._set_name(name, False)

    def getsockname(self) -> bytes:
        return self.name if self.name is not None else sockaddr.UNNAMED_UNIX

    def getpeername(self) -> bytes:
        peer = self.peer
        if peer is None or (self.connection and self.state != CONNECTED):
            raise SyscallError(errno.ENOTCONN)
        return peer.getsockname()

    # -- connections -------------------------------------------------------------------------

    async def pair(self, task: Task, other: Socket) -> None:
        assert isinstance(other, UnixSocket)
        self.peer, other.peer = other, self
        if self.connection:
            self.state = other.state = CONNECTED
            self.peercred = other.peercred = self._creds_of(task)

    async def listen(self, task: Task, backlog: int) -> None:
        if not self.connection:
            raise SyscallError(errno.EOPNOTSUPP)
        if self.name is None or self.state == CONNECTED:
            raise SyscallError(errno.EINVAL)
        if backlog & 0xFFFFFFFF > SOMAXCONN:
            backlog = SOMAXCONN
        was = self.backlog
        self.backlog = backlog
        if self.state != LISTENING:
            self.state = LISTENING
            self.peercred = self._creds_of(task)
        elif backlog > was:
            self.waitq.notify(0)

    async def connect(self, task: Task, addr: bytes) -> None:
        if not self.connection:
            await self._dgram_connect(task, addr)
            return
        sockaddr.unix_check(addr)
        if self.opts.passcred and self.name is None:
            self._autobind()
        while True:  # unix_stream_connect's order: the listener first, then our state
            other = await self._resolve(task, addr)
            if other.state != LISTENING or other.shut & RCV_SHUTDOWN:
                raise SyscallError(errno.ECONNREFUSED)
            if len(other.accept_q) <= other.backlog:
                break
            if self.flags & O_NONBLOCK:
                raise SyscallError(errno.EAGAIN)
            await self._wait(task, (other,), True)
        if self.state == CONNECTED:
            raise SyscallError(errno.EISCONN)
        if self.state == LISTENING:
            raise SyscallError(errno.EINVAL)
        emb = UnixSocket(task, self.type, self.protocol)
        emb.name = other.name
        emb.opts.passcred = other.opts.passcred
        emb.opts.sndbuf, emb.opts.rcvbuf = other.opts.sndbuf, other.opts.rcvbuf
        emb.peer, self.peer = self, emb
        emb.state = self.state = CONNECTED
        emb.peercred = self._creds_of(task)
        self.peercred = other.peercred
        other.accept_q.append(emb)
        other.waitq.notify(POLLIN | POLLRDNORM)
        other.wake_async(fasync.POLL_IN)
        self.waitq.notify(POLLOUT | POLLWRNORM)

    async def _dgram_connect(self, task: Task, addr: bytes) -> None:
        if len(addr) >= 2 and sockaddr.family_of(addr) == AF_UNSPEC:
            old, self.peer = self.peer, None
            if old is not None:
                old.waitq.notify(POLLOUT)
            return
        sockaddr.unix_check(addr)
        if self.opts.passcred and self.name is None:
            self._autobind()
        other = await self._resolve(task, addr)
        self.peer = other
        self.waitq.notify(POLLOUT | POLLWRNORM)

    async def accept(self, task: Task, flags: int) -> tuple[Socket, bytes]:
        if not self.connection:
            raise SyscallError(errno.EOPNOTSUPP)
        if self.state != LISTENING:
            raise SyscallError(errno.EINVAL)
        while not self.accept_q:
            if self.flags & O_NONBLOCK:
                raise SyscallError(errno.EAGAIN)
            await self._wait(task, (self,), False)
            if self.state != LISTENING or self.dead:
                raise SyscallError(errno.EINVAL)
        emb = self.accept_q.popleft()
        self.waitq.notify(0)  # room in the backlog: a blocked connect may go on
        if flags & SOCK_NONBLOCK:
            emb.flags |= O_NONBLOCK
        peer = emb.peer
        return emb, peer.getsockname() if peer is not None else sockaddr.UNNAMED_UNIX

    async def shutdown(self, task: Task, how: int) -> None:
        if how not in (0, 1, 2):
            raise SyscallError(errno.EINVAL)
        mode = (how + 1) & (RCV_SHUTDOWN | SEND_SHUTDOWN)
        self.shut |= mode
        self.waitq.notify(POLLIN | POLLOUT | POLLHUP | POLLRDHUP)
        peer = self.peer
        if peer is not None and self.connection:
            pmode = (RCV_SHUTDOWN if mode & SEND_SHUTDOWN else 0) | \
                (SEND_SHUTDOWN if mode & RCV_SHUTDOWN else 0)
            peer.shut |= pmode
            peer.waitq.notify(POLLIN | POLLOUT | POLLHUP | POLLRDHUP)
            if mode == RCV_SHUTDOWN | SEND_SHUTDOWN:
                peer.wake_async(fasync.POLL_HUP)
            elif pmode & RCV_SHUTDOWN:
                peer.wake_async(fasync.POLL_IN)

    # -- data --------------------------------------------------------------------------------

    def _make_creds(self, task: Task, control: Control, other: UnixSocket) -> Ucred | None:
        """unix_scm_to_skb / maybe_add_creds: the credentials a message carries."""
        if control.creds is not None:
            return control.creds
        if self.opts.passcred or other.opts.passcred:
            return self._creds_of(task)
        return None

    async def sendmsg(self, task: Task, data: bytes, addr: bytes | None, control: Control,
                      flags: int) -> int:
        if flags & MSG_OOB and (self.type != SOCK_STREAM or not data):
            raise SyscallError(errno.EOPNOTSUPP)
        for level, _type, _ in control.other:
            if level == SOL_SOCKET:
                raise SyscallError(errno.EINVAL)
        if len(control.rights) > SCM_MAX_FD:
            raise SyscallError(errno.EINVAL)
        if self.type == SOCK_STREAM:
            if addr:
                raise SyscallError(errno.EISCONN if self.state == CONNECTED
                                   else errno.EOPNOTSUPP)
            return await self._stream_send(task, data, control, flags)
        return await self._dgram_send(task, data, addr, control, flags)

    async def _stream_send(self, task: Task, data: bytes, control: Control, flags: int) -> int:
        if self.state != CONNECTED:
            raise SyscallError(errno.ENOTCONN if self.state == UNCONNECTED else errno.EPIPE)
        nonblock = self._nonblock(flags)
        sent = 0
        oob = bool(flags & MSG_OOB)
        total = len(data) - oob  # (MSG_OOB: the last byte goes on its own, queue_oob)
        while True:
            other = self.peer
            if self.shut & SEND_SHUTDOWN or other is None or other.dead \
                    or other.shut & RCV_SHUTDOWN:
                if sent:
                    return sent
                raise SyscallError(errno.EPIPE)
            if self.wmem >= self.opts.sndbuf:
                self.async_nospace = True
                if nonblock:
                    if sent:
                        return sent
                    raise SyscallError(errno.EAGAIN)
                try:
                    await self._wait(task, (self, other), True)
                except (SyscallError, trio.Cancelled):
                    # a timeout or a signal after part of the data went: Linux returns
                    # the part (never EINTR, so SA_RESTART cannot send it twice)
                    if sent:
                        return sent
                    raise
                continue
            if oob and sent == total:
                return sent + self._queue_oob(task, data[-1:], control, other)
            size = min(total - sent, max((self.opts.sndbuf >> 1) - 64, 1), STREAM_CHUNK)
            other.queue.append(self._stream_packet(task, data[sent : sent + size], control,
                                                   other))
            other.waitq.notify(POLLIN | POLLRDNORM)
            other.wake_async(fasync.POLL_IN)
            sent += size
            if sent >= total and not oob:
                return sent

    def _stream_packet(self, task: Task, data: bytes, control: Control,
                       other: UnixSocket) -> Packet:
        """One stream message for `other`: the files in `control` go with the first one
        (counted in flight; `control.rights` is emptied)."""
        rights = control.rights
        if rights:
            self.ns.check_inflight(task)
        pkt = Packet(data, self, rights, self._make_creds(task, control, other),
                     task.creds.uid)
        if rights:
            self.ns.carried(rights, 1, pkt.uid)
            control.rights = []
        return pkt

    def _queue_oob(self, task: Task, byte: bytes, control: Control, other: UnixSocket) -> int:
        """queue_oob: the out-of-band byte as a message of its own, which becomes the
        receiver's mark (a previous one turns into ordinary data); SIGURG to its owner."""
        pkt = self._stream_packet(task, byte, control, other)
        other.queue.append(pkt)
        other.oob = pkt
        fasync.sigurg(other)
        other.waitq.notify(POLLIN | POLLRDNORM | POLLPRI)
        other.wake_async(fasync.POLL_IN)
        return 1

    async def _dgram_send(self, task: Task, data: bytes, addr: bytes | None, control: Control,
                          flags: int) -> int:
        if self.type == SOCK_SEQPACKET:
            if self.state != CONNECTED:
                raise SyscallError(errno.ENOTCONN if self.state == UNCONNECTED
                                   else errno.EPIPE)
            addr = None
        if addr is not None:
            sockaddr.unix_check(addr)
        elif self.peer is None:
            raise SyscallError(errno.ENOTCONN)
        if len(data) > self.opts.sndbuf - 32:
            raise SyscallError(errno.EMSGSIZE)
        if self.opts.passcred and self.name is None and self.type == SOCK_DGRAM:
            self._autobind()
        nonblock = self._nonblock(flags)
        while True:
            if addr is not None:
                other = await self._resolve(task, addr)
            else:
                peer = self.peer
                if peer is None:
                    raise SyscallError(errno.ENOTCONN)
                other = peer
            if self.type == SOCK_SEQPACKET:
                if self.shut & SEND_SHUTDOWN or other.dead or other.shut & RCV_SHUTDOWN:
                    raise SyscallError(errno.EPIPE)
            else:
                if other.dead:
                    if addr is None:
                        self.peer = None
                    raise SyscallError(errno.ECONNREFUSED)
                if other.peer is not None and other.peer is not self:
                    raise SyscallError(errno.EPERM)
                if self.shut & SEND_SHUTDOWN or other.shut & RCV_SHUTDOWN:
                    raise SyscallError(errno.EPIPE)
            full = (other is not self and other.peer is not self
                    and len(other.queue) > MAX_DGRAM_QLEN)
            if not full and self.wmem < self.opts.sndbuf:
                break
            if self.wmem >= self.opts.sndbuf:
                self.async_nospace = True
            if nonblock:
                raise SyscallError(errno.EAGAIN)
            await self._wait(task, (self, other), True)
        if control.rights:
            self.ns.check_inflight(task)
        pkt = Packet(data, self, control.rights, self._make_creds(task, control, other),
                     task.creds.uid)
        if control.rights:
            self.ns.carried(control.rights, 1, pkt.uid)
            control.rights = []
        other.queue.append(pkt)
        other.waitq.notify(POLLIN | POLLRDNORM)
        other.wake_async(fasync.POLL_IN)
        return len(data)

    async def recvmsg(self, task: Task, size: int, flags: int, control_len: int) -> RecvResult:
        if flags & MSG_OOB and self.type != SOCK_STREAM:
            raise SyscallError(errno.EOPNOTSUPP)
        if self.type == SOCK_STREAM:
            return await self._stream_recv(task, size, flags)
        return await self._dgram_recv(task, size, flags)

    def _take_error(self) -> int:
        err, self.err = self.err, 0
        return err

    def _deliver_creds(self, res: RecvResult, creds: Ucred | None) -> None:
        if self.opts.passcred:
            res.control.creds = creds if creds is not None else \
                Ucred(0, OVERFLOW_ID, OVERFLOW_ID)

    async def _stream_recv(self, task: Task, size: int, flags: int) -> RecvResult:
        """unix_stream_read_generic: bytes across messages, stopping after one that carried
        files and, with SO_PASSCRED, before one from another writer."""
        if self.state != CONNECTED:
            raise SyscallError(errno.EINVAL)
        peek = bool(flags & MSG_PEEK)
        if flags & MSG_OOB:
            return self._recv_oob(peek)
        nonblock = self._nonblock(flags)
        target = min(size, self.opts.rcvlowat) if not flags & MSG_WAITALL or peek else size
        target = max(target, 1)
        out = bytearray()
        res = RecvResult(b"")
        first_creds: Ucred | None = None
        have_creds = stop = False
        while True:
            i = 0
            skip = max(self.peek_off, 0) if peek else 0
            while skip and i < len(self.queue) and skip >= len(self.queue[i].data):
                skip -= len(self.queue[i].data)  # peeked already (SO_PEEK_OFF)
                i += 1
            while len(out) < size and i < len(self.queue) and not stop:
                pkt = self.queue[i]
                if not pkt.data or pkt is self.oob:  # manage_oob: the mark
                    if out and (pkt is self.oob or self.oob is None):
                        stop = True  # a read stops at the mark
                        break
                    if peek:
                        if not pkt.data or not self.opts.oobinline:
                            i += 1
                            continue
                    else:
                        if pkt is self.oob:
                            self.oob = None
                        if not pkt.data or not self.opts.oobinline:
                            await self._drop_head()  # (an out-of-band byte not read as such)
                            continue
                if have_creds and self.opts.passcred and pkt.creds != first_creds:
                    stop = True
                    break
                if not have_creds:
                    first_creds, have_creds = pkt.creds, True
                    res.addr = pkt.sender.name
                k = min(size - len(out), len(pkt.data) - skip)
                out += pkt.data[skip:skip + k]
                skip = 0
                if self.peek_off >= 0:
                    self.peek_off = self.peek_off + k if peek else max(self.peek_off - k, 0)
                if pkt.rights:
                    stop = True
                    if peek:
                        res.control.rights = [f.inc_ref() for f in pkt.rights]
                    else:
                        res.control.rights = pkt.rights
                        self.ns.carried(pkt.rights, -1, pkt.uid)
                        pkt.rights = []
                if peek:
                    i += 1
                elif k == len(pkt.data):
                    self.queue.popleft()
                    pkt.uncharge()
                else:
                    pkt.data = pkt.data[k:]
                    pkt.cost -= k
                    pkt.sender.wmem -= k
                    pkt.sender.waitq.notify(POLLOUT | POLLWRNORM | POLLWRBAND)
                    if pkt.sender.async_nospace and pkt.sender._writable():
                        pkt.sender.wake_async(fasync.POLL_OUT)
            if len(out) >= target or stop or len(out) >= size or (peek and out):
                break
            err = 0 if out else self._take_error()
            if err:
                raise SyscallError(err)
            if self.shut & RCV_SHUTDOWN:
                break
            if nonblock:
                if out:
                    break
                raise SyscallError(errno.EAGAIN)
            try:
                await self._wait(task, (self,), False)
            except (SyscallError, trio.Cancelled):
                if out:  # MSG_WAITALL cut short: what was read is returned, not lost
                    break
                raise
        res.data = bytes(out)
        if have_creds:
            self._deliver_creds(res, first_creds)
        return res

    def _recv_oob(self, peek: bool) -> RecvResult:
        """unix_stream_recv_urg: the out-of-band byte (EINVAL with none, or with
        SO_OOBINLINE); its message stays queued, empty, where the mark was."""
        pkt = self.oob
        if pkt is None or self.opts.oobinline:
            raise SyscallError(errno.EINVAL)
        res = RecvResult(pkt.data, flags=MSG_OOB)
        if not peek:
            self.oob = None
            pkt.data = b""
        return res

    async def _drop_head(self) -> None:
        """Drop the first queued message (with the files it carries)."""
        pkt = self.queue.popleft()
        pkt.uncharge()
        if pkt.rights:
            self.ns.carried(pkt.rights, -1, pkt.uid)
            rights, pkt.rights = pkt.rights, []
            for f in rights:
                await f.dec_ref()

    async def _dgram_recv(self, task: Task, size: int, flags: int) -> RecvResult:
        if self.type == SOCK_SEQPACKET and self.state != CONNECTED:
            raise SyscallError(errno.EINVAL if self.state == LISTENING else errno.ENOTCONN)
        peek = bool(flags & MSG_PEEK)
        nonblock = self._nonblock(flags)
        while not self.queue:
            err = self._take_error()
            if err:
                raise SyscallError(err)
            if self.shut & RCV_SHUTDOWN:
                return RecvResult(b"")
            if nonblock:
                raise SyscallError(errno.EAGAIN)
            await self._wait(task, (self,), False)
        pkt, skip = self._peeked(peek)
        while pkt is None:  # everything queued was peeked already (SO_PEEK_OFF)
            if nonblock:
                raise SyscallError(errno.EAGAIN)
            await self._wait(task, (self,), False)
            pkt, skip = self._peeked(peek)
        rest = len(pkt.data) - skip
        res = RecvResult(pkt.data[skip:skip + size])
        if pkt.sender is not None:
            res.addr = pkt.sender.name
        if rest > size:
            res.flags |= MSG_TRUNC
        if flags & MSG_TRUNC and rest != len(res.data):
            res.length = rest
        if self.peek_off >= 0:
            self.peek_off = self.peek_off + min(size, rest) if peek else \
                max(self.peek_off - len(pkt.data), 0)
        if peek:
            res.control.rights = [f.inc_ref() for f in pkt.rights]
        else:
            self.queue.popleft()
            pkt.uncharge()
            res.control.rights = pkt.rights
            self.ns.carried(pkt.rights, -1, pkt.uid)
            pkt.rights = []
            self.waitq.notify(POLLOUT | POLLWRNORM)
        self._deliver_creds(res, pkt.creds)
        return res

    def _peeked(self, peek: bool) -> tuple[Packet | None, int]:
        """The message a datagram receive reads and the offset in it: with MSG_PEEK and
        SO_PEEK_OFF, past the messages the offset covers (__skb_try_recv_from_queue)."""
        if not self.queue:
            return None, 0
        if not peek or self.peek_off <= 0:
            return self.queue[0], 0
        off = self.peek_off
        for pkt in self.queue:
            if off >= len(pkt.data) and (pkt.data or off):
                off -= len(pkt.data)
                continue
            return pkt, off
        return None, 0

    # -- options and ioctls ------------------------------------------------------------------

    async def getsockopt(self, task: Task, level: int, name: int, optlen: int) -> bytes:
        if level != SOL_SOCKET:
            raise SyscallError(errno.EOPNOTSUPP)
        v = self.opts.get(name, self.family, self.type, self.protocol)
        if v is not None:
            return v
        if name == SO_ACCEPTCONN:
            return pack_int(int(self.state == LISTENING))
        if name == SO_PEEK_OFF:
            return pack_int(self.peek_off)
        if name == SO_ERROR:
            return pack_int(self._take_error())
        if name == SO_PEERCRED:
            c = self.peercred
            if c is None:  # no peer: Linux's cred_to_ucred of no credentials
                c = Ucred(0, 0xFFFFFFFF, 0xFFFFFFFF)
            pid = task.pidns.vpid(c.pid)  # as the caller's pid namespace numbers it
            return pid.to_bytes(4, "little", signed=True) + c.uid.to_bytes(4, "little") \
                + c.gid.to_bytes(4, "little")
        raise SyscallError(errno.ENOPROTOOPT)

    async def setsockopt(self, task: Task, level: int, name: int, value: bytes) -> None:
        if level != SOL_SOCKET:
            raise SyscallError(errno.EOPNOTSUPP)
        if name == SO_PEEK_OFF:
            if len(value) < 4:
                raise SyscallError(errno.EINVAL)
            self.peek_off = int.from_bytes(value[:4], "little", signed=True)
            return
        if not self.opts.set(name, value):
            raise SyscallError(errno.ENOPROTOOPT)
        self.waitq.notify(POLLOUT | POLLWRNORM)

    async def do_ioctl(self, cmd: int, arg: int, mem: Memory | None) -> int:
        if cmd == SIOCATMARK:
            if self.type != SOCK_STREAM:
                raise SyscallError(errno.EOPNOTSUPP)
            q = self.queue
            at = bool(q) and (q[0] is self.oob or (not q[0].data and (
                self.oob is None or (len(q) > 1 and q[1] is self.oob))))
            if mem is None:
                raise SyscallError(errno.EFAULT)
            mem.mem_write(arg, pack_int(int(at)))
            return 0
        if cmd in (SIOCINQ, SIOCOUTQ):
            if self.state == LISTENING:
                raise SyscallError(errno.EINVAL)
            if cmd == SIOCOUTQ:
                n = self.wmem
            elif self.type == SOCK_STREAM or self.type == SOCK_SEQPACKET:
                n = sum(len(p.data) for p in self.queue)
            else:
                n = len(self.queue[0].data) if self.queue else 0
            if mem is None:
                raise SyscallError(errno.EFAULT)
            mem.mem_write(arg, pack_int(min(n, 0x7FFFFFFF)))
            return 0
        return await super().do_ioctl(cmd, arg, mem)

    # -- readiness -------------------------------------------------------------------------

    def _writable(self) -> bool:
        return self.state != LISTENING and self.wmem << 2 <= self.opts.sndbuf

    def readiness(self, mask: int) -> int:
        got = 0
        if self.err:
            got |= POLLERR
        if self.shut & RCV_SHUTDOWN:
            got |= POLLRDHUP | POLLIN | POLLRDNORM
        if self.shut == RCV_SHUTDOWN | SEND_SHUTDOWN:
            got |= POLLHUP
        if self.queue or self.accept_q:
            got |= POLLIN | POLLRDNORM
        if self.oob is not None:
            got |= POLLPRI
        if self.type == SOCK_STREAM:
            if self.state == UNCONNECTED:
                got |= POLLHUP
            if self._writable():
                got |= POLLOUT | POLLWRNORM | POLLWRBAND
        else:
            if self.type == SOCK_SEQPACKET and self.state == UNCONNECTED:
                got |= POLLHUP
            writable = self._writable()
            other = self.peer
            if writable and other is not None and other.peer is not self \
                    and len(other.queue) > MAX_DGRAM_QLEN and self.type == SOCK_DGRAM:
                writable = False
            if writable:
                got |= POLLOUT | POLLWRNORM | POLLWRBAND
        return got & (mask | POLLHUP | POLLERR)

    # -- release -----------------------------------------------------------------------------

    async def dec_ref(self) -> None:
        await super().dec_ref()
        if self.refs > 0 and self.ns.inflight:
            await self.ns.collect()

    async def release(self) -> None:
        """unix_release_sock: unbind, tell the peer, drop what is queued here."""
        self.dead = True
        ns = self.ns
        ns.sockets.pop(self, None)
        ns.inflight.pop(self, None)
        if self.name is not None and self.bound_inode is None:
            key = self.name[sockaddr.SUN_PATH_OFFSET:]
            if ns.abstract.get(key) is self:
                del ns.abstract[key]
        if self.bound_inode is not None and ns.by_inode.get(self.bound_inode) is self:
            del ns.by_inode[self.bound_inode]
        self.shut = RCV_SHUTDOWN | SEND_SHUTDOWN
        peer = self.peer
        if peer is not None and self.connection:
            peer.shut = RCV_SHUTDOWN | SEND_SHUTDOWN
            if self.queue or self.accept_q or self.embryo:
                peer.err = errno.ECONNRESET
            peer.waitq.notify(POLLIN | POLLOUT | POLLHUP | POLLERR | POLLRDHUP)
            peer.wake_async(fasync.POLL_HUP)
        elif peer is not None:
            peer.waitq.notify(POLLOUT | POLLWRNORM)
        self.peer = None
        drop = self.purge()
        self.waitq.notify(POLLIN | POLLOUT | POLLHUP)
        for f in drop:
            await f.dec_ref()
        if ns.inflight:
            await ns.collect()


__all__ = ["UnixSocket", "UnixNamespace", "create", "unix_namespace", "MSG_CMSG_CLOEXEC",
           "MSG_NOSIGNAL"]


def proc_net_unix(kernel: Any) -> bytes:
    """/proc/net/unix of the sandbox's own sockets, as unix_seq_show prints it (kernel
    addresses shown as zeros, as kptr_restrict does)."""
    out = [b"Num       RefCount Protocol Flags    Type St Inode Path\n"]
    ns = kernel.socket_state.get(AF_UNIX)
    for s in list(ns.sockets) if ns is not None else []:
        listening = s.state == LISTENING
        if s.state == CONNECTED:
            st = 3  # SS_CONNECTED (an unaccepted one is SS_CONNECTING below)
        else:
            st = 1  # SS_UNCONNECTED
        if any(s in o.accept_q for o in ns.sockets if o.state == LISTENING):
            st = 2
        line = b"0000000000000000: %08X %08X %08X %04X %02X %5d" % (
            s.refs + 1, 0, (1 << 16) if listening else 0, s.type, st,
            s.vd.dentry.inode.ino if s.vd is not None else 0)
        if s.name is not None:
            path = s.name[sockaddr.SUN_PATH_OFFSET:]
            if path[:1] == b"\0":
                path = b"@" + path[1:].replace(b"\0", b"@")
            else:
                path = path.rstrip(b"\0")
            line += b" " + path
        out.append(line + b"\n")
    return b"".join(out)
