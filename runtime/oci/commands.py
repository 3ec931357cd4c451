"""runc's command line: what containerd's runc shim and Docker call (`runpsc create ...`).

The global options (`--root`, `--log`, `--log-format`, `--debug`, `--systemd-cgroup`) come
before the command and live in `runtime.cli`; they reach the commands as `Globals`.
Errors are runc's: exit 1, and the message on stderr as logrus prints it
(``time="..." level=error msg="..."``), or with `--log FILE` an entry in FILE (json or
text) and the bare message on stderr, which is what the shim shows.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from runtime.oci.cgroups import Cgroup, CgroupError, cgroup_dirs
from runtime.oci.spec import (
    CAPABILITIES,
    HOOK_NAMES,
    MOUNT_TYPES,
    OCI_VERSION,
    Spec,
    SpecError,
    load_bundle,
)
from runtime.oci.state import DEFAULT_ROOT, ContainerState, StateDir, StateError

__all__ = ["Globals", "OwnConsole", "caller_terminal", "parse_signal", "relay_console", "request"]


@dataclass(slots=True)
class Globals:
    """runc's global options."""

    root: str = DEFAULT_ROOT
    log: str | None = None
    log_format: str = "text"
    debug: bool = False
    systemd_cgroup: bool = False

    @property
    def states(self) -> StateDir:
        return StateDir(self.root)

    def fail(self, message: str, code: int = 1) -> NoReturn:
        """Report `message` as runc does and exit with `code` (1; exec's failures 255)."""
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.log:
            if self.log_format == "json":
                line = json.dumps({"level": "error", "msg": message, "time": now})
            else:
                line = f'time="{now}" level=error msg={json.dumps(message)}'
            with contextlib.suppress(OSError), open(self.log, "a") as f:
                f.write(line + "\n")
            print(message, file=sys.stderr, flush=True)
        else:
            print(f'time="{now}" level=error msg={json.dumps(message)}', file=sys.stderr,
                  flush=True)
        sys.exit(code)


def _globals() -> Globals:
    """The global options given before the command (`runtime.cli`)."""
    p = click.get_current_context().find_root().params
    return Globals(root=p.get("root") or DEFAULT_ROOT, log=p.get("log"),
                   log_format=p.get("log_format") or "text", debug=bool(p.get("debug")),
                   systemd_cgroup=bool(p.get("systemd_cgroup")))


# -- talking to a container's Sentry ----------------------------------------------------------


def request(g: Globals, cid: str, doc: dict[str, Any]) -> dict[str, Any]:
    """One request on ID's control socket and its answer."""
    from runtime.oci.container import recv_json, send_fds

    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        try:
            with g.states.control_address(cid) as address:
                s.connect(address)
            send_fds(s, doc, [])
            reply = recv_json(s)
        except OSError:
            g.fail("container not running")
    if reply is None:
        g.fail("container not running")
    return reply


def _load(g: Globals, cid: str) -> ContainerState:
    try:
        return g.states.load(cid)
    except StateError as e:
        g.fail(str(e))


def run_hooks(spec_doc: dict[str, Any], name: str, st: ContainerState) -> None:
    """Run config.json's `name` hooks on the host with the state on stdin (as runc).

    Raises:
        RuntimeError: a hook failed or timed out.
    """
    for h in spec_doc.get("hooks", {}).get(name, []):
        args = h.get("args") or [h["path"]]
        env = dict(e.partition("=")[::2] for e in h.get("env", []))
        state = json.dumps({**st.oci(), "status": _hook_status(name)})
        try:
            subprocess.run(args, executable=h["path"], input=state.encode(), env=env,
                           timeout=h.get("timeout"), check=True, stdout=sys.stderr)
        except (OSError, subprocess.SubprocessError) as e:
            raise RuntimeError(f"error running {name} hook #{h['path']}: {e}") from None


def _hook_status(name: str) -> str:
    """The status a hook's state says: runc's (poststart still says "created")."""
    return {"prestart": "creating", "createRuntime": "creating", "createContainer": "creating",
            "startContainer": "created", "poststart": "created",
            "poststop": "stopped"}[name]


# -- create / start / run -----------------------------------------------------------------


