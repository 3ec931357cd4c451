"""Connections from the host's network namespace and filesystem after the Sentry left them.

Why: a remote mount's gofer is dialled before the Sentry locks itself in
(`runtime.confine`), but a lost connection is dialled again later (p9's reconnection), from
a Sentry that has left the host's network namespace (a `tcp:`/`tls:` gofer) and mount
namespace (a `unix:` gofer's socket path is not in its empty root), and dropped the
capabilities `setns` would need. So before the lock-in the Sentry forks a small dialer
process that stays behind: it connects to the gofers' addresses, and only to those, and
hands each connected socket back over a socketpair (SCM_RIGHTS). A Sentry subverted by its
program can ask it for nothing but another connection to a gofer it was given.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import errno
import os
import signal
import socket
import struct

import trio

#: prctl(2)
_PR_SET_PDEATHSIG = 1
#: A request: TCP or unix, port, then the host's bytes (a unix socket's path); a reply:
#: 0 with the socket, or an errno.
_REQ = struct.Struct("<BH")
_TCP, _UNIX = 0, 1
_REPLY = struct.Struct("<i")
#: Seconds one dial may take before the dialer gives up (ETIMEDOUT); the caller's
#: reconnection loop tries again within its own window.
DIAL_TIMEOUT = 10.0


class HostDialer:
    """Opens TCP connections from the network namespace this process was in at `keep()`,
    and unix ones from its mount namespace and working directory then.

    Until `keep()` it dials from wherever it runs (`trio.open_tcp_stream`, `p9.connect_unix`).
    """

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._pid = 0
        self._lock = trio.Lock()

    def keep(self, addresses: list[tuple[str, int]], paths: tuple[str, ...] = ()) -> None:
        """Fork the dialer, which may connect to `addresses` (host, port) and unix sockets
        `paths` only, from the namespaces this process is in now. Call it single-threaded,
        before leaving."""
        if self._sock is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        allowed = frozenset([(_TCP, h, p) for h, p in addresses] + [(_UNIX, p, 0) for p in paths])
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the dialer: nothing of the Sentry's but its end of the pair
            code = 1
            try:
                ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent:
                    os._exit(0)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                keep_fd = theirs.fileno()
                os.closerange(3, keep_fd)
                os.closerange(keep_fd + 1, 65536)
                _serve(theirs, allowed)
                code = 0
            finally:
                os._exit(code)
        theirs.close()
        ours.setblocking(False)
        self._sock, self._pid = ours, pid

    def close(self) -> None:
        """End the dialer (it ends by itself when this process does)."""
        if self._sock is None:
            return
        self._sock.close()
        self._sock = None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self._pid, signal.SIGKILL)  # refused to a root caller's confined Sentry
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self._pid, 0)  # then it ends as its socket did

    async def tcp(self, host: str, port: int) -> trio.SocketStream:
        """A TCP connection to (host, port) (`p9.connect(tcp=)`)."""
        if self._sock is None:
            return await trio.open_tcp_stream(host, port)
        return await self._dial(_TCP, host, port)

    async def unix(self, path: str) -> trio.SocketStream:
        """A connection to the unix socket at `path` (`p9.connect(unix=)`)."""
        if self._sock is None:
            return await trio.open_unix_socket(path)
        return await self._dial(_UNIX, path, 0)

    async def _dial(self, kind: int, host: str, port: int) -> trio.SocketStream:
        sock = self._sock
        assert sock is not None
        async with self._lock:  # one request at a time: replies come in order
            sock.send(_REQ.pack(kind, port) + os.fsencode(host))
            while True:
                await trio.lowlevel.wait_readable(sock)
                try:
                    msg, fds, _, _ = socket.recv_fds(sock, _REPLY.size, 1)
                except BlockingIOError:
                    continue
                break
        if not msg:
            raise OSError(errno.ECONNRESET, "the host dialer is gone")
        (err,) = _REPLY.unpack(msg)
        if err or not fds:
            for fd in fds:
                os.close(fd)
            raise OSError(err or errno.EIO, f"{host}:{port}: {os.strerror(err or errno.EIO)}")
        s = socket.socket(fileno=fds[0])
        s.setblocking(False)
        return trio.SocketStream(trio.socket.from_stdlib_socket(s))


def _serve(sock: socket.socket, allowed: frozenset[tuple[int, str, int]]) -> None:
    """The dialer's loop: one request, one reply, until the Sentry closes its end."""
    while True:
        try:
            msg = sock.recv(4096)
        except InterruptedError:
            continue
        if not msg:
            return
        err, conn = 0, None
        try:
            kind, port = _REQ.unpack_from(msg)
            host = os.fsdecode(msg[_REQ.size:])
            if (kind, host, port) not in allowed:
                raise OSError(errno.EACCES, "not a gofer of this sandbox")
            if kind == _UNIX:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.settimeout(DIAL_TIMEOUT)
                conn.connect(host)
            else:
                family, stype, proto, _, addr = socket.getaddrinfo(
                    host, port, type=socket.SOCK_STREAM)[0]
                conn = socket.socket(family, stype, proto)
                conn.settimeout(DIAL_TIMEOUT)
                conn.connect(addr)
        except (OSError, UnicodeDecodeError, struct.error) as e:
            err = getattr(e, "errno", None) or errno.EINVAL
            if isinstance(e, socket.gaierror):
                err = errno.EHOSTUNREACH
            if isinstance(e, TimeoutError):
                err = errno.ETIMEDOUT
        try:
            if conn is not None and not err:
                sock.sendmsg([_REPLY.pack(0)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                 array.array("i", [conn.fileno()]))])
            else:
                sock.send(_REPLY.pack(err))
        finally:
            if conn is not None:
                conn.close()
