"""`runpsc do -- CMD ARGS`: run one command in a fresh sandbox over the host's root.

Like gVisor's `runsc do`: no configuration; the host's `/` is served read-only by a gofer
under a writable in-memory overlay, the command starts in the caller's working directory
with the caller's environment, and its exit status is runpsc's.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator

import click


@click.command("do", context_settings={"ignore_unknown_options": False})
@click.option("--cwd", metavar="DIR", help="Working directory in the sandbox (default: the "
              "caller's).")
@click.option("--env", "envs", multiple=True, metavar="K=V",
              help="Set an environment variable (repeatable; added to the caller's).")
@click.option("--volume", "volumes", multiple=True, metavar="HOST:SANDBOX[:ro]",
              help="Mount host directory HOST at SANDBOX, writable unless :ro (repeatable).")
@click.option("--strace", is_flag=True, help="Print every syscall of the program to stderr.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def do(cwd: str | None, envs: tuple[str, ...], volumes: tuple[str, ...], strace: bool,
       command: tuple[str, ...]) -> None:
    """Run COMMAND in a sandbox; exits with its status (128+N if killed by signal N)."""
    # Start-up is mostly imports, which allocate many objects and no garbage worth a
    # collection: the collector is off until the Sentry is imported, and what exists then is
    # frozen out of later collections (forked gofers turn it back on: _gofer_main).
    gc.disable()
    from runtime.sandbox import (
        Sandbox,
        SandboxConfig,
        SandboxError,
        Volume,
        env_of,
        import_sentry,
    )

    try:
        config = SandboxConfig(
            argv=list(command),
            env=env_of(envs),
            cwd=cwd,
            volumes=[Volume.parse(v) for v in volumes],
            strace=strace,
        )
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    # trio, p9 and python-ptrace's syscall tables (the gofer's seccomp filter, the Sentry's
    # platform) serve both the gofers and the Sentry: import them once, then fork the gofers,
    # which confine themselves and serve while this process imports the Sentry.
    with _glibc_sonames():
        import ptrace.syscall.linux.x86_64  # noqa: F401
        import trio

        import p9  # noqa: F401

    sandbox = Sandbox(config, confine=True)
    # Everything allocated so far is still in the young generation (the collector is off):
    # freeze it, or the gofer's first collection walks all of it, copying every page.
    gc.freeze()
    sandbox.start_gofers(fork=True)
    try:
        with _glibc_sonames():
            import_sentry()
        gc.freeze()
        gc.enable()
        code = trio.run(sandbox.run)
    except KeyboardInterrupt:
        sys.exit(128 + 2)  # what a shell reports for a program stopped by ^C (SIGINT)
    except SandboxError as e:
        click.echo(f"runpsc: {e}", err=True)
        sys.exit(e.code)
    except OSError as e:
        click.echo(f"runpsc: {command[0]}: {e.strerror or e}", err=True)
        sys.exit(127 if e.errno == 2 else 126)
    finally:
        sandbox.close()
    _exit_now(code)


#: glibc's sonames on Linux (x86_64, the only platform runpsc supports) of what trio,
#: python-ptrace and the Sentry look up by name.
_GLIBC_SONAMES = {"c": "libc.so.6", "pthread": "libpthread.so.0"}


@contextlib.contextmanager
def _glibc_sonames() -> Iterator[None]:
    """While importing, answer ctypes.util.find_library for libc and libpthread directly.

    Why: trio (thread names), python-ptrace and the Sentry's platform look these up by name
    when imported, and on Linux each find_library runs `ldconfig -p` in a child process (a
    fork of this already large process, on the critical path). Under glibc the answers are
    fixed sonames; other names, and other C libraries, are looked up as before.
    """
    import ctypes.util
    import os

    try:
        glibc = (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        glibc = False
    if not glibc:
        yield
        return
    original = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        return _GLIBC_SONAMES.get(name) or original(name)

    ctypes.util.find_library = find_library
    try:
        yield
    finally:
        ctypes.util.find_library = original


def _exit_now(code: int) -> None:
    """Exit with `code` without tearing the interpreter down.

    Why: by now the gofers are stopped and the program's output went straight to the host's
    descriptors; what is left is unloading a few hundred modules and freeing every object,
    10-20 ms of every `runpsc do` that nobody can observe. Exit handlers still run and
    Python's buffered stdout and stderr are flushed first.
    """
    import atexit
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)
