"""Sandboxes: the process topology of `runpsc do` and the Python API behind it.

A sandbox is one Gofer process per filesystem source (the host's `/` read-only, plus one per
--volume) and a Sentry (this process) that connects to each gofer over a socketpair, builds
the sandbox's mount namespace from them and runs the program:

    /       overlay: an in-memory tmpfs upper over the host's / (goferfs, read-only lower),
            the host's /tmp included (so the caller's working directory there is visible)
    /dev    devfs          /proc   procfs         /sys   sysfs
    VOLUME  goferfs of the volume's own gofer (read-write unless :ro)
    MOUNT   goferfs of a running gofer reached by address (unix:, tcp:, tls:), --mount
    TMPFS   a private empty tmpfs at each path of `SandboxConfig.tmpfs` (--tmpfs)

Why this shape: the program can write anywhere, and nothing reaches the host except through
a writable volume; the only host files the Sentry ever sees arrive over 9P from a confined
gofer. stdin, stdout and stderr are the caller's (vfs host-fd files), so pipelines and
terminals behave as they do natively.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import stat as _st
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runtime.hostdial import HostDialer
from runtime.network import NetworkSetup, Publish

if TYPE_CHECKING:
    import p9
    from sentry.platform.zygote import Zygote

__all__ = ["Volume", "Mount", "SandboxConfig", "Sandbox", "GoferProcess", "exit_code",
           "Publish"]


@dataclass(frozen=True, slots=True)
class Volume:
    """A host directory made visible in the sandbox at `sandbox` (writable unless readonly)."""

    host: str
    sandbox: str
    readonly: bool = False
    #: The sandbox owns the directory while it runs (nothing else changes it): its names,
    #: attributes and data are cached until the sandbox changes them, as on the root's
    #: lower layer; otherwise (shared) every lookup and stat asks the host again.
    exclusive: bool = False

    @classmethod
    def parse(cls, spec: str) -> Volume:
        """`HOST:SANDBOX[:OPTIONS]`, OPTIONS comma-separated from `ro`, `rw` and
        `exclusive`; both paths absolute after expanding HOST.

        Raises:
            ValueError: a malformed spec, a relative sandbox path, or a missing host directory.
        """
        parts = spec.split(":")
        readonly = exclusive = False
        if len(parts) == 3:
            opts = parts[2].split(",")
            if not opts or not set(opts) <= {"ro", "rw", "exclusive"} or {"ro", "rw"} <= set(opts):
                raise ValueError(f"volume {spec!r}: options are ro or rw, and exclusive")
            readonly = "ro" in opts
            exclusive = "exclusive" in opts
            parts = parts[:2]
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ValueError(f"volume {spec!r} is not HOST:SANDBOX[:ro][,exclusive]")
        host = os.path.abspath(os.path.expanduser(parts[0]))
        target = parts[1]
        if not target.startswith("/"):
            raise ValueError(f"volume {spec!r}: the sandbox path must be absolute")
        if not os.path.isdir(host):
            raise ValueError(f"volume {spec!r}: {host!r} is not a directory")
        return cls(host, os.path.normpath(target), readonly, exclusive)


#: `cache=` of a --mount → goferfs's policy (vfs/fs/goferfs/filesystem.py says what each keeps).
CACHE_POLICIES = {"exclusive": "exclusive", "revalidating": "revalidating", "none": "shared"}
#: A remote export may change under the sandbox: re-checked on open by default.
DEFAULT_CACHE = "revalidating"
#: Seconds a remote mount's lost connection may take to come back (the gofer restarted,
#: the link cut) before its operations fail with EIO; `reconnect=` per mount, 0: at once.
DEFAULT_RECONNECT = 30.0
#: Seconds a remote mount's server may leave a reply unfinished, or its link leave a request
#: unacknowledged, before the connection counts as lost; `timeout=` per mount.
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Mount:
    """A running gofer's export, reached by address, mounted at `sandbox`.

    Attributes:
        address: `unix:PATH`, `tcp:HOST:PORT` or `tls:HOST:PORT` (TLS material:
            `SandboxConfig.tls`).
        aname: the export to attach.
        sandbox: the absolute path in the sandbox.
        readonly: mounted read-only (the gofer may still allow writes to others).
        cache: "exclusive" (only this sandbox changes the files: everything cached),
            "revalidating" (cached, re-checked on open and after a second), "none" (every
            lookup, stat, read and write asks the server).
        reconnect: seconds a lost connection is retried (with backoff) while the mount's
            operations wait; the gofer back within them, nothing is lost; after them,
            EIO. 0: EIO at once.
        timeout: seconds a reply may stay unfinished, or (TCP) a request unacknowledged by
            the gofer's host, before the connection counts as lost (a dark link: then
            reconnect as above). 0: the kernel's TCP defaults (~15 minutes).
    """

    address: str
    aname: str
    sandbox: str
    readonly: bool = False
    cache: str = DEFAULT_CACHE
    reconnect: float = DEFAULT_RECONNECT
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def parse(cls, spec: str) -> Mount:
        """`9p:ADDRESS,aname=NAME[,ro][,cache=POLICY][,reconnect=SECONDS][,timeout=SECONDS]:SANDBOX_PATH`.

        Raises:
            ValueError: a malformed spec, an unknown option or policy, a relative path.
        """
        import p9

        body, sep, target = spec.rpartition(":")
        kind, _, rest = body.partition(":")
        if kind != "9p" or not sep or not rest:
            raise ValueError(f"mount {spec!r} is not 9p:ADDRESS,aname=NAME[,ro]"
                             "[,cache=POLICY]:SANDBOX_PATH")
        address, *opts = rest.split(",")
        p9.parse_address(address)
        aname: str | None = None
        readonly, cache, reconnect, timeout = False, DEFAULT_CACHE, DEFAULT_RECONNECT, DEFAULT_TIMEOUT
        for opt in opts:
            key, eq, value = opt.partition("=")
            if key == "aname" and eq:
                aname = value
            elif opt in ("ro", "rw"):
                readonly = opt == "ro"
            elif key == "cache" and value in CACHE_POLICIES:
                cache = value
            elif key == "reconnect" and _seconds(value) is not None:
                reconnect = _seconds(value) or 0.0
            elif key == "timeout" and _seconds(value) is not None:
                timeout = _seconds(value) or 0.0
            else:
                raise ValueError(f"mount {spec!r}: unknown option {opt!r} (aname=NAME, ro, rw, "
                                 f"cache={'|'.join(CACHE_POLICIES)}, reconnect=SECONDS, "
                                 "timeout=SECONDS)")
        if aname is None:
            raise ValueError(f"mount {spec!r}: aname=NAME is missing")
        if not target.startswith("/"):
            raise ValueError(f"mount {spec!r}: the sandbox path must be absolute")
        return cls(address, aname, os.path.normpath(target), readonly, cache, reconnect, timeout)

    def spec(self) -> str:
        """The text form `parse` reads."""
        return (f"9p:{self.address},aname={self.aname},{'ro' if self.readonly else 'rw'},"
                f"cache={self.cache},reconnect={self.reconnect:g},timeout={self.timeout:g}:{self.sandbox}")


def _seconds(text: str) -> float | None:
    """A non-negative, finite number of seconds, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 <= value < float("inf") else None


