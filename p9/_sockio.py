"""Frame I/O with as few trips through the trio scheduler as possible.

Why: at one request in flight, 9P is latency-bound, and every trio checkpoint costs a pass
through the scheduler (an epoll call). When the stream is a plain trio SocketStream, a
non-blocking `send`/`recv` on the socket usually completes at once; only when it would
block do we wait through trio. Anything else (TLS, wrappers) takes the ordinary Stream path.
"""

from __future__ import annotations

import array
import collections
import os
import socket
import time
from typing import Any

import trio

#: Receives answered at once in a row before we yield to other tasks anyway (fairness).
_MAX_STREAK = 16
#: Spins in a row that find nothing before spinning pauses for _SPIN_BACKOFF waits.
_SPIN_MISSES = 4
_SPIN_BACKOFF = 16


def _raw_socket(stream: trio.abc.Stream):
    sock = getattr(stream, "socket", None) if type(stream) is trio.SocketStream else None
    # trio sockets wrap a stdlib socket; its non-blocking calls are what we need.
    return getattr(sock, "_sock", None)


#: Descriptors one receive takes at most (more are closed by the kernel: MSG_CTRUNC).
_MAX_FDS = 16
_FD_SPACE = socket.CMSG_SPACE(_MAX_FDS * 4)


def carries_fds(stream: trio.abc.Stream) -> bool:
    """Whether `stream` is a plain unix socket, which can carry descriptors (SCM_RIGHTS)."""
    raw = _raw_socket(stream)
    return raw is not None and raw.family == socket.AF_UNIX


def send_now(call, data) -> int:
    """One non-blocking send attempt (`raw.send` or `raw.sendmsg`): the bytes it took, 0 if
    the socket is full; a failed socket is a broken stream."""
    try:
        return call(data)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError as e:
        raise trio.BrokenResourceError(f"send failed: {e}") from e


