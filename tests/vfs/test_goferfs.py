"""goferfs over a real (in-process) gofer: batched walks, caching policies, write-back."""

from __future__ import annotations

import errno
import os
import stat

import pytest

import p9
from vfs import Credentials, VirtualFilesystem
from vfs.abi import O_CREAT, O_DIRECTORY, O_RDONLY, O_RDWR, O_WRONLY
from vfs.fs.goferfs import GoferFS

from .helpers import gofer_client

C = Credentials.root()


class Counting:
    """Counts the T-messages a client sends (wraps its rpc method; nothing is faked)."""

    def __init__(self, client: p9.Client) -> None:
        self.counts: dict[str, int] = {}
        #: round trips: one per rpc and one per pipelined rpc_many batch
        self.trips = 0
        #: sequential round trips: requests sent while no other was awaiting its reply
        #: (requests overlapping one in flight ride on its round trip)
        self.waves = 0
        self._inflight = 0

        def in_waves(call):
            async def counted(*a, **k):
                if not self._inflight:
                    self.waves += 1
                self._inflight += 1
                try:
                    return await call(*a, **k)
                finally:
                    self._inflight -= 1

            return counted

        inner, inner_many = in_waves(client.rpc), in_waves(client.rpc_many)

        async def rpc(msg, *a, **k):
            name = type(msg).__name__
            self.counts[name] = self.counts.get(name, 0) + 1
            self.trips += 1
            return await inner(msg, *a, **k)

        async def rpc_many(msgs, *a, **k):
            self.trips += 1
            return await inner_many(msgs, *a, **k)

        client.rpc = rpc  # type: ignore[method-assign]
        client.rpc_many = rpc_many  # type: ignore[method-assign]

    def reset(self) -> None:
        self.counts.clear()
        self.trips = 0
        self.waves = 0

    def total(self) -> int:
        return sum(self.counts.values())


@pytest.fixture
async def gofer(tmp_path):
    async with gofer_client(tmp_path) as client:
        yield client, tmp_path / "export"


async def test_deep_path_is_one_round_trip(gofer) -> None:
    client, top = gofer
    (top / "a" / "b" / "c").mkdir(parents=True)
    (top / "a" / "b" / "c" / "f").write_bytes(b"deep")
    count = Counting(client)
    gfs = await GoferFS.attach(client, b"e")
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    count.reset()
    st = await v.stat(ctx, C, None, b"/a/b/c/f")
    assert st.size == 4
    # One Tmultigetattr for four components, and the Twalk to the file (for an open
    # that may follow) in the same round trip.
    assert count.counts.get("Tmultigetattr") == 1, count.counts
    assert count.total() - count.counts.get("Twalk", 0) == 1, count.counts
    assert count.waves == 1, count.counts
    count.reset()
    await v.stat(ctx, C, None, b"/a/b/c/f")
    assert count.total() == 0  # exclusive: cached
    await gfs.release()


async def test_page_cache_writes_back_on_close_and_fsync(gofer) -> None:
    client, top = gofer
    gfs = await GoferFS.attach(client, b"e")
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    fd = await v.open(ctx, C, None, b"/f", O_CREAT | O_RDWR, 0o644)
    await fd.write(b"x" * 100_000)
    await fd.pwrite(b"tail", 200_000)
    assert (top / "f").stat().st_size == 0  # still only in the page cache
    assert await fd.pread(4, 200_000) == b"tail"
    await fd.fsync()
    data = (top / "f").read_bytes()
    assert len(data) == 200_004 and data[:100_000] == b"x" * 100_000 and data[-4:] == b"tail"
    await fd.pwrite(b"Y", 0)
    await fd.dec_ref()  # close writes back
    assert (top / "f").read_bytes()[:2] == b"Yx"
    await v.ftruncate(await v.open(ctx, C, None, b"/f", O_WRONLY), 10)
    assert (top / "f").read_bytes() == b"Y" + b"x" * 9
    await gfs.release()


async def test_shared_policy_sees_outside_changes(gofer) -> None:
    client, top = gofer
    (top / "f").write_bytes(b"one")
    gfs = await GoferFS.attach(client, b"e", policy="shared")
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    fd = await v.open(ctx, C, None, b"/f", O_RDONLY)
    assert await fd.read(100) == b"one"
    (top / "f").write_bytes(b"two, longer")
    os.mkdir(top / "new")
    assert (await v.stat(ctx, C, None, b"/f")).size == 11
    assert await fd.pread(100, 0) == b"two, longer"
    assert (await v.stat(ctx, C, None, b"/new")).is_dir()
    os.rmdir(top / "new")
    with pytest.raises(FileNotFoundError):
        await v.stat(ctx, C, None, b"/new")
    await fd.dec_ref()
    await gfs.release()


async def test_exclusive_policy_trusts_its_cache(gofer) -> None:
    client, top = gofer
    (top / "f").write_bytes(b"one")
    gfs = await GoferFS.attach(client, b"e")
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    assert (await v.stat(ctx, C, None, b"/f")).size == 3
    (top / "f").write_bytes(b"changed behind our back")
    assert (await v.stat(ctx, C, None, b"/f")).size == 3  # documented: exclusive owner
    await gfs.release()


