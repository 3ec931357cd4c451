"""The network a sandbox's sockets live in: one host network namespace, held by an fd.

Why host sockets in a namespace: TCP, UDP and netlink are served by the host's network
stack, but every socket the Sentry opens for the program is created inside the mode's
namespace (`setns` on the Sentry's thread around `socket()`, then back), so what the
program can reach is what that namespace has:

- ``none``: a fresh namespace with only ``lo``, brought up (a bare namespace's ``lo`` is
  down, and programs serving on 127.0.0.1 would fail);
- ``host``: the namespace this process was in when the Network was made;
- ``sandbox``: a fresh namespace like ``none`` that the runtime gives a NAT'd interface
  (slirp4netns) and published ports;
- ``netns``: a namespace made by someone else and named by a path (an OCI bundle's
  network namespace path: ``ip netns add``'s /run/netns/NAME, /proc/PID/ns/net), with
  whatever interfaces they gave it.

The host sockets stay in the Sentry (never installed in a program's process) and are
non-blocking: the socket files wait for them in trio. Namespace changes need
CAP_SYS_ADMIN; `NetworkError` says so otherwise.

The Network also keeps the books /proc/net needs: which host sockets belong to this
sandbox (by host inode), so /proc/net/tcp shows the sandbox's own sockets only.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import socket as _socket
import struct
import weakref
from collections.abc import Iterator
from typing import Any

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCGIFMTU, SIOCGIFHWADDR = 0x8913, 0x8914, 0x8921, 0x8927
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40

MODES = ("none", "host", "sandbox", "netns")
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3): the CLONE_NEW* type of a namespace fd

_libc = ctypes.CDLL(None, use_errno=True)


class NetworkError(OSError):
    """The network namespace could not be made or entered (usually: not root)."""


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        hint = " (network modes need root: CAP_SYS_ADMIN)" if e == errno.EPERM else ""
        raise NetworkError(f"{what}: {os.strerror(e)}{hint}")


def _setns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns(CLONE_NEWNET)")


def _own_ns() -> int:
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def _link_up(name: bytes) -> None:
    """Bring interface `name` of the current namespace up (SIOCSIFFLAGS)."""
    with _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh14x", name, 0)
        got = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req)
        flags = struct.unpack_from("16sh", got)[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh14x", name, flags | IFF_UP))


class Network:
    """One network namespace (an open fd of it) and the sandbox's sockets in it.

    Use `Network.isolated()` (``none``/``sandbox``) or `Network.host()`; `close()` drops
    the namespace (it ends with its last socket).
    """

    def __init__(self, mode: str, ns_fd: int) -> None:
        if mode not in MODES:
            raise ValueError(f"network mode {mode!r}: one of {', '.join(MODES)}")
        self.mode = mode
        self.ns_fd = ns_fd
        self._closer = weakref.finalize(self, os.close, ns_fd)  # the fd goes with the object
        #: host inode -> the sandbox socket file holding that host socket (for /proc/net).
        self.sockets: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()

    @classmethod
    def isolated(cls, mode: str = "none", *, stay: bool = False) -> Network:
        """A fresh namespace whose ``lo`` is up (unshare on this thread, then back; with
        `stay`, the thread stays in it: the confined Sentry lives there, and from a user
        namespace of its own it could not go back)."""
        home = -1 if stay else _own_ns()
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            try:
                fd = _own_ns()
                _link_up(b"lo")
                # Ping sockets for every group: the namespace is the sandbox's own (in a
                # user namespace, for the groups it maps: ours).
                try:
                    with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
                        f.write("0 2147483647")
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise
                    with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
                        f.write(f"{os.getegid()} {os.getegid()}")
            finally:
                if home >= 0:
                    _setns(home)
        finally:
            if home >= 0:
                os.close(home)
        return cls(mode, fd)

    @classmethod
    def at(cls, path: str) -> Network:
        """The network namespace at `path` (``netns`` mode).

        Raises:
            NetworkError: `path` cannot be opened or is not a network namespace.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise NetworkError(f"{path}: {e.strerror}") from None
        try:
            kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
        except OSError:
            kind = 0
        if kind != CLONE_NEWNET:
            os.close(fd)
            raise NetworkError(f"{path}: not a network namespace")
        return cls("netns", fd)

    @classmethod
    def host(cls) -> Network:
        """The namespace this thread is in now (the host's, before the Sentry confines)."""
        return cls("host", _own_ns())

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the body with this thread in the namespace, then return to where it was."""
        home = _own_ns()
        try:
            if os.fstat(home).st_ino == os.fstat(self.ns_fd).st_ino:
                yield
                return
            _setns(self.ns_fd)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(home)

    def join(self) -> None:
        """Move this thread into the namespace for good (the confined Sentry lives there,
        so `entered` finds it home and needs no setns, nor CAP_SYS_ADMIN)."""
        _setns(self.ns_fd)

    def socket(self, family: int, type_: int, proto: int) -> _socket.socket:
        """A non-blocking, close-on-exec host socket created in the namespace.

        Raises OSError as socket(2) does (EAFNOSUPPORT, EPROTONOSUPPORT, EACCES ...).
        """
        with self.entered():
            s = _socket.socket(family, type_ | _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC, proto)
        return s

    def track(self, host: _socket.socket, owner: Any) -> None:
        """Record that `owner` (a sandbox socket file) holds `host` (for /proc/net)."""
        with contextlib.suppress(OSError):
            self.sockets[os.fstat(host.fileno()).st_ino] = owner

    def read_proc(self, name: str) -> bytes:
        """The namespace's /proc/net/NAME as the host kernel shows it."""
        with self.entered():
            fd = os.open(f"/proc/thread-self/net/{name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while True:
                b = os.read(fd, 65536)
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def interfaces(self) -> list[tuple[int, str]]:
        """(index, name) of the namespace's interfaces."""
        with self.entered():
            return _socket.if_nameindex()

    def interface_attr(self, name: str, what: str) -> bytes:
        """An attribute of interface `name` as /sys/class/net/NAME/WHAT shows it (mtu,
        address, operstate, flags, type), asked of the namespace with the SIOCGIF ioctls
        (the host's /sys shows the namespace sysfs was mounted in, not this one)."""
        req = struct.pack("16s16x", name.encode())
        with self.entered(), _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM) as s:
            try:
                flags = struct.unpack_from("16sH", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
                mtu = struct.unpack_from("16si", fcntl.ioctl(s.fileno(), SIOCGIFMTU, req))[1]
                hw = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, req)
            except OSError:
                return b""
        hwtype, mac = struct.unpack_from("<H6s", hw, 16)
        if what == "mtu":
            return b"%d\n" % mtu
        if what == "address":
            return b":".join(b"%02x" % b for b in mac) + b"\n"
        if what == "flags":
            return b"0x%x\n" % (flags & ~IFF_RUNNING)  # dev->flags: no operational bits
        if what == "type":
            return b"%d\n" % hwtype
        if flags & IFF_LOOPBACK:
            return b"unknown\n"
        return b"up\n" if flags & IFF_RUNNING else b"down\n"

    def close(self) -> None:
        self._closer()
        self.ns_fd = -1
