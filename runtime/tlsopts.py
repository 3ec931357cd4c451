"""The client's TLS options, shared by every command that takes a 9P address.

`--tls-cert`, `--tls-key`, `--tls-ca`, `--tls-server-name`, `--tls-crl` (or
RUNPSC_TLS_CERT, RUNPSC_TLS_KEY, RUNPSC_TLS_CA, RUNPSC_TLS_SERVER_NAME, RUNPSC_TLS_CRL in
the environment) serve
`tls:HOST:PORT` addresses in `runpsc mount`, `runpsc conformance run
--target 9p:tls:...` and `runpsc do --mount 9p:tls:...`. A TLS failure is one line on stderr
naming its cause and exit status 2 (`fail_tls`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import click

if TYPE_CHECKING:
    import p9

_F = TypeVar("_F", bound=Callable[..., Any])

#: Exit status of a command whose TLS connection failed (certificate, CA, host name).
TLS_EXIT = 2


def tls_client_options(fn: _F) -> _F:
    """Add --tls-cert, --tls-key, --tls-ca, --tls-server-name and --tls-crl (with their environment
    variables) to a click command; it receives them as one `tls` argument
    (`p9.TLSClientConfig`, or None without --tls-ca)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, tls_cert: str | None = None, tls_key: str | None = None,
                tls_ca: str | None = None, tls_server_name: str | None = None,
                tls_crl: str | None = None, **kwargs: Any) -> Any:
        return fn(*args, tls=tls_config(tls_cert, tls_key, tls_ca, tls_server_name, tls_crl),
                  **kwargs)

    command: Any = wrapper
    for opt in reversed((
        click.option("--tls-cert", envvar="RUNPSC_TLS_CERT", metavar="PEM",
                     help="tls: addresses: this client's certificate [env RUNPSC_TLS_CERT]."),
        click.option("--tls-key", envvar="RUNPSC_TLS_KEY", metavar="PEM",
                     help="tls: addresses: its private key [env RUNPSC_TLS_KEY]."),
        click.option("--tls-ca", envvar="RUNPSC_TLS_CA", metavar="PEM",
                     help="tls: addresses: the CA that signed the server's certificate "
                          "[env RUNPSC_TLS_CA]."),
        click.option("--tls-server-name", envvar="RUNPSC_TLS_SERVER_NAME", metavar="NAME",
                     help="tls: addresses: the name the server's certificate must carry "
                          "(default: the address's host) [env RUNPSC_TLS_SERVER_NAME]."),
        click.option("--tls-crl", envvar="RUNPSC_TLS_CRL", metavar="PEM",
                     help="tls: addresses: the CA's revocation list; a server certificate "
                          "it lists is refused [env RUNPSC_TLS_CRL]."),
    )):
        command = opt(command)
    return cast(_F, command)


def tls_config(tls_cert: str | None, tls_key: str | None, tls_ca: str | None,
               server_name: str | None = None,
               crl: str | None = None) -> p9.TLSClientConfig | None:
    """The client configuration, or None when no CA is given (a tls: address then fails
    with a message saying what is missing).

    p9 (and so trio and ssl) is imported only when TLS is asked for: `runpsc do` imports
    them later, under its start-up measures (runtime/startup.py)."""
    if tls_ca is None:
        if tls_cert or tls_key or crl:
            raise click.BadParameter("--tls-cert/--tls-key/--tls-crl need --tls-ca (the "
                                     "server's CA)")
        return None
    import p9

    if bool(tls_cert) != bool(tls_key):
        raise click.BadParameter("--tls-cert and --tls-key go together")
    return p9.TLSClientConfig(ca=tls_ca, cert=tls_cert, key=tls_key, server_name=server_name,
                              crl=crl)


def fail_tls(command: str, err: BaseException) -> NoReturn:
    """Print `err` as one line and exit with TLS_EXIT."""
    print(f"{command}: {err}", file=sys.stderr, flush=True)
    sys.exit(TLS_EXIT)
