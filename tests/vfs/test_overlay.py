"""Overlay specifics: the lower layer is never written; whiteouts, opaque directories,
copy-up, merged readdir, renaming directories that have lower contents."""

from __future__ import annotations

import errno

import pytest

from vfs import Credentials, Tmpfs, VirtualFilesystem
from vfs.abi import O_CREAT, O_DIRECTORY, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY, S_IFCHR
from vfs.fs.overlay import OPAQUE, Overlay

from .helpers import dents

C = Credentials.root()


async def snapshot(v: VirtualFilesystem, path: bytes = b"/") -> dict:
    """Every path below `path` with its type, mode and contents (files) or target."""
    ctx = v.new_context()
    out = {}
    fd = await v.open(ctx, C, None, path, O_RDONLY | O_DIRECTORY)
    for name, _t in await dents(fd):
        if name in (b".", b".."):
            continue
        p = path.rstrip(b"/") + b"/" + name
        st = await v.stat(ctx, C, None, p, 0x100)
        if st.is_dir():
            out[p] = ("dir", st.mode)
            out.update(await snapshot(v, p))
        elif st.mode & 0o170000 == 0o120000:
            out[p] = ("link", await v.readlinkat(ctx, C, None, p))
        else:
            f = await v.open(ctx, C, None, p, O_RDONLY)
            out[p] = ("file", st.mode, st.uid, await f.read(1 << 20))
            await f.dec_ref()
    await fd.dec_ref()
    return out


@pytest.fixture
async def layers():
    lower = Tmpfs()
    lv = VirtualFilesystem(lower)
    ctx = lv.new_context()
    await lv.mkdirat(ctx, C, None, b"/etc", 0o755)
    await lv.mkdirat(ctx, C, None, b"/etc/sub", 0o755)
    f = await lv.open(ctx, C, None, b"/etc/passwd", O_CREAT | O_WRONLY, 0o644)
    await f.write(b"root:x:0:0\n")
    await lv.fchownat(ctx, C, None, b"/etc/passwd", 0, 42)
    await lv.symlinkat(ctx, C, b"passwd", None, b"/etc/link")
    await lv.mknodat(ctx, C, None, b"/etc/sub/deep", 0o600)
    upper = Tmpfs()
    ov = VirtualFilesystem(Overlay(upper, lower))
    before = await snapshot(lv)
    return lv, ov, upper, before


async def test_writes_never_reach_lower(layers) -> None:
    lv, ov, upper, before = layers
    ctx = ov.new_context()
    f = await ov.open(ctx, C, None, b"/etc/passwd", O_RDWR)
    assert await f.read(100) == b"root:x:0:0\n"  # copied up with its data
    await f.write(b"more\n")
    await ov.fchmodat(ctx, C, None, b"/etc/link", 0o600)
    await ov.unlinkat(ctx, C, None, b"/etc/sub/deep")
    await ov.mkdirat(ctx, C, None, b"/new", 0o700)
    await ov.renameat2(ctx, C, None, b"/etc/sub", None, b"/new/sub")
    await ov.open(ctx, C, None, b"/etc/passwd2", O_CREAT | O_TRUNC | O_WRONLY, 0o644)
    assert await snapshot(lv) == before
    after = await snapshot(ov)
    assert after[b"/etc/passwd"] == ("file", 0o100600, 0, b"root:x:0:0\nmore\n")
    assert b"/etc/sub" not in after and after[b"/new/sub"][0] == "dir"
    assert b"/new/sub/deep" not in after


