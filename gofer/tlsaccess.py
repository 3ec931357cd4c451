"""TLS listeners: the server context (mutual authentication) and which exports each client
certificate may attach.

Why a mapping by certificate subject: a TLS listener is reachable from other hosts, and the
9P attach carries a user name the client chooses; the certificate is the one thing a client
proves. `--tls-allow CN=EXPORT[,EXPORT...]` lets the holder of a certificate whose subject
common name is CN attach only those exports (`*`: every export); a certificate whose CN is
not mapped attaches nothing. Without any `--tls-allow`, every certificate the client CA
signed may attach every export.
"""

from __future__ import annotations

import errno
import logging
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import trio

import p9

__all__ = ["TLSAccess", "parse_allow", "accept_tls"]

log = logging.getLogger("gofer")

#: How long a client may take to complete its handshake before it is dropped.
HANDSHAKE_SECONDS = 10.0


def parse_allow(specs: Iterable[str]) -> dict[str, frozenset[str]]:
    """`CN=EXPORT[,EXPORT...]` specs as {CN: exports} (repeating a CN adds exports).

    Raises:
        ValueError: a spec without `=`, an empty CN or no export.
    """
    out: dict[str, frozenset[str]] = {}
    for spec in specs:
        cn, eq, names = spec.partition("=")
        exports = frozenset(n for n in names.split(",") if n)
        if not eq or not cn or not exports:
            raise ValueError(f"--tls-allow {spec!r} is not CN=EXPORT[,EXPORT...]")
        out[cn] = out.get(cn, frozenset()) | exports
    return out


@dataclass(frozen=True)
class TLSAccess:
    """A TLS listener's context and its certificate → exports mapping (None: any export)."""

    context: ssl.SSLContext
    allow: Mapping[str, frozenset[str]] | None = None
    handshake_seconds: float = field(default=HANDSHAKE_SECONDS)

    @classmethod
    def build(cls, config: p9.TLSServerConfig, allow: Iterable[str] = ()) -> TLSAccess:
        """Load the certificate, key and client CA now (before confinement hides the files).

        Raises:
            p9.TLSError: a file is missing or not PEM.
            ValueError: a malformed `--tls-allow`.
        """
        mapping = parse_allow(allow)
        return cls(config.context(), mapping or None)

    def exports_for(self, cn: str | None) -> frozenset[str] | None:
        """The export names a client with subject CN `cn` may attach (None: all)."""
        if self.allow is None:
            return None
        names = self.allow.get(cn or "", frozenset())
        return None if "*" in names else names


async def accept_tls(stream: trio.SocketStream,
                     access: TLSAccess) -> tuple[trio.SSLStream, str, str | None] | None:
    """Complete a client's handshake (certificate required and verified); on failure log
    why and return None, having closed the connection. Returns the TLS stream, the peer's
    address for logs and its certificate's CN."""
    try:
        host, port = stream.socket.getpeername()[:2]
        peer = f"{host}:{port}"
    except OSError:
        peer = "?"
    p9.tune_tcp(stream)
    tls = trio.SSLStream(stream, access.context, server_side=True, https_compatible=False)
    try:
        with trio.fail_after(access.handshake_seconds):
            await tls.do_handshake()
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError) as e:
        err = p9.tls_error(e, peer="client")
        if isinstance(e, trio.TooSlowError):
            why = f"no handshake within {access.handshake_seconds:.0f} s"
        else:
            why = str(err) if err else repr(e)
        log.warning("gofer: TLS: refused %s: %s", peer, why.removeprefix("TLS: "))
        await _send_alert_and_close(stream, tls)
        return None
    cn = p9.peer_common_name(tls)
    log.info("gofer: TLS: %s connected with certificate CN=%s", peer, cn)
    return tls, peer, cn


async def _send_alert_and_close(stream: trio.SocketStream, tls: trio.SSLStream) -> None:
    """Send the client the alert OpenSSL wrote (why its certificate was refused), then close
    without a reset.

    Why: trio.SSLStream marks itself broken on a handshake error without sending what
    OpenSSL queued (the alert: "certificate required", "expired", "unknown CA"), and a TLS
    1.3 client learns of the refusal only from that alert, after its own handshake finished.
    The alert is in the stream's outgoing memory BIO (`_outgoing`, trio's attribute: if a
    trio release renames it, the client sees a closed connection instead of the reason).
    Closing a socket with unread input (the client's first request) sends a reset, which
    may destroy the alert before the client reads it, so we half-close and read until the
    client hangs up (bounded).
    """
    with trio.move_on_after(2):
        try:
            bio = getattr(tls, "_outgoing", None)
            pending = bio.read() if isinstance(bio, ssl.MemoryBIO) else b""
            if pending:
                await stream.send_all(pending)
            await stream.send_eof()
            while await stream.receive_some(1 << 16):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
    await trio.aclose_forcefully(stream)


def refuse_attach(who: str, export: str) -> OSError:
    """Log an attach the client's certificate does not allow and return its EACCES."""
    log.warning("gofer: TLS: %s may not attach %r: refused (EACCES)", who, export)
    return OSError(errno.EACCES, f"{who} may not attach {export!r}")
