"""`runpsc do -- CMD ARGS`: run one command in a fresh sandbox over the host's root.

Like gVisor's `runsc do`: no configuration; the host's `/` (its /tmp included) is served
read-only by a gofer under a writable in-memory overlay, the command starts in the caller's working directory
with the caller's environment, and its exit status is runpsc's.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from runtime.tlsopts import TLS_EXIT, tls_client_options

if TYPE_CHECKING:
    import p9


@click.command("do", context_settings={"ignore_unknown_options": False})
@click.option("--cwd", metavar="DIR", help="Working directory in the sandbox (default: the "
              "caller's).")
@click.option("--env", "envs", multiple=True, metavar="K=V",
              help="Set an environment variable (repeatable; added to the caller's).")
@click.option("--volume", "volumes", multiple=True, metavar="HOST:SANDBOX[:ro][,exclusive]",
              help="Mount host directory HOST at SANDBOX, writable unless :ro (repeatable); "
                   "exclusive: nothing else changes it meanwhile, so it is cached like the "
                   "root (default: every lookup asks the host again).")
@click.option("--mount", "mounts", multiple=True,
              metavar="9p:ADDRESS,aname=NAME[,ro][,cache=POLICY][,reconnect=SECONDS][,timeout=SECONDS]:SANDBOX",
              help="Mount the export NAME of a running gofer at ADDRESS (unix:PATH, "
                   "tcp:HOST:PORT, tls:HOST:PORT with --tls-*) at SANDBOX (repeatable). "
                   "cache=exclusive (only this sandbox changes the files), revalidating "
                   "(default: re-checked on open and after a second) or none. "
                   "reconnect: how long a lost connection is retried while operations wait "
                   "(default 30; then EIO; 0: EIO at once). timeout: how long a reply may stay "
                   "unfinished, or a request unacknowledged over TCP, before the connection "
                   "counts as lost (default 30).")
@click.option("--root", "root",
              metavar="9p:ADDRESS,aname=NAME[,cache=POLICY][,reconnect=SECONDS][,timeout=SECONDS]",
              help="Take the sandbox's root (under the in-memory overlay, as the host's / is "
                   "by default) from export NAME of a running gofer at ADDRESS.")
@tls_client_options
@click.option("--strace", is_flag=True, help="Print every syscall of the program to stderr.")
@click.option("--no-confine", "no_confine", is_flag=True,
              help="Debugging only, UNSAFE: the Sentry keeps the caller's view of the host "
                   "(its filesystem, capabilities, namespaces) instead of locking itself in.")
@click.option("--memory", metavar="SIZE", help="The sandbox's memory limit, e.g. 512M, 2G "
              "(default: the host's): tmpfs files, writes to /, and the memory its processes "
              "map count against it (ENOSPC, ENOMEM beyond); /proc/meminfo's MemTotal.")
@click.option("--network", type=click.Choice(["none", "host", "sandbox"]), default="none",
              show_default=True, help="none: only loopback; host: the host's interfaces; "
              "sandbox: own namespace with outbound NAT (slirp4netns). Needs root.")
@click.option("--publish", "publish", multiple=True, metavar="HOSTPORT:PORT[/tcp|udp]",
              help="Forward a host port to a sandbox port (--network sandbox; repeatable).")
@click.option("--tmpfs", "tmpfs", multiple=True, metavar="PATH",
              help="Mount a private, empty tmpfs at PATH instead of the host's directory "
              "(e.g. --tmpfs /tmp; repeatable).")
@click.option("--platform", type=click.Choice(["ptrace", "seccomp"]), default=None,
              help="How application code runs: ptrace (a ptrace stop per syscall) or "
              "seccomp (most syscalls as seccomp user notifications, no stop). Default: "
              "$RUNPSC_PLATFORM, else seccomp where the host supports it (Linux 5.19), "
              "else ptrace.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def do(cwd: str | None, envs: tuple[str, ...], volumes: tuple[str, ...], strace: bool,
       memory: str | None, network: str, publish: tuple[str, ...], tmpfs: tuple[str, ...],
       command: tuple[str, ...], mounts: tuple[str, ...] = (), root: str | None = None,
       tls: p9.TLSClientConfig | None = None, no_confine: bool = False,
       platform: str | None = None) -> None:
    """Run COMMAND in a sandbox; exits with its status (128+N if killed by signal N)."""
    from runtime.startup import Startup

    # Start-up is nearly all imports: runtime.startup holds them and what makes them cheap.
    startup = Startup.from_env()
    startup.begin()
    startup.import_before_fork()
    import trio

    import p9
    from runtime.sandbox import (
        Mount,
        Publish,
        Sandbox,
        SandboxConfig,
        SandboxError,
        Volume,
        check_tmpfs_path,
        env_of,
        parse_size,
    )

    try:
        config = SandboxConfig(
            argv=list(command),
            env=env_of(envs),
            cwd=cwd,
            volumes=[Volume.parse(v) for v in volumes],
            mounts=[Mount.parse(m) for m in mounts],
            root=None if root is None else Mount.parse(f"{root}:/"),
            tls=tls,
            strace=strace,
            memory=None if memory is None else parse_size(memory),
            network=network,
            publish=[Publish.parse(p) for p in publish],
            tmpfs=[check_tmpfs_path(p) for p in tmpfs],
            platform=platform,
        )
        if config.publish and network != "sandbox":
            raise ValueError("--publish needs --network sandbox")
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    host_tty = None
    events_to = None
    if os.isatty(0):
        from runtime.hostterm import HostTerminal

        # Raw mode and its guardian before the gofers fork: neither holds the other's fds.
        host_tty = HostTerminal.enter(0)
        if os.isatty(2):  # the Sentry's own messages on a raw terminal: lines end in CR LF
            events_to = open(os.dup(2), "w", newline="\r\n", buffering=1)
    sandbox = Sandbox(config, confine=not no_confine, events_to=events_to)
    startup.before_fork()
    # The gofers confine themselves and serve while this process imports the Sentry.
    sandbox.start_gofers(fork=True)
    try:
        try:
            startup.import_sentry(strace=strace)
            code = trio.run(sandbox.run)
        finally:
            sandbox.close()
            if host_tty is not None:
                host_tty.leave()  # before any message below: the terminal is the caller's
    except KeyboardInterrupt:
        sys.exit(128 + 2)  # what a shell reports for a program stopped by ^C (SIGINT)
    except SandboxError as e:
        click.echo(f"runpsc: {e}", err=True)
        sys.exit(e.code)
    except p9.TLSError as e:
        click.echo(f"runpsc: {e}", err=True)
        sys.exit(TLS_EXIT)
    except OSError as e:
        click.echo(f"runpsc: {command[0]}: {e.strerror or e}", err=True)
        sys.exit(127 if e.errno == 2 else 126)
    startup.exit(code)
