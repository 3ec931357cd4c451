"""rename(2)/renameat2(2): every kind of source over every kind of destination, with and
without RENAME_NOREPLACE and RENAME_EXCHANGE, and the special cases."""

from __future__ import annotations

import errno
import os

from ..case import Ctx, case, register
from ..target_api import RENAME_EXCHANGE, RENAME_NOREPLACE
from ._util import make

SOURCES = ("file", "emptydir", "symlink-file", "missing")
DESTS = ("missing", "file", "emptydir", "fulldir", "symlink-file", "dangling", "same")
FLAGS = {"plain": 0, "noreplace": RENAME_NOREPLACE, "exchange": RENAME_EXCHANGE}


def _matrix(src: str, dst: str, flags: int):
    async def run(t: Ctx) -> None:
        await make(t, src, b"s", data=b"src")
        if dst == "same":
            target = b"s"
        else:
            target = b"t"
            await make(t, dst, b"t", data=b"dst")
        await t.attempt(t.rename(b"s", target, flags))
        for name in (b"s", b"t"):
            st = await t.attempt(t.lstat(name))
            if not isinstance(st, OSError) and st.kind == "reg":
                await t.slurp(name)
            if not isinstance(st, OSError) and st.kind == "dir":
                await t.listdir(name)
        await t.listdir()
    return run


for _s in SOURCES:
    for _d in DESTS:
        for _fn, _fl in FLAGS.items():
            register("rename", f"{_s}-over-{_d}-{_fn}", _matrix(_s, _d, _fl),
                     doc=f"rename {_s} onto {_d} ({_fn})")


@case("rename", "dir-into-descendant-einval")
async def _(t: Ctx) -> None:
    """Moving a directory into its own subtree is EINVAL."""
    await t.mkdir(b"a")
    await t.mkdir(b"a/b")
    await t.fails(errno.EINVAL, t.rename(b"a", b"a/b/c"))
    await t.fails(errno.EINVAL, t.rename(b"a", b"a/c"))


@case("rename", "hardlinks-same-inode-noop")
async def _(t: Ctx) -> None:
    """Renaming one link onto another link of the same inode does nothing."""
    await t.create(b"a", b"x")
    await t.link(b"a", b"b")
    await t.rename(b"a", b"b")
    await t.listdir()
    await t.stat(b"a")


@case("rename", "over-open-file")
async def _(t: Ctx) -> None:
    """A file replaced by rename stays readable through an open handle."""
    await t.create(b"old", b"old data")
    await t.create(b"new", b"new data")
    h = await t.open(b"old")
    await t.rename(b"new", b"old")
    t.check(await t.read(h, 100) == b"old data", "replaced file lost")
    await t.fstat(h)
    await t.close(h)
    t.check(await t.slurp(b"old") == b"new data", "rename")


@case("rename", "open-file-keeps-handle")
async def _(t: Ctx) -> None:
    """A renamed open file is still the same file through its handle."""
    await t.create(b"a", b"x")
    h = await t.open(b"a", os.O_RDWR)
    await t.rename(b"a", b"b")
    await t.write(h, b"Y")
    await t.close(h)
    t.check(await t.slurp(b"b") == b"Y", "handle lost the file")


@case("rename", "across-directories-nlink")
async def _(t: Ctx) -> None:
    """Moving a directory between parents moves one link count."""
    await t.mkdir(b"p1")
    await t.mkdir(b"p2")
    await t.mkdir(b"p1/d")
    await t.stat(b"p1")
    await t.rename(b"p1/d", b"p2/d")
    await t.stat(b"p1")
    await t.stat(b"p2")
    await t.listdir(b"p2")


@case("rename", "dir-dotdot-updated")
async def _(t: Ctx) -> None:
    """After moving a directory, its '..' is the new parent."""
    await t.mkdir(b"p1")
    await t.mkdir(b"p2")
    await t.create(b"p2/marker", b"p2")
    await t.mkdir(b"p1/d")
    await t.rename(b"p1/d", b"p2/d")
    t.check(await t.slurp(b"p2/d/../marker") == b"p2", "'..' not updated")


