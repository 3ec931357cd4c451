"""`runpsc exec`: the host process that stands for one process run in a container.

The program runs inside the container's sandbox (started by its Sentry, over the control
socket); the shim, though, waits for a host pid (--pid-file) and signals it. So a proxy
process lives exactly as long as the program: it passes every signal it gets on to the
program and leaves with the program's wait status (`die_like`). With --detach the proxy is
forked and `runpsc exec` returns once the program runs, as runc's does; the shim, a
subreaper, inherits the proxy.

With a terminal (--tty) the proxy makes the host pty whose master goes to the console
socket, and makes it its controlling terminal (from a session of its own): a resize of the
master (the shim's TIOCSWINSZ) then reaches it as SIGWINCH, and it sends the new size to
the Sentry, which sets it on the program's pty of the sandbox (SIGWINCH to its foreground
group), as the init's console gets it. So a terminal always has the forked proxy, which
leads a session of its own. With --detach the console socket is the caller's
(--console-socket, as runc: refused otherwise); in the foreground `runpsc exec` is its own
console socket, as runc is, and relays the caller's stdio to the master (`relay_console`,
as `runpsc run` does for a terminal), its exit status the program's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from runtime.oci.container import PASSED_SIGNALS, die_like, recv_json, send_fds

if TYPE_CHECKING:
    from runtime.oci.commands import Globals, OwnConsole

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
    if not detach and not proc.get("terminal"):
        if pid_file:
            _write_pid_file(pid_file, os.getpid())
        _proxy(g, sock, proc, console_socket, None)
    console = None
    caller = -1
    if not detach:  # a terminal in the foreground: our own console socket, as runc's
        from runtime.oci.commands import OwnConsole, caller_terminal

        try:
            caller = caller_terminal()
        except OSError as e:
            g.fail(f"exec failed: {e.strerror}", 255)
        console = OwnConsole()
        console_socket = console.path
        if "consoleSize" not in proc:  # the size it starts with
            from runtime.hostterm import host_winsize

            rows, cols, _, _ = host_winsize(caller)
            proc["consoleSize"] = {"height": rows, "width": cols}
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            if console is not None:
                console.listener.close()
            os.setsid()
            _proxy(g, sock, proc, console_socket, w)
        finally:
            os._exit(1)
    os.close(w)
    sock.close()
    with os.fdopen(r, "rb") as f:
        doc = json.loads(f.read() or b'{"error": "exec failed"}')
    if "error" in doc:
        if console is not None:
            console.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        g.fail(f"exec failed: {doc['error']}", 255)
    if pid_file:
        _write_pid_file(pid_file, pid)
    if console is None:
        os._exit(0)
    _relay(g, console, pid, caller)


def _relay(g: Globals, console: OwnConsole, pid: int, caller: int) -> NoReturn:
    """`exec --tty` in the foreground: the program runs on the host pty whose master the
    proxy `pid` sent to `console`; relay the caller's stdio to it (`caller`: its terminal),
    leave as the program did."""
    from runtime.oci.commands import relay_console
    from runtime.sandbox import exit_code

    with console:
        try:
            master = console.receive()
        except OSError as e:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            g.fail(f"exec failed: {e}", 255)
    status = relay_console(master, pid, caller, lambda: None)
    sys.stdout.flush()
    os._exit(exit_code(status))


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
            os._exit(255)  # `runpsc exec` reports it
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
