"""Calls on a host socket with raw sockaddr bytes, and trio waits on its fd.

Why raw: the program's sockaddr goes to the host's bind/connect/sendto as the bytes it
wrote (after the syscall layer's length checks), so the host kernel validates families,
lengths and addresses exactly as Linux does; names come back as the host's bytes. Python's
socket methods decode and re-encode addresses (and refuse some Linux accepts), so the calls
taking or giving an address go through libc here.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
from collections.abc import Awaitable, Callable

import trio

from sentry.errors import SyscallError

_libc = ctypes.CDLL(None, use_errno=True)
_libc.sendto.restype = _libc.recvfrom.restype = ctypes.c_ssize_t

#: sizeof(struct sockaddr_storage): the largest name the host gives back.
SOCKADDR_MAX = 128


def _fail() -> SyscallError:
    return SyscallError(ctypes.get_errno() or errno.EIO)


def bind(fd: int, addr: bytes) -> None:
    if _libc.bind(fd, addr, len(addr)) != 0:
        raise _fail()


def connect(fd: int, addr: bytes) -> None:
    if _libc.connect(fd, addr, len(addr)) != 0:
        raise _fail()


def _name(call: Callable[..., int], fd: int) -> bytes:
    buf = ctypes.create_string_buffer(SOCKADDR_MAX)
    n = ctypes.c_uint32(SOCKADDR_MAX)
    if call(fd, buf, ctypes.byref(n)) != 0:
        raise _fail()
    return buf.raw[: min(n.value, SOCKADDR_MAX)]


def getsockname(fd: int) -> bytes:
    return _name(_libc.getsockname, fd)


def getpeername(fd: int) -> bytes:
    return _name(_libc.getpeername, fd)


def accept4(fd: int, flags: int) -> tuple[int, bytes]:
    """(new host fd, peer's name); raises SyscallError (EAGAIN when none is pending)."""
    buf = ctypes.create_string_buffer(SOCKADDR_MAX)
    n = ctypes.c_uint32(SOCKADDR_MAX)
    new = _libc.accept4(fd, buf, ctypes.byref(n), flags)
    if new < 0:
        raise _fail()
    return new, buf.raw[: min(n.value, SOCKADDR_MAX)]


def sendto(fd: int, data: bytes, flags: int, addr: bytes | None) -> int:
    if addr is None:
        r = _libc.sendto(fd, data, len(data), flags, None, 0)
    else:
        r = _libc.sendto(fd, data, len(data), flags, addr, len(addr))
    if r < 0:
        raise _fail()
    return int(r)


def recvfrom(fd: int, n: int, flags: int) -> tuple[bytes, int, bytes]:
    """(data, length the host reported (more than len(data) with MSG_TRUNC), sender)."""
    buf = ctypes.create_string_buffer(max(n, 1))
    name = ctypes.create_string_buffer(SOCKADDR_MAX)
    nl = ctypes.c_uint32(SOCKADDR_MAX)
    r = _libc.recvfrom(fd, buf, n, flags, name, ctypes.byref(nl))
    if r < 0:
        raise _fail()
    got = int(r)
    return buf.raw[: min(got, n)], got, name.raw[: min(nl.value, SOCKADDR_MAX)]


def poll_now(fd: int, events: int) -> int:
    p = select.poll()
    p.register(fd, events)
    got = p.poll(0)
    return got[0][1] if got else 0


async def wait_fd(fd: int, writable: bool) -> None:
    """Wait until `fd` is readable (or writable) in trio. Several sandbox threads may wait
    on one socket at once (prefork servers accept on a shared listener); trio allows one
    waiter per fd number, so the others wait on a private dup of it."""
    wait: Callable[[int], Awaitable[None]] = (trio.lowlevel.wait_writable if writable
                                              else trio.lowlevel.wait_readable)
    try:
        await wait(fd)
        return
    except trio.BusyResourceError:
        pass
    d = os.dup(fd)
    try:
        await wait(d)
    finally:
        os.close(d)


async def wait_mask(fd: int, mask: int) -> None:
    """Wait until `fd` may be ready for `mask` (POLLIN and/or POLLOUT)."""
    want_in = bool(mask & (select.POLLIN | select.POLLPRI | select.POLLRDNORM))
    want_out = bool(mask & (select.POLLOUT | select.POLLWRNORM))
    if want_in and want_out:
        async with trio.open_nursery() as n:
            async def one(w: bool) -> None:
                await wait_fd(fd, w)
                n.cancel_scope.cancel()

            n.start_soon(one, False)
            n.start_soon(one, True)
    elif want_out:
        await wait_fd(fd, True)
    elif want_in:
        await wait_fd(fd, False)
    else:
        # Only POLLERR/POLLHUP asked: the host reports them as readable.
        await wait_fd(fd, False)
