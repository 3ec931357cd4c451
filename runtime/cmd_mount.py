"""`runpsc mount`: mount any 9P2000.L server on the host through FUSE."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import click

from runtime.tlsopts import fail_tls, tls_client_options

if TYPE_CHECKING:
    import p9


@click.command()
@click.argument("address", metavar="ADDRESS")
@click.argument("mountpoint", type=click.Path(file_okay=False))
@click.option("--aname", default="", show_default=True, help="The export to attach to.")
@click.option("--uname", default="root", show_default=True,
              help="User name sent in Tattach (every request runs as this user).")
@click.option("--uid", "n_uname", type=int, default=0, show_default=True,
              help="Numeric user sent in Tattach (n_uname).")
@click.option("--msize", type=click.IntRange(min=4096), default=1 << 20, show_default=True)
@click.option("--reconnect", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="SECONDS", help="How long a lost connection is retried (the server "
              "restarted, the link cut) while requests wait; then EIO. 0: EIO at once.")
@click.option("-v", "--verbose", is_flag=True, help="Log requests that fail unexpectedly.")
@click.option("--debug", is_flag=True, help="Pass FUSE's debug option (very verbose).")
@tls_client_options
def mount(address: str, mountpoint: str, aname: str, uname: str, n_uname: int, msize: int,
          reconnect: float, verbose: bool, debug: bool, tls: p9.TLSClientConfig | None) -> None:
    """Mount the 9P2000.L server at ADDRESS (unix:PATH, tcp:HOST:PORT or tls:HOST:PORT) on
    MOUNTPOINT.

    tls: is TLS 1.3 with this client's certificate (--tls-cert/--tls-key) checked by the
    server and the server's checked against --tls-ca and the host name; a TLS failure
    prints one line naming the cause and exits with status 2, nothing mounted.

    Runs in the foreground; SIGINT or SIGTERM unmounts cleanly. Permission checks are the
    kernel's (default_permissions); requests reach the server as --uname/--uid. If the server
    goes away, the connection is dialled again for --reconnect seconds (open files are
    reopened, nothing is lost); past that, file operations fail with EIO instead of hanging.
    """
    import trio

    import p9
    from runtime.fusefs import serve

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="runpsc mount: %(message)s")
    if not os.path.isdir(mountpoint):
        raise click.BadParameter(f"{mountpoint!r} is not a directory", param_hint="MOUNTPOINT")
    try:
        trio.run(lambda: serve(address, mountpoint, aname=aname, uname=uname,
                               n_uname=n_uname, msize=msize, debug=debug, tls=tls,
                               reconnect=reconnect))
    except p9.TLSError as e:
        fail_tls("runpsc mount", e)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="ADDRESS") from None
    except OSError as e:
        raise click.ClickException(f"mount {address} on {mountpoint}: {e}") from None
    except KeyboardInterrupt:
        pass