@dataclass(slots=True)
class SandboxConfig:
    """What to run and how.

    Attributes:
        argv: the command; argv[0] is searched in the sandbox's PATH if it has no slash.
        env: the environment (the caller's by default in `runpsc do`).
        cwd: the working directory in the sandbox (None: the caller's, or / if the sandbox
            does not have it).
        volumes: host directories to mount.
        mounts: running gofers' exports to mount by address (`Mount`).
        root: the lower layer of the root overlay from a running gofer (a `Mount` whose
            `sandbox` is "/") instead of the host's / served by a local gofer.
        tls: the client certificate, key and CA for `tls:` mounts.
        strace: print every syscall to `strace_to`.
        umask: the program's umask (None: the caller's).
        memory: the sandbox's memory limit in bytes (None: the host's): /proc/meminfo's
            MemTotal, and what its tmpfs files, root overlay writes, System V segments and
            processes' committed memory may use together (ENOSPC, ENOMEM beyond it; see
            sentry/README.md, "Memory limit").
        network: ``none`` (only ``lo``), ``host`` (the host's interfaces) or ``sandbox``
            (its own namespace with outbound NAT through slirp4netns); see runtime.network.
        publish: host ports forwarded to sandbox ports (``sandbox`` mode only).
        terminal: give the sandbox a pty of its own when one of stdin, stdout and stderr is
            a terminal (docs/terminals.md); False keeps every descriptor as the host's.
        tmpfs: absolute sandbox paths that get a private, empty tmpfs (mode 1777) instead
            of the host's directory seen through the overlay (``--tmpfs /tmp``).
        platform: how the Sentry runs application code, ``ptrace`` or ``seccomp``
            (None: $RUNPSC_PLATFORM, else seccomp where the host supports it, else
            ptrace; sentry/README.md, "The platform").
    """

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    volumes: list[Volume] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    root: Mount | None = None
    tls: p9.TLSClientConfig | None = None
    strace: bool = False
    umask: int | None = None
    memory: int | None = None
    network: str = "none"
    publish: list[Publish] = field(default_factory=list)
    terminal: bool = True
    tmpfs: list[str] = field(default_factory=list)
    platform: str | None = None


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal number."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 128 + (status & 0x7F)


