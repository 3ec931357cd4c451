"""goferfs with donated host files (exclusive policy, a local gofer): reads go to the
donated descriptor with no 9P message, a later open of the same file needs none either,
the sandbox's own pending writes are still what it reads, other policies keep 9P, and the
descriptors are bounded and closed."""

from __future__ import annotations

import os

import pytest

from tests.gofer.helpers import open_fds
from vfs import Credentials, VirtualFilesystem
from vfs.abi import O_RDONLY, O_RDWR
from vfs.fs.goferfs import GoferFS
from vfs.fs.goferfs.files import GoferFileFD
from vfs.fs.goferfs.inode import inode_of
from vfs.mount import FSContext

from .helpers import gofer_client
from .test_goferfs import Counting

C = Credentials.root()
DATA = os.urandom(300_000)


async def _open(v: VirtualFilesystem, ctx: FSContext, path: bytes, flags: int) -> GoferFileFD:
    fd = await v.open(ctx, C, None, path, flags)
    assert isinstance(fd, GoferFileFD)
    return fd


@pytest.fixture
async def gofer(tmp_path):
    async with gofer_client(tmp_path) as client:
        yield client, tmp_path / "export"


async def test_reads_use_the_donated_file(gofer) -> None:
    client, top = gofer
    (top / "f").write_bytes(DATA)
    gfs = await GoferFS.attach(client, b"e")
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    fd = await _open(v, ctx, b"/f", O_RDONLY)
    ino = inode_of(fd.dentry)
    assert ino.host_fd >= 0
    st, host = os.fstat(ino.host_fd), os.stat(top / "f")
    assert (st.st_dev, st.st_ino) == (host.st_dev, host.st_ino)
    count = Counting(client)
    assert await fd.read(1000) == DATA[:1000]
    assert await fd.pread(500_000, 1000) == DATA[1000:]
    assert await fd.pread(10, len(DATA)) == b""
    assert count.total() == 0, count.counts  # no Tread
    assert await fd.mappable_fd() == ino.host_fd
    await fd.dec_ref()
    again = await _open(v, ctx, b"/f", O_RDONLY)
    assert await again.pread(7, 99) == DATA[99:106]
    await again.dec_ref()
    assert count.total() == 0, count.counts  # no Twalk, no Tlopen: the inode keeps it
    await gfs.release()
    assert ino.host_fd == -1


async def test_the_sandboxs_writes_are_read_back(gofer) -> None:
    client, top = gofer
    (top / "f").write_bytes(DATA)
    gfs = await GoferFS.attach(client, b"e")
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    r = await _open(v, ctx, b"/f", O_RDONLY)
    ino = inode_of(r.dentry)
    assert ino.host_fd >= 0
    w = await _open(v, ctx, b"/f", O_RDWR)
    assert await r.mappable_fd() == -1  # a writer may change it: mappings are copies
    await w.pwrite(b"NEW", 10)
    assert (top / "f").read_bytes()[10:13] == DATA[10:13]  # only in the page cache
    assert await r.pread(5, 9) == DATA[9:10] + b"NEW" + DATA[13:14]
    await w.dec_ref()  # written back
    assert ino.host_readable() == ino.host_fd >= 0
    assert await r.pread(5, 9) == DATA[9:10] + b"NEW" + DATA[13:14]
    await v.ftruncate(w := await _open(v, ctx, b"/f", O_RDWR), 12)
    await w.dec_ref()
    assert await r.pread(100, 0) == DATA[:10] + b"NE"
    await r.dec_ref()
    await gfs.release()


@pytest.mark.parametrize("policy", ["revalidating", "shared"])
async def test_other_policies_keep_9p(gofer, policy) -> None:
    client, top = gofer
    (top / "f").write_bytes(DATA)
    gfs = await GoferFS.attach(client, b"e", policy=policy)
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    fd = await _open(v, ctx, b"/f", O_RDONLY)
    assert inode_of(fd.dentry).host_fd == -1
    assert await fd.mappable_fd() == -1
    count = Counting(client)
    assert await fd.pread(100, 5) == DATA[5:105]
    assert count.counts.get("Tread") == 1
    await fd.dec_ref()
    await gfs.release()


async def test_donated_descriptors_are_bounded_and_closed(gofer) -> None:
    client, top = gofer
    for i in range(5):
        (top / f"f{i}").write_bytes(DATA[i:])
    before = open_fds()
    gfs = await GoferFS.attach(client, b"e")
    gfs.donated.limit = 2
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    for i in range(5):
        fd = await _open(v, ctx, f"/f{i}".encode(), O_RDONLY)
        assert await fd.pread(4, 0) == DATA[i : i + 4]
        await fd.dec_ref()
    held = [inode_of(gfs.root.children[f"f{i}".encode()]).host_fd >= 0 for i in range(5)]
    assert held == [False, False, False, True, True]
    fd = await _open(v, ctx, b"/f0", O_RDONLY)  # evicted: its next read asks again
    assert await fd.pread(4, 0) == DATA[:4]
    assert inode_of(fd.dentry).host_fd >= 0
    await fd.dec_ref()
    await gfs.release()
    await client.drain()
    assert open_fds() == before


async def test_a_plain_9p_server_costs_mappings_no_round_trip(tmp_path) -> None:
    """Without donations (plain 9P2000.L here; diod, TCP), a mapping of a file whose
    pages are cached asks the server nothing, as before donations existed."""
    import p9
    from gofer.host import Export

    from ..gofer.helpers import connect, gofer_fs

    (tmp_path / "f").write_bytes(DATA)
    async with gofer_fs([Export("e", str(tmp_path))]) as (fs, nursery), \
            connect(fs, nursery, version=p9.BASE) as client:
        gfs = await GoferFS.attach(client, b"e")
        assert not gfs.donations
        v = VirtualFilesystem(gfs)
        ctx = v.new_context()
        fd = await _open(v, ctx, b"/f", O_RDONLY)
        assert await fd.pread(10, 0) == DATA[:10]
        await fd.dec_ref()
        count = Counting(client)
        fd = await _open(v, ctx, b"/f", O_RDONLY)
        assert await fd.mappable_fd() == -1 and await fd.pread(10, 0) == DATA[:10]
        await fd.dec_ref()
        assert count.total() == 0, count.counts
        await gfs.release()
