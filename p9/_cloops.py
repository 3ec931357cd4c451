"""A server connection's use of the C loops in `p9._fastio` (p9/_fastio_build.py).

`p9f_serve_reads` answers a run of Treads of one fid, `p9f_serve_meta` a run of Twalk,
Twalkgetattr, Tgetattr and Tclunk (p9/_cmeta.py); both receive, answer and receive again
on the socket themselves until something else arrives. This module moves the decoder's
buffered bytes into C's receive buffer and back (`_to_c`), and does what a loop's status
leaves to Python (`_from_c`: spin accounting, the unanswered input, a partial reply, the
budget). The connection (p9/_connection.py) decides when to call them.
"""

from __future__ import annotations

import os
from typing import Any

import trio

from ._cmeta import CMeta
from ._framing import FrameDecoder
from ._sendpath import PartsSender
from ._sockio import Receiver

try:  # the C loops, built at install time
    if os.environ.get("RUNPSC_NO_CFFI"):
        raise ImportError("RUNPSC_NO_CFFI is set")
    from ._fastio import ffi as _ffi
    from ._fastio import lib as _fastio
except ImportError:  # pragma: no cover - depends on the build
    _ffi = _fastio = None

#: Bytes C's receive buffer holds; a connection hands C at most this much buffered input.
RECV_CHUNK = 1 << 16
#: Requests answered in C in a row before the reader task lets other tasks run.
_C_BUDGET = 64


def open_c_loops(decoder: FrameDecoder, sender: PartsSender, receiver: Receiver, *,
                 meta: bool) -> CLoops | None:
    """The C loops for a connection on a plain socket, or None (not built, or
    RUNPSC_NO_CFFI, or not a socket). `meta`: also run the metadata loop, with its table."""
    if _fastio is None or sender._raw is None:
        return None
    return CLoops(_fastio, _ffi, decoder, sender, receiver, CMeta(_ffi) if meta else None)


class CLoops:
    """One connection's C loops: their shared buffers, and C's fid table `cm` (or None)."""

    def __init__(self, lib: Any, ffi: Any, decoder: FrameDecoder, sender: PartsSender,
                 receiver: Receiver, cm: CMeta | None) -> None:
        self.lib = lib
        self.ffi = ffi
        self.decoder = decoder
        self.sender = sender
        self.receiver = receiver
        self.fileno: int = sender._raw.fileno()
        self.cm = cm
        #: C handed back the frame at the head of the decoder's buffer (`meta`).
        self.declined = False
        # C's receive buffer, its result slots and served count (made at first use).
        self._cbufs: tuple[Any, Any, Any] | None = None

    async def reads(self, read_fd: int, fid: int, maxcount: int, out: bytearray, tag: int,
                    offset: int, count: int) -> bool | None:
        """Answer this Tread, and the run of Treads of the same fid that follows it, from
        `read_fd` with `out` (room for a whole Rread) as the reply buffer: None when C sent
        nothing (the Python path answers, and reports any error), False when the peer
        closed the connection meanwhile.

        Whatever the decoder still holds (at most RECV_CHUNK bytes) moves to C's buffer
        first; what C does not answer comes back to the decoder, in order.
        """
        if self.sender.lock.locked():
            return None
        cin, sizes, served, rest = self._to_c()  # what came after this Tread: C goes on
        spin = self.receiver.spin_ns()
        lib = self.lib
        st = lib.p9f_serve_reads(
            self.fileno, read_fd, fid, maxcount, tag, offset, count,
            cin, len(rest), RECV_CHUNK, sizes, self.ffi.from_buffer(out), sizes + 1,
            sizes + 2, spin, _C_BUDGET, served,
        )
        if st == lib.P9F_FAIL:
            self.decoder.receive_data(rest)
            return None
        return await self._from_c(st, spin, memoryview(out))

    async def meta(self, cred: int, room: int) -> bool:
        """Let C's loop answer the Twalk/Tgetattr/Tclunk at the head of the buffer and those
        that follow (p9/_cmeta.py), as the credential token `cred` with `room` fids left:
        False when the peer closed the connection meanwhile. Sets `declined` when the frame
        now at the head is Python's to answer."""
        cm = self.cm
        assert cm is not None, "meta without C's fid table"
        if self.sender.lock.locked() or self.decoder.buffered > RECV_CHUNK:
            self.declined = True
            return True
        cin, sizes, served, rest = self._to_c()
        spin = self.receiver.spin_ns()
        lib = self.lib
        st = lib.p9f_serve_meta(
            self.fileno, cm.mt, cred, room,
            cin, len(rest), RECV_CHUNK, sizes, sizes + 1, sizes + 2, spin, _C_BUDGET, served,
        )
        self.declined = st == lib.P9F_MORE
        return await self._from_c(st, spin, self.ffi.buffer(cm.mt.out))

    def set_dialect(self, walkgetattr: bool) -> None:
        """Tell C's metadata loop whether it may answer Twalkgetattr (the dialect has it,
        and it is inline as C answers it)."""
        if self.cm is not None:
            self.cm.mt.walkgetattr = int(walkgetattr)

    def _to_c(self) -> tuple[Any, Any, Any, bytes]:
        """Move what the decoder holds into C's receive buffer, shared by both C loops (never
        both at once): (that buffer, result slots, served count, the bytes moved)."""
        if self._cbufs is None:
            ffi = self.ffi
            self._cbufs = (ffi.new("uint8_t[]", RECV_CHUNK), ffi.new("size_t[3]"),
                           ffi.new("long[1]"))
        cin, sizes, served = self._cbufs
        rest = self.decoder.take_buffered()
        self.ffi.memmove(cin, rest, len(rest))
        return cin, sizes, served, rest

    async def _from_c(self, st: int, spin: int, out: Any) -> bool:
        """What a C loop's status `st` leaves Python to do (it spun up to `spin` ns; a
        partial reply's rest is in `out`): False when the peer closed the connection."""
        lib = self.lib
        if st < 0:
            raise trio.BrokenResourceError(f"send or receive failed: {os.strerror(-st)}")
        if st == lib.P9F_EMPTY:  # C spun (if allowed) and found nothing
            self.receiver.spun(False, waiting=spin > 0)
        else:
            self.receiver.spun(True)
        assert self._cbufs is not None
        cin, sizes, _ = self._cbufs
        if sizes[0]:  # what C did not answer goes back to the decoder, in order
            self.decoder.receive_data(self.ffi.buffer(cin, sizes[0])[:])
        if st == lib.P9F_PARTIAL:
            await self.sender.send(out[sizes[1] : sizes[2]])
        elif st == lib.P9F_BUDGET:
            await trio.lowlevel.checkpoint()  # let other tasks run
        return bool(st != lib.P9F_EOF)