async def test_release_clunks_every_fid(gofer) -> None:
    client, top = gofer
    (top / "d").mkdir()
    (top / "d" / "f").write_bytes(b"x")
    before = set(client.live_fids)
    gfs = await GoferFS.attach(client, b"e")
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    fd = await v.open(ctx, C, None, b"/d/f", O_RDONLY)
    await fd.read(1)
    await fd.dec_ref()
    await v.fchmodat(ctx, C, None, b"/d/f", 0o600)
    await gfs.release()
    assert set(client.live_fids) == before


async def test_sync_writes_back_open_files(gofer) -> None:
    client, top = gofer
    gfs = await GoferFS.attach(client, b"e")
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    fd = await v.open(ctx, C, None, b"/f", O_CREAT | O_WRONLY, 0o644)
    await fd.write(b"pending")
    assert (top / "f").read_bytes() == b""
    await v.sync()
    assert (top / "f").read_bytes() == b"pending"
    await fd.dec_ref()
    await gfs.release()


async def test_negative_lookups_cached_when_exclusive(gofer) -> None:
    client, top = gofer
    (top / "lib").mkdir()
    count = Counting(client)
    gfs = await GoferFS.attach(client, b"e")
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    count.reset()
    for _ in range(3):
        with pytest.raises(FileNotFoundError):
            await v.stat(ctx, C, None, b"/lib/libmissing.so")
    # The first stat asks (one round trip: Tmultigetattr, and the Twalk riding on it),
    # the others are answered by the cached negative dentry.
    assert count.counts.get("Tmultigetattr", 0) == 1, count.counts
    assert count.waves == 1, count.counts
    fd = await v.open(ctx, C, None, b"/lib/libmissing.so", O_CREAT | O_WRONLY, 0o644)
    await fd.dec_ref()
    assert (await v.stat(ctx, C, None, b"/lib/libmissing.so")).size == 0
    await v.unlinkat(ctx, C, None, b"/lib/libmissing.so")
    with pytest.raises(FileNotFoundError):
        await v.stat(ctx, C, None, b"/lib/libmissing.so")
    await gfs.release()


async def test_page_cache_bounded_and_correct(gofer) -> None:
    from vfs.fs.goferfs.pages import CHUNK

    client, top = gofer
    blob = os.urandom(40 * CHUNK + 123)
    (top / "big").write_bytes(blob)
    gfs = await GoferFS.attach(client, b"e")
    gfs.pages.limit = 4 * CHUNK
    gfs.dirty_limit = 3 * CHUNK
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    fd = await v.open(ctx, C, None, b"/big", O_RDWR)
    assert await fd.read(len(blob) + 10) == blob  # one big read, more pages than the cache
    assert len(fd.inode.pages) <= 5
    for off in (0, CHUNK - 3, 17 * CHUNK + 5, 40 * CHUNK):
        assert await fd.pread(1000, off) == blob[off : off + 1000]
    new = os.urandom(10 * CHUNK)
    await fd.pwrite(new, 5 * CHUNK + 7)  # more dirty pages than the limit: written as it goes
    assert len(fd.inode.dirty) < 4
    await fd.dec_ref()
    want = blob[: 5 * CHUNK + 7] + new + blob[15 * CHUNK + 7 :]
    assert (top / "big").read_bytes() == want
    await gfs.release()


async def test_dentry_fids_are_bounded(gofer) -> None:
    client, top = gofer
    for i in range(20):
        (top / f"d{i}").mkdir()
        (top / f"d{i}" / "f").write_bytes(b"%d" % i)
    gfs = await GoferFS.attach(client, b"e")
    gfs.fids.limit = 4
    base = len(client.live_fids)
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    for round_ in range(2):
        for i in range(20):
            fd = await v.open(ctx, C, None, b"/d%d/f" % i, O_RDONLY)
            assert await fd.read(10) == b"%d" % i
            await fd.dec_ref()
            await v.fchmodat(ctx, C, None, b"/d%d" % i, 0o700 + round_)
            assert len(client.live_fids) <= base + 4
    assert (top / "d7").stat().st_mode & 0o777 == 0o701
    await gfs.release()


async def test_unlinked_open_files_keep_their_fid_then_release_it(gofer) -> None:
    import gc

    client, top = gofer
    gfs = await GoferFS.attach(client, b"e")
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    base = len(client.live_fids)
    fd = await v.open(ctx, C, None, b"/victim", O_CREAT | O_RDWR, 0o644)
    await v.unlinkat(ctx, C, None, b"/victim")
    new = await v.open(ctx, C, None, b"/victim", O_CREAT | O_RDWR, 0o600)  # same name, new file
    await v.fchmodat(ctx, C, fd, None, 0o640)  # the unlinked one, not the new one
    assert (await fd.stat()).mode == 0o100640
    assert (top / "victim").stat().st_mode & 0o777 == 0o600
    await new.dec_ref()
    for i in range(30):  # create/open/unlink churn does not grow the fid count
        f = await v.open(ctx, C, None, b"/t%d" % i, O_CREAT | O_RDWR, 0o644)
        await v.unlinkat(ctx, C, None, b"/t%d" % i)
        await f.dec_ref()
    await fd.dec_ref()
    del f, fd, new
    gc.collect()
    await v.stat(ctx, C, None, b"/victim")
    await v.fchmodat(ctx, C, None, b"/victim", 0o600)
    assert len(client.live_fids) <= base + 3
    await gfs.release()


