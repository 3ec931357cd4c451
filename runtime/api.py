"""The synchronous Python API: `run` one program, or keep a `Sandbox` for several.

Each `Sandbox` is served by a Sentry process of its own (`runtime.worker`), so the API works
from any thread (an asyncio loop's `asyncio.to_thread`, a web server's workers, a notebook)
and two sandboxes never share anything. Results are `subprocess.CompletedProcess`; `check`
raises `subprocess.CalledProcessError` and a timeout `subprocess.TimeoutExpired`, as
subprocess.run does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runtime.network import Publish
from runtime.sandbox import SandboxError, Volume
from runtime.session import MountSpec, Stdio, read_all, sandbox_config
from runtime.worker import recv_message, send_message

if TYPE_CHECKING:
    import p9

__all__ = ["Sandbox", "run"]

#: How long past an exec's timeout (or a close) the worker may take to answer before it
#: is killed: the backstop for a Sentry that stopped answering, not the timeout itself.
GRACE_S = 30.0


class Sandbox:
    """One sandbox kept across several programs: its root overlay (what one program writes
    the next reads), volumes, tmpfs mounts and network.

    Use it as a context manager, or call `close()`: either way nothing is left behind
    (programs, gofers, the Sentry process), also after an exception or ^C.

    Args:
        mounts: host directories, as `Volume` or ``HOST:SANDBOX[:ro]``, and running gofers'
            exports, as `Mount` or ``9p:ADDRESS,aname=NAME[,ro][,cache=POLICY]:SANDBOX``.
        network: ``none`` (only loopback, the default), ``host``, or ``sandbox`` (its own
            namespace with outbound NAT through slirp4netns).
        publish: host ports forwarded to sandbox ports, ``sandbox`` network only: each a
            `Publish` or ``HOSTPORT:SANDBOXPORT[/tcp|udp]`` (the host port listens on every
            host address while the sandbox lives).
        memory: the sandbox's memory (/proc/meminfo's MemTotal), bytes or ``512M``.
        env: added to the sandbox's environment (``PATH`` only, by default).
        cwd: where programs start (``/``).
        tmpfs: sandbox paths that get a private empty tmpfs (e.g. ``["/tmp"]``).
        tls: the certificate, key and CA for ``tls:`` mounts (`p9.TLSClientConfig`).
        platform: how the Sentry runs programs, ``ptrace`` or ``seccomp`` (default:
            $RUNPSC_PLATFORM, else seccomp where the host supports it, else ptrace).

    Raises:
        ValueError: a malformed argument.
        SandboxError: the sandbox could not boot (e.g. ``network="host"`` without root).
    """

    def __init__(self, *, mounts: Iterable[MountSpec] = (), network: str = "none",
                 memory: int | str | None = None, env: Mapping[str, str] | None = None,
                 cwd: str | None = None, tmpfs: Iterable[str] = (),
                 tls: p9.TLSClientConfig | None = None, platform: str | None = None,
                 publish: Iterable[Publish | str] = ()) -> None:
        config = sandbox_config(mounts=mounts, network=network, memory=memory, env=env,
                                cwd=cwd, tmpfs=tmpfs, tls=tls, platform=platform,
                                publish=publish)  # ValueError here, in the caller
        self._lock = threading.Lock()
        self._closed: str | None = None
        self._busy = True  # until the worker answers: close() must not wait for a reply
        self._pidfds: list[int] = []
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "runtime.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # its messages go to stderr, the caller's
                start_new_session=True)  # a ^C at the terminal is ours to handle
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        try:
            send_message(ours, {"config": {
                "mounts": [*(_volume_spec(v) for v in config.volumes),
                           *(m.spec() for m in config.mounts)],
                "tls": None if config.tls is None else dataclasses.asdict(config.tls),
                "network": config.network, "memory": config.memory,
                "publish": [f"{p.host_port}:{p.sandbox_port}/{p.proto}" for p in config.publish],
                "env": config.env, "cwd": config.cwd, "tmpfs": config.tmpfs,
                "platform": config.platform}})
            reply = self._reply(None)
            self._pidfds = [os.pidfd_open(pid) for pid in reply.get("pids", [])]
            self._busy = False
        except BaseException:
            self.close()
            raise

    def exec(self, argv: Sequence[str | bytes | os.PathLike[str]], *,
             env: Mapping[str, str] | None = None, cwd: str | None = None,
             stdin: bytes | None = None, timeout: float | None = None,
             check: bool = False) -> subprocess.CompletedProcess[bytes]:
        """Run `argv` in the sandbox to completion, capturing stdout and stderr.

        `env` is added to the sandbox's environment; `cwd` (default: the sandbox's) must
        exist in the sandbox; `stdin` is the program's whole input (default: empty).
        argv[0] without a slash is searched in the sandbox's PATH.

        Returns:
            subprocess.CompletedProcess: args, returncode (-N for a program killed by
            signal N, as subprocess gives), stdout and stderr as bytes.

        Raises:
            subprocess.TimeoutExpired: `timeout` seconds passed; the whole sandbox is then
                gone (every process of it, its gofers, its Sentry) and this object closed.
            subprocess.CalledProcessError: `check` and a non-zero returncode.
            SandboxError: the program could not start (`.code` 127: not found, 126: not
                executable, 125: no such cwd), or the sandbox is closed.
        """
        args = [os.fsdecode(a) for a in argv]
        request = {"op": "exec", "argv": args, "env": dict(env or {}), "cwd": cwd,
                   "timeout": timeout}
        with Stdio(stdin) as io:
            reply = self._call(request, io.fds,
                               None if timeout is None else timeout + GRACE_S)
            out, err = io.output()
        if reply.get("timeout") or reply.get("killed"):
            self.close()
            raise subprocess.TimeoutExpired(args, timeout or 0, out, err)
        result = subprocess.CompletedProcess(args, reply["returncode"], out, err)
        if check:
            result.check_returncode()
        return result

    def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        """Create or replace the file `path` in the sandbox (relative: to its cwd).

        Raises:
            OSError: as open(2) or write(2) in the sandbox would (ENOENT, EROFS ...).
        """
        fd = os.memfd_create("runpsc-file", os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            self._call({"op": "write_file", "path": path, "mode": mode}, [fd], None, path)
        finally:
            os.close(fd)

    def read_file(self, path: str) -> bytes:
        """The content of the file `path` in the sandbox (relative: to its cwd).

        Raises:
            OSError: as open(2) or read(2) in the sandbox would.
        """
        fd = os.memfd_create("runpsc-file", os.MFD_CLOEXEC)
        try:
            self._call({"op": "read_file", "path": path}, [fd], None, path)
            return read_all(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """End the sandbox and wait until every process of it is gone (idempotent).

        From outside a call: the worker is asked to close. Interrupted in the middle of a
        call (^C, an exception in another thread): it is sent SIGTERM, which ends the
        program, the gofers and the network just the same; SIGKILL if it does not exit.
        """
        if self._closed is not None and self._sock.fileno() < 0:
            return
        self._closed = self._closed or "closed"
        try:
            if not self._busy and self._proc.poll() is None:
                with contextlib.suppress(OSError, SandboxError):
                    send_message(self._sock, {"op": "close"})
                    self._reply(GRACE_S)
            elif self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(GRACE_S)
            except subprocess.TimeoutExpired:
                self._kill()
        finally:
            self._sock.close()
            self._end_helpers()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if getattr(self, "_proc", None) is not None and self._proc.poll() is None:
                self.close()

    # -- the conversation with the worker -----------------------------------------------

    def _call(self, request: dict[str, Any], fds: list[int], backstop: float | None,
              path: str | None = None) -> dict[str, Any]:
        with self._lock:
            if self._closed is not None:
                raise SandboxError(f"the sandbox is closed ({self._closed})")
            self._busy = True
            send_message(self._sock, request, fds)
            reply = self._reply(backstop)
            self._busy = False
        if "errno" in reply:
            raise OSError(reply["errno"], reply["error"], path)
        return reply

    def _reply(self, backstop: float | None) -> dict[str, Any]:
        """The worker's answer; {"killed": True} if it took `backstop` seconds more than
        allowed (it is then killed)."""
        ready, _, _ = select.select([self._sock], [], [], backstop)
        if not ready:
            self._closed = "killed: the Sentry stopped answering"
            self._kill()
            return {"killed": True}
        message, fds = recv_message(self._sock)
        for fd in fds:
            os.close(fd)
        if message is None:
            self._closed = "the Sentry process ended"
            code = self._proc.wait()
            raise SandboxError(f"the sandbox's Sentry process ended (status {code})")
        if "code" in message and "error" in message:
            raise SandboxError(message["error"], code=message["code"])
        return message

    def _kill(self) -> None:
        """SIGKILL the worker's process group and the helpers it reported, and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        for fd in self._pidfds:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        self._proc.wait()

    def _end_helpers(self) -> None:
        """Wait until the gofers and slirp4netns the worker reported are gone (the worker
        ends them; after a SIGKILL of the worker they end when their connection closes)."""
        fds, self._pidfds = self._pidfds, []
        for fd in fds:
            try:
                if not select.select([fd], [], [], GRACE_S)[0]:
                    with contextlib.suppress(ProcessLookupError):
                        signal.pidfd_send_signal(fd, signal.SIGKILL)
                    select.select([fd], [], [], GRACE_S)
            finally:
                os.close(fd)


def run(argv: Sequence[str | bytes | os.PathLike[str]], *, mounts: Iterable[MountSpec] = (),
        network: str = "none", timeout: float | None = None, memory: int | str | None = None,
        env: Mapping[str, str] | None = None, cwd: str | None = None,
        stdin: bytes | None = None, check: bool = False,
        tmpfs: Iterable[str] = (),
        tls: p9.TLSClientConfig | None = None,
        platform: str | None = None,
        publish: Iterable[Publish | str] = ()) -> subprocess.CompletedProcess[bytes]:
    """Run one program in a fresh sandbox and return its CompletedProcess (output captured).

    The arguments are `Sandbox`'s and `Sandbox.exec`'s; `timeout` counts from the program's
    start (not the sandbox's boot). Nothing is left behind when it returns or raises.
    """
    with Sandbox(mounts=mounts, network=network, memory=memory, env=env, cwd=cwd,
                 tmpfs=tmpfs, tls=tls, platform=platform, publish=publish) as sb:
        return sb.exec(argv, stdin=stdin, timeout=timeout, check=check)


def _volume_spec(v: Volume) -> str:
    return f"{v.host}:{v.sandbox}:{'ro' if v.readonly else 'rw'}"

