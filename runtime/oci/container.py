"""The process that is an OCI container: its Sentry, forked by `runpsc create`.

Its pid is the one `create` writes to --pid-file. It builds the sandbox from config.json
(the bundle's rootfs through a gofer as `/`, the spec's mounts), reports "ready" to
`create`, then waits on its control socket (`ROOT/ID/control.sock`, SOCK_SEQPACKET, one
JSON message each way) for `start`; the program runs as the sandbox's pid 1 and this
process lives exactly as long as it, then leaves with its status: the same exit code, or
killed by the same signal, so whoever reaps it (containerd's shim, a subreaper) sees what
runc's init would give.

Requests on the control socket:

    {"op": "start"}                     -> {"ok": true} once pid 1 runs, or {"error": ...}
    {"op": "kill", "signal": N, "all": B} -> {"ok": true}
    {"op": "ps"}                        -> {"pids": [host pids of the sandbox's processes]}
    {"op": "pause"} / {"op": "resume"}  -> {"ok": true} once every task is frozen / thawed
    {"op": "stats"}                     -> {"cpu": ..., "memory": ..., "pids": ...} (runc's
                                           `events --stats` data, the sandbox's accounting)
    {"op": "exec", "process": {...}} + stdin/out/err as SCM_RIGHTS (with a terminal: the
    replica of a host pty the exec proxy connected to the console socket)
                                        -> {"pid": N} or {"error": ...}; later {"status": W}
                                           (the client may send {"signal": N} meanwhile)
"""

from __future__ import annotations

import array
import contextlib
import errno
import json
import os
import signal
import socket
import stat
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from runtime.oci.spec import Mount, Process, Spec, SpecError, parse_process
from runtime.oci.state import MARKS, StateDir
from runtime.sandbox import (
    GoferProcess,
    SandboxError,
    _goferfs,
    _mkdir_p,
    exit_code,
    find_program,
    parse_size,
)

__all__ = ["Container", "send_fds", "recv_json", "die_like"]

#: Host signals this process passes on to the sandbox's pid 1 (`kill` of the pid in
#: --pid-file, as the shim does). SIGKILL needs no passing: the Sentry's death kills the
#: stubs. SIGCHLD is the Sentry's own (ptrace), SIGWINCH the terminal's, SIGPIPE ignored.
PASSED_SIGNALS = tuple(s for s in signal.valid_signals() if isinstance(s, signal.Signals)
                       and s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD,
                                     signal.SIGWINCH, signal.SIGPIPE, signal.SIGTSTP,
                                     signal.SIGTTIN, signal.SIGTTOU, signal.SIGURG))


def send_fds(sock: socket.socket, doc: dict[str, Any], fds: list[int]) -> None:
    """One message: the JSON document, with `fds` attached (SCM_RIGHTS)."""
    data = json.dumps(doc).encode()
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([data], anc)


def recv_json(sock: socket.socket) -> dict[str, Any] | None:
    """One message (None at end of connection)."""
    data = sock.recv(1 << 16)
    return json.loads(data) if data else None


