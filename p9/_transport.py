"""Transports: thin helpers that give a trio Stream (client) or Listeners (server).

9P framing lives in the codec, so a transport is only "a reliable byte stream". Anything
that is a `trio.abc.Stream` works with `open_client` and `Server.serve_stream`; the TLS
seam is exactly that: wrap a TCP stream in `trio.SSLStream` (client) or a listener in
`trio.SSLListener` (server) and pass it in unchanged.
"""

from __future__ import annotations

import os
import socket as _socket

import trio


async def connect_unix(path: str | bytes) -> trio.SocketStream:
    """Connect to a 9P server listening on unix stream socket `path`."""
    return await trio.open_unix_socket(os.fsdecode(path))


async def connect_tcp(host: str, port: int) -> trio.SocketStream:
    """Connect over TCP (IPv4 or IPv6, whichever `host` resolves to)."""
    stream = await trio.open_tcp_stream(host, port)
    tune_tcp(stream)
    return stream


def tune_tcp(stream: trio.abc.Stream) -> None:
    """Set a TCP stream up for 9P: no Nagle delay, and no TCP_NOTSENT_LOWAT.

    Why the second: trio sets TCP_NOTSENT_LOWAT to 16 KiB on its TCP streams (good for
    interactive protocols); a 9P reply of up to msize (1 MiB) then drains to 16 KiB before
    the sender is woken to queue more, leaving the connection idle between refills.
    Linux's default (no limit) keeps the send buffer full.
    """
    if not isinstance(stream, trio.SocketStream):
        return
    sock = stream.socket
    if sock.family not in (_socket.AF_INET, _socket.AF_INET6):
        return
    sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
    sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NOTSENT_LOWAT, (0xFFFFFFFF).to_bytes(4, "little"))


def bound_unacknowledged(stream: trio.abc.Stream, seconds: float) -> None:
    """On a TCP stream (TLS over one included): fail the connection (ETIMEDOUT) when data
    sent stays unacknowledged by the peer for `seconds`, and probe an idle one as often.

    Why: a link that goes dark (a cable cut, a peer host frozen) resets nothing; without
    this a request sent into it is retransmitted for ~15 minutes (tcp_retries2) before the
    socket fails, so a reconnection would start only then. 0: the kernel's defaults."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if seconds <= 0 or not isinstance(stream, trio.SocketStream):
        return
    sock = stream.socket
    if sock.family not in (_socket.AF_INET, _socket.AF_INET6):
        return
    interval = max(1, int(seconds / 3))
    sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_USER_TIMEOUT, max(1, int(seconds * 1000)))
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_KEEPALIVE, 1)
    sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_KEEPIDLE, interval)
    sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_KEEPINTVL, interval)
    sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_KEEPCNT, 3)


def stream_from_fd(fd: int) -> trio.SocketStream:
    """Adopt an inherited, connected stream socket fd (e.g. one end of a socketpair).

    The stream owns the fd afterwards (closing the stream closes it).
    """
    sock = _socket.socket(fileno=fd)
    if sock.type != _socket.SOCK_STREAM:
        sock.detach()
        raise ValueError(f"fd {fd!r} is not a stream socket")
    return trio.SocketStream(trio.socket.from_stdlib_socket(sock))


def socketpair() -> tuple[trio.SocketStream, trio.SocketStream]:
    """A connected pair of unix stream sockets as trio streams (in-process peers)."""
    a, b = trio.socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    return trio.SocketStream(a), trio.SocketStream(b)


async def listen_unix(path: str | bytes, *, backlog: int = 128) -> trio.SocketListener:
    """Listen on unix stream socket `path` (an existing socket file there is replaced)."""
    path = os.fsdecode(path)
    sock = trio.socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        try:
            if _socket_exists(path):
                os.unlink(path)
        except FileNotFoundError:
            pass
        await sock.bind(path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


def _socket_exists(path: str) -> bool:
    import stat

    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


async def listen_tcp(port: int = 0, host: str | None = "127.0.0.1") -> list[trio.SocketListener]:
    """TCP listeners on `host` ("127.0.0.1", "::1", or None for every address).

    With port 0 the kernel picks a free port; read it from
    `listeners[0].socket.getsockname()[1]`.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    for lst in listeners:
        lst.socket.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
    return listeners
