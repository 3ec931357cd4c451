"""Scatter-gather sends of multi-part frames (Rread payloads) without joining them.

Why: `FrameSender.send_parts` joins the parts into one frame (a copy of up to msize bytes).
For a 1 MiB Rread under pipelined reads that is a copy per reply; here a plain socket gets
`sendmsg` on the views, and the remainder of a partial send goes out the same way, waiting
for the socket through trio.
"""

from __future__ import annotations

import trio

from ._sockio import FrameSender, send_now


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
            parts = _advance(parts, send_now(raw.sendmsg, parts))
            if not parts:
                return
        # The rest of the frame is sent whole whatever happens (a cut frame would
        # desynchronise the stream), and no other frame may interleave.
        with trio.CancelScope(shield=True):
            async with self.lock:
                while parts:
                    await trio.lowlevel.wait_writable(raw)
                    parts = _advance(parts, send_now(raw.sendmsg, parts))
