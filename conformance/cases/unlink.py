"""unlink(2): what goes, what stays (open files keep their data), and the errors."""

from __future__ import annotations

import errno
import os

from ..case import Ctx, case


@case("unlink", "file")
async def _(t: Ctx) -> None:
    """unlink removes the name."""
    await t.create(b"f", b"x")
    await t.unlink(b"f")
    await t.fails(errno.ENOENT, t.lstat(b"f"))
    await t.listdir()


@case("unlink", "missing-enoent")
async def _(t: Ctx) -> None:
    """unlink of a missing name is ENOENT."""
    await t.fails(errno.ENOENT, t.unlink(b"nope"))


@case("unlink", "directory-eisdir")
async def _(t: Ctx) -> None:
    """unlink of a directory is EISDIR on Linux."""
    await t.mkdir(b"d")
    await t.fails(errno.EISDIR, t.unlink(b"d"))


@case("unlink", "symlink-not-target")
async def _(t: Ctx) -> None:
    """unlink of a symlink removes the link, not its target."""
    await t.create(b"f", b"x")
    await t.symlink(b"f", b"l")
    await t.unlink(b"l")
    await t.stat(b"f")
    await t.listdir()


@case("unlink", "dangling-symlink")
async def _(t: Ctx) -> None:
    """A dangling symlink can be unlinked."""
    await t.symlink(b"nowhere", b"l")
    await t.unlink(b"l")
    await t.listdir()


@case("unlink", "open-file-data-stays")
async def _(t: Ctx) -> None:
    """An unlinked open file stays readable and writable through its handle."""
    await t.create(b"f", b"precious")
    h = await t.open(b"f", os.O_RDWR)
    await t.unlink(b"f")
    t.check(await t.read(h, 100) == b"precious", "data lost")
    await t.pwrite(h, b"P", 0)
    t.check(await t.pread(h, 100, 0) == b"Precious", "write lost")
    st = await t.fstat(h)
    t.check(st.nlink == 0, "nlink of unlinked open file")
    await t.close(h)
    await t.listdir()


@case("unlink", "open-file-recreate-name")
async def _(t: Ctx) -> None:
    """After unlinking an open file, a new file of the same name is a different file."""
    await t.create(b"f", b"old")
    h = await t.open(b"f")
    await t.unlink(b"f")
    await t.create(b"f", b"new")
    t.check(await t.read(h, 10) == b"old", "old handle sees new file")
    t.check(await t.slurp(b"f") == b"new", "new file wrong")
    await t.close(h)


@case("unlink", "trailing-slash-enotdir")
async def _(t: Ctx) -> None:
    """unlink 'f/' of a regular file is ENOTDIR."""
    await t.create(b"f")
    await t.fails(errno.ENOTDIR, t.unlink(b"f/"))
    await t.stat(b"f")


@case("unlink", "through-file-enotdir")
async def _(t: Ctx) -> None:
    """A regular file in the middle of the path is ENOTDIR."""
    await t.create(b"f")
    await t.fails(errno.ENOTDIR, t.unlink(b"f/x"))


@case("unlink", "hardlink-decrements")
async def _(t: Ctx) -> None:
    """Unlinking one of two links leaves the other with nlink 1."""
    await t.create(b"a", b"x")
    await t.link(b"a", b"b")
    await t.unlink(b"a")
    await t.stat(b"b")


@case("unlink", "fifo")
async def _(t: Ctx) -> None:
    """A fifo is unlinked like a file."""
    await t.mkfifo(b"p")
    await t.unlink(b"p")
    await t.listdir()


@case("unlink", "in-subdir")
async def _(t: Ctx) -> None:
    """unlink of d/f leaves d."""
    await t.mkdir(b"d")
    await t.create(b"d/f")
    await t.unlink(b"d/f")
    await t.listdir(b"d")
    await t.rmdir(b"d")


@case("unlink", "dot-eisdir")
async def _(t: Ctx) -> None:
    """unlink of '.' fails (EISDIR on Linux)."""
    await t.attempt(t.unlink(b"."))
    await t.attempt(t.unlink(b".."))


@case("unlink", "symlink-to-dir-slash")
async def _(t: Ctx) -> None:
    """unlink 'l/' of a symlink to a directory refers to the directory: EISDIR."""
    await t.mkdir(b"d")
    await t.symlink(b"d", b"l")
    await t.attempt(t.unlink(b"l/"))
    await t.lstat(b"l")


@case("unlink", "many")
async def _(t: Ctx) -> None:
    """Creating and unlinking 50 files leaves the directory empty."""
    for i in range(50):
        await t.create(b"f%d" % i)
    for i in range(50):
        await t.unlink(b"f%d" % i)
    await t.listdir()


@case("unlink", "unlink-basic")
async def _(t: Ctx) -> None:
    """unlink: ENOENT, EISDIR on directories (with and without slash), ENOTDIR with a slash on a
    file, EISDIR on '.'."""
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.unlink(b"f")
    await t.fails(errno.ENOENT, t.unlink(b"f"))
    await t.fails(errno.ENOENT, t.stat(b"f"))
    await t.mkdir(b"d", 0o755)
    await t.fails(errno.EISDIR, t.unlink(b"d"))
    await t.fails(errno.EISDIR, t.unlink(b"d/"))
    await t.open(b"g", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.fails(errno.ENOTDIR, t.unlink(b"g/"))
    await t.fails(errno.EISDIR, t.unlink(b"."))
    await t.fails(errno.ENOENT, t.unlink(b"missing/x"))


@case("unlink", "unlink-open-file")
async def _(t: Ctx) -> None:
    """An unlinked file that is still open keeps its data."""
    h0 = await t.open(b"f", os.O_RDWR | os.O_CREAT, 0o644)
    await t.write(h0, b"still here")
    await t.unlink(b"f")
    await t.pread(h0, 100, 0)
    await t.fstat(h0)
