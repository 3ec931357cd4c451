"""`runpsc conformance`: run the filesystem conformance suite against targets."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click
import trio

from runtime.tlsopts import fail_tls, tls_client_options

if TYPE_CHECKING:
    import p9


@click.group()
def conformance() -> None:
    """Filesystem conformance: where does a filesystem depart from Linux?"""


@conformance.command("run")
@click.option("--target", "targets", multiple=True, metavar="T",
              help="dir:PATH, 9p:tcp:HOST:PORT,aname=NAME, 9p:unix:PATH,aname=NAME, "
                   "9p:tls:HOST:PORT,aname=NAME (with --tls-*), vfs:tmpfs, vfs:overlay, "
                   "vfs:gofer, sandbox:tmpfs|root|volume, sandbox:9p:ADDRESS,aname=NAME "
                   "(inside runpsc do) (repeatable)")
@click.option("--cases", "patterns", multiple=True, metavar="PATTERN",
              help="only cases whose id matches this glob or contains it (repeatable)")
@click.option("--json", "json_path", metavar="FILE", help="also write the matrix as JSON")
@click.option("--report-only", is_flag=True, help="exit 0 even when a target differs")
@click.option("--differences", is_flag=True, help="print only rows where something differs")
@click.option("--oracle-dir", metavar="DIR", help="where the oracle's temporary directory goes")
@tls_client_options
def run(targets: tuple[str, ...], patterns: tuple[str, ...], json_path: str | None,
        report_only: bool, differences: bool, oracle_dir: str | None,
        tls: p9.TLSClientConfig | None) -> None:
    """Run the suite on the oracle (a fresh host directory) and on each target; print the
    matrix. Exit status 1 when a target differs from the oracle (unless --report-only), 2
    when a tls: target's TLS connection fails (one line naming the cause)."""
    import p9
    from conformance.suite import run_matrix
    from conformance.target_specs import TargetSpecError

    try:
        matrix = trio.run(lambda: run_matrix(targets, patterns=patterns or None,
                                             oracle_base=oracle_dir, tls=tls))
    except p9.TLSError as e:
        fail_tls("runpsc conformance", e)
    except (TargetSpecError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from e
    sys.stdout.write(matrix.text(only_differences=differences))
    if json_path:
        matrix.dump_json(json_path)
    if matrix.failed() and not report_only:
        sys.exit(1)


@conformance.command("list")
@click.option("--cases", "patterns", multiple=True, metavar="PATTERN")
def list_cases(patterns: tuple[str, ...]) -> None:
    """List the cases with their one-line description."""
    from conformance.runner import select

    for c in select(patterns or None):
        needs = f" [needs {', '.join(sorted(c.needs))}]" if c.needs else ""
        click.echo(f"{c.id}: {c.doc}{needs}")
