"""Fifos and other special files: creation, modes, and (where the target can) I/O."""

from __future__ import annotations

import errno
import os
import stat

from ..case import Ctx, case, register

F = ("fifo-io",)


def _mode(mode: int, mask: int):
    async def run(t: Ctx) -> None:
        t.umask(mask)
        await t.mkfifo(b"p", mode)
        await t.lstat(b"p")
    return run


for _m in (0o644, 0o600, 0o666, 0o777):
    for _k in (0o022, 0o077):
        register("fifos", f"mkfifo-mode-{_m:03o}-umask-{_k:03o}", _mode(_m, _k),
                 doc="mkfifo makes a fifo with mode & ~umask")


@case("fifos", "exists-eexist")
async def _(t: Ctx) -> None:
    """mkfifo over an existing name is EEXIST."""
    await t.create(b"f")
    await t.fails(errno.EEXIST, t.mkfifo(b"f"))


@case("fifos", "rename-and-stat")
async def _(t: Ctx) -> None:
    """A fifo renames and keeps its type."""
    await t.mkfifo(b"p")
    await t.rename(b"p", b"q")
    await t.lstat(b"q")


@case("fifos", "nonblock-reader-opens", needs=F)
async def _(t: Ctx) -> None:
    """O_RDONLY|O_NONBLOCK opens a fifo without a writer; reads return nothing."""
    await t.mkfifo(b"p")
    h = await t.open(b"p", os.O_RDONLY | os.O_NONBLOCK)
    await t.read(h, 10)
    await t.close(h)


@case("fifos", "nonblock-writer-enxio", needs=F)
async def _(t: Ctx) -> None:
    """O_WRONLY|O_NONBLOCK without a reader is ENXIO."""
    await t.mkfifo(b"p")
    await t.fails(errno.ENXIO, t.open(b"p", os.O_WRONLY | os.O_NONBLOCK))


@case("fifos", "data-flows", needs=F)
async def _(t: Ctx) -> None:
    """Bytes written to a fifo come out of it in order; the size stays 0."""
    await t.mkfifo(b"p")
    r = await t.open(b"p", os.O_RDONLY | os.O_NONBLOCK)
    w = await t.open(b"p", os.O_WRONLY | os.O_NONBLOCK)
    await t.write(w, b"hello ")
    await t.write(w, b"fifo")
    t.check(await t.read(r, 100) == b"hello fifo", "fifo data")
    await t.fails(errno.EAGAIN, t.read(r, 1))
    await t.close(w)
    await t.read(r, 1)
    await t.close(r)
    await t.lstat(b"p")


@case("fifos", "lseek-espipe", needs=F)
async def _(t: Ctx) -> None:
    """lseek on a fifo is ESPIPE."""
    await t.mkfifo(b"p")
    h = await t.open(b"p", os.O_RDONLY | os.O_NONBLOCK)
    await t.fails(errno.ESPIPE, t.lseek(h, 0, os.SEEK_SET))
    await t.close(h)


@case("fifos", "char-device", needs=("mknod-dev",))
async def _(t: Ctx) -> None:
    """Root makes a character device node with its device number."""
    await t.mknod(b"null", 0o020666, os.makedev(1, 3))
    await t.lstat(b"null")


@case("fifos", "socket-node")
async def _(t: Ctx) -> None:
    """mknod makes a socket node."""
    await t.mknod(b"s", 0o140644)
    await t.lstat(b"s")


@case("fifos", "regular-via-mknod")
async def _(t: Ctx) -> None:
    """mknod with S_IFREG (or no type) makes an empty regular file."""
    await t.mknod(b"r", 0o100600)
    await t.mknod(b"z", 0o600)
    await t.lstat(b"r")
    await t.lstat(b"z")


@case("fifos", "mknod-dir-einval")
async def _(t: Ctx) -> None:
    """mknod cannot make a directory: EPERM on Linux."""
    await t.attempt(t.mknod(b"d", 0o040755))
    await t.listdir()


@case("fifos", "mknod-types")
async def _(t: Ctx) -> None:
    """mknod makes regular files (also with no type bits), fifos and sockets; EEXIST, EPERM for
    directories, EINVAL for a bad type; a socket node does not open (ENXIO)."""
    await t.mknod(b"reg", stat.S_IFREG | 0o644)
    await t.mknod(b"zero", 0o600)
    await t.mknod(b"fifo", stat.S_IFIFO | 0o644)
    await t.mknod(b"sock", stat.S_IFSOCK | 0o644)
    await t.stat(b"reg")
    await t.stat(b"zero")
    await t.stat(b"fifo")
    await t.stat(b"sock")
    await t.fails(errno.EEXIST, t.mknod(b"reg", stat.S_IFREG | 0o644))
    await t.fails(errno.EPERM, t.mknod(b"dir", stat.S_IFDIR | 0o755))
    await t.fails(errno.EINVAL, t.mknod(b"bad", 0o170755))
    await t.fails(errno.ENOENT, t.mknod(b"slash/", stat.S_IFREG | 0o644))
    await t.fails(errno.ENXIO, t.open(b"sock", os.O_RDONLY))


@case("fifos", "fifo-by-path", needs=("fifo-io",))
async def _(t: Ctx) -> None:
    """A fifo opened by path at both ends (non-blocking) carries data; EAGAIN when empty, end of
    file after the writer closes."""
    await t.mknod(b"p", stat.S_IFIFO | 0o644)
    h0 = await t.open(b"p", os.O_NONBLOCK)
    h1 = await t.open(b"p", os.O_WRONLY | os.O_NONBLOCK)
    await t.write(h1, b"through")
    await t.read(h0, 3)
    await t.read(h0, 10)
    await t.fails(errno.EAGAIN, t.read(h0, 10))
    await t.close(h1)
    await t.read(h0, 10)
    await t.fstat(h0)
