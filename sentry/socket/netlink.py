"""AF_NETLINK, read-only: NETLINK_ROUTE's queries of the sandbox's network, and
NETLINK_SOCK_DIAG's socket lists of the sandbox's own TCP and UDP sockets.

A `NetlinkSocket` holds a host NETLINK_ROUTE socket made in the sandbox's network
namespace, so a dump (RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE, RTM_GETNEIGH ...) answers
with that namespace's interfaces, addresses and routes: glibc's getifaddrs and
getaddrinfo's AI_ADDRCONFIG, `ip addr`, `ip route` and if_nameindex see the sandbox's
network. Every request that would change something (RTM_NEW*, RTM_DEL*, RTM_SET*) is kept
from the host and answered here with an NLMSG_ERROR of EPERM, as Linux answers a process
without CAP_NET_ADMIN. bind's nl_pid is left to the host (a sandbox pid means nothing
there); getsockname shows the port id the host gave, which is what replies carry.

NETLINK_SOCK_DIAG (what `ss` asks first) is served the same way, and its answers are
filtered: an inet_diag_msg is kept only for a socket this sandbox holds (by host inode, the
Network's books), with the inode and uid the sandbox shows (as /proc/net/tcp does; see
sentry.procfs.net); SOCK_DESTROY is EPERM. Other netlink protocols (audit, uevents,
generic ...) are EPROTONOSUPPORT.

The Sentry itself sends to a netlink socket as the kernel does (`deliver`): mq_notify's
SIGEV_THREAD cookie, which glibc's helper thread reads with a blocking recv.
"""

from __future__ import annotations

import collections
import errno
import struct
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import trio

from sentry.errors import SyscallError
from vfs.abi import POLLIN, POLLRDNORM

from . import hostsock
from .base import AF_NETLINK, SOCK_DGRAM, SOL_SOCKET, Control, RecvResult, Socket
from .hostsocket import HostSocket

if TYPE_CHECKING:
    from sentry.kernel.task import Task

SOCK_RAW = 3
NETLINK_ROUTE, NETLINK_SOCK_DIAG = 0, 4
SOCK_DIAG_BY_FAMILY = 20
_MSG_DONTWAIT = 0x40
#: Offsets in an inet_diag_msg (after the nlmsghdr) of idiag_uid and idiag_inode.
_DIAG_UID, _DIAG_INODE = 64, 68
SOL_NETLINK = 270
NLMSG_ERROR = 2
#: struct nlmsghdr: len, type, flags, seq, pid.
NLMSGHDR = struct.Struct("<IHHII")
RTM_BASE = 16
#: sizeof(struct sockaddr_nl): family, pad, pid, groups.
SOCKADDR_NL = 12

_OPTIONS: dict[int, frozenset[int]] = {
    # SNDBUF RCVBUF TYPE ERROR PROTOCOL DOMAIN PASSCRED TIMESTAMP
    SOL_SOCKET: frozenset({3, 4, 7, 8, 16, 29, 38, 39}),
    # ADD_MEMBERSHIP DROP_MEMBERSHIP PKTINFO NO_ENOBUFS LISTEN_ALL_NSID? no: CAP_ACK
    # EXT_ACK GET_STRICT_CHK
    SOL_NETLINK: frozenset({1, 2, 3, 5, 10, 11, 12}),
}


def _changes(protocol: int, mtype: int) -> bool:
    """Whether a request would change something: rtnetlink's NEW/DEL/SET (type % 4 != 2
    from RTM_BASE up; GETs read), sock_diag's anything but SOCK_DIAG_BY_FAMILY."""
    if protocol == NETLINK_SOCK_DIAG:
        return mtype >= RTM_BASE and mtype != SOCK_DIAG_BY_FAMILY
    return mtype >= RTM_BASE and (mtype - RTM_BASE) % 4 != 2