async def test_fchmod_on_opened_then_unlinked_file(gofer) -> None:
    client, top = gofer
    (top / "old").write_bytes(b"x")
    gfs = await GoferFS.attach(client, b"e")
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    fd = await v.open(ctx, C, None, b"/old", O_RDONLY)  # opened, never created here
    await v.unlinkat(ctx, C, None, b"/old")
    (top / "old").write_bytes(b"someone else's")
    await v.fchmodat(ctx, C, fd, None, 0o600)
    assert (await fd.stat()).mode == 0o100600
    # the file now named "old" on the host is another one, and was left alone
    assert (top / "old").stat().st_mode & 0o777 != 0o600
    assert (top / "old").read_bytes() == b"someone else's"
    await fd.dec_ref()
    await gfs.release()


async def _attach(client: p9.Client, policy: str) -> tuple[GoferFS, VirtualFilesystem, object]:
    gfs = await GoferFS.attach(client, b"e", policy=policy)
    v = VirtualFilesystem(gfs)
    return gfs, v, v.new_context()


async def test_xattrs_cached_when_exclusive_asked_when_shared(gofer) -> None:
    client, top = gofer
    (top / "f").write_bytes(b"x")
    os.setxattr(top / "f", "user.a", b"1")
    count = Counting(client)
    for policy in ("exclusive", "shared"):
        gfs, v, ctx = await _attach(client, policy)
        await v.stat(ctx, C, None, b"/f")
        firsts = []
        for name in (b"user.a", b"security.selinux", b"system.posix_acl_access"):
            count.reset()
            try:
                got = await v.getxattr(ctx, C, None, b"/f", name)
            except OSError as e:
                got = e.errno
            native = _host_getxattr(top / "f", name)
            assert got == native, name
            firsts.append(count.trips)
            count.reset()
            again = await _getxattr_or_errno(v, ctx, b"/f", name)
            assert again == native
            if policy == "exclusive":
                assert count.trips == 0, (name, count.counts)  # value or ENODATA cached
            else:
                # asked every time (and the path revalidated, as shared lookups are)
                assert count.counts.get("Tgetxattr") == 1, (name, count.counts)
        if policy == "exclusive":
            # one listing answers every absent name after the first probe
            assert firsts[1:] == [0, 0], firsts
        await gfs.release()


def _host_getxattr(path, name: bytes) -> bytes | int:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as e:
        return e.errno


async def _getxattr_or_errno(v, ctx, path: bytes, name: bytes) -> bytes | int:
    try:
        return await v.getxattr(ctx, C, None, path, name)
    except OSError as e:
        return e.errno


async def test_own_xattr_changes_visible_at_once_when_exclusive(gofer) -> None:
    import errno

    client, top = gofer
    (top / "f").write_bytes(b"x")
    os.setxattr(top / "f", "user.a", b"1")
    gfs, v, ctx = await _attach(client, "exclusive")
    assert await v.getxattr(ctx, C, None, b"/f", b"user.a") == b"1"
    assert await _getxattr_or_errno(v, ctx, b"/f", b"user.b") == errno.ENODATA
    await v.setxattr(ctx, C, None, b"/f", b"user.a", b"2", 0)
    await v.setxattr(ctx, C, None, b"/f", b"user.b", b"new", 0)
    assert await v.getxattr(ctx, C, None, b"/f", b"user.a") == b"2"
    assert await v.getxattr(ctx, C, None, b"/f", b"user.b") == b"new"
    assert sorted(await v.listxattr(ctx, C, None, b"/f")) == [b"user.a", b"user.b"]
    assert os.getxattr(top / "f", "user.b") == b"new"
    await v.removexattr(ctx, C, None, b"/f", b"user.a")
    assert await _getxattr_or_errno(v, ctx, b"/f", b"user.a") == errno.ENODATA
    assert await v.listxattr(ctx, C, None, b"/f") == [b"user.b"]
    assert os.listxattr(top / "f") == ["user.b"]
    # a failed change (XATTR_CREATE of an existing name) leaves the truth in place
    with pytest.raises(FileExistsError):
        await v.setxattr(ctx, C, None, b"/f", b"user.b", b"zz", os.XATTR_CREATE)
    assert await v.getxattr(ctx, C, None, b"/f", b"user.b") == b"new"
    # chmod may rewrite an ACL xattr on the server: the cache is asked again afterwards
    count = Counting(client)
    await v.fchmodat(ctx, C, None, b"/f", 0o600, 0)
    count.reset()
    assert await v.getxattr(ctx, C, None, b"/f", b"user.b") == b"new"
    assert count.trips >= 1
    await gfs.release()