class FrameSender:
    """Serialise whole frames onto one stream (frames never interleave).

    A frame is never cut by cancellation: the slow path runs shielded, because a half-sent
    frame would desynchronise the stream for every other request.
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.lock = trio.Lock()
        self._raw = _raw_socket(stream)

    async def send(self, frame: bytes | memoryview) -> None:
        raw = self._raw
        if raw is not None and not self.lock.locked():
            n = send_now(raw.send, frame)
            if n == len(frame):
                return
            frame = memoryview(frame)[n:]
        with trio.CancelScope(shield=True):
            async with self.lock:
                await self.stream.send_all(frame)

    async def send_fd(self, frame: bytes, fd: int) -> None:
        """Send one frame with descriptor `fd` attached to its first bytes (SCM_RIGHTS;
        the stream must be a unix socket: `carries_fds`). The caller keeps `fd`."""
        raw = self._raw
        assert raw is not None
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
        view = memoryview(frame)
        with trio.CancelScope(shield=True):
            async with self.lock:
                n = 0
                while not n:  # until the bytes carrying the descriptor are in
                    n = send_now(lambda d: raw.sendmsg([d], anc), view)
                    if not n:
                        await trio.lowlevel.wait_writable(raw)
                view = view[n:]
                while view:
                    await trio.lowlevel.wait_writable(raw)
                    view = view[send_now(raw.send, view):]

    async def send_parts(self, parts: list) -> None:
        """Send one frame given as parts (joined here; `_sendpath.PartsSender` sends them
        with sendmsg instead)."""
        await self.send(b"".join(parts))


class Receiver:
    """`receive_some` with a non-blocking fast path on plain socket streams.

    Args:
        stream: the stream to read.
        spin_us: when the socket has nothing, keep trying for up to this many microseconds
            before waiting through trio (0: never). Why: a client with one request in
            flight answers within tens of microseconds, while going to sleep and being woken
            by another CPU costs 35-50 µs on a virtual machine, plus a trio scheduler pass.
            Each empty poll yields the CPU (sched_yield): a client on the same CPU could
            otherwise not run, and so not answer, until the spin ran out.
            After `_SPIN_MISSES` spins in a row that find nothing, spinning pauses for the
            next `_SPIN_BACKOFF` waits, so a client that pauses costs little CPU.
    """

    def __init__(self, stream: trio.abc.Stream, *, spin_us: float = 0) -> None:
        self.stream = stream
        self._raw = _raw_socket(stream)
        self._streak = 0
        self._spin_ns = int(spin_us * 1000) if self._raw is not None else 0
        self._spin_skip = 0
        self._spin_misses = 0
        self._skip_once = False
        #: trio.current_time() when the last receive returned (an idle watchdog reads it).
        self.last_data = trio.current_time()
        #: Descriptors received with the data, oldest first, once `take_fds()` turned
        #: their reception on (None: plain receives; any descriptor sent is discarded).
        self.fds: collections.deque[int] | None = None
        #: Whether the kernel dropped descriptors sent to us (MSG_CTRUNC).
        self.fds_lost = False
        self._recv: Any = self._raw.recv if self._raw is not None else None

    def take_fds(self) -> None:
        """Receive with recvmsg from now on, keeping the descriptors that come with the
        data in `fds` (close-on-exec); only for unix sockets (`carries_fds`)."""
        if self.fds is None:
            self.fds = collections.deque()
            self._recv = self._recv_fds

    def _recv_fds(self, max_bytes: int) -> bytes:
        raw = self._raw
        assert raw is not None and self.fds is not None
        data, anc, flags, _addr = raw.recvmsg(max_bytes, _FD_SPACE, socket.MSG_CMSG_CLOEXEC)
        if flags & socket.MSG_CTRUNC:
            self.fds_lost = True  # (this process's descriptor limit, or more than _MAX_FDS)
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                self.fds.extend(fds)
        return data

    async def receive(self, max_bytes: int) -> bytes | bytearray:
        raw = self._raw
        data: bytes | bytearray | None
        if raw is None:
            data = await self.stream.receive_some(max_bytes)
            self.last_data = trio.current_time()
            return data
        if self._streak >= _MAX_STREAK:
            self._streak = 0
            await trio.lowlevel.checkpoint()
        while True:
            try:
                data = self._recv(max_bytes)
            except (BlockingIOError, InterruptedError):
                self._streak = 0
                data = self._spin(raw, max_bytes) if self._spin_ns else None
                if data is None:
                    await trio.lowlevel.wait_readable(raw)
                    continue
            except OSError as e:
                raise trio.BrokenResourceError(f"receive failed: {e}") from e
            self._streak += 1
            self.last_data = trio.current_time()
            return data

    def spin_ns(self) -> int:
        """How long a receive done elsewhere (p9._fastio) may spin now (the backoff's say)."""
        return 0 if self._spin_skip else self._spin_ns

    def spun(self, found: bool, *, waiting: bool = False) -> None:
        """Account for such a spin: found data or not (see the class's backoff).
        `waiting`: the caller now waits through trio, so the next receive skips its spin."""
        if found:
            self._spin_misses = 0
        elif self._spin_ns and not self._spin_skip:
            self._spin_misses += 1
            if self._spin_misses >= _SPIN_MISSES:
                self._spin_misses = 0
                self._spin_skip = _SPIN_BACKOFF
        if waiting:
            self._skip_once = True
        self.last_data = trio.current_time()

    def _spin(self, raw, max_bytes: int) -> bytes | None:
        """Poll the socket for up to the spin time; None if nothing came (see the class)."""
        if self._skip_once:
            self._skip_once = False
            return None
        if self._spin_skip:
            self._spin_skip -= 1
            return None
        deadline = time.perf_counter_ns() + self._spin_ns
        while time.perf_counter_ns() < deadline:
            try:
                data = self._recv(max_bytes)
            except (BlockingIOError, InterruptedError):
                os.sched_yield()  # a client on this CPU runs now rather than at our next tick
                continue
            except OSError as e:
                raise trio.BrokenResourceError(f"receive failed: {e}") from e
            self._spin_misses = 0
            return data
        self._spin_misses += 1
        if self._spin_misses >= _SPIN_MISSES:
            self._spin_misses = 0
            self._spin_skip = _SPIN_BACKOFF
        return None
