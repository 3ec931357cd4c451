"""A link between a 9P client and a server that a test cuts at a chosen request: the fault
seam of the reconnection tests (tests/p9/test_reconnect.py, tests/gofer/test_reconnect_fate.py)."""

from __future__ import annotations

import errno
import struct
from collections.abc import Awaitable, Callable
from typing import Literal

import trio

import p9

_HDR = struct.Struct("<IBH")


class Link:
    """Connections from a client to one server (`serve`: serves one stream until it ends,
    e.g. `p9.Server.serve_stream`), each through a relay task that can cut it.

    `cut_after(T)` makes the next request of type T reach the server, which carries it
    out, then closes the connection before its reply reaches the client; `cut_before(T)`
    closes it instead of passing that request on (the server never sees it);
    `stall_after(T)` passes on the first bytes of the reply and then nothing more, the
    connection left open (a server that stopped mid-reply); `oversize_after(T)` sends,
    in place of the reply, the header of a frame larger than any msize (a server gone
    mad), the connection left open. `down` refuses new
    connections (a server that is not back yet). A new connection is served only once
    the server has finished with the previous ones (as a restarted server, which dropped
    their state: open files, locks)."""

    def __init__(self, nursery: trio.Nursery,
                 serve: Callable[[trio.SocketStream], Awaitable[object]]) -> None:
        self.nursery = nursery
        self.serve = serve
        self.cut_type: type[p9.Message] | None = None
        self.mode: Literal["after", "before", "stall", "oversize"] = "after"
        self.down = False
        #: Set once a dial was refused twice (the client is retrying).
        self.retrying = trio.Event()
        self._refused = 0
        self._serving = 0
        #: Set while no connection is being served.
        self.quiet = trio.Event()
        self.quiet.set()

    def cut_after(self, msg_type: type[p9.Message]) -> None:
        self.cut_type, self.mode = msg_type, "after"

    def cut_before(self, msg_type: type[p9.Message]) -> None:
        self.cut_type, self.mode = msg_type, "before"

    def stall_after(self, msg_type: type[p9.Message]) -> None:
        self.cut_type, self.mode = msg_type, "stall"

    def oversize_after(self, msg_type: type[p9.Message]) -> None:
        self.cut_type, self.mode = msg_type, "oversize"

    async def dial(self) -> trio.abc.Stream:
        if self.down:
            self._refused += 1
            if self._refused >= 2:
                self.retrying.set()
            raise OSError(errno.ECONNREFUSED, "the server is not back")
        await self.quiet.wait()
        client_end, relay_in = p9.socketpair()
        relay_out, server_end = p9.socketpair()
        self._serving += 1
        self.quiet = trio.Event()
        self.nursery.start_soon(self._serve, server_end)
        self.nursery.start_soon(self._relay, relay_in, relay_out)
        return client_end

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            await self.serve(stream)
        finally:
            self._serving -= 1
            if not self._serving:
                self.quiet.set()

    async def _relay(self, a: trio.SocketStream, b: trio.SocketStream) -> None:
        replies = trio.CancelScope()
        async with trio.open_nursery() as n:
            n.start_soon(self._copy_replies, b, a, replies)
            buf = b""
            try:
                while True:
                    data = await a.receive_some(1 << 16)
                    if not data:
                        break
                    buf += data
                    while len(buf) >= 7:
                        size, mtype, _ = _HDR.unpack_from(buf)
                        if len(buf) < size:
                            break
                        frame, buf = buf[:size], buf[size:]
                        cut = self.cut_type is not None and mtype == self.cut_type.type
                        if cut:
                            self.cut_type = None
                            replies.cancel()  # no more replies reach the client
                            if self.mode == "before":
                                return
                        await b.send_all(frame)
                        if cut:
                            reply = await b.receive_some(1 << 16)  # the server did it
                            if self.mode in ("stall", "oversize"):
                                assert len(reply) > 9
                                # a part of its reply, or a frame no msize allows; then silence
                                await a.send_all(reply[:9] if self.mode == "stall" else
                                                 _HDR.pack(0x7FFFFFFF, reply[4], 0))
                                while await a.receive_some(1 << 16):
                                    pass  # until the client gives up on the connection
                            return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                replies.cancel()
                await trio.aclose_forcefully(a)
                await trio.aclose_forcefully(b)

    @staticmethod
    async def _copy_replies(b: trio.SocketStream, a: trio.SocketStream,
                            scope: trio.CancelScope) -> None:
        with scope:
            try:
                while data := await b.receive_some(1 << 16):
                    await a.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