@case("rename", "file-into-subdir")
async def _(t: Ctx) -> None:
    """A file moves into a subdirectory keeping its data."""
    await t.create(b"f", b"move")
    await t.mkdir(b"d")
    await t.rename(b"f", b"d/f")
    await t.listdir()
    t.check(await t.slurp(b"d/f") == b"move", "data")


@case("rename", "dot-and-dotdot")
async def _(t: Ctx) -> None:
    """'.' and '..' can be neither source nor destination."""
    await t.mkdir(b"d")
    await t.attempt(t.rename(b"d/.", b"e"))
    await t.attempt(t.rename(b"d/..", b"e"))
    await t.attempt(t.rename(b"d", b"d/."))
    await t.listdir()


@case("rename", "trailing-slash-file-enotdir")
async def _(t: Ctx) -> None:
    """A trailing slash on a regular file is ENOTDIR."""
    await t.create(b"f")
    await t.fails(errno.ENOTDIR, t.rename(b"f/", b"g"))
    await t.fails(errno.ENOTDIR, t.rename(b"f", b"g/"))
    await t.listdir()


@case("rename", "trailing-slash-dir-ok")
async def _(t: Ctx) -> None:
    """A trailing slash on a directory is allowed on both sides."""
    await t.mkdir(b"d")
    await t.rename(b"d/", b"e/")
    await t.listdir()


@case("rename", "missing-parent-enoent")
async def _(t: Ctx) -> None:
    """Renaming into a missing directory is ENOENT."""
    await t.create(b"f")
    await t.fails(errno.ENOENT, t.rename(b"f", b"nodir/f"))


@case("rename", "noreplace-exchange-einval")
async def _(t: Ctx) -> None:
    """RENAME_NOREPLACE together with RENAME_EXCHANGE is EINVAL."""
    await t.create(b"a")
    await t.create(b"b")
    await t.fails(errno.EINVAL, t.rename(b"a", b"b", RENAME_NOREPLACE | RENAME_EXCHANGE))


@case("rename", "exchange-dir-and-file")
async def _(t: Ctx) -> None:
    """RENAME_EXCHANGE swaps a directory and a file, contents and all."""
    await t.mkdir(b"d")
    await t.create(b"d/in", b"i")
    await t.create(b"f", b"file")
    await t.rename(b"d", b"f", RENAME_EXCHANGE)
    await t.lstat(b"d")
    await t.listdir(b"f")
    t.check(await t.slurp(b"d") == b"file", "exchange")


@case("rename", "exchange-across-dirs")
async def _(t: Ctx) -> None:
    """RENAME_EXCHANGE across directories swaps entries in both."""
    await t.mkdir(b"a")
    await t.mkdir(b"b")
    await t.create(b"a/x", b"ax")
    await t.mkdir(b"b/y")
    await t.rename(b"a/x", b"b/y", RENAME_EXCHANGE)
    await t.lstat(b"a/x")
    await t.lstat(b"b/y")
    await t.stat(b"a")
    await t.stat(b"b")


@case("rename", "dir-over-nonempty-enotempty")
async def _(t: Ctx) -> None:
    """A directory cannot replace a non-empty directory."""
    await t.mkdir(b"a")
    await t.mkdir(b"b")
    await t.create(b"b/x")
    await t.fails(errno.ENOTEMPTY, t.rename(b"a", b"b"))


@case("rename", "chain")
async def _(t: Ctx) -> None:
    """a→b→c→a in steps leaves the data with the last name."""
    await t.create(b"a", b"data")
    await t.rename(b"a", b"b")
    await t.rename(b"b", b"c")
    await t.rename(b"c", b"a")
    await t.listdir()
    t.check(await t.slurp(b"a") == b"data", "data")


@case("rename", "symlink-moves-not-followed")
async def _(t: Ctx) -> None:
    """Renaming a symlink moves the link, and a relative target may then dangle."""
    await t.mkdir(b"d")
    await t.create(b"f")
    await t.symlink(b"f", b"l")
    await t.rename(b"l", b"d/l")
    await t.readlink(b"d/l")
    await t.attempt(t.stat(b"d/l"))