def do_create(g: Globals, cid: str, bundle: str, pid_file: str | None,
              console_socket: str | None, prefix: str = "runpsc create failed: ") -> ContainerState:
    """Create ID from BUNDLE: the container's Sentry forked and ready, waiting for start."""
    from runtime.oci.container import Container

    try:
        spec = load_bundle(bundle)
    except SpecError as e:
        g.fail(f"{prefix}{e}")
    if spec.process.terminal and console_socket is None:
        g.fail(f"{prefix}cannot allocate tty if runc will detach without setting console "
               "socket")
    states = g.states
    try:
        with states.locked():
            states.reserve(cid)
    except StateError as e:
        g.fail(f"{prefix}{e}")
    st = ContainerState(id=cid, bundle=spec.bundle, rootfs=spec.root,
                        annotations=spec.annotations)
    cgroup = None
    try:
        cgroup = _make_cgroup(g, cid, spec)
        st.cgroups = cgroup.dirs
        pid = _fork_container(Container(cid, spec, states, console_socket), cgroup)
        st.pid = pid
        from runtime.oci.state import proc_start_time

        st.start_time = proc_start_time(pid) or 0
        states.save(st)
        for name in ("prestart", "createRuntime", "createContainer"):
            run_hooks(spec.raw, name, st)
        if pid_file:
            _write_pid_file(pid_file, pid)
    except (RuntimeError, OSError, CgroupError) as e:
        if st.pid:
            with contextlib.suppress(OSError):
                os.kill(st.pid, signal.SIGKILL)
                os.waitpid(st.pid, 0)
        if cgroup is not None:
            cgroup.destroy()
        states.remove(cid)
        g.fail(f"{prefix}{e}")
    return st


def _make_cgroup(g: Globals, cid: str, spec: Spec) -> Cgroup:
    """The container's host cgroup (runtime/oci/cgroups.py), made, with its CPU
    resources written."""
    cpu = spec.raw.get("linux", {}).get("resources", {}).get("cpu")
    cgroup = Cgroup(cgroup_dirs(cid, spec.cgroups_path, g.systemd_cgroup))
    try:
        cgroup.create()
        if cpu is not None:
            cgroup.set_cpu(cpu)
    except BaseException:
        cgroup.destroy()
        raise
    return cgroup


def _write_pid_file(path: str, pid: int) -> None:
    """runc writes it atomically: a reader never sees an empty file."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def _fork_container(container: Any, cgroup: Cgroup) -> int:
    """Fork the container's process; return its pid once it is ready to start.

    Raises:
        RuntimeError: with the container's message, when it could not be built.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _container_child(container, cgroup, w)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read()
    doc = json.loads(msg) if msg else {"error": "the container's process died while "
                                                "starting"}
    if "error" in doc:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        raise RuntimeError(doc["error"])
    return pid


def _container_child(container: Any, cgroup: Cgroup, w: int) -> NoReturn:
    """The container's process: join its cgroup (before it forks gofers, zygote, stubs,
    and before it confines itself), build, tell `create`, wait for start, run, die like
    pid 1."""
    status = 1 << 8
    try:
        import trio

        from runtime.oci.container import die_like

        if container.spec.process.terminal:
            os.setsid()  # the host pty becomes our controlling terminal (SIGWINCH)
            # The program's stdio is the pty; create's (a pipe the shim reads to its end)
            # must not stay open in this process or the gofers it forks.
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)
        told = False

        def ready(error: str | None) -> None:
            nonlocal told
            doc = {"error": error} if error else {"ok": True}
            os.write(w, json.dumps(doc).encode())
            os.close(w)
            told = True

        try:
            cgroup.join()
            container.start_gofers()
            status = trio.run(container.main, ready)
        except BaseException as e:  # noqa: BLE001 - told to create, or printed
            if not told:
                ready(f"{type(e).__name__}: {e}")
            else:
                print(f"runpsc: {e!r}", file=sys.stderr, flush=True)
        finally:
            container.close()
        die_like(status)
    finally:
        os._exit(1)


def do_start(g: Globals, cid: str) -> ContainerState:
    st = _load(g, cid)
    status = st.status()
    if status == "stopped":
        g.fail("cannot start a container that has stopped")
    if status == "running":
        g.fail("cannot start an already running container")
    if status == "paused":
        g.fail("cannot start a container in the paused state")
    spec = _spec_doc(st)
    try:
        run_hooks(spec, "startContainer", st)
    except RuntimeError as e:
        g.fail(str(e))
    reply = request(g, cid, {"op": "start"})
    if "error" in reply:
        g.fail(reply["error"])
    try:
        run_hooks(spec, "poststart", st)
    except RuntimeError as e:
        g.fail(str(e))
    return st


