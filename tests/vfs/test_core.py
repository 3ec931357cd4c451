"""Core VFS behaviour on tmpfs that needs no host comparison: packers, mounts, cwd."""

from __future__ import annotations

import errno
import os
import struct

import pytest

from vfs import Credentials, Tmpfs, VirtualFilesystem, abi, parse_dirents64
from vfs.abi import O_CREAT, O_DIRECTORY, O_RDONLY, O_RDWR


@pytest.fixture
def env():
    v = VirtualFilesystem(Tmpfs())
    return v, v.new_context(), Credentials.root()


async def test_stat_packers_match_layouts(env) -> None:
    v, ctx, c = env
    fd = await v.open(ctx, c, None, b"/f", O_CREAT | O_RDWR, 0o640)
    await fd.write(b"x" * 5000)
    st = await fd.stat()
    raw = st.pack_stat()
    assert len(raw) == 144
    dev, ino, nlink, mode, uid, gid = struct.unpack_from("<QQQIII", raw)
    assert (ino, nlink, mode, uid, gid) == (st.ino, 1, 0o100640, 0, 0)
    assert struct.unpack_from("<q", raw, 48)[0] == 5000
    sx = st.pack_statx(abi.STATX_BASIC_STATS)
    assert len(sx) == 256
    mask, blksize = struct.unpack_from("<II", sx)
    assert mask & abi.STATX_BASIC_STATS == abi.STATX_BASIC_STATS and mask & abi.STATX_MNT_ID
    assert struct.unpack_from("<Q", sx, 40)[0] == 5000
    assert struct.unpack_from("<Q", sx, 144)[0] == st.mnt_id == v.root_mount.id


async def test_getdents_cookies_stable_across_removal(env) -> None:
    v, ctx, c = env
    for i in range(20):
        await v.mknodat(ctx, c, None, b"/f%02d" % i, 0o644)
    d = await v.open(ctx, c, None, b"/", O_RDONLY | O_DIRECTORY)
    first = parse_dirents64(await d.getdents64(200))
    seen = [n for _, _, _, n in first]
    # remove an entry already returned and one not yet returned; the rest still comes
    returned = seen[2]
    pending = {b"f%02d" % i for i in range(20)} - set(seen)
    victim = sorted(pending)[0]
    await v.unlinkat(ctx, c, None, b"/" + returned)
    await v.unlinkat(ctx, c, None, b"/" + victim)
    while chunk := await d.getdents64(200):
        seen += [n for _, _, _, n in parse_dirents64(chunk)]
    assert seen[:2] == [b".", b".."]
    assert sorted(seen[2:]) == sorted({b"f%02d" % i for i in range(20)} - {victim})
    # seek back to a cookie from the first batch
    await d.seek(first[2][1], abi.SEEK_SET)
    again = parse_dirents64(await d.getdents64(4096))
    assert again[0][3] == first[3][3]
    assert await d.getdents64(10) == b""  # at the end: 0, even with a tiny buffer
    await d.seek(0, abi.SEEK_SET)
    with pytest.raises(OSError) as e:
        await d.getdents64(10)
    assert e.value.errno == errno.EINVAL


async def test_mounts_dotdot_and_getcwd(env) -> None:
    v, ctx, c = env
    await v.mkdirat(ctx, c, None, b"/mnt", 0o755)
    await v.mkdirat(ctx, c, None, b"/mnt/hidden", 0o755)
    inner = Tmpfs()
    m = await v.mount(ctx, c, inner, None, b"/mnt")
    await v.mkdirat(ctx, c, None, b"/mnt/sub", 0o755)
    with pytest.raises(OSError) as e:
        await v.stat(ctx, c, None, b"/mnt/hidden")
    assert e.value.errno == errno.ENOENT
    st = await v.stat(ctx, c, None, b"/mnt/sub/../../mnt/sub")
    assert st.dev == inner.dev and st.mnt_id == m.id
    await v.chdir(ctx, c, None, b"/mnt/sub")
    assert v.getcwd(ctx) == b"/mnt/sub"
    assert (await v.stat(ctx, c, None, b"../..")).ino == (await v.stat(ctx, c, None, b"/")).ino
    with pytest.raises(OSError) as e:
        await v.unlinkat(ctx, c, None, b"/mnt", abi.AT_REMOVEDIR)
    assert e.value.errno == errno.EBUSY
    with pytest.raises(OSError) as e:
        await v.unmount(ctx, c, b"/mnt/sub")
    assert e.value.errno == errno.EINVAL
    await v.chdir(ctx, c, None, b"/")
    await v.unmount(ctx, c, b"/mnt")
    assert (await v.stat(ctx, c, None, b"/mnt/hidden")).is_dir()


