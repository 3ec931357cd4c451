"""The Sentry process of a synchronous `runtime.Sandbox`, and the messages it serves.

`runtime.api.Sandbox` starts ``python -m runtime.worker FD``: a process of its own, in a
session of its own, that boots one sandbox (`runtime.session.AsyncSandbox`) on trio in its
main thread and serves requests over the SOCK_SEQPACKET socket FD until told to close or
until the caller goes away. Why a process: the Kernel must own the main thread of a trio
run (SIGCHLD, ptrace), which a library caller's thread, asyncio loop or notebook cannot
give it; and a process can always be ended whole.

Messages are one JSON object each (one datagram), with descriptors attached
(SCM_RIGHTS): an exec's stdin, stdout and stderr (memfds the caller reads afterwards), the
memfd a file is written from or read into. Requests: ``exec`` {argv, env, cwd, timeout},
``write_file`` {path, mode}, ``read_file`` {path}, ``close``. Replies: {"ok": true, ...},
{"timeout": true} (the sandbox is then gone and the worker exits), or {"error": text,
"errno" or "code"}. The first message is the sandbox's configuration; the first reply
is {"ok": true, "pids": [...]} (the gofers and slirp4netns: what the caller kills if this
process has to be killed) or an error.

Teardown: ``close``, the caller's end closing (even in the middle of an exec), SIGTERM,
SIGINT and SIGHUP all end the programs, the gofers and the network before exiting.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_FDS", "MAX_MESSAGE", "main", "recv_message", "send_message"]

#: The most descriptors one message carries (an exec's three).
MAX_FDS = 3
#: The largest message (JSON): argv and environment fit easily.
MAX_MESSAGE = 1 << 20


def send_message(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Send one message (and `fds`) as one datagram."""
    socket.send_fds(sock, [json.dumps(message).encode()], list(fds))


def recv_message(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """One message and its descriptors; (None, []) when the other end has closed."""
    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), fds


def main(argv: list[str] | None = None) -> int:
    """``python -m runtime.worker FD``: serve one sandbox over the socket FD."""
    from runtime.startup import Startup

    # The start of `runpsc do` (runtime/startup.py): imports before the gofers fork, the
    # Sentry's while they start.
    startup = Startup.from_env()
    startup.begin()
    startup.import_before_fork()
    args = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(args[0]))
    message, _ = recv_message(sock)
    if message is None:
        return 0
    from runtime.sandbox import Sandbox, SandboxError
    from runtime.session import sandbox_config

    try:
        config = sandbox_config(**message["config"])
    except (ValueError, TypeError) as e:
        send_message(sock, {"error": str(e), "code": 125})
        return 1
    engine = Sandbox(config, confine=True)
    _become_subreaper()
    try:
        startup.before_fork()
        # Forked gofers: this process has one thread and no trio run yet.
        engine.start_gofers(fork=True)
        startup.import_sentry()
        import trio

        trio.run(_serve, engine, sock)
    except SandboxError as e:
        _try_send(sock, {"error": str(e), "code": e.code})
        return 1
    finally:
        engine.close()
        _reap_children()
    return 0


def _become_subreaper() -> None:
    """Orphans below this process come to it, not to the caller or init.

    Why: a stub whose parent stub died first (a shell's background job when the shell is
    killed) is reparented; as this process's child, it is reaped here (the Sentry's waits
    reap a child it traces for good) and `_reap_children` reaps what is left at the end,
    so the sandbox leaves no zombie with the caller (who may be a subreaper itself).
    """
    import ctypes

    pr_set_child_subreaper = 36
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)


def _reap_children() -> None:
    """Kill and reap every child still here once the sandbox has ended (its gofers are
    reaped already): orphaned stubs, killed, possibly not yet waited for."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid != me:
            continue
        pid = int(entry)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError, PermissionError):
            pass  # PermissionError: a root helper, not ours to kill (runtime/confine.py)


def _try_send(sock: socket.socket, message: dict[str, Any]) -> None:
    try:
        send_message(sock, message)
    except OSError:
        pass  # the caller is gone


async def _serve(engine: Any, sock: socket.socket) -> None:
    import trio

    from runtime.session import AsyncSandbox

    sock.setblocking(False)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        sb = await AsyncSandbox.boot(engine)
        try:
            send_message(sock, {"ok": True, "pids": sb.helper_pids()})
            async with trio.open_nursery() as nursery:

                async def on_signal() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()

                nursery.start_soon(on_signal)
                await _requests(sb, sock)
                nursery.cancel_scope.cancel()
        finally:
            await sb.aclose()


async def _requests(sb: Any, sock: socket.socket) -> None:
    """Serve requests until ``close``, the caller's end closing, or a timeout."""
    import trio

    while True:
        await trio.lowlevel.wait_readable(sock)
        message, fds = recv_message(sock)
        if message is None:
            return
        try:
            op = message.get("op")
            if op == "close":
                send_message(sock, {"ok": True})
                return
            if op == "exec":
                reply = await _exec(sb, sock, message, fds)
            elif op == "write_file":
                reply = await _file_op(sb.write_file(message["path"], _read_fd(fds[0]),
                                                     mode=message.get("mode", 0o644)))
            elif op == "read_file":
                reply = await _read_file(sb, message["path"], fds[0])
            else:
                reply = {"error": f"unknown request {op!r}", "code": 125}
        finally:
            for fd in fds:
                os.close(fd)
        if reply is None:
            return  # the caller went away during an exec
        send_message(sock, reply)
        if reply.get("timeout"):
            return


async def _exec(sb: Any, sock: socket.socket, message: dict[str, Any],
                fds: list[int]) -> dict[str, Any] | None:
    """Run one program; None if the caller's end became readable (closed) meanwhile."""
    import trio

    from runtime.sandbox import SandboxError
    from runtime.session import _TimedOut

    reply: dict[str, Any] | None = None
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            # The caller sends nothing during an exec: readable means it went away.
            await trio.lowlevel.wait_readable(sock)
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        try:
            code = await sb.run_fds(message["argv"], fds, env=message.get("env"),
                                    cwd=message.get("cwd"), timeout=message.get("timeout"))
            reply = {"ok": True, "returncode": code}
        except _TimedOut:
            reply = {"timeout": True}
        except SandboxError as e:
            reply = {"error": str(e), "code": e.code}
        except (ValueError, TypeError) as e:
            reply = {"error": str(e), "code": 125}
        nursery.cancel_scope.cancel()
    return reply


async def _file_op(op: Any) -> dict[str, Any]:
    from runtime.sandbox import SandboxError

    try:
        await op
    except OSError as e:
        return {"error": e.strerror or str(e), "errno": e.errno or errno.EIO}
    except SandboxError as e:
        return {"error": str(e), "code": e.code}
    return {"ok": True}


async def _read_file(sb: Any, path: str, fd: int) -> dict[str, Any]:
    from runtime.sandbox import SandboxError

    try:
        data = await sb.read_file(path)
    except OSError as e:
        return {"error": e.strerror or str(e), "errno": e.errno or errno.EIO}
    except SandboxError as e:
        return {"error": str(e), "code": e.code}
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return {"ok": True}


def _read_fd(fd: int) -> bytes:
    from runtime.session import read_all

    return read_all(fd)


if __name__ == "__main__":
    sys.exit(main())