async def test_listed_directory_entries_fetched_in_one_batch(gofer) -> None:
    client, top = gofer
    (top / "d").mkdir()
    for i in range(40):
        (top / "d" / f"f{i}").write_bytes(b"y" * i)
        os.setxattr(top / "d" / f"f{i}", "user.n", b"%d" % i)
    gfs, v, ctx = await _attach(client, "exclusive")
    fd = await v.open(ctx, C, None, b"/d", O_RDONLY | O_DIRECTORY)
    while await fd.getdents64(1 << 16):
        pass
    await fd.dec_ref()
    count = Counting(client)
    for i in range(40):
        st = await v.stat(ctx, C, None, b"/d/f%d" % i, 0x100)
        assert st.size == i and st.mode == (top / "d" / f"f{i}").lstat().st_mode
        assert await _getxattr_or_errno(v, ctx, b"/d/f%d" % i, b"security.selinux") == \
            _host_getxattr(top / "d" / f"f{i}", b"security.selinux")
        assert await v.getxattr(ctx, C, None, b"/d/f%d" % i, b"user.n") == b"%d" % i
    # one batch of attributes and four for xattrs (walk, list, values, clunk), instead of
    # a lookup, a walk and a Tgetxattr per file and name
    assert count.trips <= 6, count.counts
    # nothing asked one by one (but the directory's own fid, walked once)
    assert count.counts in ({}, {"Twalk": 1}), count.counts
    await gfs.release()


async def test_cached_file_reopens_without_round_trips(gofer) -> None:
    client, top = gofer
    data = {f"s{i}": os.urandom(100 + i) for i in range(12)}
    for name, blob in data.items():
        (top / name).write_bytes(blob)
    gfs, v, ctx = await _attach(client, "exclusive")
    gfs.pages.limit = 16 * 4096  # small files count what they hold, not 64 KiB each

    async def read_all() -> None:
        for name, blob in data.items():
            fd = await v.open(ctx, C, None, b"/" + name.encode(), O_RDONLY)
            assert await fd.read(1000) == blob
            await fd.dec_ref()

    await read_all()
    count = Counting(client)
    await read_all()
    assert count.trips == 0, count.counts
    await gfs.release()


async def test_short_cached_page_reads_zeros_after_growth(gofer) -> None:
    from vfs.fs.goferfs.pages import CHUNK

    client, top = gofer
    (top / "f").write_bytes(b"0123456789")
    gfs, v, ctx = await _attach(client, "exclusive")
    fd = await v.open(ctx, C, None, b"/f", O_RDWR)
    assert await fd.pread(100, 0) == b"0123456789"  # caches a short page
    await v.ftruncate(fd, CHUNK + 50)
    assert await fd.pread(20, 5) == b"56789" + bytes(15)
    await fd.pwrite(b"ab", 20)
    await fd.pwrite(b"tail", CHUNK + 10)
    want = bytearray(b"0123456789" + bytes(CHUNK + 40))
    want[20:22] = b"ab"
    want[CHUNK + 10 : CHUNK + 14] = b"tail"
    assert await fd.pread(2 * CHUNK, 0) == bytes(want)
    await fd.dec_ref()
    assert (top / "f").read_bytes() == bytes(want)
    await gfs.release()


async def test_scanned_directory_reads_small_files_together(gofer) -> None:
    client, top = gofer
    (top / "d").mkdir()
    files = {f"f{i}": os.urandom(i * 300) for i in range(20)}
    for name, blob in files.items():
        (top / "d" / name).write_bytes(blob)
    gfs, v, ctx = await _attach(client, "exclusive")
    fd = await v.open(ctx, C, None, b"/d", O_RDONLY | O_DIRECTORY)
    while await fd.getdents64(1 << 16):
        pass
    await fd.dec_ref()
    count = Counting(client)
    for name, blob in files.items():
        f = await v.open(ctx, C, None, b"/d/" + name.encode(), O_RDONLY)
        assert await f.read(1 << 16) == blob
        await f.dec_ref()
    # the first file alone, then the rest in four batches: not three round trips a file
    assert count.trips <= 12, (count.trips, count.counts)
    # writes through the VFS still land on the server and read back
    f = await v.open(ctx, C, None, b"/d/f3", O_RDWR)
    await f.pwrite(b"new", 1)
    await f.dec_ref()
    want = files["f3"][:1] + b"new" + files["f3"][4:]
    assert (top / "d" / "f3").read_bytes() == want
    f = await v.open(ctx, C, None, b"/d/f3", O_RDONLY)
    assert await f.read(1 << 16) == want
    await f.dec_ref()
    await gfs.release()


