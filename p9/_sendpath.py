"""Scatter-gather sends of multi-part frames (Rread payloads) without joining them.

Why: `FrameSender.send_parts` joins the parts into one frame (a copy of up to msize bytes)
whenever the first `sendmsg` is partial or another send holds the stream. For a 1 MiB Rread
that happens often under pipelined reads; here the remainder is sent with `sendmsg` on the
remaining views instead, waiting for the socket through trio.
"""

from __future__ import annotations

import trio

from ._sockio import FrameSender


def _advance(parts: list, n: int) -> list:
    """The parts left after `n` bytes of them were sent (empty parts dropped on the way)."""
    i = 0
    while i < len(parts):
        size = len(parts[i])
        if n < size:
            return [memoryview(parts[i])[n:], *parts[i + 1 :]] if n else parts[i:]
        n -= size
        i += 1
    return []


class PartsSender(FrameSender):
    """A `FrameSender` whose multi-part frames never get copied into one buffer."""

    async def send_parts(self, parts: list) -> None:
        raw = self._raw
        if raw is None:
            await super().send_parts(parts)
            return
        if not self.lock.locked():
            try:
                n = raw.sendmsg(parts)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as e:
                raise trio.BrokenResourceError(f"send failed: {e}") from e
            parts = _advance(parts, n)
            if not parts:
                return
        # The rest of the frame is sent whole whatever happens (a cut frame would
        # desynchronise the stream), and no other frame may interleave.
        with trio.CancelScope(shield=True):
            async with self.lock:
                while parts:
                    await trio.lowlevel.wait_writable(raw)
                    try:
                        n = raw.sendmsg(parts)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as e:
                        raise trio.BrokenResourceError(f"send failed: {e}") from e
                    parts = _advance(parts, n)
