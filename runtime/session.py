"""A sandbox that outlives one program: the Python API's engine, on trio, in this process.

`open_sandbox()` boots one sandbox (its gofers, the mount namespace with the root overlay and
the volumes, the network, one Kernel: `runtime.sandbox.Sandbox.boot`) and keeps it for
several `exec`, `write_file` and `read_file` calls, so what one program writes the next one
reads. Each `exec` runs a program to completion, as `runpsc do` does, with stdin, stdout
and stderr in memory files (memfds): nothing to pump, no pipe to fill up.

Why in this process: trio users await it like any other I/O. The Kernel must run on the
main thread (it receives SIGCHLD with trio's signal receiver, and ptrace answers only the
tracing thread); the synchronous `runtime.api` runs the same engine in a process of its own
(`runtime.worker`), so it works from any thread.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import subprocess
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runtime.network import Publish
from runtime.sandbox import (
    Mount,
    Sandbox,
    SandboxConfig,
    SandboxError,
    Volume,
    check_tmpfs_path,
    parse_size,
)

if TYPE_CHECKING:
    import p9

__all__ = ["AsyncSandbox", "DEFAULT_PATH", "MountSpec", "Stdio", "open_sandbox",
           "sandbox_config"]

#: The sandbox's PATH unless `env` gives one (Debian's root PATH).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: A mount: a host directory (`Volume`, or ``HOST:SANDBOX[:ro]``) or a running gofer's
#: export reached by address (`Mount`, or ``9p:ADDRESS,aname=NAME[,ro][,cache=POLICY]:SANDBOX``).
MountSpec = Volume | Mount | str
#: The network modes (`runtime.network`): only loopback, the host's, or NAT.
NETWORK_MODES = ("none", "host", "sandbox")
#: The Sentry's platforms (sentry.kernel.platforms.PLATFORMS; not imported here, where
#: the API's caller would pay for the Sentry's imports).
PLATFORMS = ("ptrace", "seccomp")


def sandbox_config(*, mounts: Iterable[MountSpec] = (), network: str = "none",
                   memory: int | str | None = None, env: Mapping[str, str] | None = None,
                   cwd: str | None = None, tmpfs: Iterable[str] = (),
                   tls: p9.TLSClientConfig | Mapping[str, Any] | None = None,
                   platform: str | None = None,
                   publish: Iterable[Publish | str] = ()) -> SandboxConfig:
    """The `SandboxConfig` of an API sandbox (its programs come with each exec).

    `tls`: the client certificate, key and CA for `tls:` mounts (a `p9.TLSClientConfig` or
    its fields as a mapping).

    `platform`: ``ptrace`` or ``seccomp`` (None: $RUNPSC_PLATFORM of the Sentry's process,
    else ptrace).

    The environment is ``PATH`` (`DEFAULT_PATH`) updated with `env`: nothing of the
    caller's leaks in. `cwd` is where programs start unless an exec says otherwise (``/``).

    `publish`: host ports forwarded to sandbox ports (`Publish`, or its text
    ``HOSTPORT:SANDBOXPORT[/tcp|udp]``), ``sandbox`` network only.

    Raises:
        ValueError: a malformed mount, memory size, tmpfs path, network mode or port.
    """
    if network not in NETWORK_MODES:
        raise ValueError(f"network {network!r}: one of {', '.join(NETWORK_MODES)}")
    ports = [p if isinstance(p, Publish) else Publish.parse(p) for p in publish]
    if ports and network != "sandbox":
        raise ValueError("publish needs network=\"sandbox\"")
    if cwd is not None and not cwd.startswith("/"):
        raise ValueError(f"cwd {cwd!r}: must be absolute")
    if platform not in (None, *PLATFORMS):
        raise ValueError(f"platform {platform!r}: one of {', '.join(PLATFORMS)}")
    import p9

    volumes: list[Volume] = []
    remote: list[Mount] = []
    for m in mounts:
        if isinstance(m, str):
            m = Mount.parse(m) if m.startswith("9p:") else Volume.parse(m)
        if isinstance(m, Mount):
            remote.append(m)
        else:
            volumes.append(m)
    if tls is not None and not isinstance(tls, p9.TLSClientConfig):
        tls = p9.TLSClientConfig(**tls)  # the worker's JSON form of the same fields
    return SandboxConfig(
        argv=[],
        env={"PATH": DEFAULT_PATH, **(env or {})},
        cwd=cwd or "/",
        volumes=volumes,
        mounts=remote,
        tls=tls,
        memory=parse_size(memory) if isinstance(memory, str) else memory,
        network=network,
        publish=ports,
        tmpfs=[check_tmpfs_path(p) for p in tmpfs],
        terminal=False,
        platform=platform,
    )


class Stdio:
    """An exec's stdin, stdout and stderr as memory files (memfds), closed on exit.

    Why memfds rather than pipes: the program may write any amount before anyone reads,
    with no task pumping a pipe, and the same three descriptors pass to a worker process.
    """

    def __init__(self, stdin: bytes | None = None) -> None:
        self.fds: list[int] = []
        try:
            for name in ("stdin", "stdout", "stderr"):
                self.fds.append(os.memfd_create(f"runpsc-{name}", os.MFD_CLOEXEC))
            if stdin:
                view = memoryview(stdin)
                while view:
                    view = view[os.write(self.fds[0], view):]
                os.lseek(self.fds[0], 0, os.SEEK_SET)
        except BaseException:
            self.close()
            raise

    def output(self) -> tuple[bytes, bytes]:
        """What the program wrote to stdout and stderr."""
        return read_all(self.fds[1]), read_all(self.fds[2])

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def __enter__(self) -> Stdio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_all(fd: int) -> bytes:
    """The whole content of the regular file `fd`, from offset 0."""
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


class AsyncSandbox:
    """One booted sandbox; programs run in it one after the other (a second `exec` while
    one runs raises SandboxError), files can be read and written at any time.

    Make it with `open_sandbox()` (which closes it), not directly. Everything is awaited on
    the main thread of the trio run that booted it.
    """

    def __init__(self, engine: Sandbox, stack: contextlib.AsyncExitStack, vfs: Any) -> None:
        self.engine = engine
        self._stack: contextlib.AsyncExitStack | None = stack
        self._vfs = vfs
        self._creds = engine.caller
        self._busy = False
        #: Why the sandbox is closed (None while it is open).
        self.closed: str | None = None

    @classmethod
    async def boot(cls, engine: Sandbox) -> AsyncSandbox:
        """Start `engine`'s gofers (if not yet) and boot it; on failure nothing is left."""
        stack = contextlib.AsyncExitStack()
        try:
            engine.start_gofers()
            vfs, _ = await engine.boot(stack)
        except BaseException:
            try:
                await stack.aclose()  # not in a cancel scope of its own: it holds nurseries
            finally:
                engine.close()
            raise
        return cls(engine, stack, vfs)

    def helper_pids(self) -> list[int]:
        """The host processes serving this sandbox besides the Sentry: gofers, slirp4netns."""
        pids = [g.proc.pid for g in self.engine.gofers]
        net = self.engine.net
        if net is not None and net.slirp is not None:
            pids.append(net.slirp.pid)
        return pids

    async def exec(self, argv: Sequence[str | bytes | os.PathLike[str]], *,
                   env: Mapping[str, str] | None = None, cwd: str | None = None,
                   stdin: bytes | None = None, timeout: float | None = None,
                   check: bool = False) -> subprocess.CompletedProcess[bytes]:
        """Run `argv` in the sandbox to completion, as subprocess.run with captured output.

        `env` is added to the sandbox's environment; `cwd` (default: the sandbox's) must
        exist in the sandbox; `stdin` is the program's whole input (default: empty).
        Returns a CompletedProcess (returncode -N for a program killed by signal N, as
        subprocess gives).

        Raises:
            subprocess.TimeoutExpired: `timeout` seconds passed; the whole sandbox (every
                process, the gofers) is then gone and this object closed.
            subprocess.CalledProcessError: `check` and a non-zero returncode.
            SandboxError: the program could not start (`.code` 127: not found, 126: not
                executable, 125: no such cwd), or the sandbox is closed.
        """
        args = [os.fsdecode(a) for a in argv]
        with Stdio(stdin) as io:
            try:
                code = await self.run_fds(args, io.fds, env=env, cwd=cwd, timeout=timeout)
            except _TimedOut:
                out, err = io.output()
                raise subprocess.TimeoutExpired(args, timeout or 0, out, err) from None
            out, err = io.output()
        result = subprocess.CompletedProcess(args, code, out, err)
        if check:
            result.check_returncode()
        return result

    async def run_fds(self, argv: Sequence[str], stdio: Sequence[int], *,
                      env: Mapping[str, str] | None = None, cwd: str | None = None,
                      timeout: float | None = None) -> int:
        """`exec` with the program's fds 0, 1, 2 given (host fds, duplicated); returns its
        returncode as subprocess reports it (-N: killed by signal N). Raises `_TimedOut`
        after ending the sandbox."""
        import trio

        from sentry.kernel.fdtable import FDTable
        from vfs.fs.host import HostFD

        if not argv:
            raise ValueError("argv is empty")
        self._check_open()
        if self._busy:
            raise SandboxError("the sandbox runs one program at a time")
        self._busy = True
        try:
            engine, vfs, creds = self.engine, self._vfs, self._creds
            environ = {**engine.config.env, **(env or {})}
            ctx = await self._context(cwd)
            path = await engine._find_program(vfs, ctx, creds, os.fsencode(argv[0]),
                                              environ.get("PATH"))
            fdtable = FDTable()
            for fd in stdio:
                fdtable.install(HostFD(fd))
            kernel = engine.kernel
            with trio.move_on_after(math.inf if timeout is None else timeout) as scope:
                try:
                    status = await kernel.run([os.fsencode(a) for a in argv],
                                              [os.fsencode(f"{k}={v}")
                                               for k, v in environ.items()],
                                              fdtable, ctx, creds, path=path)
                except OSError as e:  # ENOENT, EACCES, ENOEXEC before anything ran
                    code = 127 if e.errno == errno.ENOENT else 126
                    raise SandboxError(f"{argv[0]}: {os.strerror(e.errno or errno.EIO)}",
                                       code=code) from None
                finally:
                    with trio.CancelScope(shield=True):
                        await kernel.close_files(1, fdtable.close_all())
        finally:
            self._busy = False
        if scope.cancelled_caught:
            self.kill(f"timed out after {timeout} s")
            raise _TimedOut
        return os.waitstatus_to_exitcode(status)

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        """Create or replace the file `path` (relative: to the sandbox's cwd) with `data`.

        Raises:
            OSError: as open(2) or write(2) in the sandbox would (ENOENT for a missing
                directory, EROFS on a read-only mount ...).
        """
        from vfs.abi import O_CREAT, O_TRUNC, O_WRONLY

        self._check_open()
        ctx = await self._context(None)
        f = await self._open(ctx, path, O_WRONLY | O_CREAT | O_TRUNC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[await f.write(bytes(view[:1 << 20])):]
        finally:
            await f.dec_ref()

    async def read_file(self, path: str) -> bytes:
        """The content of the file `path` in the sandbox (relative: to its cwd).

        Raises:
            OSError: as open(2) or read(2) in the sandbox would.
        """
        from vfs.abi import O_RDONLY

        self._check_open()
        ctx = await self._context(None)
        f = await self._open(ctx, path, O_RDONLY, 0)
        try:
            chunks = []
            while chunk := await f.read(1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            await f.dec_ref()

    def kill(self, reason: str) -> None:
        """End the sandbox now, wherever the caller is: its programs are already gone (a
        Kernel.run ended), the gofers and the network stop; the 9P sessions, whose peers
        are then gone, are closed by `aclose`."""
        if self.closed is None:
            self.closed = reason
        self.engine.close()

    async def aclose(self) -> None:
        """End the sandbox: its 9P sessions, gofers and network (idempotent). `open_sandbox`
        calls it where the sandbox was booted, which is where it must be called (the 9P
        sessions hold nurseries, so not inside a cancel scope opened since); if cancelled,
        the gofers and the network are stopped all the same."""
        if self.closed is None:
            self.closed = "closed"
        stack, self._stack = self._stack, None
        try:
            if stack is not None:
                await stack.aclose()
        finally:
            self.engine.close()

    async def _context(self, cwd: str | None) -> Any:
        """A fresh FSContext at `cwd` (default: the sandbox's), umask 022."""
        want = cwd or self.engine.config.cwd or "/"
        ctx = self._vfs.new_context()
        ctx.umask = 0o022
        try:
            await self._vfs.chdir(ctx, self._creds, None, os.fsencode(want))
        except OSError as e:
            raise SandboxError(f"cwd {want!r}: {os.strerror(e.errno or errno.ENOENT)}") from None
        return ctx

    async def _open(self, ctx: Any, path: str, flags: int, mode: int) -> Any:
        try:
            return await self._vfs.open(ctx, self._creds, None, os.fsencode(path), flags, mode)
        except OSError as e:
            raise OSError(e.errno, os.strerror(e.errno or errno.EIO), path) from None

    def _check_open(self) -> None:
        if self.closed is not None:
            raise SandboxError(f"the sandbox is closed ({self.closed})")


class _TimedOut(Exception):
    """run_fds: the program ran out of time (the sandbox is closed)."""


@contextlib.asynccontextmanager
async def open_sandbox(*, mounts: Iterable[MountSpec] = (), network: str = "none",
                       memory: int | str | None = None, env: Mapping[str, str] | None = None,
                       cwd: str | None = None, tmpfs: Iterable[str] = (),
                       tls: p9.TLSClientConfig | None = None,
                       publish: Iterable[Publish | str] = ()) -> AsyncIterator[AsyncSandbox]:
    """Boot a sandbox for the block and close it after, whatever happens in the block.

    `mounts`: host directories (`Volume` or ``HOST:SANDBOX[:ro]``) and running gofers'
    exports (`Mount` or ``9p:ADDRESS,...``, TLS material in `tls`); `network`: ``none``
    (only loopback), ``host`` or ``sandbox`` (NAT; needs slirp4netns); `memory`: bytes or
    ``512M``: the sandbox's memory (/proc/meminfo); `env`: added to ``PATH``; `cwd`: where
    programs start (``/``); `tmpfs`: paths that get a private empty tmpfs; `publish`:
    host ports forwarded to the sandbox's (``HOSTPORT:SANDBOXPORT[/udp]``, ``sandbox``
    network only).

    Raises:
        ValueError: a malformed argument.
        SandboxError: the sandbox could not boot (e.g. the network needs root).
    """
    sb = await AsyncSandbox.boot(Sandbox(sandbox_config(
        mounts=mounts, network=network, memory=memory, env=env, cwd=cwd, tmpfs=tmpfs,
        tls=tls, publish=publish)))
    try:
        yield sb
    finally:
        await sb.aclose()