def die_like(status: int) -> NoReturn:
    """Leave this process with wait status `status`: the same exit code, or killed by the
    same signal (no core file)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.WIFSIGNALED(status) or (status & 0x7F and not os.WIFEXITED(status)):
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else status & 0x7F
        import resource

        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(exit_code(status))


class Container:
    """One container's sandbox, in the process forked by `create`."""

    def __init__(self, cid: str, spec: Spec, states: StateDir,
                 console_socket: str | None) -> None:
        self.cid = cid
        self.spec = spec
        self.states = states
        self.console_socket = console_socket
        self.gofers: list[GoferProcess] = []
        self.binds = [m for m in spec.mounts if m.type == "bind"]
        self.kernel: Any = None
        self.vfs: Any = None
        self.memory: Any = None  # the container's vfs.memlimit.MemoryLimit, made by _prepare
        self.view: Any = None  # its /proc's provider (MemTotal follows `update --memory`)
        self.devpts: Any = None
        self.net: Any = None
        self.started: Any = None  # trio.Event, set once pid 1 runs
        self.start_requested: Any = None
        self.start_error: str | None = None
        self._marks = -1  # the state directory, opened before the lock-in (`_mark`)
        self.pending_signal = 0  # a kill before start: the container ends with it

    # -- before trio: the gofers --------------------------------------------------------------

    def start_gofers(self) -> None:
        """Fork the rootfs's gofer and one per bind mount (before trio runs)."""
        self.gofers.append(GoferProcess.start(self.spec.root, readonly=False, submounts=True,
                                              fork=True))
        for m in self.binds:
            # A file (Docker's /etc/hosts, resolv.conf, hostname): its directory is served
            # and only the file is bound (`_bind_file`).
            source = m.source if os.path.isdir(m.source) else _file_parent(m.source)
            self.gofers.append(GoferProcess.start(source, readonly=m.readonly, name="volume",
                                                  submounts="rbind" in m.options, fork=True))

    def close(self) -> None:
        for g in self.gofers:
            g.close()
        self.gofers.clear()
        if self.net is not None:
            self.net.close()
            self.net = None

    # -- the container's life -----------------------------------------------------------------

    async def main(self, ready: Callable[[str | None], None]) -> int:
        """Build the sandbox, report `ready(None)` (or `ready(error)` and return), wait for
        `start`, run pid 1; its wait status."""
        import trio

        async with contextlib.AsyncExitStack() as stack:
            try:
                # The control socket and the marks are host files: bound and reached
                # through a descriptor opened before the Sentry locks itself in
                # (`_prepare`, runtime/confine.py).
                listener = self._listen()
                marks = self.states.path(self.cid, MARKS)
                with contextlib.suppress(FileExistsError):
                    os.mkdir(marks, 0o755)
                self._marks = os.open(marks, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                stack.callback(os.close, self._marks)
                prepared = await self._prepare(stack)
            except (OSError, SandboxError, SpecError) as e:
                ready(_message(e))
                return 1 << 8
            self.started = trio.Event()
            self.start_requested = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve, listener, nursery)
                await nursery.start(self._pass_signals)
                ready(None)
                await self.start_requested.wait()
                if self.pending_signal:
                    nursery.cancel_scope.cancel()
                    return self.pending_signal
                try:
                    status = await self._run(prepared, nursery)
                except (OSError, SandboxError) as e:
                    self.start_error = _message(e)
                    self.started.set()
                    status = 1 << 8
                nursery.cancel_scope.cancel()
            return status
        raise AssertionError("unreachable")  # pragma: no cover

    async def _prepare(self, stack: contextlib.AsyncExitStack) -> dict[str, Any]:
        import sentry.syscalls  # noqa: F401 - registers the handlers the Kernel serves
        from runtime.network import NetworkSetup
        from sentry.kernel import Kernel
        from vfs import VirtualFilesystem
        from vfs.mount import MS_RDONLY

        spec = self.spec
        root_gofer, *bind_gofers = self.gofers
        # A read-only root is read-only in the mount's flags, set once the mount points
        # are made (runc remounts it read-only after the same).
        rootfs = await _goferfs(stack, root_gofer, readonly=False)
        vfs = VirtualFilesystem(rootfs, source=spec.root)
        self.vfs = vfs
        ctx = vfs.new_context()
        try:
            self.net = (NetworkSetup.joined(spec.network_path) if spec.network_path
                        else NetworkSetup(spec.network, []))
        except OSError as e:
            raise SpecError(f"linux.namespaces: network path {_message(e)}") from None
        table = None
        if spec.strace:
            from sentry.kernel.table import TABLE
            from sentry.strace import Strace, traced_table

            def write(line: str) -> None:
                print(line, file=sys.stderr, flush=True)

            table = traced_table(TABLE, Strace(write))
        # No hostname: a new UTS namespace keeps the host's, as under runc.
        hostname = spec.hostname if spec.hostname is not None else socket.gethostname()
        from vfs.memlimit import MemoryLimit

        self.memory = MemoryLimit(spec.memory_limit)
        kernel = Kernel(vfs=vfs, table=table, network=self.net.network,
                        hostname=hostname.encode(), memory=self.memory)
        if spec.domainname is not None:
            kernel.domainname = spec.domainname.encode()
        kernel.pids_limit = spec.pids_limit
        self.kernel = kernel
        procfs = await self._build_mounts(stack, ctx, dict(zip(
            (id(m) for m in self.binds), bind_gofers, strict=True)))
        await self._restrict_paths(ctx)
        if spec.root_readonly:
            vfs.root_mount.flags |= MS_RDONLY
        kernel.tty.attach(self.devpts, self._devtty)
        from sentry.procfs import ProcView

        view = ProcView(kernel, memory=self.memory.limit)
        self.view = view
        for fs in procfs:
            fs.provider = view
        creds = _creds(spec.process)
        cwd = os.fsencode(spec.process.cwd)
        from vfs import Credentials

        try:
            await _mkdir_p(vfs, ctx, Credentials.root(), cwd)  # runc makes a missing cwd
            await vfs.chdir(ctx, creds, None, cwd)
        except OSError as e:
            raise SpecError(f"process.cwd: {spec.process.cwd}: "
                            f"{os.strerror(e.errno or errno.EIO)}") from None
        ctx.umask = 0o022 if spec.process.user.umask is None else spec.process.user.umask & 0o777
        env = spec.process.env_dict()
        argv0 = os.fsencode(spec.process.args[0])
        try:
            path = await find_program(vfs, ctx, creds, argv0, env.get("PATH"))
        except SandboxError:
            raise SandboxError(_not_found(spec.process.args[0])) from None
        fdtable, term = await self._stdio(spec.process, creds, self.console_socket)
        # Locked in last: the mounts' sources, the console socket and the host pty are
        # host files; the first stub starts after this.
        import runtime.hostterm  # noqa: F401 - used once locked in (`_pump`, drain)
        from runtime.confine import confine_sentry, restrict_syscalls

        self.net.network = confine_sentry(kernel.network, strace=spec.strace,
                                          owned=(self._marks,))
        zygote = restrict_syscalls()
        stack.callback(zygote.close)
        kernel.stubs_from(zygote)
        return {"ctx": ctx, "creds": creds, "path": path, "fdtable": fdtable, "term": term}

    async def _build_mounts(self, stack: contextlib.AsyncExitStack, ctx: Any,
                            gofer_of: dict[int, GoferProcess]) -> list[Any]:
        """/dev (devfs with devpts, always), then the spec's mounts in order. The spec's
        tmpfs at /dev and devpts at /dev/pts are what devfs already is."""
        from vfs import Credentials, Tmpfs
        from vfs.fs import devfs, devpts, pipefs
        from vfs.fs.procfs import Procfs
        from vfs.fs.sysfs import Sysfs
        from vfs.mount import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY

        vfs, kernel = self.vfs, self.kernel
        admin = Credentials.root()
        self._devtty = await devfs.install(vfs, ctx, admin, b"/dev")
        self.devpts = await devpts.install(vfs, ctx, admin, b"/dev")
        pipefs.install(vfs)
        await vfs.mount(ctx, admin, kernel.ipc.mqueue, None, b"/dev/mqueue", source="mqueue")
        providers: list[Any] = []
        for i, m in enumerate(self.spec.mounts):
            target = os.fsencode(m.destination)
            if (m.destination, m.type) in (("/dev", "tmpfs"), ("/dev/pts", "devpts"),
                                           ("/dev/mqueue", "mqueue")):
                continue
            flags = ((MS_RDONLY if m.readonly else 0) | (MS_NOSUID if "nosuid" in m.options else 0)
                     | (MS_NODEV if "nodev" in m.options else 0)
                     | (MS_NOEXEC if "noexec" in m.options else 0))
            fs: Any
            if m.type == "proc":
                fs = Procfs(vfs)
                providers.append(fs)
            elif m.type == "sysfs":
                fs = Sysfs()
                providers.append(fs)
            elif m.type == "tmpfs":
                fs = Tmpfs(mode=await _tmpfs_mode(vfs, ctx, admin, m, i),
                           size=_tmpfs_size(m, i, self.memory.limit // 2),
                           memory=self.memory)
            elif m.type == "mqueue":
                fs = kernel.ipc.mqueue
            elif m.type in ("cgroup", "cgroup2"):
                fs = Tmpfs(mode=0o555, size=1 << 20)  # no cgroups inside: an empty directory
                flags |= MS_RDONLY
            elif m.type == "devpts":
                raise SpecError(f"mounts[{i}]: a devpts other than /dev/pts is not supported")
            else:  # bind
                fs = await _goferfs(stack, gofer_of[id(m)], readonly=m.readonly,
                                    policy="shared", aname=b"volume")
                if not os.path.isdir(m.source):
                    await self._bind_file(ctx, fs, m, i, flags)
                    continue
            try:
                await _mkdir_p(vfs, ctx, admin, target)
            except OSError as e:
                if m.type in ("cgroup", "cgroup2"):
                    continue  # e.g. /sys/fs/cgroup in a sysfs without it: nothing to see
                raise SpecError(f"mounts[{i}].destination: cannot make {m.destination}: "
                                f"{os.strerror(e.errno or errno.EIO)}") from None
            await vfs.mount(ctx, admin, fs, None, target, flags=flags,
                            source=m.source or m.type)
        return providers

    async def _restrict_paths(self, ctx: Any) -> None:
        """linux.readonlyPaths, then linux.maskedPaths, as runc applies them once the
        mounts are made: each read-only path bound read-only on itself; /dev/null bound
        over a masked file, an empty read-only tmpfs over a masked directory. A path that
        does not exist is left alone, as by runc."""
        from vfs import Credentials, Tmpfs
        from vfs.mount import MS_RDONLY

        vfs, admin = self.vfs, Credentials.root()
        for kind, paths in (("readonlyPaths", self.spec.readonly_paths),
                            ("maskedPaths", self.spec.masked_paths)):
            for i, p in enumerate(paths):
                path = os.fsencode(p)
                try:
                    st = await vfs.stat(ctx, admin, None, path, 0)
                    if kind == "readonlyPaths":
                        await vfs.bind_mount(ctx, admin, path, path, flags=MS_RDONLY)
                    elif stat.S_ISDIR(st.mode):
                        await vfs.mount(ctx, admin, Tmpfs(mode=0o1777, size=1 << 12), None,
                                        path, flags=MS_RDONLY, source="tmpfs")
                    else:
                        await vfs.bind_mount(ctx, admin, b"/dev/null", path)
                except OSError as e:
                    if e.errno in (errno.ENOENT, errno.ENOTDIR):
                        continue
                    raise SpecError(f"linux.{kind}[{i}]: {p}: "
                                    f"{os.strerror(e.errno or errno.EIO)}") from None

    async def _bind_file(self, ctx: Any, fs: Any, m: Mount, i: int, flags: int) -> None:
        """Bind the host file `m.source` (its directory is `fs`) on `m.destination`, made
        as an empty file first if missing, as runc does."""
        from vfs import Credentials
        from vfs.abi import O_CREAT, O_RDONLY

        admin = Credentials.root()
        name = os.fsencode(os.path.basename(os.path.realpath(m.source)))
        found = await fs.lookup(fs.root, [name])
        if not found:
            raise SpecError(f"mounts[{i}].source: {m.source} does not exist")
        target = os.fsencode(m.destination)
        try:
            await _mkdir_p(self.vfs, ctx, admin, os.path.dirname(target))
            f = await self.vfs.open(ctx, admin, None, target, O_RDONLY | O_CREAT, 0o755)
            await f.dec_ref()
            await self.vfs.mount(ctx, admin, fs, None, target, flags=flags, source=m.source,
                                 root=found[0])
        except OSError as e:
            raise SpecError(f"mounts[{i}].destination: cannot bind {m.source} on "
                            f"{m.destination}: {os.strerror(e.errno or errno.EIO)}") from None

    async def _stdio(self, proc: Process, creds: Any, console: str | None,
                     fds: list[int] | None = None) -> tuple[Any, Any]:
        """The fd table of a new process: the host's stdio (ours, or `fds`), or with
        `terminal` a pty of the sandbox whose master is pumped to a host pty, whose master
        goes to the console socket (runc's --console-socket; for an exec, `fds` is that
        host pty's replica, connected by the exec proxy)."""
        from sentry.kernel.fdtable import FDTable
        from vfs.abi import O_RDWR
        from vfs.fs.host import HostFD

        fdtable = FDTable()
        if not proc.terminal:
            for fd in (fds if fds is not None else [0, 1, 2]):
                fdtable.install(HostFD(fd))
            return fdtable, None
        if fds is not None:  # exec: the proxy connected the console (`console_pty`)
            host_slave = fds[0]
        elif console is None:
            raise SandboxError("cannot allocate tty if runc will detach without setting "
                               "console socket")
        else:
            host_slave = console_pty(console, proc.console_size, ctty=True)
        from vfs.fs.devpts import Winsize

        master, replica = self.devpts.open_pair(creds, O_RDWR)
        if proc.console_size is not None:
            h, w = proc.console_size
            master.term.set_winsize(Winsize(h, w, 0, 0))
        fdtable.install(replica)
        fdtable.install(replica.inc_ref())
        fdtable.install(replica.inc_ref())
        return fdtable, (master, host_slave)

    async def _run(self, prepared: dict[str, Any], nursery: Any) -> int:
        import trio

        kernel = self.kernel
        term = prepared["term"]
        if term is not None:
            kernel.tty.set_ctty(1, 1, term[0].term)
            self._pump(nursery, term)
        proc = self.spec.process

        def started() -> None:
            self._mark("started", True)
            self.started.set()

        try:
            status: int = await kernel.run(
                [a.encode() for a in proc.args], [e.encode() for e in proc.env],
                prepared["fdtable"], prepared["ctx"], prepared["creds"], path=prepared["path"],
                setup=lambda t: _setup_task(t, proc), started=started)
        finally:
            with trio.CancelScope(shield=True):
                await kernel.close_files(1, prepared["fdtable"].close_all())
        if term is not None:
            from runtime.hostterm import drain

            drain(term[0], term[1])
        if self.spec.strace:
            from runtime.sandbox import _strace_end

            print(_strace_end(status), file=sys.stderr, flush=True)
        return status

    def _pump(self, nursery: Any, term: tuple[Any, int]) -> None:
        """Copy between the sandbox's pty master and the host pty's slave side (raw)."""
        from runtime.hostterm import pump

        master, host_fd = term
        nursery.start_soon(pump, master, host_fd, host_fd)

    # -- the control socket -------------------------------------------------------------------

    def _listen(self) -> Any:
        import trio

        path = self.states.path(self.cid, "control.sock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with self.states.control_address(self.cid) as address:
            sock.bind(address)
        os.chmod(path, 0o600)
        sock.listen(16)
        return trio.socket.from_stdlib_socket(sock)

    async def _serve(self, listener: Any, nursery: Any) -> None:
        while True:
            conn, _ = await listener.accept()
            nursery.start_soon(self._client, conn, nursery)

    async def _client(self, conn: Any, nursery: Any) -> None:
        with conn:
            try:
                data, anc, _, _ = await conn.recvmsg(1 << 16, socket.CMSG_SPACE(3 * 4))
            except OSError:
                return
            fds: list[int] = []
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    arr = array.array("i")
                    arr.frombytes(payload[:len(payload) - len(payload) % 4])
                    fds.extend(arr)
            try:
                req = json.loads(data or b"{}")
                reply = await self._request(req, fds, conn)
            except (ValueError, SpecError, SandboxError, OSError) as e:
                reply = {"error": _message(e)}
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            if reply is not None:
                with contextlib.suppress(OSError):
                    await conn.send(json.dumps(reply).encode())

    async def _request(self, req: dict[str, Any], fds: list[int],
                       conn: Any) -> dict[str, Any] | None:
        op = req.get("op")
        if op == "start":
            if self.start_requested.is_set():
                return {"error": "cannot start an already running container"}
            self.start_requested.set()
            await self.started.wait()
            if self.start_error is not None:
                return {"error": self.start_error}
            return {"ok": True}
        if op == "kill":
            self.kill(int(req["signal"]), bool(req.get("all")))
            return {"ok": True}
        if op == "ps":
            pids = [os.getpid()]
            if self.kernel is not None:
                pids += sorted({p.stub.pid for p in self.kernel.procs.values()})
            return {"pids": pids}
        if op == "exec":
            return await self._exec(req, fds, conn)
        if op in ("pause", "resume"):
            return await self._pause(op == "pause")
        if op == "stats":
            return self._stats()
        if op == "update":
            return self._update(req.get("resources"))
        return {"error": f"unknown request {op!r}"}

    def _mark(self, name: str, present: bool) -> None:
        """Create or remove the mark `name` in the container's state directory (what
        `state` reads: `ContainerState.started`, `.paused`)."""
        if present:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600,
                             dir_fd=self._marks))
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self._marks)

    async def _pause(self, pause: bool) -> dict[str, Any]:
        """Freeze (or thaw) every task of the sandbox; the `paused` mark says it to
        `state`. A created container has no task yet: the mark alone holds it (`start`
        refuses a paused container)."""
        if self.kernel is None or self.start_error is not None:
            return {"error": "container not running"}
        if pause:
            if self.started.is_set():
                await self.kernel.freezer.freeze()
            self._mark("paused", True)
        else:
            self._mark("paused", False)
            if self.started.is_set():
                self.kernel.freezer.thaw()
        return {"ok": True}

    def _update(self, resources: Any) -> dict[str, Any]:
        """`runpsc update`: apply what the sandbox enforces (pids.limit, memory.limit);
        answer what was applied. A memory limit below what the sandbox holds is refused
        (nothing it holds can be reclaimed), as the memory cgroup refuses one it cannot
        reclaim down to."""
        from runtime.oci.spec import memory_limit, resource_limit
        from vfs.memlimit import host_memory

        if not isinstance(resources, dict):
            return {"error": "resources: want an object"}
        applied = []
        memory = resources.get("memory")
        if isinstance(memory, dict) and "limit" in memory:
            limit = memory_limit(memory["limit"], "memory.limit")
            limit = host_memory() if limit is None else limit
            if limit < self.memory.used:
                return {"error": f"unable to set memory limit to {limit} (current usage: "
                                 f"{self.memory.used})"}
            self.memory.limit = limit
            self.view.system.memory = limit  # MemTotal
            applied.append("memory.limit")
        pids = resources.get("pids")
        if isinstance(pids, dict) and "limit" in pids:
            self.kernel.pids_limit = resource_limit(pids["limit"], "pids.limit")
            applied.append("pids.limit")
        return {"applied": applied}

    def _stats(self) -> dict[str, Any]:
        """runc's stats shape from the sandbox's own accounting: CPU time of the live
        stubs and of the processes that ended, the stubs' resident memory, the process
        count."""
        from sentry.kernel import usage

        kernel = self.kernel
        user = system = rss = 0
        stubs = set() if kernel is None else {p.stub.pid for p in kernel.procs.values()}
        for pid in stubs:
            c = usage.cpu_times(pid)
            user += c.utime
            system += c.stime
            rss += usage.resident(pid).pages * usage.PAGE
        if kernel is not None:
            user += kernel.ended_usage.utime
            system += kernel.ended_usage.stime
        tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        return {
            "cpu": {"usage": {"total": (user + system) * tick_ns, "kernel": system * tick_ns,
                              "user": user * tick_ns},
                    "throttling": {}},
            "memory": {"usage": {"usage": rss, "limit": self.memory.limit}, "swap": {},
                       "kernel": {}, "kernelTCP": {},
                       "raw": {}},
            "pids": {"current": 0 if kernel is None else len(kernel.tasks),
                     **({} if kernel is None or kernel.pids_limit is None
                        else {"limit": kernel.pids_limit})},
        }

    def kill(self, sig: int, everyone: bool = False) -> None:
        """A signal from outside (`runpsc kill`, or one this process received)."""
        if not self.started.is_set():
            if sig in (signal.SIGCHLD, signal.SIGWINCH, signal.SIGURG, signal.SIGCONT, 0):
                return
            self.pending_signal = sig
            self.start_requested.set()
            return
        from sentry.kernel.signals import kill_from_host

        # pid 1 is the sandbox's init: the Sentry drops what it has no handler for
        # (SIGKILL and SIGSTOP from here excepted), as Linux for a pid namespace's init.
        for pid in (list(self.kernel.procs) if everyone else [1]):
            kill_from_host(self.kernel, pid, sig)

    async def _pass_signals(self, *, task_status: Any) -> None:
        import trio

        with trio.open_signal_receiver(*PASSED_SIGNALS) as received:
            task_status.started()
            async for sig in received:
                self.kill(int(sig))

    async def _exec(self, req: dict[str, Any], fds: list[int], conn: Any) -> dict[str, Any] | None:
        """Start a process in the running sandbox for `runpsc exec`; answer its pid, then
        its wait status when it ends."""
        import trio

        if not self.started.is_set() or self.start_error is not None:
            return {"error": "cannot exec in a stopped or created container"}
        proc = parse_process(req.get("process"))
        if proc.terminal and not fds:
            return {"error": "cannot allocate tty if runc will detach without setting "
                             "console socket"}
        if len(fds) != (1 if proc.terminal else 3):
            return {"error": "exec: want 3 descriptors (stdin, stdout, stderr), or with a "
                             "terminal the host pty's replica"}
        creds = _creds(proc)
        vfs = self.vfs
        ctx = vfs.new_context()
        await vfs.chdir(ctx, creds, None, os.fsencode(proc.cwd))
        ctx.umask = 0o022 if proc.user.umask is None else proc.user.umask & 0o777
        env = proc.env_dict()
        try:
            path = await find_program(vfs, ctx, creds, os.fsencode(proc.args[0]),
                                      env.get("PATH"))
        except SandboxError:
            return {"error": _not_found(proc.args[0])}
        fdtable, term = await self._stdio(proc, creds, None, fds)
        kernel = self.kernel
        t = await kernel.start_process(
            [a.encode() for a in proc.args], [e.encode() for e in proc.env], fdtable, ctx,
            creds, path=path, setup=lambda task: _setup_task(task, proc))
        async with trio.open_nursery() as inner:
            if term is not None:
                kernel.tty.set_ctty(t.tgid, t.tgid, term[0].term)
                self._pump(inner, term)
            await conn.send(json.dumps({"pid": t.tgid}).encode())
            inner.start_soon(self._exec_signals, conn, t.tgid,
                             None if term is None else term[0].term)
            await t.ended.wait()
            inner.cancel_scope.cancel()
        if term is not None:
            from runtime.hostterm import drain

            drain(term[0], term[1])
            os.close(term[1])
            # As the runtime's master closing under runc: the pty hangs up (what the
            # program left behind on it gets SIGHUP) and its /dev/pts/N is free again.
            await term[0].dec_ref()
        return {"status": kernel.procs_ended.pop(t.tgid)}

    async def _exec_signals(self, conn: Any, pid: int, term: Any) -> None:
        """The exec proxy's messages: signals for the program, and with a terminal the
        host pty's new size (`term`: the program's pty of the sandbox)."""
        from sentry.kernel.signals import kill_from_host
        from vfs.fs.devpts import Winsize

        while True:
            try:
                data = await conn.recv(1 << 12)
            except OSError:
                data = b""
            if not data:
                # The proxy is gone (SIGKILL: the shim's kill of an exec'd process); under
                # runc that pid was the program itself, so the program goes too.
                kill_from_host(self.kernel, pid, signal.SIGKILL)
                return
            with contextlib.suppress(ValueError, KeyError, TypeError):
                msg = json.loads(data)
                if "winsize" in msg and term is not None:
                    term.set_winsize(Winsize(*(int(v) & 0xFFFF for v in msg["winsize"][:4])))
                else:
                    kill_from_host(self.kernel, pid, int(msg["signal"]))


