"""devfs: /dev as a tmpfs holding device nodes, plus the devices themselves.

Like Linux's devtmpfs, /dev is an ordinary tmpfs; what makes a node a device is its
(type, major, minor), which the VFS looks up in `vfs.devices` at open. Devices here:
null (1,3), zero (1,5), full (1,7), random (1,8), urandom (1,9) and tty (5,0), which
answers ENXIO while no controlling terminal is known (`DevTTY.opener` is the hook the
Sentry sets). Symlinks: fd → /proc/self/fd, stdin/stdout/stderr → /proc/self/fd/0..2.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable

from ..abi import S_IFCHR, S_IFDIR, S_ISVTX, SEEK_CUR, SEEK_END, SEEK_SET
from ..creds import Credentials
from ..errors import error
from ..file import FileDescription, Memory
from ..memlimit import MemoryLimit
from ..mount import FSContext, VirtualDentry
from ..virtualfs import VirtualFilesystem
from .tmpfs import Tmpfs


class CharDevFD(FileDescription):
    """Base for memory-like character devices: pread/pwrite work, seek is a no-op to 0."""

    seekable = True

    async def do_read(self, n: int) -> bytes:
        return await self.do_pread(n, 0)

    async def do_write(self, data: bytes) -> int:
        return await self.do_pwrite(data, 0)

    async def do_seek(self, offset: int, whence: int) -> int:
        if whence not in (SEEK_SET, SEEK_CUR, SEEK_END):
            raise error(errno.EINVAL)
        self.offset = 0
        return 0


class NullFD(CharDevFD):
    async def do_pread(self, n: int, offset: int) -> bytes:
        return b""

    async def do_pwrite(self, data: bytes, offset: int) -> int:
        return len(data)


class ZeroFD(CharDevFD):
    async def do_pread(self, n: int, offset: int) -> bytes:
        return bytes(n)

    async def do_pwrite(self, data: bytes, offset: int) -> int:
        return len(data)


class FullFD(ZeroFD):
    async def do_pwrite(self, data: bytes, offset: int) -> int:
        raise error(errno.ENOSPC)


class RandomFD(CharDevFD):
    def fasync_reason(self, mask: int) -> int:
        """O_ASYNC is kept (random_fasync); entropy never runs short here: no signal."""
        return 0

    async def do_pread(self, n: int, offset: int) -> bytes:
        return os.urandom(n)

    async def do_pwrite(self, data: bytes, offset: int) -> int:
        return len(data)

    async def do_ioctl(self, cmd: int, arg: int, mem: Memory | None) -> int:
        if cmd == 0x80045200:  # RNDGETENTCNT
            if mem is None:
                raise error(errno.EFAULT)
            mem.mem_write(arg, (256).to_bytes(4, "little"))
            return 0
        raise error(errno.EINVAL)


Opener = Callable[[VirtualDentry, int, Credentials], Awaitable[FileDescription]]


class DevTTY:
    """/dev/tty: the caller's controlling terminal, ENXIO while `opener` is None."""

    def __init__(self) -> None:
        self.opener: Opener | None = None

    async def __call__(self, vd: VirtualDentry, flags: int, creds: Credentials) -> FileDescription:
        if self.opener is None:
            raise error(errno.ENXIO)
        return await self.opener(vd, flags, creds)


def _simple(cls: type[FileDescription]) -> Opener:
    async def opener(vd: VirtualDentry, flags: int, creds: Credentials) -> FileDescription:
        return cls(vd, flags)

    return opener


DEVICES = {
    (1, 3): (b"null", NullFD),
    (1, 5): (b"zero", ZeroFD),
    (1, 7): (b"full", FullFD),
    (1, 8): (b"random", RandomFD),
    (1, 9): (b"urandom", RandomFD),
}


def register_devices(vfs: VirtualFilesystem) -> DevTTY:
    """Register the memory devices and /dev/tty with `vfs`; returns the tty hook."""
    for (major, minor), (_, cls) in DEVICES.items():
        vfs.devices[(S_IFCHR, major, minor)] = _simple(cls)
    tty = DevTTY()
    vfs.devices[(S_IFCHR, 5, 0)] = tty
    return tty


async def install(vfs: VirtualFilesystem, ctx: FSContext, creds: Credentials,
                  path: bytes = b"/dev", memory: MemoryLimit | None = None) -> DevTTY:
    """Mount a populated devfs at `path` (created if missing); returns the /dev/tty hook.
    Its files (/dev/shm's) are charged to `memory`, the sandbox's limit."""
    try:
        await vfs.mkdirat(ctx, creds, None, path, 0o755)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise
    fs = Tmpfs(mode=0o755, size=64 << 20, memory=memory)
    await vfs.mount(ctx, creds, fs, None, path, source="devtmpfs")
    tty = register_devices(vfs)
    c = FSContext(ctx.root, ctx.cwd, 0)
    base = path.rstrip(b"/") + b"/"
    for (major, minor), (name, _) in DEVICES.items():
        await vfs.mknodat(c, creds, None, base + name, S_IFCHR | 0o666, os.makedev(major, minor))
    await vfs.mknodat(c, creds, None, base + b"tty", S_IFCHR | 0o666, os.makedev(5, 0))
    await vfs.mkdirat(c, creds, None, base + b"pts", 0o755)
    await vfs.mkdirat(c, creds, None, base + b"shm", S_IFDIR | S_ISVTX | 0o777)
    await vfs.mkdirat(c, creds, None, base + b"mqueue", 0o755)  # the kernel mounts its mqueue
    await vfs.symlinkat(c, creds, b"/proc/self/fd", None, base + b"fd")
    for i, name in enumerate((b"stdin", b"stdout", b"stderr")):
        await vfs.symlinkat(c, creds, b"/proc/self/fd/%d" % i, None, base + name)
    return tty
