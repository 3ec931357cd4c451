"""AF_INET and AF_INET6: TCP, UDP and ping sockets over host sockets in the sandbox's
network namespace (see `HostSocket` for what stays in the Sentry).

socket(2) asks the host: it decides EPROTONOSUPPORT, ESOCKTNOSUPPORT and the ping
sockets' EACCES (net.ipv4.ping_group_range of the namespace). SOCK_RAW is EPERM, as for a
process without CAP_NET_RAW, with an ``unsupported`` event.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from sentry.errors import SyscallError

from .base import AF_INET, AF_INET6, SOCK_DGRAM, SOCK_STREAM, SOL_SOCKET, Socket
from .hostsocket import HostSocket

if TYPE_CHECKING:
    from sentry.kernel.task import Task

IPPROTO_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 0, 1, 6, 17
IPPROTO_IPV6 = 41
SOCK_RAW = 3

#: The options that reach the host socket, by level (numbers of x86_64 Linux). Left out on
#: purpose: SO_ATTACH_FILTER/BPF (programs for the host kernel), SO_MARK, SO_BINDTODEVICE,
#: SO_*BUFFORCE, IP_TRANSPARENT, TCP_REPAIR (privileged: the Sentry runs as root).
_OPTIONS: dict[int, frozenset[int]] = {
    # REUSEADDR TYPE ERROR DONTROUTE BROADCAST SNDBUF RCVBUF KEEPALIVE OOBINLINE PRIORITY
    # LINGER REUSEPORT RCVLOWAT SNDLOWAT TIMESTAMP ACCEPTCONN TIMESTAMPNS PROTOCOL DOMAIN
    # RXQ_OVFL PEEK_OFF BUSY_POLL INCOMING_CPU
    SOL_SOCKET: frozenset({2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 15, 18, 19, 29, 30, 35, 38, 39,
                           40, 42, 46, 49}),
    # NODELAY MAXSEG CORK KEEPIDLE KEEPINTVL KEEPCNT SYNCNT LINGER2 DEFER_ACCEPT
    # WINDOW_CLAMP INFO QUICKACK CONGESTION USER_TIMEOUT FASTOPEN TIMESTAMP NOTSENT_LOWAT
    # FASTOPEN_CONNECT
    IPPROTO_TCP: frozenset({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 18, 23, 24, 25, 30}),
    # TOS TTL OPTIONS PKTINFO MTU_DISCOVER RECVERR RECVTTL RECVTOS MTU FREEBIND
    # RECVORIGDSTADDR BIND_ADDRESS_NO_PORT MULTICAST_IF MULTICAST_TTL MULTICAST_LOOP
    # ADD_MEMBERSHIP DROP_MEMBERSHIP MULTICAST_ALL
    IPPROTO_IP: frozenset({1, 2, 4, 8, 10, 11, 12, 13, 14, 15, 20, 24, 32, 33, 34, 35, 36, 49}),
    # UNICAST_HOPS MULTICAST_IF MULTICAST_HOPS MULTICAST_LOOP JOIN_GROUP LEAVE_GROUP
    # MTU_DISCOVER MTU RECVERR V6ONLY RECVPKTINFO PKTINFO RECVHOPLIMIT HOPLIMIT RECVTCLASS
    # TCLASS
    IPPROTO_IPV6: frozenset({16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 49, 50, 51, 52, 66, 67}),
}
#: Per-packet settings a sendmsg may carry to the host: IP_TOS IP_TTL IP_PKTINFO;
#: IPV6_PKTINFO IPV6_HOPLIMIT IPV6_DONTFRAG IPV6_TCLASS.
_SEND_CMSGS: dict[int, frozenset[int]] = {
    IPPROTO_IP: frozenset({1, 2, 8}),
    IPPROTO_IPV6: frozenset({50, 52, 62, 67}),
}
#: The cmsgs a send knows without passing them (the rest is EINVAL, as Linux):
#: SOL_SOCKET's (__sock_cmsg_send: SCM_RIGHTS, SCM_CREDENTIALS, SO_PRIORITY, SO_MARK,
#: SO_TIMESTAMPING_OLD/NEW, SCM_TXTIME, SCM_TS_OPT_ID) for every inet socket; on datagram
#: sockets, IPPROTO_IP's (ip_cmsg_send: IP_RETOPTS, IP_PROTOCOL) and IPPROTO_IPV6's
#: (ip6_datagram_send_ctl: the RFC 2292 and RFC 3542 options, IPV6_FLOWINFO).
_KNOWN_CMSGS: dict[int, frozenset[int]] = {
    SOL_SOCKET: frozenset({1, 2, 12, 36, 37, 61, 65, 81}),
    IPPROTO_IP: frozenset({7, 52}),
    IPPROTO_IPV6: frozenset({2, 3, 4, 5, 8, 11, 54, 55, 57, 59}),
}
SO_PRIORITY = 12
#: SO_PRIORITY above this needs CAP_NET_ADMIN.
_PRIORITY_MAX = 6


class InetSocket(HostSocket):
    """A TCP, UDP or ping socket."""

    options = _OPTIONS
    send_cmsgs = _SEND_CMSGS

    def send_control(self, cmsgs: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
        """EINVAL for a cmsg the send does not know: any at SOL_SOCKET, and on datagram
        sockets at the family's own IP level (TCP skips the IP levels, UDP the other
        family's); the known ones pass as `send_cmsgs` says."""
        own = IPPROTO_IP if self.family == AF_INET else IPPROTO_IPV6
        for level, type, _ in cmsgs:
            if level == SOL_SOCKET or (level == own and self.type == SOCK_DGRAM):
                if type not in _KNOWN_CMSGS[level] and \
                        type not in self.send_cmsgs.get(level, ()):
                    raise SyscallError(errno.EINVAL)
        return super().send_control(cmsgs)

    @classmethod
    def create(cls, task: Task, family: int, type: int, protocol: int) -> InetSocket:
        """socket(2) for AF_INET/AF_INET6: the host decides EPROTONOSUPPORT,
        ESOCKTNOSUPPORT and ping sockets' EACCES; SOCK_RAW is EPERM (no CAP_NET_RAW)."""
        base = type & 0xF
        if base == SOCK_RAW:
            task.kernel.emit("unsupported-socket", family=family, name="SOCK_RAW", type=base,
                             errno="EPERM")
            raise SyscallError(errno.EPERM)
        if base not in (SOCK_STREAM, SOCK_DGRAM):
            raise SyscallError(errno.ESOCKTNOSUPPORT)
        return cls._open(task, family, base, protocol, type)

    async def setsockopt(self, task: Task, level: int, name: int, value: bytes) -> None:
        if level == SOL_SOCKET and name == SO_PRIORITY and len(value) >= 4 and \
                not 0 <= struct.unpack_from("<i", value)[0] <= _PRIORITY_MAX:
            raise SyscallError(errno.EPERM)
        await super().setsockopt(task, level, name, value)


def _inet_factory(family: int) -> Any:
    def make(task: Task, type: int, protocol: int) -> Socket:
        return InetSocket.create(task, family, type, protocol)

    return make


INET_FACTORY = _inet_factory(AF_INET)
INET6_FACTORY = _inet_factory(AF_INET6)

__all__ = ["InetSocket", "INET_FACTORY", "INET6_FACTORY", "packet_factory"]


def packet_factory(task: Task, type: int, protocol: int) -> Socket:
    """AF_PACKET: EPERM, as Linux answers a process without CAP_NET_RAW."""
    task.kernel.emit("unsupported-socket", family=17, name="AF_PACKET", type=type,
                     errno="EPERM")
    raise SyscallError(errno.EPERM)