@pytest.mark.parametrize("policy", ["exclusive", "shared"])
async def test_open_after_lookup_walks_no_fid_of_its_own(gofer, policy) -> None:
    client, top = gofer
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "f").write_bytes(b"data")
    (top / "g").write_bytes(b"top")
    gfs, v, ctx = await _attach(client, policy)
    count = Counting(client)
    for path, data in ((b"/a/b/f", b"data"), (b"/g", b"top")):
        count.reset()
        fd = await v.open(ctx, C, None, path, O_RDONLY)
        # the lookup walks the file's fid in its own round trip (Twalkgetattr for one
        # name, a Twalk riding on the Tmultigetattr of a run); the open uses that fid
        assert count.waves == 2, (path, count.counts)
        # (one open: Tlopenfd where the file may be donated, exclusive policy)
        assert count.counts.get("Tlopen", 0) + count.counts.get("Tlopenfd", 0) == 1, \
            count.counts
        assert await fd.read(10) == data
        await fd.dec_ref()
    # a later open of a file whose dentry holds no fid any more still works
    fd = await v.open(ctx, C, None, b"/a/b/f", O_RDONLY)
    assert await fd.read(10) == b"data"
    await fd.dec_ref()
    await gfs.release()
    await client.drain()
    assert client.live_fids == set()


async def test_listed_symlinks_read_in_batches(gofer) -> None:
    client, top = gofer
    (top / "d").mkdir()
    for i in range(40):
        os.symlink(f"target{i}" * (i % 3 + 1), top / "d" / f"l{i}")
        (top / "d" / f"f{i}").write_bytes(b"x")
    gfs, v, ctx = await _attach(client, "exclusive")
    fd = await v.open(ctx, C, None, b"/d", O_RDONLY | O_DIRECTORY)
    while await fd.getdents64(1 << 16):
        pass
    await fd.dec_ref()
    count = Counting(client)
    for i in range(40):  # what `ls -l` does per entry
        path = b"/d/l%d" % i
        st = await v.stat(ctx, C, None, path, 0x100)  # AT_SYMLINK_NOFOLLOW
        assert st.mode == (top / "d" / f"l{i}").lstat().st_mode
        assert await v.readlinkat(ctx, C, None, path) == os.fsencode(
            os.readlink(top / "d" / f"l{i}"))
    # one batch of attributes, one of walks, one of Treadlink (clunks ride along),
    # instead of a Twalk and a Treadlink per link
    assert count.waves <= 4, count.counts
    assert "Treadlink" not in count.counts, count.counts
    await gfs.release()


async def _list(v: VirtualFilesystem, ctx: object, path: bytes) -> None:
    fd = await v.open(ctx, C, None, path, O_RDONLY | O_DIRECTORY)
    while await fd.getdents64(1 << 16):
        pass
    await fd.dec_ref()


def _same(a, b) -> bool:
    return (a.ino, a.mode, a.nlink, a.uid, a.gid, a.rdev, a.size, a.blocks, a.atime_ns,
            a.mtime_ns, a.ctime_ns, a.btime_ns) == \
           (b.ino, b.mode, b.nlink, b.uid, b.gid, b.rdev, b.size, b.blocks, b.atime_ns,
            b.mtime_ns, b.ctime_ns, b.btime_ns)


async def test_listing_brings_each_entrys_attributes(gofer) -> None:
    """exclusive: a listing carries the attributes of its entries (Treaddirattr), so the
    lstat a program makes of each listed name (`find`, `ls -l`, `du`) needs no round
    trip, and answers what a lookup of that name alone answers."""
    client, top = gofer
    (top / "d").mkdir()
    for i in range(30):
        (top / "d" / f"f{i}").write_bytes(b"z" * i)
    (top / "d" / "sub").mkdir()
    os.symlink("f1", top / "d" / "link")
    os.mkfifo(top / "d" / "fifo")
    (top / "d" / "sub" / "inner").write_bytes(b"in")
    names = [f"f{i}" for i in range(30)] + ["sub", "link", "fifo"]
    gfs, v, ctx = await _attach(client, "exclusive")
    count = Counting(client)
    await _list(v, ctx, b"/d")
    # the lookup of d, then its open and whole listing in one request (Topendirattr)
    assert count.counts == {"Twalkgetattr": 1, "Topendirattr": 1}, count.counts
    count.reset()
    listed = {n: await v.stat(ctx, C, None, b"/d/" + n.encode(), 0x100) for n in names}
    assert count.trips == 0, count.counts
    gfs2, v2, ctx2 = await _attach(client, "exclusive")  # the same names looked up alone
    for n in names:
        alone = await v2.stat(ctx2, C, None, b"/d/" + n.encode(), 0x100)
        assert _same(listed[n], alone), n
    assert listed["f7"].size == 7 and listed["sub"].is_dir()
    count.reset()
    await _list(v, ctx, b"/d/sub")  # a listed directory, walked from d's fid: one request
    assert count.counts == {"Topendirattr": 1}, count.counts
    assert (await v.stat(ctx, C, None, b"/d/sub/inner", 0x100)).size == 2
    assert count.counts == {"Topendirattr": 1}, count.counts
    await gfs.release()
    await gfs2.release()