async def test_readonly_bind_of_a_directory_on_itself(env) -> None:
    """mount --bind /d /d; mount -o remount,ro,bind /d (runc's linux.readonlyPaths): the
    path reaches the new mount, though it is the same dentry on another mount."""
    from vfs.mount import MS_RDONLY

    v, ctx, c = env
    await v.mkdirat(ctx, c, None, b"/d", 0o755)
    await v.mknodat(ctx, c, None, b"/d/f", 0o644)
    await v.bind_mount(ctx, c, b"/d", b"/d", flags=MS_RDONLY)
    for op in (v.open(ctx, c, None, b"/d/f", O_RDWR), v.mknodat(ctx, c, None, b"/d/g", 0o644),
               v.mkdirat(ctx, c, None, b"/d/e", 0o755)):
        with pytest.raises(OSError) as e:
            await op
        assert e.value.errno == errno.EROFS
    assert (await v.statfs(ctx, c, None, b"/d")).flags & abi.ST_RDONLY


async def test_readonly_bind_mount(env) -> None:
    from vfs.mount import MS_RDONLY

    v, ctx, c = env
    await v.mkdirat(ctx, c, None, b"/src", 0o755)
    await v.mkdirat(ctx, c, None, b"/ro", 0o755)
    await v.mknodat(ctx, c, None, b"/src/f", 0o644)
    await v.bind_mount(ctx, c, b"/src", b"/ro", flags=MS_RDONLY)
    assert (await v.stat(ctx, c, None, b"/ro/f")).ino == (await v.stat(ctx, c, None, b"/src/f")).ino
    for op in (
        v.open(ctx, c, None, b"/ro/f", O_RDWR),
        v.mkdirat(ctx, c, None, b"/ro/d", 0o755),
        v.unlinkat(ctx, c, None, b"/ro/f"),
        v.fchmodat(ctx, c, None, b"/ro/f", 0o600),
    ):
        with pytest.raises(OSError) as e:
            await op
        assert e.value.errno == errno.EROFS
    sf = await v.statfs(ctx, c, None, b"/ro")
    assert sf.flags & abi.ST_RDONLY and len(sf.pack()) == 120
    await (await v.open(ctx, c, None, b"/src/f", O_RDWR)).write(b"ok")
    fd = await v.open(ctx, c, None, b"/ro/f", O_RDONLY)
    assert await fd.read(10) == b"ok"


async def test_context_fork_and_umask(env) -> None:
    v, ctx, c = env
    await v.mkdirat(ctx, c, None, b"/d", 0o777)
    child = ctx.fork()
    child.umask = 0o077
    await v.chdir(ctx, c, None, b"/d")
    await v.mknodat(child, c, None, b"/x", 0o666)
    assert v.getcwd(child) == b"/" and v.getcwd(ctx) == b"/d"
    assert (await v.stat(ctx, c, None, b"/x")).mode == 0o100600
    assert (await v.stat(ctx, c, None, b"/d")).mode == 0o40755


async def test_unprivileged_credentials(env) -> None:
    v, ctx, c = env
    user = Credentials.user(1000, 1000)
    await v.mkdirat(ctx, c, None, b"/priv", 0o700)
    await v.mknodat(ctx, c, None, b"/priv/f", 0o644)
    with pytest.raises(OSError) as e:
        await v.stat(ctx, user, None, b"/priv/f")
    assert e.value.errno == errno.EACCES
    await v.mkdirat(ctx, c, None, b"/tmp", 0o1777)
    await v.fchmodat(ctx, c, None, b"/tmp", 0o1777)
    fd = await v.open(ctx, user, None, b"/tmp/mine", O_CREAT | O_RDWR, 0o600)
    st = await fd.stat()
    assert (st.uid, st.gid) == (1000, 1000)
    other = Credentials.user(1001, 1001)
    with pytest.raises(OSError) as e:
        await v.unlinkat(ctx, other, None, b"/tmp/mine")
    assert e.value.errno == errno.EPERM  # sticky
    with pytest.raises(OSError) as e:
        await v.fchownat(ctx, user, None, b"/tmp/mine", 0, -1)
    assert e.value.errno == errno.EPERM
    await v.unlinkat(ctx, user, None, b"/tmp/mine")