def _spec_doc(st: ContainerState) -> dict[str, Any]:
    try:
        with open(os.path.join(st.bundle, "config.json")) as f:
            doc = json.load(f)
            return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


_ROOT_HELP = "Bundle directory (default: the current directory)."


@click.command("create")
@click.option("--bundle", "-b", default=".", help=_ROOT_HELP)
@click.option("--pid-file", help="Write the container's pid here.")
@click.option("--console-socket", help="AF_UNIX socket to receive the pty master "
              "(process.terminal).")
@click.option("--no-pivot", is_flag=True, help="Accepted (runpsc never pivots).")
@click.option("--no-new-keyring", is_flag=True, help="Accepted.")
@click.option("--preserve-fds", type=int, default=0, help="Accepted (0 only).")
@click.argument("container_id")
def create(bundle: str, pid_file: str | None, console_socket: str | None, no_pivot: bool,
           no_new_keyring: bool, preserve_fds: int, container_id: str) -> None:
    """Create a container from BUNDLE; it waits for `start`."""
    do_create(_globals(), container_id, bundle, pid_file, console_socket)


@click.command("start")
@click.argument("container_id")
def start(container_id: str) -> None:
    """Start the program of a created container."""
    do_start(_globals(), container_id)


@click.command("run")
@click.option("--bundle", "-b", default=".", help=_ROOT_HELP)
@click.option("--pid-file", help="Write the container's pid here.")
@click.option("--console-socket", help="AF_UNIX socket to receive the pty master.")
@click.option("--detach", "-d", is_flag=True, help="Do not wait for the container.")
@click.option("--no-pivot", is_flag=True, help="Accepted.")
@click.option("--no-new-keyring", is_flag=True, help="Accepted.")
@click.option("--keep", is_flag=True, help="Do not delete the container when it ends.")
@click.argument("container_id")
def run(bundle: str, pid_file: str | None, console_socket: str | None, detach: bool,
        no_pivot: bool, no_new_keyring: bool, keep: bool, container_id: str) -> None:
    """create + start; in the foreground, wait and exit with the container's status."""
    g = _globals()
    prefix = "runpsc run failed: "
    if not detach and console_socket is None and _wants_terminal(bundle):
        try:
            caller = caller_terminal()
        except OSError as e:
            g.fail(f"{prefix}{e.strerror}")
        with OwnConsole() as console:
            st = do_create(g, container_id, bundle, pid_file, console.path, prefix=prefix)
            try:
                master = console.receive()
            except OSError as e:
                g.fail(f"{prefix}{e}")
        status = relay_console(master, st.pid, caller, lambda: do_start(g, container_id))
    else:
        st = do_create(g, container_id, bundle, pid_file, console_socket, prefix=prefix)
        do_start(g, container_id)
        if detach:
            return
        with trio_free_signals(st.pid):
            _, status = os.waitpid(st.pid, 0)
    if not keep:
        _delete(g, container_id, st)
    from runtime.sandbox import exit_code

    sys.exit(exit_code(status))


def _wants_terminal(bundle: str) -> bool:
    try:
        return load_bundle(bundle).process.terminal
    except SpecError:
        return False  # create reports it


