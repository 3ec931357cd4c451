"""devfs devices against the host's /dev; procfs/sysfs static files and the provider hook."""

from __future__ import annotations

import errno
import os

import pytest

from vfs import Credentials, Tmpfs, VirtualFilesystem, parse_dirents64
from vfs.abi import O_DIRECTORY, O_RDONLY, O_RDWR, O_WRONLY
from vfs.fs import devfs, pipefs
from vfs.fs.procfs import Procfs
from vfs.fs.synthetic import DirNode, FileNode, SymlinkNode
from vfs.fs.sysfs import Sysfs


@pytest.fixture
async def env():
    v = VirtualFilesystem(Tmpfs())
    pipefs.install(v)
    ctx, c = v.new_context(), Credentials.root()
    tty = await devfs.install(v, ctx, c)
    return v, ctx, c, tty


@pytest.mark.parametrize("name", ["null", "zero", "full", "random", "urandom", "tty"])
async def test_device_nodes_match_host(env, name: str) -> None:
    v, ctx, c, _ = env
    host = os.stat(f"/dev/{name}")
    ours = await v.stat(ctx, c, None, b"/dev/" + name.encode())
    assert (ours.mode, ours.rdev) == (host.st_mode, host.st_rdev)


async def test_device_io_matches_host(env) -> None:
    v, ctx, c, _ = env
    for name, n in (("null", 10), ("zero", 10), ("full", 10)):
        hfd = os.open(f"/dev/{name}", os.O_RDWR)
        try:
            host_read = os.read(hfd, n)
            try:
                host_write: object = os.write(hfd, b"abc")
            except OSError as e:
                host_write = e.errno
            host_seek = os.lseek(hfd, 100, os.SEEK_SET)
        finally:
            os.close(hfd)
        fd = await v.open(ctx, c, None, b"/dev/" + name.encode(), O_RDWR)
        assert await fd.read(n) == host_read
        try:
            ours: object = await fd.write(b"abc")
        except OSError as e:
            ours = e.errno
        assert ours == host_write
        assert await fd.seek(100, os.SEEK_SET) == host_seek
    fd = await v.open(ctx, c, None, b"/dev/urandom", O_RDONLY)
    assert len(await fd.read(64)) == 64


async def test_tty_without_terminal_and_symlinks(env) -> None:
    v, ctx, c, tty = env
    with pytest.raises(OSError) as e:
        await v.open(ctx, c, None, b"/dev/tty", O_RDWR)
    assert e.value.errno == errno.ENXIO
    for name, target in ((b"fd", b"/proc/self/fd"), (b"stdin", b"/proc/self/fd/0"),
                         (b"stdout", b"/proc/self/fd/1"), (b"stderr", b"/proc/self/fd/2")):
        assert await v.readlinkat(ctx, c, None, b"/dev/" + name) == target
        assert os.readlink(f"/dev/{name.decode()}") == target.decode()
    st = await v.stat(ctx, c, None, b"/dev/shm")
    assert st.mode == 0o41777


async def test_nodev_mount_refuses_devices(env) -> None:
    from vfs.mount import MS_NODEV

    v, ctx, c, _ = env
    await v.mkdirat(ctx, c, None, b"/nd", 0o755)
    await v.mount(ctx, c, Tmpfs(), None, b"/nd", flags=MS_NODEV)
    await v.mknodat(ctx, c, None, b"/nd/null", 0o20666, os.makedev(1, 3))
    with pytest.raises(OSError) as e:
        await v.open(ctx, c, None, b"/nd/null", O_WRONLY)
    assert e.value.errno == errno.EACCES


class Kernel:
    """The smallest ProcProvider: one process, pid 1."""

    def self_pid(self) -> int | None:
        return 1

    def pids(self) -> list[int]:
        return [1]

    def pid_entries(self, pid: int):
        return {b"comm": FileNode(b"init\n"), b"cwd": SymlinkNode(b"/"),
                b"fd": DirNode({})} if pid == 1 else None

    def extra_entries(self):
        return {b"uptime": FileNode(lambda: b"1.00 1.00\n")}


async def read_all(v, ctx, c, path: bytes) -> bytes:
    fd = await v.open(ctx, c, None, path, O_RDONLY)
    out = b""
    while chunk := await fd.read(7):
        out += chunk
    return out


async def test_procfs_static_and_provider(env) -> None:
    v, ctx, c, _ = env
    await v.mkdirat(ctx, c, None, b"/proc", 0o555)
    await v.mount(ctx, c, Procfs(v, Kernel()), None, b"/proc", source="proc")
    assert await read_all(v, ctx, c, b"/proc/sys/kernel/ostype") == open(
        "/proc/sys/kernel/ostype", "rb").read()
    assert b"nodev\ttmpfs\n" in await read_all(v, ctx, c, b"/proc/filesystems")
    mounts = await read_all(v, ctx, c, b"/proc/mounts")
    assert b"devtmpfs /dev tmpfs rw 0 0\n" in mounts and b"proc /proc proc rw 0 0\n" in mounts
    assert await v.readlinkat(ctx, c, None, b"/proc/self") == b"1"
    assert await read_all(v, ctx, c, b"/proc/self/comm") == b"init\n"
    assert await read_all(v, ctx, c, b"/proc/uptime") == b"1.00 1.00\n"
    st = await v.stat(ctx, c, None, b"/proc/self/comm")
    assert st.mode == 0o100444 and st.size == 0
    d = await v.open(ctx, c, None, b"/proc", O_RDONLY | O_DIRECTORY)
    names = [n for _, _, _, n in parse_dirents64(await d.getdents64(8192))]
    assert names[:2] == [b".", b".."] and b"1" in names and b"self" in names
    with pytest.raises(OSError) as e:
        await v.mkdirat(ctx, c, None, b"/proc/x", 0o755)
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        await v.stat(ctx, c, None, b"/proc/2")
    assert e.value.errno == errno.ENOENT


async def test_sysfs_cpu_files(env) -> None:
    v, ctx, c, _ = env
    await v.mkdirat(ctx, c, None, b"/sys", 0o555)
    await v.mount(ctx, c, Sysfs(ncpus=2), None, b"/sys", source="sysfs")
    assert await read_all(v, ctx, c, b"/sys/devices/system/cpu/online") == b"0-1\n"
    sf = await v.statfs(ctx, c, None, b"/sys")
    assert sf.type == 0x62656572