async def test_whiteout_and_opaque_dir_in_upper(layers) -> None:
    lv, ov, upper, _ = layers
    ctx = ov.new_context()
    await ov.unlinkat(ctx, C, None, b"/etc/sub/deep")
    await ov.unlinkat(ctx, C, None, b"/etc/sub", 0x200)
    # Linux's convention: a 0/0 character device in upper marks the removal
    up = VirtualFilesystem(upper)
    st = await up.stat(up.new_context(), C, None, b"/etc/sub", 0x100)
    assert st.mode & 0o170000 == S_IFCHR and st.rdev == 0
    with pytest.raises(OSError) as e:
        await ov.stat(ctx, C, None, b"/etc/sub/deep")
    assert e.value.errno == errno.ENOENT
    # a new directory over the whiteout is opaque: the lower contents do not come back
    await ov.mkdirat(ctx, C, None, b"/etc/sub", 0o755)
    assert await up.getxattr(up.new_context(), C, None, b"/etc/sub", OPAQUE) == b"y"
    fd = await ov.open(ctx, C, None, b"/etc/sub", O_RDONLY | O_DIRECTORY)
    assert [n for n, _ in await dents(fd)] == [b".", b".."]
    # the opaque marker is invisible through the overlay
    assert OPAQUE not in await ov.listxattr(ctx, C, None, b"/etc/sub")


async def test_merged_readdir_and_link_counts(layers) -> None:
    lv, ov, upper, _ = layers
    ctx = ov.new_context()
    await ov.mkdirat(ctx, C, None, b"/etc/upperdir", 0o755)
    await ov.unlinkat(ctx, C, None, b"/etc/link")
    fd = await ov.open(ctx, C, None, b"/etc", O_RDONLY | O_DIRECTORY)
    names = sorted(n for n, _ in await dents(fd))
    assert names == [b".", b"..", b"passwd", b"sub", b"upperdir"]
    assert (await ov.stat(ctx, C, None, b"/etc")).nlink == 4
    with pytest.raises(OSError) as e:
        await ov.unlinkat(ctx, C, None, b"/etc", 0x200)
    assert e.value.errno == errno.ENOTEMPTY


async def test_copy_up_keeps_metadata(layers) -> None:
    lv, ov, upper, _ = layers
    ctx = ov.new_context()
    await ov.setxattr(ctx, C, None, b"/etc/passwd", b"user.k", b"v")
    st = await ov.stat(ctx, C, None, b"/etc/passwd")
    low = await lv.stat(lv.new_context(), C, None, b"/etc/passwd")
    assert (st.mode, st.uid, st.gid, st.size, st.mtime_ns) == (
        low.mode, low.uid, low.gid, low.size, low.mtime_ns)
    assert await ov.getxattr(ctx, C, None, b"/etc/passwd", b"user.k") == b"v"
    with pytest.raises(OSError):
        await lv.getxattr(lv.new_context(), C, None, b"/etc/passwd", b"user.k")


async def test_concurrent_copy_up_of_one_file(tmp_path) -> None:
    """Two tasks open the same lower file for writing while the lower layer (goferfs)
    awaits: it is copied up once, and both writes land in the one upper copy."""
    import trio

    from .helpers import goferfs

    async with goferfs(tmp_path, "exclusive") as gfs:
        lv = VirtualFilesystem(gfs)
        lctx = lv.new_context()
        await lv.mkdirat(lctx, C, None, b"/dir", 0o755)
        f = await lv.open(lctx, C, None, b"/dir/f", O_CREAT | O_WRONLY, 0o644)
        await f.write(b"." * 100)
        await f.dec_ref()
        ov = VirtualFilesystem(Overlay(Tmpfs(), gfs))
        ctx = ov.new_context()

        async def writer(off: int, data: bytes) -> None:
            fd = await ov.open(ctx, C, None, b"/dir/f", O_RDWR)
            await fd.pwrite(data, off)
            await fd.dec_ref()

        async with trio.open_nursery() as n:
            n.start_soon(writer, 0, b"AAAA")
            n.start_soon(writer, 50, b"BBBB")
        fd = await ov.open(ctx, C, None, b"/dir/f", O_RDONLY)
        data = await fd.read(200)
        assert data[:4] == b"AAAA" and data[50:54] == b"BBBB" and len(data) == 100
        fdir = await ov.open(ctx, C, None, b"/dir", O_RDONLY | O_DIRECTORY)
        assert sorted(n for n, _ in await dents(fdir)) == [b".", b"..", b"f"]