async def test_tmpfs_size_limit_and_sparse(env) -> None:
    v, ctx, c = env
    small = Tmpfs(size=8192)
    await v.mkdirat(ctx, c, None, b"/s", 0o755)
    await v.mount(ctx, c, small, None, b"/s")
    fd = await v.open(ctx, c, None, b"/s/f", O_CREAT | O_RDWR, 0o644)
    await fd.write(b"a" * 8192)
    with pytest.raises(OSError) as e:
        await fd.write(b"b")
    assert e.value.errno == errno.ENOSPC
    big = await v.open(ctx, c, None, b"/sparse", O_CREAT | O_RDWR, 0o644)
    await big.pwrite(b"z", 1 << 20)
    st = await big.stat()
    assert st.size == (1 << 20) + 1 and st.blocks <= 16
    assert await big.seek(0, abi.SEEK_DATA) == 1 << 20
    assert await big.seek(0, abi.SEEK_HOLE) == 0
    assert await big.pread(4, (1 << 20) - 2) == b"\0\0z"
    os.sync  # noqa: B018 - memfd-backed: nothing to flush


async def test_statx_mount_root_attribute(env) -> None:
    v, ctx, c = env
    await v.mkdirat(ctx, c, None, b"/m", 0o755)
    await v.mkdirat(ctx, c, None, b"/m2", 0o755)
    await v.mount(ctx, c, Tmpfs(), None, b"/m")
    for path, root in ((b"/m", True), (b"/m2", False), (b"/", True)):
        raw = (await v.statx(ctx, c, None, path, 0, abi.STATX_BASIC_STATS)).pack_statx()
        attributes, = struct.unpack_from("<Q", raw, 8)
        mask, = struct.unpack_from("<Q", raw, 56)
        assert mask & abi.STATX_ATTR_MOUNT_ROOT
        assert bool(attributes & abi.STATX_ATTR_MOUNT_ROOT) == root, path
    fd = await v.open(ctx, c, None, b"/m", O_RDONLY | O_DIRECTORY)
    assert (await fd.stat()).attributes & abi.STATX_ATTR_MOUNT_ROOT


async def test_statx_header_matches_host_tmpfs(env) -> None:
    """stx_mask, stx_attributes and stx_attributes_mask as the host's tmpfs reports them."""
    import ctypes

    from .helpers import host_base

    base = host_base()
    if base is None:
        pytest.skip("no host tmpfs at /dev/shm to compare with")
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(256)
    assert libc.statx(-100, base.encode(), 0x100, 0xFFF, buf) == 0
    host = struct.unpack_from("<IIQ", buf.raw) + struct.unpack_from("<Q", buf.raw, 56)
    v, ctx, c = env
    ours_raw = (await v.statx(ctx, c, None, b"/", 0x100, 0xFFF)).pack_statx()
    ours = struct.unpack_from("<IIQ", ours_raw) + struct.unpack_from("<Q", ours_raw, 56)
    assert (ours[0], ours[2], ours[3]) == (host[0], host[2], host[3])


async def test_tmpfs_lists_newest_first_like_host(env) -> None:
    """Linux's tmpfs lists a directory newest entry first; a rename moves an entry to
    the front. Compared with the host's tmpfs."""
    from .helpers import host_base

    base = host_base()
    if base is None:
        pytest.skip("no host tmpfs at /dev/shm to compare with")
    import shutil
    import tempfile

    top = tempfile.mkdtemp(dir=base)
    v, ctx, c = env
    await v.mkdirat(ctx, c, None, b"/o", 0o755)
    try:
        steps = [("touch", "a"), ("touch", "b"), ("mkdir", "c"), ("touch", "d"),
                 ("unlink", "b"), ("touch", "b"), ("rename", "a", "z")]
        for op, *args in steps:
            host = [os.path.join(top, a) for a in args]
            ours = [b"/o/" + a.encode() for a in args]
            if op == "touch":
                open(host[0], "w").close()
                await (await v.open(ctx, c, None, ours[0], O_CREAT | O_RDWR, 0o644)).dec_ref()
            elif op == "mkdir":
                os.mkdir(host[0])
                await v.mkdirat(ctx, c, None, ours[0], 0o755)
            elif op == "unlink":
                os.unlink(host[0])
                await v.unlinkat(ctx, c, None, ours[0])
            else:
                os.rename(host[0], host[1])
                await v.renameat2(ctx, c, None, ours[0], None, ours[1])
        fd = await v.open(ctx, c, None, b"/o", O_RDONLY | O_DIRECTORY)
        ours_order = [n.decode() for *_, n in parse_dirents64(await fd.getdents64(4096))]
        assert ours_order[2:] == os.listdir(top)
    finally:
        shutil.rmtree(top)
