"""The `runpsc` command line.

Each subcommand lives in its own `runtime/cmd_*.py` module and is imported only when it is
invoked, so that `runpsc do /bin/true` does not pay for importing the FUSE, conformance or
OCI machinery. Register a subcommand by adding one line to `COMMANDS`.
"""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command or group.
COMMANDS: dict[str, str] = {
    "conformance": "runtime.cmd_conformance:conformance",
    "mount": "runtime.cmd_mount:mount",
    "help": "runtime.cmd_help:help_group",
    "do": "runtime.cmd_do:do",
    "gofer": "runtime.cmd_gofer:gofer",
    # runc's command line (the OCI runtime), runtime/oci/commands.py
    **{name: f"runtime.oci.commands:{attr}" for name, attr in (
        ("create", "create"), ("start", "start"), ("run", "run"), ("state", "state"),
        ("kill", "kill"), ("delete", "delete"), ("exec", "exec_"), ("ps", "ps"),
        ("list", "list_"), ("spec", "spec"), ("features", "features"), ("pause", "pause"),
        ("resume", "resume"), ("events", "events"), ("update", "update"))},
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attr = target.partition(":")
        return getattr(importlib.import_module(module_name), attr)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """--version in runc's shape (a shim or a tool may read its lines): the version, the
    build (the package's version: no commit is recorded at install), the OCI runtime spec
    version and the language runtime's."""
    if not value or ctx.resilient_parsing:
        return
    import platform
    from importlib.metadata import version

    from runtime.oci.spec import OCI_VERSION

    v = version("runpsc")
    click.echo(f"runpsc version {v}\ncommit: {v}\nspec: {OCI_VERSION}\n"
               f"python: {platform.python_version()}")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Show the version and exit.")
@click.option("--root", default="/run/runpsc", show_default=True, metavar="DIR",
              help="OCI commands: where containers' state lives.")
@click.option("--log", metavar="FILE", help="OCI commands: write errors to FILE.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              help="OCI commands: the format of --log.")
@click.option("--debug", is_flag=True, help="Say on stderr what the sandbox does without for "
              "want of the host's support (e.g. a subordinate id for a rootless Sentry).")
@click.option("--systemd-cgroup", is_flag=True, help="OCI commands: a slice:prefix:name cgroupsPath names the scope's directory (no unit is made).")
def cli(root: str, log: str | None, log_format: str, debug: bool, systemd_cgroup: bool) -> None:
    """runpsc: a user-space kernel sandbox in Python, in the spirit of gVisor.

    The global options are runc's, for the OCI commands (create, start, state, kill,
    delete, run, exec, ps, list, pause, resume, events, update, spec, features); see
    docs/oci.md.
    """
    if debug:
        import logging

        ours = logging.getLogger("runtime")  # ours only, not the libraries' debug lines
        ours.setLevel(logging.DEBUG)
        ours.addHandler(logging.StreamHandler())


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
