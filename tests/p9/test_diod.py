"""Our client against diod, the reference 9P2000.L server, over TCP and a unix socket."""

from __future__ import annotations

import errno

import pytest
import trio

import p9
from tests.support import need_binary, need_root

from . import peers, scenario
from .conftest import free_port

pytestmark = pytest.mark.peer


@pytest.mark.parametrize("transport", ["tcp", "unix"])
async def test_our_client_vs_diod_matches_native(dirs, tmp_path, transport) -> None:
    diod_bin = need_binary("diod")
    need_root()
    export, native = dirs
    port = free_port()
    sock = str(tmp_path / "diod.sock")
    kw = {"tcp_port": port} if transport == "tcp" else {"unix_path": sock}
    with peers.diod(diod_bin, export, **kw):
        if transport == "tcp":
            stream = await p9.connect_tcp("127.0.0.1", port)
        else:
            stream = await p9.connect_unix(sock)
        async with p9.open_client(stream, msize=65536) as c:
            # diod speaks plain 9P2000.L only: our extension offer must fall back.
            assert c.dialect == p9.PLAIN
            root = await c.attach(export)
            # ... so a directory is opened and listed with Twalk, Tlopen, Treaddir:
            # Topendirattr is never sent to it.
            with pytest.raises(OSError) as e:
                await root.open_dir_attr([])
            assert e.value.errno == errno.EOPNOTSUPP and c.live_fids == {root.fid}
            diffs = await scenario.run(p9.PathFS(root), native)
            st = await p9.PathFS(root).statfs()
            assert st.namelen == 255 and st.bsize > 0
            await root.clunk()
            await c.drain()
            assert c.live_fids == set()
    assert diffs == []
    assert scenario.tree(export) == scenario.tree(native)


async def test_cancelled_read_is_flushed_with_diod(dirs) -> None:
    diod_bin = need_binary("diod")
    need_root()
    export, _ = dirs
    port = free_port()
    with peers.diod(diod_bin, export, tcp_port=port):
        async with p9.open_client(await p9.connect_tcp("127.0.0.1", port)) as c:
            root = await c.attach(export)
            # Many concurrent requests multiplexed on one connection, some cancelled.
            async def walker(i):
                with trio.move_on_after(0.001 * (i % 5)):
                    async with await root.walk(["many"]) as d:
                        await d.open()
                        await d.readdir_all()
            async with trio.open_nursery() as n:
                for i in range(40):
                    n.start_soon(walker, i)
            assert sorted(await p9.PathFS(root).listdir("many"))[0].startswith(b"entry-0000")
            await root.clunk()
            await c.drain()
            assert c.live_fids == set()