async def test_listed_attributes_per_policy_after_a_host_change(gofer) -> None:
    """What a change made on the host behind the sandbox's back looks like after a
    listing: the exclusive policy (the root's read-only lower, an owned volume) keeps what
    the listing said until the sandbox changes it itself; the shared policy (volumes
    others may change) asks again and sees the change."""
    client, top = gofer
    (top / "d").mkdir()
    for n in ("grows", "goes", "stays"):
        (top / "d" / n).write_bytes(b"1")
    seen = {}
    for policy in ("exclusive", "shared"):
        gfs, v, ctx = await _attach(client, policy)
        await _list(v, ctx, b"/d")
        (top / "d" / "grows").write_bytes(b"longer now")
        os.unlink(top / "d" / "goes")
        try:
            goes = (await v.stat(ctx, C, None, b"/d/goes", 0x100)).size
        except FileNotFoundError:
            goes = None
        seen[policy] = ((await v.stat(ctx, C, None, b"/d/grows", 0x100)).size, goes)
        # the sandbox's own change is seen under either policy
        fd = await v.open(ctx, C, None, b"/d/stays", O_WRONLY)
        await fd.pwrite(b"abc", 0)
        await fd.dec_ref()
        assert (await v.stat(ctx, C, None, b"/d/stays", 0x100)).size == 3
        await gfs.release()
        (top / "d" / "grows").write_bytes(b"1")
        (top / "d" / "goes").write_bytes(b"1")
        (top / "d" / "stays").write_bytes(b"1")
    assert seen == {"exclusive": (1, 1), "shared": (10, None)}, seen


async def test_listing_a_huge_directory_keeps_a_bounded_cache(gofer) -> None:
    """The dentries a listing makes and nobody looked up are bounded (`listed_limit`):
    the oldest are dropped; a later lookup of a dropped name asks the server again."""
    client, top = gofer
    (top / "big").mkdir()
    n = 5000
    for i in range(n):
        os.close(os.open(top / "big" / f"e{i:05d}", os.O_CREAT | os.O_WRONLY, 0o644))
    (top / "big" / "e00007").write_bytes(b"seven")
    gfs, v, ctx = await _attach(client, "exclusive")
    gfs.listed_limit = 300
    await v.stat(ctx, C, None, b"/big/e00003")  # looked up: never dropped
    await _list(v, ctx, b"/big")
    big = gfs.root.children[b"big"]
    assert len(big.children) <= gfs.listed_limit + 1
    assert b"e00003" in big.children
    for i in range(0, n, 97):
        st = await v.stat(ctx, C, None, b"/big/e%05d" % i, 0x100)
        assert st.ino == (top / "big" / f"e{i:05d}").stat().st_ino
    assert (await v.stat(ctx, C, None, b"/big/e00007", 0x100)).size == 5
    await gfs.release()


async def test_reopening_a_read_file_asks_the_server_only_for_what_it_reads(gofer) -> None:
    """exclusive: once the server opened a file for reading, a read-only open and close
    (a program opened to fstat, mmap or check it) needs no round trip; the I/O fid is
    opened by the first read of a page that is not cached."""
    client, top = gofer
    from vfs.fs.goferfs.pages import CHUNK, READ_AHEAD

    far = (READ_AHEAD + 2) * CHUNK  # past what the first read reads ahead
    blob = os.urandom(far + 1000)
    (top / "f").write_bytes(blob)
    gfs, v, ctx = await _attach(client, "exclusive")
    gfs.donations = False  # (the page cache's path; a donated file's reads need no trip)
    fd = await v.open(ctx, C, None, b"/f", O_RDONLY)
    assert await fd.pread(10, 0) == blob[:10]
    await fd.dec_ref()
    count = Counting(client)
    for _ in range(3):
        fd = await v.open(ctx, C, None, b"/f", O_RDONLY)
        assert (await fd.stat()).size == len(blob)
        await fd.dec_ref()
    assert count.trips == 0, count.counts
    fd = await v.open(ctx, C, None, b"/f", O_RDONLY)
    assert await fd.pread(100, far) == blob[far:far + 100]
    await fd.dec_ref()
    assert count.counts.get("Tlopen") == 1, count.counts
    await gfs.release()
    await client.drain()


def _names(buf: bytes) -> list[tuple[bytes, int]]:
    """(name, d_type) of each linux_dirent64 in a getdents64 buffer."""
    out, i = [], 0
    while i < len(buf):
        reclen = int.from_bytes(buf[i + 16:i + 18], "little")
        out.append((buf[i + 19:i + reclen].split(b"\0", 1)[0], buf[i + 18]))
        i += reclen
    return out


