"""sockaddr codecs: the parts every family shares, and each family's layout.

Addresses cross the socket interface as raw sockaddr bytes, as the application gave them
(the syscall layer only checks the length against sockaddr_storage and copies). A family
decodes its own with these helpers, so a length or family check is written once.
"""

from __future__ import annotations

import errno
import socket as _socket
import struct

from sentry.errors import SyscallError

from .base import AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC

#: sizeof(struct sockaddr_storage): the most move_addr_to_kernel copies.
SOCKADDR_STORAGE = 128
#: offsetof(struct sockaddr_un, sun_path) and sizeof(struct sockaddr_un).
SUN_PATH_OFFSET, SOCKADDR_UN = 2, 110
SOCKADDR_IN, SOCKADDR_IN6 = 16, 28


def family_of(addr: bytes) -> int:
    """sa_family of a sockaddr (AF_UNSPEC for one too short to hold it)."""
    if len(addr) < 2:
        return AF_UNSPEC
    return int.from_bytes(addr[:2], "little")


def pack_family(family: int) -> bytes:
    return family.to_bytes(2, "little")


# -- AF_UNIX --------------------------------------------------------------------------------


def unix_check(addr: bytes) -> None:
    """unix_validate_addr: EINVAL unless an AF_UNIX sockaddr of a valid length."""
    if len(addr) < SUN_PATH_OFFSET or len(addr) > SOCKADDR_UN or family_of(addr) != AF_UNIX:
        raise SyscallError(errno.EINVAL)


def unix_decode(addr: bytes) -> tuple[bytes, bool]:
    """(name, abstract) of an AF_UNIX sockaddr: a filesystem path (up to the first NUL, as
    unix_mkname_bsd terminates it), or an abstract name (every byte after the leading NUL,
    kept with it: abstract names are binary). An empty name is autobind's."""
    unix_check(addr)
    path = addr[SUN_PATH_OFFSET:]
    if path[:1] == b"\0":
        return path, True
    return path.split(b"\0", 1)[0], False


def unix_encode(name: bytes, abstract: bool) -> bytes:
    """The sockaddr getsockname/accept/recvfrom return: a path gets its NUL counted (as
    Linux stores it), an abstract name is its exact bytes."""
    body = name if abstract else name + b"\0"
    return pack_family(AF_UNIX) + body


UNNAMED_UNIX = pack_family(AF_UNIX)


# -- AF_INET / AF_INET6 ------------------------------------------------------------------------


def inet_decode(addr: bytes) -> tuple[str, int]:
    """(dotted address, port) of a sockaddr_in; EINVAL if shorter than 16 bytes, EAFNOSUPPORT
    for another family (what inet_bind/connect answer)."""
    if len(addr) < SOCKADDR_IN:
        raise SyscallError(errno.EINVAL)
    if family_of(addr) != AF_INET:
        raise SyscallError(errno.EAFNOSUPPORT)
    port = struct.unpack_from(">H", addr, 2)[0]
    return _socket.inet_ntop(_socket.AF_INET, addr[4:8]), port


def inet_encode(host: str, port: int) -> bytes:
    return struct.pack("<H", AF_INET) + struct.pack(">H", port) \
        + _socket.inet_pton(_socket.AF_INET, host) + bytes(8)


def inet6_decode(addr: bytes) -> tuple[str, int, int, int]:
    """(address, port, flowinfo, scope_id) of a sockaddr_in6 (EINVAL under 24 bytes, the
    size of the RFC 2133 layout Linux still accepts)."""
    if len(addr) < 24:
        raise SyscallError(errno.EINVAL)
    if family_of(addr) != AF_INET6:
        raise SyscallError(errno.EAFNOSUPPORT)
    port, flow = struct.unpack_from(">HI", addr, 2)
    scope = struct.unpack_from("<I", addr, 24)[0] if len(addr) >= SOCKADDR_IN6 else 0
    return _socket.inet_ntop(_socket.AF_INET6, addr[8:24]), port, flow, scope


def inet6_encode(host: str, port: int, flowinfo: int = 0, scope_id: int = 0) -> bytes:
    return struct.pack("<H", AF_INET6) + struct.pack(">HI", port, flowinfo) \
        + _socket.inet_pton(_socket.AF_INET6, host) + struct.pack("<I", scope_id)
