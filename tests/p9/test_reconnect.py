"""The client's reconnection (p9/_recover.py) against our server over real sockets, through
a link the test cuts: after a chosen request went to the server (which carries it out)
and before its reply comes back, as a crashed gofer or a reset link leaves it."""

from __future__ import annotations

import errno
import os
import struct

import pytest
import trio

import p9

from .hostfs import HostFS

_HDR = struct.Struct("<IBH")


class Link:
    """Connections from a client to one `p9.Server`, each through a relay task that can
    cut it: `cut_after(T)` makes the next request of type T reach the server, then closes
    the connection before its reply reaches the client; `stall_after(T)` passes on the
    first bytes of that reply and then nothing more, the connection left open (a server
    that stopped mid-reply). `down` refuses new connections (a server that is not back
    yet)."""

    def __init__(self, nursery: trio.Nursery, server: p9.Server) -> None:
        self.nursery = nursery
        self.server = server
        self.cut_type: type[p9.Message] | None = None
        self.stall = False
        self.down = False
        #: Set once a dial was refused twice (the client is retrying).
        self.retrying = trio.Event()
        self._refused = 0

    def cut_after(self, msg_type: type[p9.Message]) -> None:
        self.cut_type = msg_type
        self.stall = False

    def stall_after(self, msg_type: type[p9.Message]) -> None:
        self.cut_type = msg_type
        self.stall = True

    async def dial(self) -> trio.abc.Stream:
        if self.down:
            self._refused += 1
            if self._refused >= 2:
                self.retrying.set()
            raise OSError(errno.ECONNREFUSED, "the server is not back")
        client_end, relay_in = p9.socketpair()
        relay_out, server_end = p9.socketpair()
        self.nursery.start_soon(self.server.serve_stream, server_end)
        self.nursery.start_soon(self._relay, relay_in, relay_out)
        return client_end

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
                        await b.send_all(frame)
                        if cut:
                            reply = await b.receive_some(1 << 16)  # the server did it
                            if self.stall:  # a part of its reply, then silence
                                assert len(reply) > 9
                                await a.send_all(reply[:9])
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


async def _client(nursery: trio.Nursery, tmp_path, reconnect: float = 10.0):
    link = Link(nursery, p9.Server(HostFS(str(tmp_path))))
    return link, p9.open_client(await link.dial(), redial=link.dial, reconnect=reconnect)