class OwnConsole:
    """runc's console for a terminal in the foreground without --console-socket (`run`,
    `exec --tty`): a console socket of our own, in a private directory, that receives the
    pty master, which `relay_console` then joins to the caller's stdio. Use as a context
    manager (the socket and its directory go at the end)."""

    def __init__(self) -> None:
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="runpsc-console-")
        self.path = os.path.join(self.dir, "console.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.listener.bind(self.path)
            self.listener.listen(1)
        except BaseException:
            self.close()
            raise

    def receive(self) -> int:
        """The master the process at the other end sent (it connected already).

        Raises:
            OSError: it sent none.
        """
        import array

        conn, _ = self.listener.accept()
        with conn:
            _, anc, _, _ = conn.recvmsg(64, socket.CMSG_SPACE(4))
        if not anc or anc[0][:2] != (socket.SOL_SOCKET, socket.SCM_RIGHTS):
            raise OSError("no pty master came on the console socket")
        return int(array.array("i", anc[0][2][:4])[0])

    def close(self) -> None:
        import shutil

        self.listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> OwnConsole:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def caller_terminal() -> int:
    """The caller's terminal as runc finds it (it goes raw, and its size is the
    program's): the first of stderr, stdout, stdin that is one, else the controlling
    terminal opened through /dev/tty (kept open to the end of this process).

    Raises:
        OSError: none of them is a terminal and there is no controlling one (ENXIO);
            its strerror is runc's message ("open /dev/tty: no such device or address").
    """
    fd = next((fd for fd in (2, 1, 0) if os.isatty(fd)), None)
    if fd is not None:
        return fd
    try:
        return os.open("/dev/tty", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        code = e.errno or errno.EIO
        raise OSError(code, f"open /dev/tty: {os.strerror(code).lower()}") from None


def relay_console(master: int, pid: int, caller: int, start: Callable[[], object]) -> int:
    """Join our stdio to the pty `master` as runc does in the foreground: the `caller`'s
    terminal (`caller_terminal`) raw, its size (at start and at each SIGWINCH) set on the
    master, keys from stdin in, the pty's output to stdout, until the pty closes; then
    `pid`'s wait status (signals to us go to `pid` meanwhile). `start` runs once the size
    is set."""
    import fcntl
    import select
    import termios

    from runtime.hostterm import HostTerminal

    def resize(*_: Any) -> None:
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ,
                        fcntl.ioctl(caller, termios.TIOCGWINSZ, bytes(8)))

    host = HostTerminal.enter(caller)
    old = signal.signal(signal.SIGWINCH, resize)
    try:
        resize()
        start()
        with trio_free_signals(pid):
            sources = [0, master]
            while True:
                ready, _, _ = select.select(sources, [], [])
                if master in ready:
                    try:
                        data = os.read(master, 1 << 16)
                    except OSError:
                        data = b""
                    if not data:
                        break
                    os.write(1, data)
                if 0 in ready:
                    data = os.read(0, 1 << 16)
                    if data:
                        os.write(master, data)
                    else:
                        sources.remove(0)
    finally:
        signal.signal(signal.SIGWINCH, old)
        host.leave()
        os.close(master)
    with trio_free_signals(pid):
        _, status = os.waitpid(pid, 0)
    return status


@contextlib.contextmanager
def trio_free_signals(pid: int) -> Any:
    """While `run` waits in the foreground: signals to it go to the container, as runc's."""
    from runtime.oci.container import PASSED_SIGNALS

    def pass_on(sig: int, _frame: Any) -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)

    old = {s: signal.signal(s, pass_on) for s in PASSED_SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# -- state / list / ps --------------------------------------------------------------------


@click.command("state")
@click.argument("container_id")
def state(container_id: str) -> None:
    """Print the OCI state of a container as JSON."""
    st = _load(_globals(), container_id)
    click.echo(json.dumps(st.oci(), indent=2))


@click.command("list")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--quiet", "-q", is_flag=True, help="Only the IDs.")
def list_(fmt: str, quiet: bool) -> None:
    """List the containers under --root."""
    g = _globals()
    items = []
    for cid in g.states.ids():
        with contextlib.suppress(StateError):
            items.append(g.states.load(cid))
    if quiet:
        for st in items:
            click.echo(st.id)
        return
    if fmt == "json":
        click.echo(json.dumps([{**st.oci(), "owner": "root"} for st in items]))
        return
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    for st in items:
        o = st.oci()
        rows.append((st.id, str(o["pid"]), o["status"], st.bundle, st.created, "root"))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        click.echo("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@click.command("ps")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.argument("container_id")
@click.argument("ps_args", nargs=-1)
def ps(fmt: str, container_id: str, ps_args: tuple[str, ...]) -> None:
    """The host processes of a container (its Sentry and the sandbox's programs)."""
    g = _globals()
    st = _load(g, container_id)
    if st.status() == "stopped":
        pids: list[int] = []
    elif st.status() == "created":
        pids = [st.pid]
    else:
        pids = request(g, container_id, {"op": "ps"}).get("pids", [])
    if fmt == "json":
        click.echo(json.dumps(pids))
        return
    if not pids:
        out = subprocess.run(["ps", "-ef"], capture_output=True, text=True).stdout
        click.echo(out.splitlines()[0] if out else "")
        return
    subprocess.run(["ps", *(ps_args or ("-f",)), "-p", ",".join(map(str, pids))])


# -- kill / delete ------------------------------------------------------------------------


def parse_signal(text: str) -> int:
    """runc's rule: a number, or a name with or without SIG."""
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(f"unknown signal {text!r}") from None


@click.command("kill")
@click.option("--all", "-a", "everyone", is_flag=True, help="Every process of the container.")
@click.argument("container_id")
@click.argument("sig", default="SIGTERM")
def kill(everyone: bool, container_id: str, sig: str) -> None:
    """Send SIG (default SIGTERM) to the container's init (or, --all, every process)."""
    g = _globals()
    st = _load(g, container_id)
    try:
        n = parse_signal(sig)
    except ValueError as e:
        g.fail(str(e))
    if st.status() == "stopped":
        g.fail("container not running")
    if n == signal.SIGKILL:
        os.kill(st.pid, n)
        return
    reply = request(g, container_id, {"op": "kill", "signal": n, "all": everyone})
    if "error" in reply:
        g.fail(reply["error"])


def _delete(g: Globals, cid: str, st: ContainerState) -> None:
    """Remove a stopped container, or kill it first (force, or one only created)."""
    if st.alive():
        with contextlib.suppress(OSError):
            fd = os.pidfd_open(st.pid)
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                import select

                p = select.poll()
                p.register(fd, select.POLLIN)
                p.poll()
            finally:
                os.close(fd)
    left = Cgroup(st.cgroups).destroy()
    if left:
        print(f"runpsc delete: cgroup not removed (still busy): {', '.join(left)}",
              file=sys.stderr, flush=True)
    with g.states.locked():
        g.states.remove(cid)
    with contextlib.suppress(RuntimeError):
        run_hooks(_spec_doc(st), "poststop", st)


@click.command("delete")
@click.option("--force", "-f", is_flag=True, help="Kill a running container first.")
@click.argument("container_id")
def delete(force: bool, container_id: str) -> None:
    """Delete a stopped (or, --force, any) container's state."""
    g = _globals()
    st = _load(g, container_id)
    status = st.status()
    if status in ("running", "paused") and not force:
        g.fail(f"cannot delete container {container_id} that is not stopped: {status}")
    _delete(g, container_id, st)


# -- pause / resume / events / update -----------------------------------------------------


@click.command("pause")
@click.argument("container_id")
def pause(container_id: str) -> None:
    """Freeze every process of the container (the Sentry holds them; they see nothing);
    a created container stays paused until resumed, as runc's frozen init."""
    g = _globals()
    st = _load(g, container_id)
    if st.status() not in ("running", "created"):
        g.fail("container not running")
    reply = request(g, container_id, {"op": "pause"})
    if "error" in reply:
        g.fail(reply["error"])


@click.command("resume")
@click.argument("container_id")
def resume(container_id: str) -> None:
    """Let a paused container's processes go on."""
    g = _globals()
    st = _load(g, container_id)
    if st.status() != "paused":
        g.fail("container not paused")
    reply = request(g, container_id, {"op": "resume"})
    if "error" in reply:
        g.fail(reply["error"])


def _stats(g: Globals, cid: str) -> dict[str, Any]:
    reply = request(g, cid, {"op": "stats"})
    if "error" in reply:
        g.fail(reply["error"])
    return {"type": "stats", "id": cid, "data": reply}


@click.command("events")
@click.option("--stats", "once", is_flag=True, help="Print the stats once and exit.")
@click.option("--interval", default="5s", help="Time between stats (e.g. 5s, 500ms).")
@click.argument("container_id")
def events(once: bool, interval: str, container_id: str) -> None:
    """The container's resource usage as runc's JSON events (`type: stats`), every
    --interval until it stops, or once with --stats."""
    import time

    g = _globals()
    st = _load(g, container_id)
    if st.status() == "stopped":
        g.fail("container with id " + container_id + " is not running")
    try:
        every = _duration(interval)
    except ValueError:
        g.fail(f"invalid value {interval!r} for flag --interval")
    while True:
        click.echo(json.dumps(_stats(g, container_id), separators=(",", ":")))
        if once:
            return
        time.sleep(every)
        if not st.alive():
            return


def _duration(text: str) -> float:
    """A Go duration as runc's flags take it: 5s, 500ms, 1m."""
    for suffix, scale in (("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix) and text[:-len(suffix)].replace(".", "", 1).isdigit():
            return float(text[:-len(suffix)]) * scale
    raise ValueError(text)


#: `update`'s flags and where they go in the OCI resources document.
_UPDATE_FLAGS = {
    "memory": ("memory", "limit"), "memory_reservation": ("memory", "reservation"),
    "memory_swap": ("memory", "swap"), "kernel_memory": ("memory", "kernel"),
    "cpu_shares": ("cpu", "shares"), "cpu_quota": ("cpu", "quota"),
    "cpu_period": ("cpu", "period"), "cpu_rt_runtime": ("cpu", "realtimeRuntime"),
    "cpu_rt_period": ("cpu", "realtimePeriod"), "cpuset_cpus": ("cpu", "cpus"),
    "cpuset_mems": ("cpu", "mems"), "pids_limit": ("pids", "limit"),
    "blkio_weight": ("blockIO", "weight"),
}


def _ram_in_bytes(text: str) -> int:
    """A size as runc's `update --memory` reads it (go-units' RAMInBytes): a number with
    an optional binary suffix (k, m, g, t, p; b or ib after it), or -1 for no limit."""
    t = text.strip().lower()
    if t == "-1":
        return -1
    t = t.removesuffix("b").removesuffix("i")
    scale = 1
    if t and t[-1] in "kmgtp":
        scale = 1 << (10 * ("kmgtp".index(t[-1]) + 1))
        t = t[:-1]
    return int(float(t) * scale)


@click.command("update")
@click.option("--resources", "-r", "resources_file", help="A resources JSON file (- for "
              "stdin).")
@click.option("--memory")
@click.option("--memory-reservation")
@click.option("--memory-swap")
@click.option("--kernel-memory")
@click.option("--cpu-share", "cpu_shares")
@click.option("--cpu-quota")
@click.option("--cpu-period")
@click.option("--cpu-rt-runtime")
@click.option("--cpu-rt-period")
@click.option("--cpuset-cpus")
@click.option("--cpuset-mems")
@click.option("--pids-limit")
@click.option("--blkio-weight")
@click.argument("container_id")
def update(resources_file: str | None, container_id: str, **flags: str | None) -> None:
    """Set new resources (runc's flags or --resources JSON): the sandbox applies
    pids.limit and memory.limit; each other one given is named on stderr as not
    applied."""
    g = _globals()
    st = _load(g, container_id)
    if st.status() == "stopped":
        g.fail("container not running")
    doc: dict[str, Any] = {}
    if resources_file:
        try:
            if resources_file == "-":
                doc = json.load(sys.stdin)
            else:
                with open(resources_file) as f:
                    doc = json.load(f)
        except (OSError, ValueError) as e:
            g.fail(f"unable to parse resources: {e}")
        if not isinstance(doc, dict):
            g.fail("unable to parse resources: not a JSON object")
    for name, value in flags.items():
        if value is not None:
            section, key = _UPDATE_FLAGS[name]
            if name in ("pids_limit", "cpu_shares", "cpu_quota", "cpu_period"):
                try:
                    doc.setdefault(section, {})[key] = int(value)
                except ValueError:
                    g.fail(f"invalid value for {name.replace('_', '-')}: {value}")
            elif name == "memory":
                try:
                    doc.setdefault(section, {})[key] = _ram_in_bytes(value)
                except ValueError:
                    g.fail(f"invalid value for memory: invalid size: '{value}'")
            else:
                doc.setdefault(section, {})[key] = value
    reply = request(g, container_id, {"op": "update", "resources": doc})
    if "error" in reply:
        g.fail(reply["error"])
    applied = set(reply.get("applied", []))
    if "cpu" in doc and st.cgroups:
        try:
            applied |= set(Cgroup(st.cgroups).set_cpu(doc["cpu"]))
        except CgroupError as e:
            g.fail(str(e))
    ignored = sorted({f"{section}.{key}" for section, v in doc.items()
                      for key in (v if isinstance(v, dict) else {"": v})} - applied)
    if ignored:
        print(f"runpsc update: not applied (the sandbox enforces no such limit): "
              f"{', '.join(ignored)}", file=sys.stderr, flush=True)


# -- exec ---------------------------------------------------------------------------------


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("--process", "-p", "process_file", help="A process.json.")
@click.option("--detach", "-d", is_flag=True, help="Do not wait for the process.")
@click.option("--pid-file", help="Write the process's pid here.")
@click.option("--tty", "-t", is_flag=True, help="Give the process a pty.")
@click.option("--console-socket", help="AF_UNIX socket to receive the pty master.")
@click.option("--cwd", help="Working directory.")
@click.option("--env", "-e", "envs", multiple=True, help="NAME=VALUE (repeatable).")
@click.option("--user", "-u", help="UID[:GID].")
@click.option("--additional-gids", "-g", multiple=True, type=int)
@click.option("--no-new-privs", is_flag=True)
@click.option("--preserve-fds", type=int, default=0)
@click.argument("container_id")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def exec_(process_file: str | None, detach: bool, pid_file: str | None, tty: bool,
          console_socket: str | None, cwd: str | None, envs: tuple[str, ...],
          user: str | None, additional_gids: tuple[int, ...], no_new_privs: bool,
          preserve_fds: int, container_id: str, command: tuple[str, ...]) -> None:
    """Run a new process in a running container."""
    from runtime.oci.execproxy import exec_process

    g = _globals()
    try:
        st = g.states.load(container_id)
    except StateError as e:
        g.fail(f"exec failed: {e}", 255)
    status = st.status()
    if status == "paused":
        g.fail("exec failed: cannot exec in a paused container (use --ignore-paused to "
               "override)", 255)
    if status != "running":
        g.fail(f"exec failed: cannot exec in a {status} container", 255)
    if process_file:
        try:
            with open(process_file) as f:
                proc: dict[str, Any] = json.load(f)
        except (OSError, ValueError) as e:
            g.fail(f"exec failed: process {process_file}: {e}", 255)
    else:
        if not command:
            g.fail("exec failed: args must not be empty", 255)
        base = _spec_doc(st).get("process", {})
        proc = {"args": list(command), "env": list(base.get("env", [])) + list(envs),
                "cwd": cwd or base.get("cwd", "/"), "terminal": tty,
                "user": dict(base.get("user", {"uid": 0, "gid": 0})),
                "noNewPrivileges": no_new_privs or bool(base.get("noNewPrivileges"))}
        if "capabilities" in base:  # runc's exec keeps the container's capabilities
            proc["capabilities"] = base["capabilities"]
        if user:
            uid, _, gid = user.partition(":")
            proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        if additional_gids:
            proc["user"]["additionalGids"] = list(additional_gids)
    if proc.get("terminal") and not console_socket and detach:
        g.fail("exec failed: cannot allocate tty if runc will detach without setting "
               "console socket", 255)
    if console_socket and not (detach and proc.get("terminal")):
        g.fail("exec failed: cannot use console socket if runc will not detach or allocate "
               "tty", 255)
    try:
        from runtime.oci.spec import parse_process

        parse_process(proc)
    except SpecError as e:
        g.fail(f"exec failed: {e}", 255)
    try:  # the exec's proxy (its pid-file process) is the container's, as under runc
        Cgroup(st.cgroups).join()
    except OSError as e:
        g.fail(f"exec failed: cannot join the container's cgroup: {e}", 255)
    exec_process(g, container_id, proc, detach=detach, pid_file=pid_file,
                 console_socket=console_socket)


# -- spec / features ----------------------------------------------------------------------


@click.command("spec")
@click.option("--bundle", "-b", default=".", help=_ROOT_HELP)
@click.option("--rootless", is_flag=True, help="Accepted (the same spec).")
def spec(bundle: str, rootless: bool) -> None:
    """Write a starter config.json in BUNDLE."""
    from runtime.oci.spec import default_spec

    g = _globals()
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        g.fail("File config.json already exists. Remove it first.")
    with open(path, "w") as f:
        json.dump(default_spec(), f, indent="\t")


@click.command("features")
def features() -> None:
    """What this runtime supports, in runc's `features` JSON."""
    doc = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_NAMES),
        "mountOptions": ["bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "mode",
                         "size"],
        "linux": {
            "namespaces": ["pid", "network", "ipc", "uts", "mount"],
            "capabilities": list(CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": False},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"runpsc.mountTypes": ",".join(MOUNT_TYPES)},
    }
    click.echo(json.dumps(doc, indent=4))
