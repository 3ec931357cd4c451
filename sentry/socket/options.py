"""SOL_SOCKET options kept by the Sentry (sock_setsockopt/sock_getsockopt's common part).

Why a class of its own: every Sentry-emulated family (AF_UNIX, and any later one such as
netlink) answers the socket-level options the same way, with Linux's rules: buffer sizes
doubled and bounded, timeouts as struct timeval, ints truncated to the caller's optlen
(the syscall layer does that).
"""

from __future__ import annotations

import errno
import math
import struct
from dataclasses import dataclass

from sentry.errors import SyscallError

from .base import (
    RMEM_MAX,
    SO_BROADCAST,
    SO_DEBUG,
    SO_DOMAIN,
    SO_DONTROUTE,
    SO_KEEPALIVE,
    SO_LINGER,
    SO_OOBINLINE,
    SO_PASSCRED,
    SO_PRIORITY,
    SO_PROTOCOL,
    SO_RCVBUF,
    SO_RCVBUFFORCE,
    SO_RCVLOWAT,
    SO_RCVTIMEO,
    SO_REUSEADDR,
    SO_REUSEPORT,
    SO_SNDBUF,
    SO_SNDBUFFORCE,
    SO_SNDLOWAT,
    SO_SNDTIMEO,
    SO_TYPE,
    SOCK_MIN_RCVBUF,
    SOCK_MIN_SNDBUF,
    WMEM_DEFAULT,
    WMEM_MAX,
)

#: The tick socket timeouts are kept in (Linux keeps jiffies; HZ=1000 here).
_HZ = 1000
_INT = struct.Struct("<i")
_TIMEVAL = struct.Struct("<qq")
_LINGER = struct.Struct("<ii")


def int_value(value: bytes) -> int:
    """An int option's value: EINVAL if shorter than an int (sk_setsockopt's first check)."""
    if len(value) < 4:
        raise SyscallError(errno.EINVAL)
    return int(_INT.unpack_from(value)[0])


def pack_int(v: int) -> bytes:
    return _INT.pack(v)


@dataclass
class SocketOptions:
    """The socket-level state of one socket (what struct sock holds for SOL_SOCKET)."""

    sndbuf: int = WMEM_DEFAULT
    rcvbuf: int = WMEM_DEFAULT
    rcvtimeo: int = 0  # ticks; 0 = wait for ever
    sndtimeo: int = 0
    passcred: bool = False
    reuseaddr: int = 0
    reuseport: int = 0
    keepalive: int = 0
    broadcast: int = 0
    oobinline: int = 0
    dontroute: int = 0
    debug: int = 0
    priority: int = 0
    rcvlowat: int = 1
    linger: tuple[int, int] = (0, 0)

    def timeout(self, send: bool) -> float | None:
        """SO_SNDTIMEO/SO_RCVTIMEO in seconds, None when unset (block for ever)."""
        ticks = self.sndtimeo if send else self.rcvtimeo
        return None if ticks == 0 else ticks / _HZ

    def get(self, name: int, family: int, type: int, protocol: int) -> bytes | None:
        """The value of option `name`, or None if the family must answer it."""
        simple = {SO_TYPE: type, SO_DOMAIN: family, SO_PROTOCOL: protocol,
                  SO_SNDBUF: self.sndbuf, SO_RCVBUF: self.rcvbuf,
                  SO_PASSCRED: int(self.passcred), SO_REUSEADDR: self.reuseaddr,
                  SO_REUSEPORT: self.reuseport, SO_KEEPALIVE: self.keepalive,
                  SO_BROADCAST: self.broadcast, SO_OOBINLINE: self.oobinline,
                  SO_DONTROUTE: self.dontroute, SO_DEBUG: self.debug,
                  SO_PRIORITY: self.priority, SO_RCVLOWAT: self.rcvlowat, SO_SNDLOWAT: 1}
        if name in simple:
            return pack_int(simple[name])
        if name in (SO_RCVTIMEO, SO_SNDTIMEO):
            ticks = self.rcvtimeo if name == SO_RCVTIMEO else self.sndtimeo
            return _TIMEVAL.pack(ticks // _HZ, (ticks % _HZ) * 1_000_000 // _HZ)
        if name == SO_LINGER:
            return _LINGER.pack(*self.linger)
        return None

    def set(self, name: int, value: bytes) -> bool:
        """Set option `name`; False if the family must answer it."""
        if name in (SO_RCVTIMEO, SO_SNDTIMEO):
            if len(value) < _TIMEVAL.size:
                raise SyscallError(errno.EINVAL)
            sec, usec = _TIMEVAL.unpack_from(value)
            if usec < 0 or usec >= 1_000_000:
                raise SyscallError(errno.EDOM)
            if sec < 0:
                ticks = 1  # Linux: a negative timeout means "do not wait" (a zero timeo)
            elif sec == 0 and usec == 0:
                ticks = 0
            else:
                ticks = min(sec * _HZ + math.ceil(usec / (1_000_000 // _HZ)), (1 << 62))
            if name == SO_RCVTIMEO:
                self.rcvtimeo = ticks
            else:
                self.sndtimeo = ticks
            return True
        if name == SO_LINGER:
            if len(value) < _LINGER.size:
                raise SyscallError(errno.EINVAL)
            onoff, secs = _LINGER.unpack_from(value)
            self.linger = (1 if onoff else 0, secs if onoff else self.linger[1])
            return True
        v = int_value(value)
        u = v & 0xFFFFFFFF
        if name in (SO_SNDBUF, SO_SNDBUFFORCE):
            u = min(u, WMEM_MAX) if name == SO_SNDBUF else min(u, 0x7FFFFFFF // 2)
            self.sndbuf = max(u * 2, SOCK_MIN_SNDBUF)
        elif name in (SO_RCVBUF, SO_RCVBUFFORCE):
            u = min(u, RMEM_MAX) if name == SO_RCVBUF else min(u, 0x7FFFFFFF // 2)
            self.rcvbuf = max(u * 2, SOCK_MIN_RCVBUF)
        elif name == SO_PASSCRED:
            self.passcred = bool(v)
        elif name == SO_REUSEADDR:
            self.reuseaddr = int(v != 0)
        elif name == SO_REUSEPORT:
            self.reuseport = int(v != 0)
        elif name == SO_KEEPALIVE:
            self.keepalive = int(v != 0)
        elif name == SO_BROADCAST:
            self.broadcast = int(v != 0)
        elif name == SO_OOBINLINE:
            self.oobinline = int(v != 0)
        elif name == SO_DONTROUTE:
            self.dontroute = int(v != 0)
        elif name == SO_DEBUG:
            self.debug = int(v != 0)
        elif name == SO_PRIORITY:
            if not 0 <= v <= 6:
                raise SyscallError(errno.EPERM)
            self.priority = v
        elif name == SO_RCVLOWAT:
            self.rcvlowat = max(v, 1) if v >= 0 else 0x7FFFFFFF
        elif name == SO_SNDLOWAT:
            raise SyscallError(errno.ENOPROTOOPT)
        else:
            return False
        return True
