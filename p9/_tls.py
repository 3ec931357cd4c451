"""TLS 1.3 with mutual authentication for 9P over TCP, and connecting by address.

Why here: every client of a 9P server (the FUSE mount, the conformance targets, a sandbox's
remote mounts) spells a server as an address (`unix:PATH`, `tcp:HOST:PORT`, `tls:HOST:PORT`)
and must turn a TLS failure into one line naming its cause. A TLS stream is a
`trio.SSLStream`, not a `trio.SocketStream`, so p9's C fast paths and the non-blocking
socket path (`_sockio._raw_socket`) leave it alone by construction: every frame goes through
the ordinary Stream calls, which encrypt.

A TLS 1.3 client learns that the server refused its certificate only after its own handshake
has finished (the server's alert arrives with the first reply), so `open_address` translates
failures of the handshake *and* of the first round trip (Tversion).
"""

from __future__ import annotations

import contextlib
import errno
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import trio

from ._client import DEFAULT_FRAME_TIMEOUT, Client, open_client
from ._transport import connect_tcp, connect_unix, tune_tcp
from ._version import RUNPSC

__all__ = ["TLSClientConfig", "TLSServerConfig", "TLSError", "parse_address", "connect",
           "open_address", "tls_error", "peer_common_name"]


class TLSError(OSError):
    """A TLS connection failed; the message names the cause in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ECONNREFUSED, message)

    def __str__(self) -> str:
        return str(self.strerror)


@dataclass(frozen=True)
class TLSClientConfig:
    """A client's TLS material: its certificate and key (PEM; None: connect without one,
    which a gofer refuses) and the CA that signed the server's certificate.

    `server_name`: the name the server's certificate must carry (default: the address's
    host). `crl`: a PEM revocation list of that CA: a server certificate it lists is
    refused (it is read once, when the context is made: a redial reuses it).
    """

    ca: str
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None
    crl: str | None = None

    def context(self) -> ssl.SSLContext:
        """A TLS 1.3 client context that verifies the server against `ca` and its name."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
        _load(ctx.load_verify_locations, "--tls-ca", self.ca)
        if self.crl:
            _load(ctx.load_verify_locations, "--tls-crl", self.crl)
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        if self.cert:
            _load(lambda c: ctx.load_cert_chain(c, self.key), "--tls-cert/--tls-key", self.cert)
        return ctx


