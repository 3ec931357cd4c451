"""Who is at the other end of a connection, as far as its transport proves it.

Why: 9P's Tattach carries a uname/n_uname the client chooses. Believing it is only safe where
the transport vouches for the peer: a socket inherited already connected (the process that
started the gofer, e.g. a sandbox's Sentry, made both ends), a unix socket whose peer's
credentials the kernel reports (SO_PEERCRED), or an operator's explicit word
(`--trust-client-identity`), or a client certificate on a TLS listener. `IdentityPolicy.resolve` turns a `Peer` and the requested user
into the identity an attach runs as.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any

__all__ = ["Peer", "LOCAL", "peer_of", "socket_of", "is_loopback"]

_UCRED = struct.Struct("iII")  # pid, uid, gid


@dataclass(frozen=True, slots=True)
class Peer:
    """A connection's peer.

    Attributes:
        kind: "local" (a socket inherited connected: trusted), "unix" (accepted on a unix
            listener; `uid`/`gid` from SO_PEERCRED), "tcp" (accepted on a TCP listener;
            nothing proven), "tls" (accepted on a TLS listener with a client certificate
            the client CA signed: a trusted client, as an NFS export's trusted host; which
            exports it may attach is its certificate's `--tls-allow` mapping), "other" (a transport this module does not know: untrusted).
        key: what per-peer connection caps count by (the uid for unix, the address for
            TCP), or None.
        uid, gid: the peer's credentials where the kernel reports them (unix), else None.
    """

    kind: str
    key: tuple[str, object] | None = None
    uid: int | None = None
    gid: int | None = None


LOCAL = Peer("local")


def socket_of(stream: Any) -> socket.socket | None:
    """The stdlib socket under a trio stream (a TLS stream's transport included), or None."""
    for _ in range(4):  # SSLStream → SocketStream → trio socket → stdlib socket
        inner = getattr(stream, "transport_stream", None)
        if inner is None:
            break
        stream = inner
    sock = getattr(stream, "socket", None)
    return getattr(sock, "_sock", None) if sock is not None else None


def peer_of(sock: socket.socket | None) -> Peer:
    """The peer of an accepted socket: its SO_PEERCRED on a unix socket, its address on TCP."""
    if sock is None:
        return Peer("other")
    if sock.family == socket.AF_UNIX:
        pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        return Peer("unix", ("uid", uid), uid, gid)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            addr = sock.getpeername()[0]
        except OSError:
            addr = "?"
        return Peer("tcp", ("addr", addr))
    return Peer("other")


def is_loopback(host: str) -> bool:
    """Whether a listen address is reachable only from this host."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