def _not_found(program: str) -> str:
    """runc's words for a program not found (create's and exec's)."""
    return (f'unable to start container process: exec: "{program}": executable file not '
            "found in $PATH")


def _setup_task(t: Any, proc: Process) -> None:
    """What config.json sets on a process before it runs: rlimits, no_new_privs."""
    from sentry.kernel.limits import RLIMIT_NOFILE
    from sentry.platform.libc import PR_SET_NO_NEW_PRIVS

    t.rlimits.update(proc.rlimits)
    if RLIMIT_NOFILE in proc.rlimits:
        t.fdtable.limit = proc.rlimits[RLIMIT_NOFILE][0]  # what the fd table enforces
    if proc.no_new_privileges:
        t.prctl_state[PR_SET_NO_NEW_PRIVS] = 1


def console_pty(console: str, size: tuple[int, int] | None, *, ctty: bool) -> int:
    """A raw host pty whose master goes to the console socket `console` (runc's
    --console-socket), sized `size` (rows, columns); returns its replica. With `ctty` it
    becomes our controlling terminal, so resizes reach us (SIGWINCH).

    Raises:
        SandboxError: the console socket cannot be reached.
    """
    import fcntl
    import termios
    import tty

    host_master, host_slave = os.openpty()
    try:
        tty.setraw(host_slave)
        if ctty:
            with contextlib.suppress(OSError):
                fcntl.ioctl(host_slave, termios.TIOCSCTTY, 0)
        if size is not None:
            import struct

            h, w = size
            fcntl.ioctl(host_master, termios.TIOCSWINSZ, struct.pack("4H", h, w, 0, 0))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(console)
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [host_master]))]
            s.sendmsg([b"/dev/ptmx"], anc)
    except OSError as e:
        os.close(host_slave)
        raise SandboxError(f"console socket {console}: {e.strerror or e}") from None
    finally:
        os.close(host_master)
    return host_slave


