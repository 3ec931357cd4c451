"""The client's reconnection (p9/_recover.py) against our server over real sockets, through
a link the test cuts: after a chosen request went to the server (which carries it out)
and before its reply comes back, as a crashed gofer or a reset link leaves it."""

from __future__ import annotations

import errno
import os

import pytest
import trio
import trio.testing

import p9

from .hostfs import HostFS
from .relay import Link


async def _client(nursery: trio.Nursery, tmp_path, reconnect: float = 10.0):
    link = Link(nursery, p9.Server(HostFS(str(tmp_path))).serve_stream)
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


async def test_lost_answer_settled_and_gone_files_are_stale(tmp_path) -> None:
    """A mkdir whose reply was lost is answered by what the server now holds (it did make
    it: success; tests/gofer/test_reconnect_fate.py has every kind and outcome); an open
    file removed meanwhile: ESTALE, its clunk fine; others carry on."""
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
            qid = await root.mkdir("d")
            assert c.reconnects == 1
            assert (tmp_path / "d").is_dir()
            assert qid.path == os.stat(tmp_path / "d").st_ino
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


async def test_pipelined_requests_waiting_for_a_reconnection_check_their_fids(tmp_path) -> None:
    """rpc and rpc_many waiting for the connection to come back check their fids after
    it, as one path: a fid whose file was removed meanwhile is ESTALE (not sent on the new
    connection, where its number means nothing); the others carry on."""
    (tmp_path / "victim").write_bytes(b"gone")
    (tmp_path / "other").write_bytes(b"kept")
    async with trio.open_nursery() as nursery:
        link, opening = await _client(nursery, tmp_path, reconnect=60.0)
        async with opening as c:
            root = await c.attach()
            fids = {}
            for name in ("victim", "other"):
                fids[name] = await root.walk([name])
                await fids[name].open(os.O_RDONLY)
            link.down = True
            link.cut_after(p9.Tgetattr)
            got: dict[str, object] = {}

            async def send(key: str, many: bool, name: str) -> None:
                msg = p9.Tread(fids[name].fid, 0, 4)
                try:
                    reply = (await c.rpc_many([msg]))[0] if many else await c.rpc(msg)
                    got[key] = reply.data
                except OSError as e:
                    got[key] = errno.errorcode[e.errno]

            async with trio.open_nursery() as n:
                n.start_soon(root.getattr)  # (cut after it: the client reconnects)
                await link.retrying.wait()
                for many in (False, True):
                    for name in ("victim", "other"):
                        n.start_soon(send, f"{'rpc_many' if many else 'rpc'} {name}", many,
                                     name)
                await trio.testing.wait_all_tasks_blocked()
                assert got == {}  # (all waiting for the connection)
                (tmp_path / "victim").unlink()
                link.down = False
            assert got == {"rpc victim": "ESTALE", "rpc other": b"kept",
                           "rpc_many victim": "ESTALE", "rpc_many other": b"kept"}
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
        link = Link(nursery, p9.Server(HostFS(str(tmp_path))).serve_stream)
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


async def test_a_server_that_sends_an_oversized_frame_is_dropped_and_redialled(tmp_path) -> None:
    """A reply header announcing a frame beyond msize (a server gone mad, the connection
    left open): the client drops the connection at once, dials again and resends the read;
    a mkdir answered that way is settled by the server's state (it was done)."""
    (tmp_path / "f").write_bytes(b"0123456789")
    async with trio.open_nursery() as nursery:
        link, opening = await _client(nursery, tmp_path)
        async with opening as c:
            root = await c.attach()
            f = await root.walk(["f"])
            await f.open(os.O_RDONLY)
            link.oversize_after(p9.Tread)
            assert await f.read(2, 5) == b"23456"
            link.oversize_after(p9.Tmkdir)
            await root.mkdir("d")
            assert c.reconnects == 2
            assert (tmp_path / "d").is_dir()
        nursery.cancel_scope.cancel()