@pytest.mark.parametrize("policy", ["exclusive", "revalidating", "shared"])
async def test_fstat_of_a_lower_file_is_the_overlays(tmp_path, policy: str) -> None:
    """fstat of a file opened through the overlay (still only in the lower layer) gives
    what stat of its path gives, the overlay's st_dev included: cp compares the two and
    skips a file whose (dev, ino) changed ("replaced while being copied")."""
    from .helpers import goferfs

    async with goferfs(tmp_path, policy) as gfs:
        lv = VirtualFilesystem(gfs)
        lctx = lv.new_context()
        f = await lv.open(lctx, C, None, b"/f", O_CREAT | O_WRONLY, 0o644)
        await f.write(b"data")
        await f.dec_ref()
        for dirs in (False, True):
            ov = VirtualFilesystem(Overlay(Tmpfs(), gfs))
            ctx = ov.new_context()
            path, flags = (b"/", O_RDONLY | O_DIRECTORY) if dirs else (b"/f", O_RDONLY)
            st = await ov.stat(ctx, C, None, path, 0)
            fd = await ov.open(ctx, C, None, path, flags)
            fst = await fd.stat()
            assert (fst.dev, fst.ino, fst.size) == (st.dev, st.ino, st.size)
            await fd.dec_ref()


async def test_large_lower_directory_listed_whole(tmp_path) -> None:
    """A lower goferfs directory bigger than one Treaddir (small msize) is merged whole,
    through the overlay and directly."""
    from .helpers import goferfs

    async with goferfs(tmp_path, "exclusive", msize=8192) as gfs:
        top = tmp_path / "export" / "big"
        top.mkdir()
        names = sorted(b"entry-%04d-with-a-long-enough-name" % i for i in range(600))
        for n in names:
            (top / n.decode()).touch()
        for v in (VirtualFilesystem(gfs), VirtualFilesystem(Overlay(Tmpfs(), gfs))):
            fd = await v.open(v.new_context(), C, None, b"/big", O_RDONLY | O_DIRECTORY)
            got = sorted(n for n, _ in await dents(fd) if n not in (b".", b".."))
            assert got == names



class _HeldLower(Tmpfs):
    """A lower layer whose first lookup of b"dir" waits for `go`: a slow lookup (a remote
    gofer's) overtaken by another task's, the order decided by the test, not the network."""

    def __init__(self) -> None:
        import trio

        super().__init__()
        self.go = trio.Event()
        self.held = False

    async def lookup(self, parent, names):  # noqa: ANN001, ANN201
        if names[0] == b"dir" and not self.held:
            self.held = True
            await self.go.wait()
        return await super().lookup(parent, names)


async def test_a_slow_first_lookup_keeps_what_was_created_meanwhile() -> None:
    """A task's first lookup of a lower directory is overtaken by another task that looks
    it up, copies it up and creates in it: the slow lookup's result must not replace the
    directory's dentry, or the new file vanishes (found as a unix socket bound in the
    host's /tmp, then ENOENT for the binder's own resolve and every connect)."""
    import trio
    import trio.testing

    lower = _HeldLower()
    lower.held = True  # not while the lower tree is made
    lv = VirtualFilesystem(lower)
    await lv.mkdirat(lv.new_context(), C, None, b"/dir", 0o755)
    lower.held = False
    ov = VirtualFilesystem(Overlay(Tmpfs(), lower))
    ctx = ov.new_context()

    async def looker() -> None:
        with pytest.raises(FileNotFoundError):
            await ov.stat(ctx, C, None, b"/dir/missing", 0)

    async with trio.open_nursery() as n:
        n.start_soon(looker)
        await trio.testing.wait_all_tasks_blocked()
        assert lower.held  # the looker waits in the lower layer's lookup
        await ov.mknodat(ctx, C, None, b"/dir/s", 0o600)
        await ov.stat(ctx, C, None, b"/dir/s", 0)
        lower.go.set()
    await ov.stat(ctx, C, None, b"/dir/s", 0)
    fd = await ov.open(ctx, C, None, b"/dir", O_RDONLY | O_DIRECTORY)
    assert sorted(n for n, _ in await dents(fd)) == [b".", b"..", b"s"]
