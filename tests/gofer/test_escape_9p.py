"""Escape attempts over 9P (our client, raw names where a path library would refuse them):
each must fail and leave the outside tree and the host untouched."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys

import pytest

import p9
from gofer.host import Export
from tests.gofer.conftest import snapshot
from tests.gofer.helpers import connect, gofer_fs
from tests.support import need_root

SECRET = b"outside-secret\n"


async def err(coro) -> int:
    try:
        await coro
    except OSError as e:
        return e.errno
    return 0


@pytest.fixture
def guarded(tree):
    exp, out = tree
    before = snapshot(out)
    yield exp, out
    assert snapshot(out) == before


async def _cannot_read_secret(root: p9.Fid, names: list[bytes]) -> None:
    try:
        f = await root.walk(names)
    except OSError:
        return
    try:
        await f.open(os.O_RDONLY)
        assert await f.read(0, 100) != SECRET
    except OSError:
        pass
    finally:
        await f.clunk()


async def test_symlinks_and_names(guarded) -> None:
    exp, out = guarded
    os.symlink("/", exp / "rootlink")
    os.symlink("..", exp / "up")
    os.symlink(str(out), exp / "abs")
    os.symlink(str(out / "secret"), exp / "secretlink")
    os.symlink(f"/proc/self/fd/3/{out}", exp / "procfd")
    async with gofer_fs([Export("e", str(exp))]) as (fs, n), connect(fs, n) as c:
        root = await c.attach(b"e")
        for link in (b"rootlink", b"up", b"abs", b"procfd"):
            await _cannot_read_secret(root, [link, b"secret"])
            await _cannot_read_secret(root, [link, b"outside", b"secret"])
            await _cannot_read_secret(root, [link, b"etc", b"passwd"])
        f = await root.walk([b"secretlink"])
        assert await f.readlink() == os.fsencode(out / "secret")
        assert await err(f.open(os.O_RDONLY)) == errno.ELOOP
        assert await err(f.setattr(size=0)) == errno.EINVAL
        await f.clunk()
        for bad in (b"a/b", b"../outside", b"/etc", b"x\0y", b""):
            assert await err(root.walk([bad])) in (errno.EINVAL, errno.ENOENT)
        d = await root.walk([])
        for bad in (b"../escaped", b"/tmp/escaped", b".", b"..", b"a/b"):
            assert await err(d.create(bad, os.O_RDWR, 0o644, 0)) in (errno.EINVAL, errno.EEXIST)
            assert await err(root.mkdir(bad)) in (errno.EINVAL, errno.EEXIST)
        await d.clunk()
        # creating through a symlink's name never touches its target
        d = await root.walk([])
        assert await err(d.create(b"secretlink", os.O_RDWR | os.O_TRUNC, 0o644, 0)) in (
            errno.ELOOP, errno.EEXIST)
        await d.clunk()
        assert await err(root.renameat(b"secretlink", root, b"../moved")) == errno.EINVAL
        await root.clunk()


async def test_dotdot_chains(guarded) -> None:
    exp, out = guarded
    (exp / "a" / "b").mkdir(parents=True)
    async with gofer_fs([Export("e", str(exp))]) as (fs, n), connect(fs, n) as c:
        root = await c.attach(b"e")
        rq = root.qid
        for names in ([b".."] * 30, [b"a", b"b"] + [b".."] * 30, [b"a", b"..", b"..", b"..", b"a"]):
            f = await root.walk(names)
            if names[-1] == b"..":
                assert (await f.getattr()).qid.path == rq.path
            await f.clunk()
        await _cannot_read_secret(root, [b"..", b"outside", b"secret"])
        await _cannot_read_secret(root, [b"a", b"..", b"..", b"..", b"outside", b"secret"])
        await root.clunk()


async def test_cross_export_link_and_rename_refused(guarded) -> None:
    exp, _ = guarded
    (exp / "rw").mkdir()
    (exp / "ro").mkdir()
    (exp / "ro" / "precious").write_bytes(b"keep")
    exports = [Export("rw", str(exp / "rw")), Export("ro", str(exp / "ro"), readonly=True)]
    async with gofer_fs(exports) as (fs, n), connect(fs, n) as c:
        rw = await c.attach(b"rw")
        ro = await c.attach(b"ro")
        p = await ro.walk([b"precious"])
        assert await err(rw.link(p, b"stolen")) == errno.EXDEV
        assert await err(ro.renameat(b"precious", rw, b"stolen")) in (errno.EXDEV, errno.EROFS)
        assert await err(p.rename(rw, b"stolen")) in (errno.EXDEV, errno.EROFS)
        assert await err(p.setxattr(b"user.x", b"1")) == errno.EROFS
        for f in (p, rw, ro):
            await f.clunk()
    assert os.listdir(exp / "rw") == [] and (exp / "ro" / "precious").read_bytes() == b"keep"


async def test_symlink_swap_race_over_9p(guarded) -> None:
    exp, out = guarded
    (exp / "d").mkdir()
    (exp / "d" / "secret").write_bytes(b"inside\n")
    os.symlink(str(out), exp / "swap")
    swapper = subprocess.Popen([sys.executable, "-c", _SWAPPER, str(exp)], stdout=subprocess.PIPE)
    try:
        assert swapper.stdout is not None and swapper.stdout.readline() == b"ready\n"
        async with gofer_fs([Export("e", str(exp))]) as (fs, n), connect(fs, n) as c:
            root = await c.attach(b"e")
            refused = 0
            for _ in range(1500):
                try:
                    f = await root.walk([b"d", b"secret"])
                except OSError:
                    refused += 1
                    continue
                await f.open(os.O_RDONLY)
                assert await f.read(0, 100) == b"inside\n"
                await f.clunk()
            assert refused > 0, "no walk raced with the swap; the test proved nothing"
            await root.clunk()
    finally:
        swapper.kill()
        swapper.wait()


_SWAPPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
d = os.open(sys.argv[1], os.O_PATH | os.O_DIRECTORY)
print("ready", flush=True)
while True:
    libc.renameat2(d, b"d", d, b"swap", 2)
"""