@case("rename", "rename-file")
async def _(t: Ctx) -> None:
    """rename replaces a file, renaming onto itself does nothing, missing source or directory is
    ENOENT."""
    h0 = await t.open(b"a", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.write(h0, b"A")
    await t.open(b"b", os.O_WRONLY | os.O_CREAT, 0o600)
    await t.rename(b"a", b"b")
    await t.fails(errno.ENOENT, t.stat(b"a"))
    await t.stat(b"b")
    await t.rename(b"b", b"b")
    await t.fails(errno.ENOENT, t.rename(b"missing", b"c"))
    await t.fails(errno.ENOENT, t.rename(b"b", b"nodir/c"))


@case("rename", "rename-dirs")
async def _(t: Ctx) -> None:
    """rename of directories: over an empty one, ENOTEMPTY, EINVAL into itself, EISDIR/ENOTDIR
    across kinds, trailing slashes."""
    await t.mkdir(b"d", 0o755)
    await t.mkdir(b"e", 0o755)
    await t.mkdir(b"e/full", 0o755)
    await t.mkdir(b"empty", 0o755)
    await t.rename(b"d", b"empty")
    await t.stat(b"empty")
    await t.fails(errno.ENOENT, t.stat(b"d"))
    await t.fails(errno.ENOTEMPTY, t.rename(b"empty", b"e"))
    await t.fails(errno.EINVAL, t.rename(b"e", b"e/full/x"))
    await t.fails(errno.EINVAL, t.rename(b"e", b"e/full"))
    await t.fails(errno.ENOTEMPTY, t.rename(b"e/full", b"e"))
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.fails(errno.EISDIR, t.rename(b"f", b"e"))
    await t.fails(errno.ENOTDIR, t.rename(b"e", b"f"))
    await t.fails(errno.ENOTDIR, t.rename(b"f", b"g/"))
    await t.rename(b"e/", b"e2/")
    await t.stat(b"e2")
    await t.stat(b".")


@case("rename", "rename-dir-link-counts")
async def _(t: Ctx) -> None:
    """Moving a subdirectory (also over another) updates both parents' link counts."""
    await t.mkdir(b"a", 0o755)
    await t.mkdir(b"b", 0o755)
    await t.mkdir(b"a/sub", 0o755)
    await t.rename(b"a/sub", b"b/sub")
    await t.stat(b"a")
    await t.stat(b"b")
    await t.mkdir(b"a/other", 0o755)
    await t.rename(b"a/other", b"b/sub")
    await t.stat(b"a")
    await t.stat(b"b")


@case("rename", "rename-flags")
async def _(t: Ctx) -> None:
    """RENAME_NOREPLACE, RENAME_EXCHANGE, invalid flag combinations, EBUSY on '.' and '..'."""
    await t.open(b"a", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.mkdir(b"d", 0o700)
    await t.fails(errno.EEXIST, t.rename(b"a", b"d", RENAME_NOREPLACE))
    await t.rename(b"a", b"new", RENAME_NOREPLACE)
    await t.stat(b"new")
    await t.rename(b"new", b"d", RENAME_EXCHANGE)
    await t.stat(b"new")
    await t.stat(b"d")
    await t.fails(errno.ENOENT, t.rename(b"new", b"absent", RENAME_EXCHANGE))
    await t.fails(errno.EINVAL, t.rename(b"d", b"new", RENAME_EXCHANGE | RENAME_NOREPLACE))
    await t.fails(errno.EINVAL, t.rename(b"d", b"new", 8))
    await t.fails(errno.EBUSY, t.rename(b".", b"x"))
    await t.fails(errno.EEXIST, t.rename(b"d", b".", RENAME_NOREPLACE))
    await t.fails(errno.EBUSY, t.rename(b"d", b".."))


@case("rename", "rename-hardlinks-same-inode")
async def _(t: Ctx) -> None:
    """Renaming one hard link onto another of the same inode does nothing."""
    await t.open(b"a", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.link(b"a", b"b")
    await t.rename(b"a", b"b")
    await t.stat(b"a")
    await t.stat(b"b")


@case("rename", "rename-symlink")
async def _(t: Ctx) -> None:
    """rename moves a symlink itself; with a trailing slash it is ENOTDIR."""
    await t.mkdir(b"d", 0o755)
    await t.symlink(b"d", b"l")
    await t.rename(b"l", b"m")
    await t.lstat(b"m")
    await t.fails(errno.ENOTDIR, t.rename(b"m/", b"n"))
