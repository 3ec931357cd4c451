"""Stub processes started by a zygote, so that they do not inherit the Sentry's seccomp filter.

Why: a confined Sentry runs under its own seccomp allow-list (runtime/confine.py), and a
filter is inherited by every process forked afterwards and kept across execve. A stub
forked by the Sentry would run the application's calls under it: those the list does not
allow would kill the stub, and on the seccomp platform the stub's own USER_NOTIF/TRACE
filter would be overridden by the inherited KILL (the strictest action wins). So the
Sentry forks this small process once, after its other walls are up and before its
filter, and asks it for every new stub.

How the Sentry stays the stub's tracer and parent: the zygote makes each stub with
clone(CLONE_PARENT), so the stub's parent is the Sentry, and the stub's PTRACE_TRACEME
makes the Sentry its tracer, exactly as when the Sentry forks it itself; the Sentry
waits for it, reaps it and gets its SIGCHLD as before. The Sentry needs no
PTRACE_ATTACH/SEIZE at all (its filter refuses both).

What a subverted Sentry can get from it: nothing but another stub. A request carries
the stub's socket, the stub image's descriptor, the CPUs and the signal mask; the zygote
is non-dumpable, so neither ptrace nor /proc/PID/mem reaches it without CAP_SYS_PTRACE,
which the Sentry has not.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import struct
from collections.abc import Iterable

from . import libc

#: The stub's end of its socket (the Sentry passes host fds over it).
STUB_SOCK_FD = 0
_CLONE_PARENT = 0x00008000
_NR_CLONE = 56
_PR_SET_DUMPABLE = 4
_PR_SET_NAME = 15
_NAME = ctypes.create_string_buffer(b"runpsc-zygote")
#: A request: the signal mask, the number of CPUs, then the CPUs (u16 each); with it,
#: SCM_RIGHTS [stub socket, stub image]. A reply: the stub's pid, or -errno.
_REQ = struct.Struct("<QH")
_REPLY = struct.Struct("<i")


def exec_stub(sock: int, exe: int, path: str | None, cpus: Iterable[int] | None,
              parent: int) -> None:
    """The new stub process's side, before the stub image runs: only async-signal-safe
    work, then PTRACE_TRACEME and exec (never returns). `exe` is the image's fd (or -1 and
    `path`); `sock` becomes STUB_SOCK_FD; `parent` is the Sentry, its tracer to be."""
    try:
        if cpus is not None:  # the Sentry's CPU (affinity.py says why)
            os.sched_setaffinity(0, cpus)
        libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
        # A Sentry killed before that prctl sends no death signal, and then
        # PTRACE_TRACEME below would make the reaper we were handed to (init) our
        # tracer: a stub stopped at exec for ever. Its parent's pid tells.
        if os.getppid() != parent:
            os._exit(127)
        # A stub's host children (the application's forks) are reaped by the host
        # once the Sentry, their tracer, has seen them exit: the stub never waits
        # (the application's wait4 is the Sentry's), so they would stay zombies
        # until it ends. The ignored disposition survives exec and fork.
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        os.setpgid(0, 0)  # terminal signals go to runpsc, not the stub
        hi = max(exe, sock) + 1
        os.dup2(sock, hi)
        fd = hi + 1
        if exe >= 0:
            os.dup2(exe, fd, inheritable=False)
        os.closerange(0, hi)
        os.closerange(fd + 1, 1 << 20)
        os.dup2(hi, STUB_SOCK_FD)
        os.close(hi)
        libc.ptrace(libc.PTRACE_TRACEME, 0)
        if path is None:
            os.execve(fd, ["runpsc-stub"], {})
        else:
            os.execve(path, ["runpsc-stub"], {})
    finally:
        os._exit(127)


class Zygote:
    """The Sentry's handle on its zygote process (`fork`), which starts stubs (`spawn`)."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self._sock = sock
        self.pid = pid

    @classmethod
    def fork(cls) -> Zygote:
        """Fork the zygote from this (single-threaded) process: call it after every wall
        but the seccomp filter, so the zygote is as confined as the Sentry but for it."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the zygote: nothing of the Sentry's but its end of the pair
            code = 1
            try:
                libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
                if os.getppid() != parent:
                    os._exit(0)
                libc.prctl(_PR_SET_DUMPABLE, 0)  # no ptrace, no /proc/PID/mem without a cap
                libc.prctl(_PR_SET_NAME, ctypes.addressof(_NAME))
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                os.setpgid(0, 0)  # a terminal's ^C is the Sentry's to handle
                keep = theirs.fileno()
                os.closerange(0, keep)
                os.closerange(keep + 1, 1 << 20)
                _serve(theirs, parent)
                code = 0
            finally:
                os._exit(code)
        theirs.close()
        return cls(ours, pid)

    def spawn(self, exe: int, sock: int, cpus: Iterable[int] | None) -> int:
        """A new stub, the Sentry's child and tracee (stopped, or about to stop, at its
        exec's SIGTRAP): its pid. `exe`: the stub image's fd; `sock`: its socket's end;
        `cpus`: its affinity (None: this thread's now). The stub gets this thread's
        signal mask, as a forked one would."""
        if cpus is None:
            cpus = os.sched_getaffinity(0)
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
        bits = sum(1 << (int(s) - 1) for s in mask)
        cpu_list = sorted(cpus)
        msg = _REQ.pack(bits, len(cpu_list)) + struct.pack(f"<{len(cpu_list)}H", *cpu_list)
        socket.send_fds(self._sock, [msg], [sock, exe])
        reply = self._sock.recv(_REPLY.size)
        if len(reply) != _REPLY.size:
            raise OSError(errno.ECHILD, "the stub zygote is gone")
        (pid,) = _REPLY.unpack(reply)
        if pid < 0:
            raise OSError(-pid, f"stub zygote: {os.strerror(-pid)}")
        return pid

    def close(self) -> None:
        """End the zygote (it also ends by itself when this process does)."""
        if self._sock.fileno() < 0:
            return
        self._sock.close()
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _clone_parent() -> int:
    """fork, but the child's parent is ours (the Sentry): 0 in the child, its pid here."""
    sys = ctypes.PyDLL(None, use_errno=True).syscall  # the GIL kept: nothing else runs
    sys.restype = ctypes.c_long
    pid = sys(ctypes.c_long(_NR_CLONE), ctypes.c_ulong(_CLONE_PARENT | signal.SIGCHLD),
              ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
    if pid < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"clone(CLONE_PARENT): {os.strerror(e)}")
    return int(pid)


def _serve(sock: socket.socket, parent: int) -> None:
    """The zygote's loop: one stub per request, until the Sentry closes its end."""
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 4096, 2)
        except InterruptedError:
            continue
        if not msg:
            return
        pid = -errno.EINVAL
        try:
            if len(fds) == 2 and len(msg) >= _REQ.size:
                bits, n = _REQ.unpack_from(msg)
                cpus = struct.unpack_from(f"<{n}H", msg, _REQ.size)
                mask = {s for s in range(1, 65) if bits >> (s - 1) & 1}
                pid = _clone_parent()
                if pid == 0:
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                    exec_stub(fds[0], fds[1], None, cpus or None, parent)
        except (OSError, struct.error, ValueError) as e:
            pid = -(getattr(e, "errno", None) or errno.EINVAL)
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(_REPLY.pack(pid))