async def test_directory_renamed_out_from_under_a_fid(guarded) -> None:
    exp, out = guarded
    (exp / "a" / "b").mkdir(parents=True)
    moved = out.parent / "moved-out"
    async with gofer_fs([Export("e", str(exp))]) as (fs, n), connect(fs, n) as c:
        root = await c.attach(b"e")
        b = await root.walk([b"a", b"b"])
        os.rename(exp / "a", moved)
        try:
            assert await err(b.mkdir(b"x")) == errno.ENOENT
            d = await b.walk([])
            assert await err(d.create(b"x", os.O_RDWR, 0o644, 0)) == errno.ENOENT
            await d.clunk()
            assert os.listdir(moved / "b") == []
            up = await b.walk([b"..", b"..", b"..", b".."])
            assert (await up.getattr()).qid.path == root.qid.path
            await up.open(os.O_RDONLY)
            names = {e.name for e in await up.readdir_all()}
            assert b"outside" not in names and b"secret" not in names
            await up.clunk()
            await _cannot_read_secret(b, [b"..", b"..", b"..", b"outside", b"secret"])
        finally:
            os.rename(moved, exp / "a")
        await b.clunk()
        await root.clunk()


async def test_bind_mount_inside_export(guarded) -> None:
    need_root()
    exp, out = guarded
    (exp / "mnt").mkdir()
    subprocess.run(["mount", "--bind", str(out), str(exp / "mnt")], check=True)
    try:
        async with gofer_fs([Export("e", str(exp))]) as (fs, n), connect(fs, n) as c:
            root = await c.attach(b"e")
            assert await err(root.walk([b"mnt"])) == errno.ENOENT
            await _cannot_read_secret(root, [b"mnt", b"secret"])
            await root.clunk()
    finally:
        subprocess.run(["umount", "-l", str(exp / "mnt")], check=True)


async def test_device_nodes_as_non_root(guarded) -> None:
    need_root()
    exp, _ = guarded
    os.chmod(exp, 0o777)
    os.mknod(exp / "mem", stat.S_IFCHR | 0o666, os.makedev(1, 1))
    async with gofer_fs([Export("e", str(exp))]) as (fs, n), connect(fs, n) as c:
        nobody = await c.attach(b"e", uname=b"nobody", n_uname=65534)
        assert await err(nobody.mknod(b"null2", stat.S_IFCHR | 0o666, 1, 3)) == errno.EPERM
        assert await err(nobody.mknod(b"sda", stat.S_IFBLK | 0o666, 8, 0)) == errno.EPERM
        await nobody.clunk()
        root = await c.attach(b"e", uname=b"root", n_uname=0)
        m = await root.walk([b"mem"])  # an existing device node is never opened
        assert await err(m.open(os.O_RDONLY)) == errno.EACCES
        await m.clunk()
        await root.clunk()
    from gofer.ident import restore_ident

    restore_ident()
    assert sorted(os.listdir(exp)) == ["mem"]


async def test_listing_with_attributes_leaves_a_bind_mount_out(guarded) -> None:
    """Treaddirattr gives no attributes for an entry the walk would refuse (a mount
    point): its name is listed, as Treaddir lists it, but nothing of what is mounted."""
    need_root()
    exp, out = guarded
    (exp / "mnt").mkdir()
    (exp / "plain").write_bytes(b"12345")
    subprocess.run(["mount", "--bind", str(out), str(exp / "mnt")], check=True)
    try:
        async with gofer_fs([Export("e", str(exp))]) as (fs, n), connect(fs, n) as c:
            root = await c.attach(b"e")
            d = await root.walk([])
            await d.open(os.O_RDONLY)
            got, eof = await d.readdir_attr(0)
            assert eof
            attrs = {row[4]: a for row, a in got}
            assert attrs[b"mnt"] is None
            plain = attrs[b"plain"]
            assert plain is not None and plain[3 + 5] == 5  # (valid, qid type, qid path, Attr)
            st = os.lstat(exp / "plain")
            f, want = await root.walk_getattr([b"plain"], p9.GetattrMask.ALL)
            await f.clunk()
            assert plain[2] == want.qid.path and plain[3] == st.st_mode
            assert p9.Attr(*plain[3:]) == want.attr and plain[0] == want.valid
            await d.clunk()
            await root.clunk()
    finally:
        subprocess.run(["umount", "-l", str(exp / "mnt")], check=True)