class NetlinkSocket(HostSocket):
    """A NETLINK_ROUTE socket: queries reach the host namespace's rtnetlink; changes get
    EPERM from here."""

    options = _OPTIONS
    # Every message passes through `sendmsg`/`recvmsg` here (refused changes, the
    # sandbox's own sockets): not the host socket's straight copy to program memory.
    sendmsg_from = Socket.sendmsg_from
    recv_into = Socket.recv_into

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        #: NLMSG_ERROR answers made here, read before the host's replies.
        self._local: collections.deque[bytes] = collections.deque()
        #: Readers waiting on the host fd, woken by `deliver`.
        self._readers: set[trio.CancelScope] = set()

    def deliver(self, msg: bytes) -> None:
        """netlink_sendskb: a datagram from the kernel (port id 0), read before the host's
        replies; a reader blocked on the host socket wakes."""
        self._local.append(msg)
        for scope in self._readers:
            scope.cancel()

    def _ready_wait(self, writable: bool) -> Awaitable[None]:
        return self._host_or_local() if not writable else super()._ready_wait(writable)

    async def _host_or_local(self) -> None:
        """The host fd's readability, cut short by a datagram `deliver`ed meanwhile."""
        if self._local:
            return
        with trio.CancelScope() as scope:
            self._readers.add(scope)
            try:
                await hostsock.wait_fd(self.fd, False)
            finally:
                self._readers.discard(scope)

    @classmethod
    def create(cls, task: Task, family: int, type: int, protocol: int) -> NetlinkSocket:
        base = type & 0xF
        if base not in (SOCK_RAW, SOCK_DGRAM):
            raise SyscallError(errno.ESOCKTNOSUPPORT)
        if protocol not in (NETLINK_ROUTE, NETLINK_SOCK_DIAG):
            task.kernel.emit("unsupported-socket", family=AF_NETLINK,
                             name=f"AF_NETLINK protocol {protocol}", errno="EPROTONOSUPPORT")
            raise SyscallError(errno.EPROTONOSUPPORT)
        return cls._open(task, family, base, protocol, type)

    async def bind(self, task: Task, addr: bytes) -> None:
        if len(addr) < SOCKADDR_NL:
            raise SyscallError(errno.EINVAL)
        if int.from_bytes(addr[:2], "little") != AF_NETLINK:
            raise SyscallError(errno.EINVAL)
        hostsock.bind(self.fd, addr[:4] + bytes(4) + addr[8:SOCKADDR_NL])

    async def connect(self, task: Task, addr: bytes) -> None:
        if len(addr) >= 2 and int.from_bytes(addr[:2], "little") == 0:
            return  # AF_UNSPEC: netlink's disconnect
        if len(addr) < SOCKADDR_NL or int.from_bytes(addr[:2], "little") != AF_NETLINK:
            raise SyscallError(errno.EINVAL)
        hostsock.connect(self.fd, addr[:4] + bytes(4) + addr[8:SOCKADDR_NL])

    async def listen(self, task: Task, backlog: int) -> None:
        raise SyscallError(errno.EOPNOTSUPP)

    async def accept(self, task: Task, flags: int) -> tuple[Socket, bytes]:
        raise SyscallError(errno.EOPNOTSUPP)

    async def sendmsg(self, task: Task, data: bytes, addr: bytes | None, control: Control,
                      flags: int) -> int:
        if addr is not None:
            if len(addr) < SOCKADDR_NL or int.from_bytes(addr[:2], "little") != AF_NETLINK:
                await control.release()
                raise SyscallError(errno.EINVAL)
            if int.from_bytes(addr[4:8], "little") != 0:
                await control.release()
                raise SyscallError(errno.EPERM)  # only the kernel (pid 0) is reachable
        forward = bytearray()
        off = 0
        while off + NLMSGHDR.size <= len(data):
            length, mtype, mflags, seq, _pid = NLMSGHDR.unpack_from(data, off)
            if length < NLMSGHDR.size or off + length > len(data):
                break
            msg = data[off:off + length]
            if _changes(self.protocol, mtype):
                self._refuse(msg, seq)
            else:
                forward += msg
            off += (length + 3) & ~3
        if off < len(data) and not self._local:
            forward += data[off:]  # what rtnetlink itself rejects: the host answers
        if forward:
            await super().sendmsg(task, bytes(forward), None, control, flags)
        else:
            await control.release()
        return len(data)

    def _refuse(self, msg: bytes, seq: int) -> None:
        """Queue NLMSG_ERROR(-EPERM) echoing `msg`, as netlink_ack does."""
        try:
            portid = int.from_bytes(self.getsockname()[4:8], "little")
        except SyscallError:
            portid = 0
        body = struct.pack("<i", -errno.EPERM) + msg
        self._local.append(NLMSGHDR.pack(NLMSGHDR.size + len(body), NLMSG_ERROR, 0, seq,
                                         portid) + body)

    async def recvmsg(self, task: Task, size: int, flags: int, control_len: int) -> RecvResult:
        deadline = self._deadline(False)
        while not self._local and self.protocol != NETLINK_SOCK_DIAG:
            if self._nonblock(flags):
                return await super().recvmsg(task, size, flags, control_len)
            try:
                return await super().recvmsg(task, size, flags | _MSG_DONTWAIT, control_len)
            except SyscallError as e:
                if e.errno != errno.EAGAIN:
                    raise
            await self._wait(task, False, deadline)  # a host datagram or a delivered one
        if self._local:
            msg = self._local[0] if flags & 0x2 else self._local.popleft()  # MSG_PEEK
            out_flags = 0x20 if len(msg) > size else 0  # MSG_TRUNC
            length = len(msg) if flags & 0x20 else None
            return RecvResult(msg[:size], struct.pack("<HHII", AF_NETLINK, 0, 0, 0),
                              Control(), out_flags, length)
        # Take the whole datagram, keep the sandbox's sockets, then fit it to `size`.
        res = await super().recvmsg(task, 1 << 20, flags & ~0x20, control_len)
        data = self._own_sockets(res.data)
        res.flags = 0x20 if len(data) > size else 0
        res.length = len(data) if flags & 0x20 else None
        res.data = data[:size]
        return res

    def _own_sockets(self, data: bytes) -> bytes:
        """The sock_diag messages of `data` about this sandbox's sockets, their inode and
        uid rewritten to the sandbox's."""
        books = self.kernel.network.sockets
        out = bytearray()
        off = 0
        while off + NLMSGHDR.size <= len(data):
            length, mtype = NLMSGHDR.unpack_from(data, off)[:2]
            if length < NLMSGHDR.size or off + length > len(data):
                break
            msg = bytearray(data[off:off + length])
            off += (length + 3) & ~3
            if mtype == SOCK_DIAG_BY_FAMILY and length >= NLMSGHDR.size + _DIAG_INODE + 4:
                at = NLMSGHDR.size
                owner = books.get(struct.unpack_from("<I", msg, at + _DIAG_INODE)[0])
                inode = getattr(getattr(owner, "vd", None), "dentry", None)
                if owner is None or inode is None:
                    continue
                struct.pack_into("<I", msg, at + _DIAG_UID, inode.inode.uid)
                struct.pack_into("<I", msg, at + _DIAG_INODE, inode.inode.ino)
            out += msg + bytes(-len(msg) % 4)
        return bytes(out)

    def readiness(self, mask: int) -> int:
        if self._local:
            return mask & (POLLIN | POLLRDNORM) | super().readiness(mask)
        return super().readiness(mask)


def netlink_factory(task: Task, type: int, protocol: int) -> Socket:
    return NetlinkSocket.create(task, AF_NETLINK, type, protocol)