async def test_fids_and_open_files_survive_a_cut(tmp_path) -> None:
    """Fids walked before the cut (20 deep, renamed, open for writing) work after it; a read
    whose reply was lost is sent again; a write at its offset too."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"0123456789")
    deep_names = [f"d{i}" for i in range(20)]  # (more than one Twalk's 16 names)
    tmp_path.joinpath(*deep_names).mkdir(parents=True)
    async with trio.open_nursery() as nursery:
        link, opening = await _client(nursery, tmp_path)
        async with opening as c:
            root = await c.attach()
            f = await root.walk(["a", "b", "f"])
            await f.open(os.O_RDWR)
            d = await root.walk(["a"])
            deep = await root.walk(deep_names)
            await root.renameat("a", root, "moved")
            link.cut_after(p9.Tread)
            assert await f.read(2, 3) == b"234"
            assert c.reconnects == 1
            link.cut_after(p9.Twrite)
            assert await f.write(0, b"AB") == 2
            assert c.reconnects == 2
            assert (tmp_path / "moved" / "b" / "f").read_bytes() == b"AB23456789"
            g = await d.walk(["b", "f"])  # (d was re-walked by its new path)
            assert (await g.getattr()).attr.size == 10
            assert (await deep.getattr()).is_dir
            for x in (f, d, g, deep, root):
                await x.clunk()
            await c.drain()
            assert c.live_fids == set()
            nursery.cancel_scope.cancel()


async def test_unknown_fate_is_eio_and_gone_files_are_stale(tmp_path) -> None:
    """A mkdir whose reply was lost: EIO (the server did make it: that is what "unknown"
    means); an open file removed meanwhile: ESTALE, its clunk fine; others carry on."""
    (tmp_path / "victim").write_bytes(b"v")
    (tmp_path / "other").write_bytes(b"o")
    async with trio.open_nursery() as nursery:
        link, opening = await _client(nursery, tmp_path)
        async with opening as c:
            root = await c.attach()
            victim = await root.walk(["victim"])
            await victim.open(os.O_RDONLY)
            other = await root.walk(["other"])
            await other.open(os.O_RDONLY)
            (tmp_path / "victim").unlink()
            (tmp_path / "victim").write_bytes(b"a new file of the same name")
            link.cut_after(p9.Tmkdir)
            with pytest.raises(OSError) as info:
                await root.mkdir("d")
            assert info.value.errno == errno.EIO
            assert (tmp_path / "d").is_dir()
            with pytest.raises(OSError) as info:
                await victim.read(0, 1)
            assert info.value.errno == errno.ESTALE
            await victim.clunk()
            assert await other.read(0, 1) == b"o"
            nursery.cancel_scope.cancel()


async def test_server_back_within_the_window_or_not(tmp_path) -> None:
    """Requests wait while the server is down and carry on once it is back; a server that
    stays away past the window: EIO, for that request and every later one."""
    (tmp_path / "f").write_bytes(b"data")
    async with trio.open_nursery() as nursery:
        link, opening = await _client(nursery, tmp_path, reconnect=60.0)
        async with opening as c:
            root = await c.attach()
            f = await root.walk(["f"])
            await f.open(os.O_RDONLY)
            link.down = True
            link.cut_after(p9.Tgetattr)
            got: list[bytes] = []

            async def reader() -> None:
                await f.getattr()
                got.append(await f.read(0, 4))

            async with trio.open_nursery() as n:
                n.start_soon(reader)
                await link.retrying.wait()
                assert got == []  # (waiting, not failed)
                link.down = False
            assert got == [b"data"]
            nursery.cancel_scope.cancel()


async def test_a_server_that_stays_away_is_eio(tmp_path) -> None:
    """Past the window: EIO for the request that was waiting and for every later one."""
    (tmp_path / "f").write_bytes(b"data")
    async with trio.open_nursery() as nursery:
        link, opening = await _client(nursery, tmp_path, reconnect=0.5)
        async with opening as c:
            root = await c.attach()
            link.down = True
            link.cut_after(p9.Tgetattr)
            for _ in range(2):
                with pytest.raises(OSError) as info:
                    await root.getattr()
                assert info.value.errno == errno.EIO
            await root.clunk()
            assert c.live_fids == set()
            nursery.cancel_scope.cancel()


async def test_a_server_that_stops_mid_reply_is_dropped_and_redialled(tmp_path) -> None:
    """A reply that stops after its first bytes, the connection left open: at the client's
    frame timeout it drops the connection, dials again and resends the (idempotent) read;
    the partial bytes never reach the program. Without a redial: EIO."""
    (tmp_path / "f").write_bytes(b"0123456789")
    async with trio.open_nursery() as nursery:
        link = Link(nursery, p9.Server(HostFS(str(tmp_path))))
        async with p9.open_client(await link.dial(), redial=link.dial, reconnect=10.0,
                                  frame_timeout=0.2) as c:
            root = await c.attach()
            f = await root.walk(["f"])
            await f.open(os.O_RDONLY)
            link.stall_after(p9.Tread)
            with trio.fail_after(30):
                assert await f.read(2, 5) == b"23456"
            assert c.reconnects == 1
            assert await f.read(0, 2) == b"01"
        async with p9.open_client(await link.dial(), frame_timeout=0.2) as c:
            root = await c.attach()
            link.stall_after(p9.Tgetattr)
            with trio.fail_after(30), pytest.raises(OSError) as info:
                await root.getattr()
            assert info.value.errno == errno.EIO
            assert isinstance(info.value.__cause__, OSError)
            assert info.value.__cause__.errno == errno.ETIMEDOUT
        nursery.cancel_scope.cancel()
