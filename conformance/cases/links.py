"""link(2): hard links, nlink, and the errors."""

from __future__ import annotations

import errno
import os

from ..case import Ctx, case


@case("links", "basic-nlink")
async def _(t: Ctx) -> None:
    """A hard link shares the inode; both names show nlink 2."""
    await t.create(b"a", b"x")
    await t.link(b"a", b"b")
    sa, sb = await t.stat(b"a"), await t.stat(b"b")
    t.note("same inode", sa.ino == sb.ino)
    t.check(sa.ino == sb.ino and sa.nlink == 2, "not one inode with two links")


@case("links", "shared-data")
async def _(t: Ctx) -> None:
    """A write through one name is read through the other."""
    await t.create(b"a", b"one")
    await t.link(b"a", b"b")
    await t.create(b"b", b"two")
    t.check(await t.slurp(b"a") == b"two", "data not shared")


@case("links", "many-links")
async def _(t: Ctx) -> None:
    """nlink counts 10 links and counts down as they go."""
    await t.create(b"a")
    for i in range(9):
        await t.link(b"a", b"l%d" % i)
    await t.stat(b"a")
    for i in range(0, 9, 2):
        await t.unlink(b"l%d" % i)
    await t.stat(b"a")


@case("links", "dest-exists-eexist")
async def _(t: Ctx) -> None:
    """link onto an existing name is EEXIST."""
    await t.create(b"a")
    await t.create(b"b")
    await t.fails(errno.EEXIST, t.link(b"a", b"b"))


@case("links", "dest-dangling-eexist")
async def _(t: Ctx) -> None:
    """link onto a dangling symlink is EEXIST (the name exists)."""
    await t.create(b"a")
    await t.symlink(b"nowhere", b"b")
    await t.fails(errno.EEXIST, t.link(b"a", b"b"))


@case("links", "directory-eperm")
async def _(t: Ctx) -> None:
    """Hard links to directories are EPERM."""
    await t.mkdir(b"d")
    await t.fails(errno.EPERM, t.link(b"d", b"e"))


@case("links", "missing-enoent")
async def _(t: Ctx) -> None:
    """link of a missing name is ENOENT."""
    await t.fails(errno.ENOENT, t.link(b"nope", b"b"))


@case("links", "into-missing-dir-enoent")
async def _(t: Ctx) -> None:
    """link into a missing directory is ENOENT."""
    await t.create(b"a")
    await t.fails(errno.ENOENT, t.link(b"a", b"nodir/b"))


@case("links", "symlink-itself")
async def _(t: Ctx) -> None:
    """linkat without AT_SYMLINK_FOLLOW links the symlink, not its target."""
    await t.create(b"f")
    await t.symlink(b"f", b"l")
    await t.link(b"l", b"l2")
    await t.lstat(b"l2")
    await t.readlink(b"l2")
    await t.stat(b"f")


@case("links", "dangling-symlink")
async def _(t: Ctx) -> None:
    """A dangling symlink can be hard-linked."""
    await t.symlink(b"nowhere", b"l")
    await t.link(b"l", b"l2")
    await t.lstat(b"l")


@case("links", "into-subdir")
async def _(t: Ctx) -> None:
    """A link in another directory names the same file."""
    await t.create(b"a", b"x")
    await t.mkdir(b"d")
    await t.link(b"a", b"d/b")
    await t.unlink(b"a")
    await t.stat(b"d/b")
    t.check(await t.slurp(b"d/b") == b"x", "data")


@case("links", "survives-unlink-of-original")
async def _(t: Ctx) -> None:
    """Removing the original name leaves the data under the link."""
    await t.create(b"a", b"keep")
    await t.link(b"a", b"b")
    await t.unlink(b"a")
    t.check(await t.slurp(b"b") == b"keep", "data")
    await t.stat(b"b")


@case("links", "fifo")
async def _(t: Ctx) -> None:
    """A fifo can be hard-linked."""
    await t.mkfifo(b"p")
    await t.link(b"p", b"q")
    await t.lstat(b"q")


@case("links", "trailing-slash-enotdir")
async def _(t: Ctx) -> None:
    """link 'a/' of a regular file is ENOTDIR."""
    await t.create(b"a")
    await t.fails(errno.ENOTDIR, t.link(b"a/", b"b"))
    await t.attempt(t.link(b"a", b"b/"))
    await t.listdir()


@case("links", "fstat-open-nlink")
async def _(t: Ctx) -> None:
    """An open handle's fstat sees nlink change as links come and go."""
    await t.create(b"a")
    h = await t.open(b"a")
    await t.link(b"a", b"b")
    await t.fstat(h)
    await t.unlink(b"a")
    await t.unlink(b"b")
    await t.fstat(h)
    await t.close(h)


@case("links", "same-name-eexist")
async def _(t: Ctx) -> None:
    """link of a name onto itself is EEXIST."""
    await t.create(b"a")
    await t.fails(errno.EEXIST, t.link(b"a", b"a"))


@case("links", "hardlink-counts")
async def _(t: Ctx) -> None:
    """Hard links share the inode: link counts up and down, an open file survives losing every
    name."""
    h0 = await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.write(h0, b"abc")
    await t.link(b"f", b"g")
    await t.stat(b"f")
    await t.stat(b"g")
    await t.fails(errno.EEXIST, t.link(b"f", b"g"))
    await t.unlink(b"f")
    await t.stat(b"g")
    await t.fstat(h0)
    await t.unlink(b"g")
    await t.fstat(h0)
    await t.fails(errno.ENOENT, t.link(b"nope", b"h"))


@case("links", "link-directory")
async def _(t: Ctx) -> None:
    """Hard links to directories are EPERM."""
    await t.mkdir(b"d", 0o755)
    await t.fails(errno.EPERM, t.link(b"d", b"e"))
    await t.fails(errno.EPERM, t.link(b"d/", b"e"))


@case("links", "link-symlink-follow")
async def _(t: Ctx) -> None:
    """link links a symlink itself; with AT_SYMLINK_FOLLOW its target; trailing slashes fail."""
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.symlink(b"f", b"l")
    await t.link(b"l", b"nofollow")
    await t.lstat(b"nofollow")
    await t.link(b"l", b"follow", follow=True)
    await t.lstat(b"follow")
    await t.stat(b"f")
    await t.fails(errno.ENOENT, t.link(b"f", b"new/"))
    await t.fails(errno.ENOTDIR, t.link(b"f/", b"x"))


@case("links", "self-and-dir-links")
async def _(t: Ctx) -> None:
    """link onto itself or '.' is EEXIST, of '.' EPERM; rename of a file to 'f/' is ENOTDIR, of a
    directory to 'd/' works."""
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.fails(errno.EEXIST, t.link(b"f", b"f"))
    await t.fails(errno.EEXIST, t.link(b"f", b"."))
    await t.fails(errno.EPERM, t.link(b".", b"x"))
    await t.fails(errno.ENOTDIR, t.rename(b"f", b"f/"))
    await t.mkdir(b"d", 0o755)
    await t.rename(b"d", b"d/")
    await t.rename(b"d/", b"d")
    await t.stat(b"d")
