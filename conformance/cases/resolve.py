"""Path resolution: symlink chains, ELOOP, the 40-link limit, ENAMETOOLONG, '.' and '..',
repeated slashes, calls relative to a directory handle (AT_EMPTY_PATH)."""

from __future__ import annotations

import errno
import os

from ..case import Ctx, case


@case("resolve", "symlink-chain")
async def _(t: Ctx) -> None:
    """Symlinks to symlinks, relative targets with '..' and '.', a trailing slash on a link to a
    directory, on a link to a file."""
    await t.mkdir(b"d", 0o755)
    await t.open(b"d/f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.symlink(b"d", b"l1")
    await t.symlink(b"l1", b"l2")
    await t.symlink(b"l2/f", b"l3")
    await t.stat(b"l3")
    await t.stat(b"l2/f")
    await t.stat(b"l2/")
    await t.lstat(b"l2")
    await t.lstat(b"l2/")
    await t.symlink(b"../d/./f", b"d/rel")
    await t.stat(b"d/rel")
    await t.symlink(b"f/", b"d/slash")
    await t.fails(errno.ENOTDIR, t.stat(b"d/slash"))


@case("resolve", "eloop")
async def _(t: Ctx) -> None:
    """Symlink loops are ELOOP (lstat sees the link), also through O_CREAT and in the middle of a
    path."""
    await t.symlink(b"a", b"b")
    await t.symlink(b"b", b"a")
    await t.fails(errno.ELOOP, t.stat(b"a"))
    await t.lstat(b"a")
    await t.fails(errno.ELOOP, t.open(b"a", os.O_RDONLY))
    await t.fails(errno.ELOOP, t.open(b"a", os.O_WRONLY | os.O_CREAT, 0o644))
    await t.fails(errno.ELOOP, t.stat(b"a/x"))
    await t.symlink(b"self/x", b"self")
    await t.fails(errno.ELOOP, t.stat(b"self"))


@case("resolve", "forty-links")
async def _(t: Ctx) -> None:
    """A chain of 40 symlinks resolves, 41 is ELOOP."""
    await t.mkdir(b"target", 0o755)
    await t.symlink(b"target", b"s0")
    for i in range(1, 41):
        await t.symlink(b"s%d" % (i - 1), b"s%d" % i)
    await t.stat(b"s39")
    await t.fails(errno.ELOOP, t.stat(b"s40"))
    await t.stat(b"s38/")
    await t.stat(b"s39/.")


@case("resolve", "name-too-long")
async def _(t: Ctx) -> None:
    """Names over 255 bytes and paths of PATH_MAX or more are ENAMETOOLONG."""
    await t.open(b"x" * 255, os.O_WRONLY | os.O_CREAT, 0o644)
    await t.fails(errno.ENAMETOOLONG, t.open(b"x" * 256, os.O_WRONLY | os.O_CREAT, 0o644))
    await t.fails(errno.ENAMETOOLONG, t.stat(b"x" * 256))
    await t.fails(errno.ENAMETOOLONG, t.mkdir(b"y" * 256, 0o755))
    await t.fails(errno.ENOENT, t.stat(b"a/" * 2047 + b"b"))
    await t.fails(errno.ENAMETOOLONG, t.stat(b"./" * 2047 + b"x" * 255))
    await t.fails(errno.ENAMETOOLONG, t.stat(b"./" * 2048))
    await t.fails(errno.ENOENT, t.stat(b"missing/" + b"z" * 256))


@case("resolve", "dots")
async def _(t: Ctx) -> None:
    """'.', '..' and repeated slashes resolve; '.' or '..' after a file is ENOTDIR, after a missing
    name ENOENT."""
    await t.mkdir(b"d", 0o755)
    await t.mkdir(b"d/e", 0o755)
    await t.stat(b"d/e/..")
    await t.stat(b"d/e/../e/./.")
    await t.stat(b"d//e//")
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.fails(errno.ENOTDIR, t.stat(b"f/."))
    await t.fails(errno.ENOTDIR, t.stat(b"f/.."))
    await t.fails(errno.ENOENT, t.stat(b"d/missing/.."))


@case("resolve", "empty-path", needs=("at-handle",))
async def _(t: Ctx) -> None:
    """fstatat with AT_EMPTY_PATH on a handle, mkdirat relative to it, lookups below a file handle,
    O_PATH|O_NOFOLLOW of a symlink."""
    await t.mkdir(b"d", 0o755)
    h0 = await t.open(b"d", os.O_DIRECTORY | os.O_PATH)
    await t.statat(h0, b"", empty_path=True)
    await t.fails(errno.ENOENT, t.statat(h0, b""))
    await t.mkdirat(h0, b"sub", 0o700)
    await t.statat(h0, b"sub")
    h1 = await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.fails(errno.ENOTDIR, t.statat(h1, b"x"))
    await t.symlink(b"d", b"l")
    await t.fails(errno.ENOTDIR, t.open(b"l", os.O_DIRECTORY | os.O_NOFOLLOW | os.O_PATH))
    h3 = await t.open(b"l", os.O_NOFOLLOW | os.O_PATH)
    await t.statat(h3, b"", empty_path=True)


@case("resolve", "nofollow-directory-combos")
async def _(t: Ctx) -> None:
    """O_NOFOLLOW with O_DIRECTORY, a trailing slash and '.' on a symlink to a directory."""
    await t.mkdir(b"d", 0o755)
    await t.symlink(b"d", b"l")
    await t.fails(errno.ENOTDIR, t.open(b"l", os.O_DIRECTORY | os.O_NOFOLLOW))
    await t.open(b"l/", os.O_NOFOLLOW)
    await t.open(b"l/.", os.O_NOFOLLOW)
    await t.open(b"d", os.O_DIRECTORY | os.O_NOFOLLOW)
    await t.fails(errno.ENOTDIR, t.open(b"l", os.O_DIRECTORY | os.O_NOFOLLOW | os.O_PATH))
