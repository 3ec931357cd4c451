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
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from sentry.errors import SyscallError
from sentry.platform import libc
from sentry.platform.ptrace import sockio, sockio_ffi

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


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(_Iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


_libc.recvmsg.restype = _libc.sendmsg.restype = ctypes.c_ssize_t
_libc.recvmsg.argtypes = _libc.sendmsg.argtypes = [ctypes.c_int, ctypes.POINTER(_Msghdr),
                                                   ctypes.c_int]
_CMSGHDR = struct.Struct("<Qii")


def _align(n: int) -> int:
    return (n + 7) & ~7


def parse_cmsgs(buf: bytes) -> list[tuple[int, int, bytes]]:
    """(level, type, data) of each cmsg the host wrote (x86_64 layout, as the program's)."""
    out = []
    i = 0
    while i + _CMSGHDR.size <= len(buf):
        clen, level, ctype = _CMSGHDR.unpack_from(buf, i)
        if clen < _CMSGHDR.size:
            break
        out.append((level, ctype, bytes(buf[i + _CMSGHDR.size : i + min(clen, len(buf) - i)])))
        i += _align(clen)
    return out


def build_cmsgs(cmsgs: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray()
    for level, ctype, data in cmsgs:
        rec = _CMSGHDR.pack(_CMSGHDR.size + len(data), level, ctype) + data
        out += rec + bytes(_align(len(rec)) - len(rec))
    return bytes(out)


class MsgBuffers:
    """A socket's msghdr, iovec and name buffer for `recvmsg`, made once: a receive is the
    hot path of every inet program, and building the ctypes objects anew each time cost
    about as much as the call itself. The trio loop runs one call at a time, so one set
    serves every thread of the sandbox using the socket."""

    def __init__(self) -> None:
        self.name = ctypes.create_string_buffer(SOCKADDR_MAX)
        self.iov = _Iovec()
        self.msg = _Msghdr()
        self.msg.iov = ctypes.pointer(self.iov)
        self.msg.iovlen = 1
        self.ref = ctypes.byref(self.msg)


def recvmsg(fd: int, n: int, flags: int, controllen: int, bufs: MsgBuffers
            ) -> tuple[bytes, int, bytes, int, list[tuple[int, int, bytes]]]:
    """(data, length the host reported, sender, msg_flags, cmsgs): recvmsg(2) on the host
    socket with a control buffer of `controllen` bytes (0: none)."""
    buf = ctypes.create_string_buffer(max(n, 1))
    m = bufs.msg
    bufs.iov.base = ctypes.addressof(buf)
    bufs.iov.len = n
    m.name = ctypes.addressof(bufs.name)
    m.namelen = SOCKADDR_MAX
    ctl = ctypes.create_string_buffer(controllen) if controllen else None
    m.control = ctypes.addressof(ctl) if ctl is not None else None
    m.controllen = controllen
    m.flags = 0
    r = _libc.recvmsg(fd, bufs.ref, flags)
    if r < 0:
        raise _fail()
    got = int(r)
    cm = parse_cmsgs(ctl.raw[: m.controllen]) if ctl is not None else []
    return (buf.raw[: min(got, n)], got, bufs.name.raw[: min(m.namelen, SOCKADDR_MAX)],
            m.flags, cm)


def sendmsg(fd: int, data: bytes, flags: int, addr: bytes | None,
            cmsgs: list[tuple[int, int, bytes]]) -> int:
    """sendmsg(2) on the host socket with `cmsgs` (already checked by the caller)."""
    if not cmsgs:
        return sendto(fd, data, flags, addr)
    buf = ctypes.create_string_buffer(data, max(len(data), 1))
    ctl_bytes = build_cmsgs(cmsgs)
    ctl = ctypes.create_string_buffer(ctl_bytes, len(ctl_bytes))
    name = ctypes.create_string_buffer(addr, len(addr)) if addr else None
    iov = _Iovec(ctypes.cast(buf, ctypes.c_void_p), len(data))
    msg = _Msghdr(ctypes.cast(name, ctypes.c_void_p) if name is not None else None,
                  len(addr) if addr else 0, ctypes.pointer(iov), 1,
                  ctypes.cast(ctl, ctypes.c_void_p), len(ctl_bytes), 0)
    r = _libc.sendmsg(fd, ctypes.byref(msg), flags)
    if r < 0:
        raise _fail()
    return int(r)


# cffi's objects are untyped
_sio: Any = sockio
_ffi: Any = sockio_ffi
#: The most one call moves between a program's memory and a host socket (hotloop.c's
#: SIO_CAP): more than any datagram the host takes.
IO_CAP = int(_sio.SIO_CAP) if _sio is not None else 256 * 1024

Vecs = list[tuple[int, int]]


def cut(vecs: Vecs, n: int) -> Vecs:
    """The first `n` bytes of `vecs`."""
    out: Vecs = []
    for base, length in vecs:
        if n <= 0:
            break
        out.append((base, min(length, n)))
        n -= min(length, n)
    return out


def skip(vecs: Vecs, n: int) -> Vecs:
    """The iovecs `vecs` past their first `n` bytes."""
    out = []
    for base, length in vecs:
        if n >= length:
            n -= length
            continue
        out.append((base + n, length - n))
        n = 0
    return out


class SockIO:
    """One host socket's data path: bytes between a program's memory (process `pid`,
    iovecs `vecs`) or the Sentry's own (`pid` 0, `send_bytes`/`recv_bytes`) and the host
    socket, in one C call each way (hotloop.c's sio_send/sio_recv: process_vm_readv +
    sendmsg, recvmsg + process_vm_writev through one staging buffer), so a send or receive
    costs one foreign call and no Python copy of the data. Without the C extension the
    same calls are made through ctypes. The buffers here are filled and used within one
    call (no await between), so one set serves every thread using the socket."""

    def __init__(self) -> None:
        self._bufs = MsgBuffers()
        if _sio is not None:
            self._one = _ffi.new("unsigned long[2]")
            self._io = _ffi.new("long[4]")
            self._name = _ffi.new(f"char[{SOCKADDR_MAX}]")

    def _iov(self, vecs: Vecs) -> object:
        if len(vecs) == 1:
            self._one[0], self._one[1] = vecs[0]
            return self._one
        return _ffi.new("unsigned long[]", [x for v in vecs for x in v])

    def send(self, pid: int, vecs: Vecs, whole: bool, fd: int, flags: int,
             addr: bytes | None, cmsgs: list[tuple[int, int, bytes]]) -> int:
        """Send the first bytes (at most IO_CAP) of the program's `vecs`; `whole`: a
        datagram, all of it (EMSGSIZE past IO_CAP). A fault in the bytes to send is
        EFAULT, nothing sent (the caller limits a write to what is readable). Returns
        what the host took; SyscallError (EAGAIN: no room now)."""
        if _sio is None:
            total = sum(n for _, n in vecs)
            if whole and total > IO_CAP:
                raise SyscallError(errno.EMSGSIZE)
            data = _gather(pid, vecs, min(total, IO_CAP))
            return sendmsg(fd, data, flags, addr, cmsgs)
        ctl = build_cmsgs(cmsgs) if cmsgs else b""
        r = _sio.sio_send(pid, self._iov(vecs), len(vecs), whole, fd, flags,
                          _ffi.from_buffer(addr) if addr else _ffi.NULL,
                          len(addr) if addr else 0,
                          _ffi.from_buffer(ctl) if ctl else _ffi.NULL, len(ctl))
        if r < 0:
            raise SyscallError(-r)
        return int(r)

    def send_bytes(self, data: bytes | memoryview, fd: int, flags: int, addr: bytes | None,
                   cmsgs: list[tuple[int, int, bytes]]) -> int:
        """`send` of the Sentry's own bytes (a write from inside the Sentry)."""
        if _sio is None:
            return sendmsg(fd, bytes(data), flags, addr, cmsgs)
        buf = _ffi.from_buffer(data)
        return self.send(0, [(int(_ffi.cast("uintptr_t", buf)), len(data))], False, fd,
                         flags, addr, cmsgs)

    def recv(self, pid: int, vecs: Vecs, fd: int, flags: int, controllen: int
             ) -> tuple[int, int, bytes, int, list[tuple[int, int, bytes]]]:
        """recvmsg(2) of at most IO_CAP bytes into the program's `vecs`: (the host's count
        (a datagram's whole length with MSG_TRUNC), the bytes copied to the program (less
        at a fault: -errno if none could be), sender, msg_flags, cmsgs). SyscallError
        (EAGAIN: nothing now)."""
        if _sio is None:
            size = min(sum(n for _, n in vecs), IO_CAP)
            data, n, name, mflags, cm = recvmsg(fd, size, flags, controllen, self._bufs)
            return n, (_scatter(pid, vecs, data) if pid else len(data)), name, mflags, cm
        io = self._io
        io[0], io[1] = SOCKADDR_MAX, controllen
        ctl = _ffi.new(f"char[{controllen}]") if controllen else _ffi.NULL
        r = _sio.sio_recv(pid, self._iov(vecs), len(vecs), fd, flags, self._name, ctl, io)
        if r < 0:
            raise SyscallError(-r)
        name = _ffi.buffer(self._name, min(io[0], SOCKADDR_MAX))[:] if io[0] else b""
        cm = parse_cmsgs(_ffi.buffer(ctl, io[1])[:]) if controllen and io[1] else []
        return int(r), int(io[3]), name, int(io[2]), cm

    def recv_bytes(self, size: int, fd: int, flags: int, controllen: int
                   ) -> tuple[bytes, int, bytes, int, list[tuple[int, int, bytes]]]:
        """`recv` into the Sentry's own memory: (data, the host's count, sender,
        msg_flags, cmsgs)."""
        if _sio is None:
            return recvmsg(fd, size, flags, controllen, self._bufs)
        buf = bytearray(max(size, 1))
        n, _, name, mflags, cm = self.recv(
            0, [(int(_ffi.cast("uintptr_t", _ffi.from_buffer(buf))), size)], fd, flags,
            controllen)
        return bytes(buf[: min(n, size)]), n, name, mflags, cm

    def poll(self, fd: int, events: int) -> int:
        """`poll_now`, in one C call."""
        if _sio is None:
            return poll_now(fd, events)
        r = _sio.sio_poll(fd, events)
        return int(r) if r > 0 else 0


def _gather(pid: int, vecs: Vecs, n: int) -> bytes:
    """The first `n` bytes of the program's `vecs` (a fault: EFAULT)."""
    parts, left = [], n
    for base, length in vecs:
        if left <= 0:
            break
        try:
            parts.append(libc.vm_read(pid, base, min(length, left)))
        except OSError:
            raise SyscallError(errno.EFAULT) from None
        left -= min(length, left)
    return b"".join(parts)


def _scatter(pid: int, vecs: Vecs, data: bytes) -> int:
    """Copy `data` across the program's `vecs`: the bytes copied (-EFAULT if none)."""
    pos = 0
    for base, length in vecs:
        if pos >= len(data):
            break
        piece = data[pos : pos + length]
        try:
            libc.vm_write(pid, base, piece)
        except OSError:
            return pos if pos else -errno.EFAULT
        pos += len(piece)
    return pos


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