@dataclass(frozen=True)
class TLSServerConfig:
    """A server's TLS material: its certificate and key, and the CA whose certificates its
    clients must present (mutual authentication: no certificate, no connection); `crl`, a
    PEM revocation list of that CA: a client certificate it lists is refused."""

    cert: str
    key: str
    client_ca: str
    crl: str | None = None

    def context(self) -> ssl.SSLContext:
        """A TLS 1.3 server context that requires and verifies a client certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.verify_mode = ssl.CERT_REQUIRED
        _load(lambda c: ctx.load_cert_chain(c, self.key), "--tls-cert/--tls-key", self.cert)
        _load(ctx.load_verify_locations, "--tls-client-ca", self.client_ca)
        if self.crl:
            _load(ctx.load_verify_locations, "--tls-crl", self.crl)
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        return ctx


def _load(call: Callable[[str], object], what: str, path: str) -> None:
    try:
        call(path)
    except ssl.SSLError as e:
        raise TLSError(f"TLS: {what} {path}: not a usable PEM file ({e.reason or e})") from None
    except OSError as e:
        raise TLSError(f"TLS: {what} {path}: {e.strerror or e}") from None


#: Opens a TCP connection to (host, port) (`connect(tcp=)`).
TCPDialer = Callable[[str, int], Awaitable[trio.SocketStream]]
#: Opens a connection to a unix socket's path (`connect(unix=)`).
UnixDialer = Callable[[str], Awaitable[trio.SocketStream]]


def parse_address(address: str) -> tuple[str, str, int]:
    """`unix:PATH` → ("unix", PATH, 0); `tcp:HOST:PORT` or `tls:HOST:PORT` (an IPv6 host in
    brackets) → (kind, HOST, PORT).

    Raises:
        ValueError: anything else.
    """
    kind, sep, rest = address.partition(":")
    if kind == "unix" and sep and rest:
        return kind, rest, 0
    if kind in ("tcp", "tls") and sep:
        host, _, port = rest.rpartition(":")
        if host and port.isdigit():
            return kind, host.strip("[]"), int(port)
    raise ValueError(f"bad 9P address {address!r}; expected unix:PATH, tcp:HOST:PORT or "
                     "tls:HOST:PORT")


async def connect(address: str, *, tls: TLSClientConfig | None = None,
                  tcp: TCPDialer | None = None, unix: UnixDialer | None = None,
                  context: ssl.SSLContext | None = None) -> trio.abc.Stream:
    """A connected stream to `address`; for `tls:` with the handshake done.

    `tcp(host, port)` opens the TCP connections (default `trio.open_tcp_stream`), and
    `unix(path)` the unix ones (default `connect_unix`): a caller that left the host's
    network namespace, or lost its filesystem, dials through one that has not.
    `context`: `tls.context()` made already (a redial after the caller lost access to
    the certificate files reuses the first one).

    Raises:
        ValueError: a malformed address, or `tls:` without a TLS configuration.
        TLSError: the handshake failed (the message says why).
        OSError: the server cannot be reached.
    """
    kind, host, port = parse_address(address)
    if kind == "unix":
        return await (unix or connect_unix)(host)
    if kind == "tcp":
        if tcp is None:
            return await connect_tcp(host, port)
        plain = await tcp(host, port)
        tune_tcp(plain)
        return plain
    if tls is None:
        raise ValueError(f"{address}: a tls: address needs --tls-ca (and --tls-cert, "
                         "--tls-key), or RUNPSC_TLS_CA (RUNPSC_TLS_CERT, RUNPSC_TLS_KEY)")
    ctx = context or tls.context()
    raw = await (tcp or trio.open_tcp_stream)(host, port)
    tune_tcp(raw)
    stream = trio.SSLStream(raw, ctx, server_hostname=tls.server_name or host,
                            https_compatible=False)
    try:
        await stream.do_handshake()
    except BaseException as e:
        await trio.aclose_forcefully(stream)
        err = tls_error(e, address)
        if err is not None:
            raise err from None
        raise
    return stream


@contextlib.asynccontextmanager
async def open_address(address: str, *, tls: TLSClientConfig | None = None,
                       msize: int = 1 << 20, version: bytes = RUNPSC,
                       reconnect: float = 0.0, tcp: TCPDialer | None = None,
                       frame_timeout: float = DEFAULT_FRAME_TIMEOUT,
                       unix: UnixDialer | None = None) -> AsyncIterator[Client]:
    """Connect to `address` and negotiate a session (`open_client`); a TLS refusal that
    shows only at the first round trip is a `TLSError` too.

    Args:
        reconnect: seconds a lost connection may take to be re-established (dialling
            `address` again, p9/_recover.py) before operations fail with EIO; 0: at once.
        tcp, unix: open TCP and unix connections (see `connect`), for the first and every
            later dial.
        frame_timeout: seconds a reply may stay partly received (`open_client`).
    """
    context = tls.context() if tls is not None and address.startswith("tls:") else None
    stream = await connect(address, tls=tls, tcp=tcp, unix=unix, context=context)

    async def redial() -> trio.abc.Stream:
        return await connect(address, tls=tls, tcp=tcp, unix=unix, context=context)

    entered = False
    try:
        async with open_client(stream, msize=msize, version=version, redial=redial,
                               reconnect=reconnect, frame_timeout=frame_timeout) as client:
            entered = True
            yield client
    except (OSError, trio.BrokenResourceError) as e:
        err = None if entered else tls_error(e, address)
        if err is not None:
            raise err from None
        raise


#: OpenSSL's verify codes (X509_V_ERR_*) a client meets, as one line each.
_VERIFY = {
    3: "no revocation list (--tls-crl) of the CA that signed the {peer}'s certificate",
    9: "the {peer}'s certificate is not valid yet",
    10: "the {peer}'s certificate has expired",
    18: "the {peer}'s certificate is not signed by the trusted CA",
    19: "the {peer}'s certificate is not signed by the trusted CA",
    20: "the {peer}'s certificate is not signed by the trusted CA",
    21: "the {peer}'s certificate is not signed by the trusted CA",
    23: "the {peer}'s certificate has been revoked",
    62: "the {peer}'s certificate is not for this host name",
    64: "the {peer}'s certificate is not for this host name",  # (an IP address)
}
#: Alerts a server sends when it refuses the client's certificate (OpenSSL reason codes).
_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate "
                                          "(--tls-cert/--tls-key)",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the server refused our certificate: it has expired",
    "TLSV1_ALERT_UNKNOWN_CA": "the server refused our certificate: not signed by a CA "
                              "it trusts",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server refused our certificate",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "the server refused our certificate: revoked",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the server refused our certificate",
    "TLSV1_ALERT_PROTOCOL_VERSION": "the server does not speak TLS 1.3",
    "WRONG_VERSION_NUMBER": "the peer does not speak TLS (a plain tcp: peer?)",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the client sent no certificate",
    "UNEXPECTED_EOF_WHILE_READING": "the peer hung up during the handshake (it refused "
                                    "our certificate, or is not a TLS client)",
}


def tls_error(exc: BaseException, address: str = "", *,
              peer: str = "server") -> TLSError | None:
    """The TLS failure behind `exc` (searched through its causes) as a one-line TLSError;
    None when no TLS error caused it. `peer`: whose certificate we checked ("server" on a
    client, "client" on a server)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, TLSError):
            return e
        if isinstance(e, ssl.SSLError):
            where = f"{address}: " if address else ""
            return TLSError(f"{where}TLS: {describe_ssl_error(e, peer)}")
        e = e.__cause__ or e.__context__
    return None


def describe_ssl_error(e: ssl.SSLError, peer: str = "server") -> str:
    """One line for an SSLError, naming the cause (a verify failure or the peer's alert)."""
    if isinstance(e, ssl.SSLCertVerificationError):
        text = _VERIFY.get(e.verify_code, "").format(peer=peer)
        detail = e.verify_message or ""
        return f"{text} ({detail})" if text else f"certificate verify failed: {detail}"
    reason = e.reason or ""
    if reason in _ALERTS:
        return _ALERTS[reason]
    return f"{reason.lower().replace('_', ' ') or e}"


def peer_common_name(stream: trio.SSLStream) -> str | None:
    """The subject CN of the verified peer certificate on `stream` (None without one)."""
    cert = stream.getpeercert()
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