def _creds(proc: Process) -> Any:
    """The program's identity: process.user's ids and the capability sets it has once
    exec'd under runc (`Capabilities.after_exec`), ambient set included (the Sentry's
    execve keeps it for a non-root program, sentry/kernel/caps.py)."""
    from vfs import Credentials

    u = proc.user
    eff, perm, inh, bnd, amb = proc.capabilities.after_exec(u.uid)
    return Credentials.user(u.uid, u.gid, u.additional_gids).with_ids(
        cap_effective=eff, cap_permitted=perm, cap_inheritable=inh, cap_bounding=bnd,
        cap_ambient=amb)


async def _tmpfs_mode(vfs: Any, ctx: Any, creds: Any, m: Mount, i: int) -> int:
    """mode=, unless the mount point exists: then its mode, as runc keeps it."""
    with contextlib.suppress(OSError):
        st = await vfs.stat(ctx, creds, None, os.fsencode(m.destination), 0)
        return int(st.mode) & 0o7777
    v = m.option_value("mode")
    try:
        return 0o1777 if v is None else int(v, 8)
    except ValueError:
        raise SpecError(f"mounts[{i}].options: mode={v} is not an octal mode") from None


def _tmpfs_size(m: Mount, i: int, default: int) -> int:
    v = m.option_value("size")
    if v is None:
        return default  # half the container's memory, as Linux's tmpfs
    try:
        return parse_size(v)
    except ValueError as e:
        raise SpecError(f"mounts[{i}].options: {e}") from None


def _file_parent(path: str) -> str:
    """The host directory holding the file `path` names (symlinks followed, as mount(2)
    follows them in a bind's source)."""
    return os.path.dirname(os.path.realpath(path))


def _message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}" + (f": {e.filename}" if e.filename else "")
    return str(e)
