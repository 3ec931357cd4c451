"""`runpsc gofer serve`: a standalone 9P2000.L file server for host directories."""

from __future__ import annotations

import logging

import click


@click.group()
def gofer() -> None:
    """The Gofer: serve host directories over 9P2000.L, safely."""


@gofer.command()
@click.option("--export", "exports", multiple=True, required=True, metavar="NAME=DIR[:ro]",
              help="Export DIR under aname NAME; options after ':' (comma-separated): ro, rw, "
                   "submounts (cross mount points inside DIR), devices (allow opening device nodes), mknod (let a root client create "
                   "device nodes).")
@click.option("--listen", "listens", multiple=True, required=True,
              metavar="unix:PATH|tcp:HOST:PORT|tls:HOST:PORT|fd:N",
              help="Where to serve (repeatable). tcp: is unencrypted and trusts the user each "
                   "client names: only for loopback and trusted networks (a warning is printed "
                   "for any other address); tls: is TLS 1.3 with client certificates "
                   "(--tls-cert, --tls-key, --tls-client-ca).")
@click.option("--tls-cert", metavar="PEM", help="tls: listeners: the server's certificate (chain).")
@click.option("--tls-key", metavar="PEM", help="tls: listeners: the server's private key.")
@click.option("--tls-client-ca", metavar="PEM",
              help="tls: listeners: the CA that signs client certificates (required of every "
                   "client, verified).")
@click.option("--tls-crl", metavar="PEM",
              help="tls: listeners: the client CA's certificate revocation list; a client "
                   "certificate it lists is refused (reread only at start).")
@click.option("--tls-allow", "tls_allow", multiple=True, metavar="CN=EXPORT[,EXPORT...]",
              help="tls: listeners: a client certificate with subject CN may attach only these "
                   "exports ('*': all); others are refused (EACCES, logged). Without any, every "
                   "certificate the client CA signed may attach every export (repeatable).")
@click.option("--no-confine", is_flag=True, help="Skip mount namespace, capability drop and seccomp (debugging).")
@click.option("--allsquash", is_flag=True, help="Serve every user as the squash user (default nobody).")
@click.option("--squashuser", metavar="USER", help="The squash user (name or uid); implies --allsquash.")
@click.option("--max-fids", type=click.IntRange(min=1), default=10000, show_default=True,
              help="Most fids one connection may hold (more: EMFILE).")
@click.option("--idle-timeout", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="Close a connection after this many seconds without a request (0: never).")
@click.option("--msize", type=click.IntRange(min=4096), default=1 << 20, show_default=True,
              help="Largest msize granted.")
@click.option("--frame-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Close a connection whose started request is not complete after this many seconds (0: never).")
@click.option("--max-total-fids", type=click.IntRange(min=0), default=0,
              help="Most fids all connections together may hold (default: half the descriptor limit).")
@click.option("--max-connections", type=click.IntRange(min=0), default=128, show_default=True,
              help="Most connections accepted at once (0: no cap).")
@click.option("--max-connections-per-peer", type=click.IntRange(min=0), default=16, show_default=True,
              help="Most connections at once from one peer: a unix peer's uid, a TCP peer's address (0: no cap).")
@click.option("--tcp-user", metavar="USER", default=None,
              help="Who every attach over plain TCP runs as (default nobody), unless --trust-client-identity.")
@click.option("--trust-client-identity", is_flag=True,
              help="Believe the user a plain-TCP client names (only where every client is trusted).")
@click.option("--ready-fd", type=int, default=None, help="Write one byte to this fd when serving.")
@click.option("-v", "--verbose", is_flag=True, help="Log connections and errors to stderr.")
def serve(exports: tuple[str, ...], listens: tuple[str, ...], no_confine: bool, allsquash: bool,
          squashuser: str | None, max_fids: int, idle_timeout: float, msize: int,
          frame_timeout: float, max_total_fids: int, max_connections: int,
          max_connections_per_peer: int, tcp_user: str | None, trust_client_identity: bool,
          ready_fd: int | None, verbose: bool, tls_cert: str | None = None,
          tls_key: str | None = None, tls_client_ca: str | None = None,
          tls_allow: tuple[str, ...] = (), tls_crl: str | None = None) -> None:
    """Serve the exports on every listener until interrupted."""
    from gofer.ident import IdentityPolicy
    from gofer.serve import GoferOptions, parse_export, parse_listen, run

    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)
    import p9
    from gofer.tlsaccess import TLSAccess

    try:
        parsed = [parse_export(e) for e in exports]
        names = [e.name for e in parsed]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate export names in {names!r}")
        where = [parse_listen(x) for x in listens]
        policy = IdentityPolicy.build(allsquash=allsquash, squashuser=squashuser,
                                      network_user=tcp_user, trust_client=trust_client_identity)
        tls = None
        if any(x.kind == "tls" for x in where):
            if not (tls_cert and tls_key and tls_client_ca):
                raise ValueError("a tls: listener needs --tls-cert, --tls-key and --tls-client-ca")
            tls = TLSAccess.build(p9.TLSServerConfig(tls_cert, tls_key, tls_client_ca, tls_crl),
                                  tls_allow)
    except p9.TLSError as e:
        raise click.ClickException(str(e)) from None
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    for x in where:
        if x.open_to_network():
            click.echo(f"runpsc gofer: warning: tcp:{x.address}:{x.port} is not a loopback "
                       "address; tcp: is unencrypted: use tls: (client certificates) on "
                       "networks you do not trust", err=True)
    options = GoferOptions(max_fids=max_fids, idle_timeout=idle_timeout or None, max_msize=msize,
                           frame_timeout=frame_timeout or None, max_total_fids=max_total_fids,
                           max_connections=max_connections,
                           max_connections_per_peer=max_connections_per_peer)
    try:
        run(parsed, where, policy=policy, options=options, confine=not no_confine, ready_fd=ready_fd,
            tls=tls)
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError) as e:
        raise click.ClickException(f"gofer: {e}") from None