@pytest.mark.parametrize("policy", ["exclusive", "revalidating", "shared"])
async def test_bound_socket_is_a_sandbox_only_node(gofer, policy) -> None:
    """A unix socket's bind makes a node the host's directory never gets, under every
    policy (revalidating: stale at once, so every lookup would ask the server); it is
    listed after the server's entries, and a directory holding one is not empty."""
    import errno
    import stat as st

    from vfs.abi import S_IFSOCK

    client, top = gofer
    (top / "d").mkdir()
    (top / "d" / "f").write_text("x")
    gfs = await GoferFS.attach(client, b"e", policy=policy, revalidate_after=0.0)
    v = VirtualFilesystem(gfs)
    ctx = v.new_context()
    await v.mknodat(ctx, C, None, b"/d/s.sock", S_IFSOCK | 0o755, bind=True)
    assert sorted(os.listdir(top / "d")) == ["f"]
    for _ in range(2):
        got = await v.stat(ctx, C, None, b"/d/s.sock", 0x100)
        assert st.S_ISSOCK(got.mode) and got.mode & 0o777 == 0o755
    with pytest.raises(OSError) as e:
        await v.mknodat(ctx, C, None, b"/d/s.sock", S_IFSOCK | 0o755, bind=True)
    assert e.value.errno == errno.EEXIST
    fd = await v.open(ctx, C, None, b"/d", O_RDONLY | O_DIRECTORY)
    listed = []
    while buf := await fd.getdents64(64):  # (one entry at a time: cookies resume)
        listed += _names(buf)
    await fd.dec_ref()
    assert sorted(listed) == [(b".", 4), (b"..", 4), (b"f", 8), (b"s.sock", 12)]
    with pytest.raises(OSError) as e:
        await v.unlinkat(ctx, C, None, b"/d", 0x200)  # AT_REMOVEDIR
    assert e.value.errno == errno.ENOTEMPTY
    await v.renameat2(ctx, C, None, b"/d/s.sock", None, b"/d/f", 0)
    assert st.S_ISSOCK((await v.stat(ctx, C, None, b"/d/f", 0x100)).mode)
    assert os.listdir(top / "d") == []
    await v.unlinkat(ctx, C, None, b"/d/f", 0)
    with pytest.raises(OSError) as e:
        await v.stat(ctx, C, None, b"/d/f", 0x100)
    assert e.value.errno == errno.ENOENT
    await v.unlinkat(ctx, C, None, b"/d", 0x200)
    assert not (top / "d").exists()
    await gfs.release()


async def test_fstat_of_an_open_file_removed_on_the_host(gofer, tmp_path) -> None:
    """Under the policies that ask the server again (shared: `cache=none`; revalidating
    once its bound passed), fstat of an open file whose name another user of the server
    removed answers through the open fid, as Linux's fstat of an open unlinked file does
    (the link count 0, the file's size); stat of the name is ENOENT, as natively."""
    client, top = gofer

    def scenario_native() -> tuple:
        p = tmp_path / "native"
        p.write_bytes(b"twelve bytes")
        fd = os.open(p, os.O_RDONLY)
        try:
            os.unlink(p)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        return (st.st_size, st.st_nlink, stat.S_IFMT(st.st_mode), _errno(os.stat, p))

    want = scenario_native()
    for policy in ("shared", "revalidating"):
        gfs = await GoferFS.attach(client, b"e", policy=policy, revalidate_after=0)
        v = VirtualFilesystem(gfs)
        ctx = v.new_context()
        (top / "f").write_bytes(b"twelve bytes")
        got = []
        for flags in (O_RDONLY, O_WRONLY):
            fd = await v.open(ctx, C, None, b"/f", flags)
            os.unlink(top / "f")
            st = await fd.stat()
            try:
                await v.stat(ctx, C, None, b"/f")
                gone = 0
            except OSError as e:
                gone = e.errno
            got.append((st.size, st.nlink, stat.S_IFMT(st.mode), gone))
            await fd.dec_ref()
            (top / "f").write_bytes(b"twelve bytes")
        assert got == [want, want], (policy, got, want)
        os.unlink(top / "f")
        await gfs.release()


def _errno(fn, *a) -> int:
    try:
        fn(*a)
    except OSError as e:
        return e.errno
    return 0


def _tree_size(d) -> int:
    """Dentries reachable from `d` through the children caches (`d` excluded)."""
    n, todo = 0, [d]
    while todo:
        x = todo.pop()
        n += len(x.children)
        todo.extend(x.children.values())
    return n


