"""Our client against nfs-ganesha's 9P server (FSAL VFS)."""

from __future__ import annotations

import pytest

import p9
from tests.support import need_binary, need_root

from . import peers, scenario
from .conftest import free_port

pytestmark = pytest.mark.peer


async def test_our_client_vs_ganesha_matches_native(dirs, tmp_path) -> None:
    gbin = need_binary("ganesha.nfsd", "nfs-ganesha nfs-ganesha-vfs")
    need_root()
    export, native = dirs
    port = free_port()
    work = tmp_path / "ganesha"
    work.mkdir()
    with peers.ganesha(gbin, export, str(work), port=port):
        async with p9.open_client(await p9.connect_tcp("127.0.0.1", port), msize=65536) as c:
            assert c.dialect == p9.PLAIN
            root = await c.attach(export)
            diffs = await scenario.run(p9.PathFS(root), native)
            assert (await p9.PathFS(root).statfs()).namelen == 255
            await root.clunk()
            await c.drain()
            assert c.live_fids == set()
    assert diffs == [], "\n".join(map(repr, diffs))
    assert scenario.tree(export) == scenario.tree(native)