class GoferProcess:
    """A `runpsc gofer serve` child exporting one host directory over a socketpair.

    The child serves the connected socket it inherits (``--listen fd:N``); our end is
    `sock`. `close()` ends the connection and the process.
    """

    def __init__(self, proc: subprocess.Popen, sock: socket.socket, directory: str) -> None:
        self.proc = proc
        self.sock = sock
        self.directory = directory
        # A second handle on the connection, which `close` shuts down: the gofer sees its
        # end and exits even while a 9P session still holds `sock`'s descriptor. A root
        # caller's confined Sentry may not signal its gofers (runtime/confine.py).
        self._conn = sock.dup()

    @classmethod
    def start(cls, directory: str, *, readonly: bool, submounts: bool = False,
              name: str = "root", fork: bool = False) -> GoferProcess:
        """Start a gofer exporting `directory` (as aname `name`).

        `fork=True` forks this interpreter instead of starting a new one (see `_fork_gofer`);
        only for a single-threaded process that no trio run has started in (the CLI).
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        opts = "ro" if readonly else "rw"
        if submounts:
            opts += ",submounts"
        export = f"{name}={directory}:{opts}"
        if fork and _can_fork():
            try:
                proc: Any = _fork_gofer(export, theirs.fileno())
            finally:
                theirs.close()
            return cls(proc, ours, directory)
        cmd = [
            sys.executable, "-m", "runtime.cli", "gofer", "serve",
            "--export", export,
            "--listen", f"fd:{theirs.fileno()}",
            "--idle-timeout", "0",
        ]
        try:
            # Its own session: a ^C at the terminal is the Sentry's business, not the
            # gofer's. If this process dies, the socket closes and the gofer exits.
            proc = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                    close_fds=True, start_new_session=True)
        finally:
            theirs.close()
        return cls(proc, ours, directory)

    def close(self) -> None:
        """Disconnect and stop the gofer (its connection shut down, SIGTERM, then SIGKILL if
        it lingers; the signals are refused to a root caller's confined Sentry, whose
        gofers end at their connection's end)."""
        for sock in (self._conn, self.sock):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    self.proc.kill()
                self.proc.wait()


def _can_fork() -> bool:
    """Forking is sound only while this process has one thread and no trio run."""
    import threading

    if threading.active_count() != 1:
        return False
    trio = sys.modules.get("trio")
    if trio is None:
        return True
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return True
    return False


class _ForkedGofer:
    """The part of `subprocess.Popen` that `GoferProcess` uses, for a forked child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        if timeout is not None and self.poll() is None:
            self._wait_exit(timeout)
        delay = 0.0005
        while self.poll() is None:
            if deadline is None:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"gofer pid {self.pid}", timeout or 0)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        assert self.returncode is not None
        return self.returncode

    def _wait_exit(self, timeout: float) -> None:
        """Sleep until the child exits or `timeout` passes, woken by its pidfd (the exit of
        `runpsc do` waits for its gofers: no polling delay added to it)."""
        import select

        try:
            fd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            return  # no pidfds (Linux < 5.3): wait() polls
        try:
            waiter = select.poll()
            waiter.register(fd, select.POLLIN)
            waiter.poll(max(0, int(timeout * 1000)))
        finally:
            os.close(fd)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _fork_gofer(export: str, fd: int) -> _ForkedGofer:
    """Fork a gofer serving `export` on the connected socket `fd`.

    Why fork rather than exec `runpsc gofer serve`: a new interpreter spends ~0.5 s importing
    trio, p9 and click before it serves, on the critical path of every `runpsc do`. A fork
    of the CLI before trio runs is the same program in the same state the exec'd one reaches:
    one thread, no event loop, nothing opened but what we pass. The child does exactly what
    `runpsc gofer serve --export EXPORT --listen fd:FD --idle-timeout 0` does: its own
    session, stdin from /dev/null, every other descriptor closed, then `gofer.serve.run`,
    which confines the process (mount namespace, capabilities, seccomp) before serving. It
    leaves with os._exit, so nothing of the parent (atexit handlers, buffered output, the
    click context) runs twice.
    """
    pid = os.fork()
    if pid:
        return _ForkedGofer(pid)
    code = 1
    try:
        os.setsid()
        with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
            comm.write("runpsc-gofer")  # what ps and top show, not a second "runpsc"
        null = os.open(os.devnull, os.O_RDONLY)
        if null != 0:
            os.dup2(null, 0)
            os.close(null)
        os.closerange(3, fd)
        os.closerange(fd + 1, 1 << 20)
        code = _gofer_main(export, fd)
    except BaseException as e:  # noqa: BLE001 - report and leave, whatever happened
        with contextlib.suppress(BaseException):
            print(f"runpsc gofer: {e!r}", file=sys.stderr, flush=True)
    finally:
        os._exit(code)


def _gofer_main(export: str, fd: int) -> int:
    """The body of `runpsc gofer serve` for one export on one inherited socket."""
    import gc
    import logging

    from runtime.startup import glibc_sonames

    with glibc_sonames():  # gofer.confine imports python-ptrace, which looks up libc
        import gofer.confine  # noqa: F401 - imported here, not later by `run` (outside this)
        from gofer.ident import IdentityPolicy
        from gofer.serve import GoferOptions, parse_export, parse_listen, run
    # What the parent deferred (runtime.startup.DEFERRABLE: TLS, DTLS, IDNA host names, a
    # debugger) stays deferred: a gofer serving one inherited socket uses none of it, and
    # loading it here (~20 ms) would make the Sentry wait for its gofer.
    gc.enable()  # a parent starting up may have turned it off (runpsc do); we serve for long
    logging.basicConfig(level=logging.WARNING)
    try:
        exports = [parse_export(export)]
        listens = [parse_listen(f"fd:{fd}")]
        policy = IdentityPolicy.build()
        run(exports, listens, policy=policy, options=GoferOptions(idle_timeout=None))
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError) as e:
        print(f"runpsc gofer: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


class Sandbox:
    """One sandbox: gofers, a mount namespace, a kernel, one program.

    Use `await Sandbox(config).run()`; it returns the program's exit code as a shell would
    report it (128 + signal for a killed program) and always stops its gofers. With
    `confine=True` (what `runpsc do` uses unless --no-confine) this process locks itself in
    once the gofers are connected and the network made (`runtime.confine`).
    """

    def __init__(self, config: SandboxConfig, *, stdio: Sequence[int] = (0, 1, 2),
                 events_to: Any = None, confine: bool = False) -> None:
        self.config = config
        self.confine = confine
        try:  # now: the confined Sentry's own working directory is its empty root's
            self.caller_cwd = os.getcwd()
        except OSError:
            self.caller_cwd = "/"
        self.stdio = list(stdio)
        self.events_to = events_to if events_to is not None else sys.stderr
        self.gofers: list[GoferProcess] = []
        self.kernel: Any = None
        self.procfs: Any = None
        self.sysfs: Any = None
        self.net: NetworkSetup | None = None
        self.devpts: Any = None
        self.devtty: Any = None
        self.memory: Any = None  # the sandbox's vfs.memlimit.MemoryLimit, made by run()
        #: The caller's credentials, what its programs run as by default (`boot` takes
        #: them before a root caller's confined Sentry leaves uid 0).
        self.caller: Any = None
        # Dials remote mounts' gofers again (reconnection) from the host's network
        # namespace once the Sentry has left it.
        self.dialer = HostDialer()

    def start_gofers(self, *, fork: bool = False) -> None:
        """Start the gofer processes now (they boot while this process imports the Sentry).

        `run` calls it if nobody did; `runpsc do` calls it first thing, because a gofer
        takes a few hundred milliseconds to start and the Sentry as long to import. With
        `fork=True` the gofers are forks of this process (no second interpreter start-up,
        trio and p9 already imported); only the CLI may ask, before trio runs.
        """
        if self.gofers:
            return
        try:
            if self.config.root is None:
                self.gofers.append(GoferProcess.start("/", readonly=True, submounts=True,
                                                      fork=fork))
            for vol in self.config.volumes:
                self.gofers.append(GoferProcess.start(vol.host, readonly=vol.readonly,
                                                      name="volume", fork=fork))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop every gofer (idempotent)."""
        for g in self.gofers:
            g.close()
        self.gofers.clear()
        if self.net is not None:
            self.net.close()
            self.net = None

    async def run(self) -> int:
        """Boot the sandbox, run the program to completion and tear everything down."""
        try:
            self.start_gofers()
            return await self._run()
        finally:
            self.close()

    async def _run(self) -> int:
        import trio

        from sentry.kernel.fdtable import FDTable
        from vfs.abi import O_RDWR
        from vfs.fs.host import HostFD

        cfg = self.config
        async with contextlib.AsyncExitStack() as stack:
            vfs, ctx = await self.boot(stack)
            kernel = self.kernel
            creds = self.caller
            ctx.umask = (_caller_umask() if cfg.umask is None else cfg.umask) & 0o777
            await self._enter_cwd(vfs, ctx, creds)
            fdtable = FDTable()
            ttys = [fd for fd in self.stdio if os.isatty(fd)] if cfg.terminal else []
            master = replica = None
            if ttys:
                # The sandbox's own terminal stands in for the caller's (docs/terminals.md)
                from runtime.hostterm import host_winsize
                from vfs.fs.devpts import Winsize

                master, replica = self.devpts.open_pair(creds, O_RDWR)
                kernel.tty.set_ctty(1, 1, master.term)  # pid 1's session, pid 1's group
                with contextlib.suppress(OSError):
                    master.term.set_winsize(Winsize(*host_winsize(ttys[-1])))
            for fd in self.stdio:
                if replica is None or fd not in ttys:
                    fdtable.install(HostFD(fd))
                else:
                    fdtable.install(replica if fd == ttys[0] else replica.inc_ref())
            argv = [os.fsencode(a) for a in cfg.argv]
            envp = [os.fsencode(f"{k}={v}") for k, v in cfg.env.items()]
            path = await self._find_program(vfs, ctx, creds, argv[0], cfg.env.get("PATH"))
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(_forward_host_signals, kernel)
                    if master is not None:
                        from runtime.hostterm import pump

                        fd_in = self.stdio[0] if self.stdio[0] in ttys else None
                        fd_out = next(fd for fd in (*self.stdio[1:], self.stdio[0])
                                      if fd in ttys)
                        nursery.start_soon(pump, master, fd_in, fd_out)
                    status = await kernel.run(argv, envp, fdtable, ctx, creds, path=path)
                    nursery.cancel_scope.cancel()
                if master is not None:
                    from runtime.hostterm import drain

                    drain(master, fd_out)
            finally:
                with trio.CancelScope(shield=True):
                    await kernel.close_files(1, fdtable.close_all())
            if cfg.strace:
                print(_strace_end(status), file=self.events_to, flush=True)
            return exit_code(status)
        raise AssertionError("unreachable")  # pragma: no cover

    async def boot(self, stack: contextlib.AsyncExitStack) -> tuple[Any, Any]:
        """Everything of the sandbox but its programs: the mount namespace (its 9P sessions
        live as long as `stack`), the network, the Sentry confined (`confine=True`), and the
        Kernel (`self.kernel`) with /dev/mqueue, its terminals and /proc. Returns the VFS
        and a root FSContext. `run` boots and runs one program; `runtime.session` boots once
        and runs several."""
        import p9
        import sentry.syscalls  # noqa: F401 - registers the handlers the Kernel serves
        from sentry.kernel import Kernel
        from sentry.procfs import ProcView
        from vfs import Credentials

        cfg = self.config
        zygote: Zygote | None = None
        self.caller = _caller_creds()
        vfs, ctx = await self._build_namespace(stack)
        try:
            # Before confining: ``host`` keeps the namespace this process is in now.
            self.net = NetworkSetup(cfg.network, cfg.publish)
        except OSError as e:
            raise SandboxError(str(e)) from None
        if self.confine:
            from runtime.confine import confine_sentry, restrict_syscalls

            remote = [p9.parse_address(m.address) for m in
                      (*cfg.mounts, *([cfg.root] if cfg.root is not None else []))]
            tcp = [(host, port) for kind, host, port in remote if kind != "unix"]
            unix = tuple(host for kind, host, _ in remote if kind == "unix")
            if tcp or unix:  # remote gofers: redialled from the host's namespaces
                self.dialer.keep(tcp, unix)
                stack.callback(self.dialer.close)
            try:
                self.net.network = confine_sentry(self.net.network, strace=cfg.strace)
                zygote = restrict_syscalls()
            except OSError as e:
                raise SandboxError(f"confining the Sentry: {e} (--no-confine runs it "
                                   "unconfined, unsafe)") from None
            stack.callback(zygote.close)
        table = None
        if cfg.strace:
            from sentry.kernel.table import TABLE
            from sentry.strace import Strace, traced_table

            out = self.events_to

            def write(line: str) -> None:
                print(line, file=out, flush=True)

            table = traced_table(TABLE, Strace(write))
        kernel = Kernel(vfs=vfs, table=table, stderr=self.events_to, network=self.net.network,
                        memory=self.memory, platform=cfg.platform)
        if zygote is not None:
            kernel.stubs_from(zygote)
        self.kernel = kernel
        # The IPC namespace's POSIX message queues, where Linux containers show them.
        await vfs.mount(ctx, Credentials.root(), kernel.ipc.mqueue, None, b"/dev/mqueue",
                        source="mqueue")
        kernel.tty.attach(self.devpts, self.devtty)
        self.procfs.provider = self.sysfs.provider = ProcView(kernel, memory=cfg.memory)
        return vfs, ctx

    async def _build_namespace(self, stack: contextlib.AsyncExitStack) -> tuple[Any, Any]:
        """The mount namespace: overlay root over the host's / (its /tmp included), /dev,
        /proc, /sys, volumes, then the private tmpfs mounts."""
        from vfs import Credentials, Tmpfs, VirtualFilesystem

        volume_gofers = list(self.gofers)
        if self.config.root is None:
            lower = await _goferfs(stack, volume_gofers.pop(0), readonly=True)
        else:
            lower = await self._remote_goferfs(stack, self.config.root)
        from vfs.memlimit import MemoryLimit

        self.memory = mem = MemoryLimit(self.config.memory)
        # tmpfs's default size is half the memory, as on Linux (the sandbox's, --memory);
        # every tmpfs, and the overlay's upper, charges the one limit too.
        tmpfs_size = mem.limit // 2
        upper = Tmpfs(mode=0o755, size=tmpfs_size, memory=mem)
        await _opaque_mountpoints(upper, (b"dev", b"proc", b"sys"))
        root = _overlay(upper, lower)
        vfs = VirtualFilesystem(root, source="runpsc-root")
        ctx = vfs.new_context()
        admin = Credentials.root()
        from vfs.fs import devfs, devpts, pipefs
        from vfs.fs.procfs import Procfs
        from vfs.fs.sysfs import Sysfs

        self.devtty = await devfs.install(vfs, ctx, admin, b"/dev", memory=mem)
        self.devpts = await devpts.install(vfs, ctx, admin, b"/dev")
        pipefs.install(vfs, memory=mem)
        self.procfs, self.sysfs = Procfs(vfs), Sysfs()
        for path, fs in (
            (b"/proc", self.procfs),
            (b"/sys", self.sysfs),
        ):
            await _mkdir_p(vfs, ctx, admin, path)
            await vfs.mount(ctx, admin, fs, None, path, source=fs.fstype)
        for vol, g in zip(self.config.volumes, volume_gofers, strict=True):
            fs = await _goferfs(stack, g, readonly=vol.readonly,
                                policy="exclusive" if vol.exclusive else "shared",
                                aname=b"volume")
            target = os.fsencode(vol.sandbox)
            await _mkdir_p(vfs, ctx, admin, target)
            from vfs.mount import MS_RDONLY

            await vfs.mount(ctx, admin, fs, None, target, flags=MS_RDONLY if vol.readonly else 0,
                            source=vol.host)
        for mnt in self.config.mounts:
            await self._mount_remote(stack, vfs, ctx, admin, mnt)
        for tmp in self.config.tmpfs:
            where = os.fsencode(check_tmpfs_path(tmp))
            await _mkdir_p(vfs, ctx, admin, where)
            await vfs.mount(ctx, admin, Tmpfs(size=tmpfs_size, memory=mem), None, where,
                            source="tmpfs")
        return vfs, ctx

    async def _mount_remote(self, stack: contextlib.AsyncExitStack, vfs: Any, ctx: Any,
                            admin: Any, mnt: Mount) -> None:
        """Mount `mnt`'s export at its sandbox path (`_remote_goferfs`)."""
        from vfs.mount import MS_RDONLY

        fs = await self._remote_goferfs(stack, mnt)
        target = os.fsencode(mnt.sandbox)
        await _mkdir_p(vfs, ctx, admin, target)
        await vfs.mount(ctx, admin, fs, None, target, flags=MS_RDONLY if mnt.readonly else 0,
                        source=f"9p:{mnt.address},aname={mnt.aname}")

    async def _remote_goferfs(self, stack: contextlib.AsyncExitStack, mnt: Mount) -> Any:
        """Connect to `mnt`'s gofer (before the Sentry leaves the host's network) and attach
        its export; the session lives as long as `stack`.

        Raises:
            p9.TLSError: the TLS connection failed (one line naming the cause).
            SandboxError: the gofer cannot be reached or refuses the attach.
        """
        import p9
        from vfs.fs.goferfs import GoferFS

        try:
            client = await stack.enter_async_context(p9.open_address(
                mnt.address, tls=self.config.tls, reconnect=mnt.reconnect, tcp=self.dialer.tcp,
                frame_timeout=mnt.timeout, unix=self.dialer.unix))
            fs = await GoferFS.attach(client, os.fsencode(mnt.aname),
                                      policy=CACHE_POLICIES[mnt.cache],
                                      uname=os.fsencode(_user_name()), n_uname=os.getuid())
        except p9.TLSError:
            raise
        except (OSError, ValueError) as e:
            raise SandboxError(f"9p:{mnt.address},aname={mnt.aname}: "
                               f"{getattr(e, 'strerror', None) or e}") from None
        return fs

    async def _enter_cwd(self, vfs: Any, ctx: Any, creds: Any) -> None:
        want = self.config.cwd
        explicit = want is not None
        if want is None:
            want = self.caller_cwd
        try:
            await vfs.chdir(ctx, creds, None, os.fsencode(want))
        except OSError as e:
            if explicit:
                raise SandboxError(f"--cwd {want!r}: {os.strerror(e.errno or errno.ENOENT)}") from None
            print(f"runpsc: working directory {want!r} is not in the sandbox "
                  f"({os.strerror(e.errno or errno.ENOENT)}); using /", file=self.events_to)

    async def _find_program(self, vfs: Any, ctx: Any, creds: Any, name: bytes,
                            path_var: str | None) -> bytes:
        return await find_program(vfs, ctx, creds, name, path_var)


async def find_program(vfs: Any, ctx: Any, creds: Any, name: bytes, path_var: str | None) -> bytes:
    """execvp's search: a name with a slash is used as is, else each PATH entry in turn
    (SandboxError with 127 if none has it, 126 if none is executable)."""
    if b"/" in name:
        return name
    search = (path_var if path_var is not None else
              "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    denied = False
    for d in search.split(":"):
        cand = os.fsencode(d or ".") + b"/" + name
        try:
            st = await vfs.stat(ctx, creds, None, cand, 0)
        except OSError:
            continue
        if not _st.S_ISREG(st.mode):
            continue
        try:
            await vfs.faccessat(ctx, creds, None, cand, os.X_OK, 0x200)
        except OSError:
            denied = True
            continue
        return cand
    err = errno.EACCES if denied else errno.ENOENT
    raise SandboxError(f"{os.fsdecode(name)}: {os.strerror(err)}", code=126 if denied else 127)


class SandboxError(Exception):
    """The sandbox could not run the program; `code` is the exit status to report."""

    def __init__(self, message: str, *, code: int = 125) -> None:
        super().__init__(message)
        self.code = code


def _strace_end(status: int) -> str:
    """strace's last line: ``+++ exited with N +++`` or ``+++ killed by SIGSEGV +++``."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        core = " (core dumped)" if os.WCOREDUMP(status) else ""
        return f"+++ killed by {name}{core} +++"
    return f"+++ exited with {os.WEXITSTATUS(status)} +++"


def _caller_creds() -> Any:
    from vfs import Credentials

    uid, gid = os.getuid(), os.getgid()
    groups = frozenset(os.getgroups())
    if uid == 0:
        return Credentials(gid=gid, egid=gid, sgid=gid, fsgid=gid, groups=groups)
    return Credentials.user(uid, gid, tuple(groups))


def _caller_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


async def _opaque_mountpoints(upper: Any, names: Sequence[bytes]) -> None:
    """Make /dev, /proc and /sys opaque directories of the overlay's upper layer.

    Why: the sandbox mounts its own filesystems there, so the host's directories below are
    never needed, and the gofer refuses to walk into the host's kernel pseudo filesystems
    (EXDEV for /proc, /sys): an opaque upper directory keeps the overlay from asking.
    """
    from vfs.abi import S_IFDIR
    from vfs.fs.overlay import OPAQUE

    for name in names:
        d = await upper.mkdir(upper.root, name, S_IFDIR | 0o755, 0, 0)
        await upper.setxattr(d, OPAQUE, b"y", 0)


async def _mkdir_p(vfs: Any, ctx: Any, creds: Any, path: bytes) -> None:
    cur = b""
    for comp in [c for c in path.split(b"/") if c]:
        cur += b"/" + comp
        try:
            await vfs.mkdirat(ctx, creds, None, cur, 0o755)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise


# -- filesystem constructors: one place that knows the vfs constructors' names ----------------


#: Signals that runpsc passes on to the sandbox's first process, as `runsc do` does: a
#: terminal's ^C / ^\\, a hang-up, and `kill` of the runpsc process. (The stubs sit in a
#: process group of their own, so the terminal's signals reach only runpsc.)
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)


async def _forward_host_signals(kernel: Any, *, task_status: Any) -> None:
    """Deliver host signals sent to runpsc to sandbox pid 1 (si_code SI_USER, from outside
    the sandbox) until cancelled. Started with `nursery.start`."""
    import trio

    from sentry.kernel.signals import kill_from_host

    with trio.open_signal_receiver(*FORWARDED_SIGNALS) as received:
        task_status.started()
        async for sig in received:
            kill_from_host(kernel, 1, int(sig))


async def _goferfs(stack: contextlib.AsyncExitStack, gofer: GoferProcess, *,
                   readonly: bool, policy: str = "exclusive", aname: bytes = b"root") -> Any:
    """A goferfs over `gofer`'s socket; the 9P session lives as long as `stack`.

    The sandbox root uses the "exclusive" cache policy (nothing else changes a read-only
    view of the host during a `runpsc do`); volumes use "shared", since the host may change
    them while the program runs, unless given as `exclusive`.
    """
    import p9
    from vfs.fs.goferfs import GoferFS

    stream = p9.stream_from_fd(gofer.sock.detach())
    client = await stack.enter_async_context(p9.open_client(stream))
    uname = os.fsencode(_user_name())
    return await GoferFS.attach(client, aname, policy=policy, uname=uname, n_uname=os.getuid())


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _overlay(upper: Any, lower: Any) -> Any:
    from vfs.fs.overlay import Overlay

    return Overlay(upper, lower, statfs_lower=True)


def check_tmpfs_path(path: str) -> str:
    """A --tmpfs path, normalized: absolute, and not / (the overlay's root).

    Raises:
        ValueError: a relative path or /.
    """
    if not path.startswith("/"):
        raise ValueError(f"tmpfs {path!r}: the sandbox path must be absolute")
    norm = os.path.normpath(path)
    if norm in ("/", "//"):
        raise ValueError(f"tmpfs {path!r}: not the root")
    return norm


def parse_size(text: str) -> int:
    """A byte count with an optional binary suffix: 1048576, 512K, 64M, 2G, 1T."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in units else (t, "")
    try:
        value = int(float(num) * units[unit])
    except ValueError:
        raise ValueError(f"size {text!r}: expected a number with K, M, G or T") from None
    if value < 1 << 20:
        raise ValueError(f"size {text!r}: at least 1M")
    return value


def env_of(pairs: Sequence[str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment: `base` (the caller's by default) updated with K=V pairs.

    Raises:
        ValueError: a pair without '='.
    """
    env = dict(os.environ if base is None else base)
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise ValueError(f"--env {p!r} is not K=V")
        env[k] = v
    return env