async def test_a_long_walk_keeps_the_dentry_cache_bounded(gofer) -> None:
    """Past `dcache.limit`, least recently used dentries nothing holds are dropped (under
    goferfs and the overlay above it, as the sandbox's root has them), and every answer
    stays the host's; a file held open while its dentry is dropped is the same file (the
    same dentry) when its name is looked up again, and an inode something holds (an
    inotify watch) is the rebuilt dentry's."""
    from vfs.fs.overlay import Overlay
    from vfs.fs.tmpfs import Tmpfs

    client, top = gofer
    for i in range(20):
        (top / f"d{i}").mkdir()
        for j in range(60):
            (top / f"d{i}" / f"f{j}").write_bytes(b"x" * (i + j))
    for overlay in (False, True):
        gfs = await GoferFS.attach(client, b"e")
        fs = Overlay(Tmpfs(), gfs) if overlay else gfs
        v = VirtualFilesystem(fs)
        ctx = v.new_context()
        gfs.dcache.limit = 200
        if overlay:
            fs.dcache.limit = 200
        held = await v.open(ctx, C, None, b"/d0/f1", O_RDWR)
        await _list(v, ctx, b"/d1")  # (so its dentries have no fid, which would keep them)
        await v.stat(ctx, C, None, b"/d1/f2")
        watched = fs.root.children[b"d1"].children[b"f2"].inode  # (as an inotify watch does)
        biggest = 0
        for i in range(20):
            await _list(v, ctx, b"/d%d" % i)
            for j in range(60):
                st = await v.stat(ctx, C, None, b"/d%d/f%d" % (i, j), 0x100)
                host = (top / f"d{i}" / f"f{j}").stat()
                assert st.size == host.st_size and (overlay or st.ino == host.st_ino)
            biggest = max(biggest, _tree_size(fs.root))
        assert biggest <= 200 + 20 + 60 + 10, biggest  # (+ the directories, one listing)
        assert _tree_size(gfs.root) <= 200 + 20 + 60 + 10
        await v.stat(ctx, C, None, b"/d1")
        assert b"f2" not in fs.root.children[b"d1"].children  # (dropped meanwhile)
        await v.stat(ctx, C, None, b"/d1/f2")
        assert fs.root.children[b"d1"].children[b"f2"].inode is watched
        await held.pwrite(b"grown by the held fd", 0)
        assert (await v.stat(ctx, C, None, b"/d0/f1", 0x100)).size == 20
        again = await v.open(ctx, C, None, b"/d0/f1", O_RDONLY)
        assert again.vd.dentry is held.vd.dentry
        await again.dec_ref()
        await held.dec_ref()
        if not overlay:  # (the overlay's copy is in its upper layer)
            assert (top / "d0" / "f1").read_bytes() == b"grown by the held fd"
            (top / "d0" / "f1").write_bytes(b"x")
        await gfs.release()


async def _reconnect_with_stale(c: p9.Client, link, gone) -> None:
    """Remove `gone` on the server, then cut the connection: the client reconnects and
    the fids of the removed files come back stale."""
    for p in gone:
        os.unlink(p)
    probe = await c.attach(b"e")
    link.cut_after(p9.Tgetattr)
    await probe.getattr()
    await probe.clunk()


@pytest.mark.parametrize("policy", ["exclusive", "shared"])
async def test_lost_unsynced_data_is_eio(tmp_path, policy) -> None:
    """Files written but not fsync'd, removed on the server while the connection was down
    (their fids come back stale): the program's next fsync, write or close says EIO (not
    ESTALE, never nothing) whether the data was in the page cache or sent; a write-back by
    sync(2) that loses data reports nothing (as Linux's sync) and the file's next write
    does; a read-only descriptor's read keeps ESTALE (shared: it asks the server) or reads
    what the server last had (exclusive: here nothing, the lost bytes are not shown)."""
    from gofer.host import Export
    from gofer.serve import GoferOptions, serve_stream

    from ..gofer.helpers import gofer_fs
    from ..p9.relay import Link

    exp = tmp_path / "exp"
    exp.mkdir()
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery):
        link = Link(nursery, lambda s: serve_stream(s, fs, GoferOptions(idle_timeout=None)))
        async with p9.open_client(await link.dial(), redial=link.dial, reconnect=10.0) as c:
            gfs = await GoferFS.attach(c, b"e", policy=policy)
            v = VirtualFilesystem(gfs)
            ctx = v.new_context()
            fds = {}
            for name in (b"fsynced", b"synced", b"closed"):
                fds[name] = await v.open(ctx, C, None, b"/" + name, O_CREAT | O_RDWR, 0o644)
                await fds[name].write(b"unsynced data")
            reader = await v.open(ctx, C, None, b"/synced", O_RDONLY)
            await _reconnect_with_stale(c, link, [exp / "fsynced", exp / "synced",
                                                  exp / "closed"])
            assert c.reconnects == 1
            got = {}
            got["fsync"] = _errno_of(await _try(fds[b"fsynced"].fsync()))
            got["fsync again"] = _errno_of(await _try(fds[b"fsynced"].fsync()))
            await v.sync()  # (sync(2) returns nothing)
            got["write after sync"] = _errno_of(await _try(fds[b"synced"].write(b"more")))
            got["close"] = _errno_of(await _try(fds[b"closed"].flush()))
            got["read"] = _errno_of(await _try(reader.pread(4, 0)))
            assert got == {"fsync": errno.EIO,
                           "fsync again": errno.EIO,  # (the fid stays stale)
                           "write after sync": errno.EIO,
                           # (shared: the data had reached the server, the close sends nothing)
                           "close": errno.EIO if policy == "exclusive" else 0,
                           "read": errno.ESTALE if policy == "shared" else 0}, got
            if policy == "exclusive":
                assert await reader.pread(4, 0) == b""
            for fd in (*fds.values(), reader):
                await _try(fd.dec_ref())
            await gfs.release()
            await c.drain()
        nursery.cancel_scope.cancel()


async def _try(aw) -> OSError | None:
    try:
        await aw
    except OSError as e:
        return e
    return None


def _errno_of(e: OSError | None) -> int:
    return 0 if e is None else e.errno
