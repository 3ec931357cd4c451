"""TCP connections from the host's network namespace after the Sentry left it.

Why: a remote mount's gofer is dialled before the Sentry moves into its own network
namespace (`confine_sentry`), but a lost connection is dialled again later (p9's
reconnection), from a Sentry whose namespace has loopback only. The Sentry keeps a
descriptor of the host's namespace and creates each new socket in a worker thread that
enters it for the creation only (a socket belongs to the namespace it was created in;
`setns` changes the calling thread only); name resolution happens there too.
"""

from __future__ import annotations

import ctypes
import os
import socket

import trio

#: sched.h
_CLONE_NEWNET = 0x40000000


class HostDialer:
    """Opens TCP connections in the namespace this process was in when `keep()` ran.

    Until `keep()` (or without a namespace change) it dials from wherever it runs.
    """

    def __init__(self) -> None:
        self._host_ns = -1

    def keep(self) -> None:
        """Remember the current network namespace (before leaving it)."""
        if self._host_ns < 0:
            self._host_ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def forget(self) -> None:
        """Dial from wherever the process is (it stayed in the host's namespace)."""
        if self._host_ns >= 0:
            os.close(self._host_ns)
            self._host_ns = -1

    close = forget

    async def tcp(self, host: str, port: int) -> trio.SocketStream:
        """A TCP connection to (host, port) from the kept namespace (`p9.connect(tcp=)`)."""
        if self._host_ns < 0:
            return await trio.open_tcp_stream(host, port)
        sock, addr = await trio.to_thread.run_sync(self._socket_in_host_ns, host, port)
        tsock = trio.socket.from_stdlib_socket(sock)
        try:
            await tsock.connect(addr)
        except BaseException:
            tsock.close()
            raise
        return trio.SocketStream(tsock)

    def _socket_in_host_ns(self, host: str, port: int) -> tuple[socket.socket, tuple]:
        """(In a worker thread.) Resolve `host` and create an unconnected socket, both in
        the host's namespace; the thread goes back to its own namespace afterwards."""
        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(self._host_ns, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns to the host's network: {os.strerror(err)}")
            try:
                family, kind, proto, _, addr = socket.getaddrinfo(
                    host, port, type=socket.SOCK_STREAM)[0]
                sock = socket.socket(family, kind, proto)
            finally:
                if libc.setns(own, _CLONE_NEWNET) != 0:  # (never fails: our own namespace)
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns back: {os.strerror(err)}")
        finally:
            os.close(own)
        sock.setblocking(False)
        return sock, addr
