"""`runpsc exec`: the host process that stands for one process run in a container.

The program runs inside the container's sandbox (started by its Sentry, over the control
socket); the shim, though, waits for a host pid (--pid-file) and signals it. So a proxy
process lives exactly as long as the program: it passes every signal it gets on to the
program and leaves with the program's wait status (`die_like`). With --detach the proxy is
forked and `runpsc exec` returns once the program runs, as runc's does; the shim, a
subreaper, inherits the proxy.

With a terminal (--tty and --console-socket) the proxy makes the host pty whose master goes
to the console socket, and makes it its controlling terminal (from a session of its own):
a resize of the master (the shim's TIOCSWINSZ) then reaches it as SIGWINCH, and it sends
the new size to the Sentry, which sets it on the program's pty of the sandbox (SIGWINCH to
its foreground group), as the init's console gets it. A console socket comes only with
--detach (as runc, `exec` refuses it otherwise), so the proxy is always the forked one,
which leads a session of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from typing import TYPE_CHECKING, Any, NoReturn

from runtime.oci.container import PASSED_SIGNALS, die_like, recv_json, send_fds

if TYPE_CHECKING:
    from runtime.oci.commands import Globals

__all__ = ["exec_process"]


def exec_process(g: Globals, cid: str, proc: dict[str, Any], *, detach: bool,
                 pid_file: str | None, console_socket: str | None) -> NoReturn:
    """Run `proc` in container `cid`; never returns (exits as the program did, or 0 with
    --detach once it runs)."""
    from runtime.oci.commands import _write_pid_file

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        with g.states.control_address(cid) as address:
            sock.connect(address)
    except OSError:
        g.fail("exec failed: cannot exec in a stopped container", 255)
    if not detach:
        if pid_file:
            _write_pid_file(pid_file, os.getpid())
        _proxy(g, sock, proc, console_socket, None)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setsid()
            _proxy(g, sock, proc, console_socket, w)
        finally:
            os._exit(1)
    os.close(w)
    sock.close()
    with os.fdopen(r, "rb") as f:
        doc = json.loads(f.read() or b'{"error": "exec failed"}')
    if "error" in doc:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        g.fail(f"exec failed: {doc['error']}", 255)
    if pid_file:
        _write_pid_file(pid_file, pid)
    os._exit(0)


def _proxy(g: Globals, sock: socket.socket, proc: dict[str, Any],
           console_socket: str | None, report: int | None) -> NoReturn:
    """Send the request with our stdio, then pass signals (and window changes) and wait
    for the status."""
    req: dict[str, Any] = {"op": "exec", "process": proc}
    host_tty = -1  # the host pty's replica, our controlling terminal
    if proc.get("terminal"):
        # The host pty is made here, not by the Sentry (locked in, it reaches no host
        # file): its master goes to the console socket, its replica to the container.
        replica = []
        if console_socket:
            from runtime.oci.container import console_pty
            from runtime.oci.spec import parse_process
            from runtime.sandbox import SandboxError

            try:
                replica = [console_pty(console_socket, parse_process(proc).console_size,
                                       ctty=True)]
            except SandboxError as e:
                g.fail(f"exec failed: {e}", 255)
        send_fds(sock, req, replica)
        host_tty = replica[0] if replica else -1
    else:
        send_fds(sock, req, [0, 1, 2])
    reply = recv_json(sock) or {"error": "container not running"}
    if report is not None:
        os.write(report, json.dumps(reply).encode())
        os.close(report)
    if "error" in reply:
        g.fail(f"exec failed: {reply['error']}", 255)
    # The program has its own copies of our stdio: ours must not keep a pipe open after it.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)

    def pass_on(sig: int, _frame: Any) -> None:
        with contextlib.suppress(OSError):
            sock.send(json.dumps({"signal": sig}).encode())

    for s in PASSED_SIGNALS:
        signal.signal(s, pass_on)
    if host_tty >= 0:
        from runtime.hostterm import host_winsize

        def resized(_sig: int, _frame: Any) -> None:
            with contextlib.suppress(OSError):
                sock.send(json.dumps({"winsize": host_winsize(host_tty)}).encode())

        signal.signal(signal.SIGWINCH, resized)
        resized(signal.SIGWINCH, None)  # a resize before the handler was there
    while True:
        try:
            msg = recv_json(sock)
        except OSError:
            msg = None
        if msg is None:  # the container is gone, and its processes with it
            die_like(signal.SIGKILL)
        if "status" in msg:
            die_like(int(msg["status"]))
