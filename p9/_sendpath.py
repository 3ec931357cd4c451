"""Sending frames with as few trips through the trio scheduler as possible.

Why: at one request in flight, 9P is latency-bound, and every trio checkpoint costs a pass
through the scheduler (an epoll call). When the stream is a plain trio SocketStream and no
other task is mid-send, a non-blocking `send` on the socket usually takes the whole frame
at once; only a partial send falls back to `send_all` for the rest.
"""

from __future__ import annotations

import trio


class FrameSender:
    """Serialise whole frames onto one stream (frames never interleave)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.lock = trio.Lock()
        sock = getattr(stream, "socket", None) if type(stream) is trio.SocketStream else None
        # trio sockets wrap a stdlib socket; its non-blocking send is what we need.
        self._raw = getattr(sock, "_sock", None)

    async def send(self, frame: bytes) -> None:
        raw = self._raw
        if raw is not None and not self.lock.locked():
            try:
                n = raw.send(frame)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as e:
                raise trio.BrokenResourceError(f"send failed: {e}") from e
            if n == len(frame):
                return
            frame = memoryview(frame)[n:]
        async with self.lock:
            await self.stream.send_all(frame)

    async def send_parts(self, parts: list) -> None:
        """Send one frame given as parts, with sendmsg when the fast path applies."""
        raw = self._raw
        if raw is not None and not self.lock.locked():
            total = sum(len(p) for p in parts)
            try:
                n = raw.sendmsg(parts)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as e:
                raise trio.BrokenResourceError(f"send failed: {e}") from e
            if n == total:
                return
            rest = memoryview(b"".join(parts))[n:]
            async with self.lock:
                await self.stream.send_all(rest)
            return
        await self.send(b"".join(parts))
