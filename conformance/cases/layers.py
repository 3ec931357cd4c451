"""Cases shaped for an overlay whose lower layer the set-up builds (`vfs:overlay-copyup`):
renaming trees made below, whiteouts and re-creation, hard links below, replacing and
exchanging lower directories. Files a case wants below are made with `mknod`; every
other target runs them like any case."""

from __future__ import annotations

import errno
import stat

from ..case import Ctx, case
from ..target_api import RENAME_EXCHANGE


@case("layers", "rename-lower-tree")
async def _(t: Ctx) -> None:
    """Renaming a directory tree made below the overlay, then reusing the old name and moving a
    file out of it."""
    await t.mkdir(b"a", 0o755)
    await t.mkdir(b"a/b", 0o750)
    await t.mknod(b"a/b/f", stat.S_IFREG | 0o640)
    await t.mknod(b"a/g", stat.S_IFREG | 0o644)
    await t.symlink(b"x", b"a/l")
    await t.rename(b"a", b"c")
    await t.listdir(b"c")
    await t.listdir(b"c/b")
    await t.stat(b"c/b/f")
    await t.lstat(b"c/l")
    await t.fails(errno.ENOENT, t.stat(b"a"))
    await t.mkdir(b"a", 0o755)
    await t.listdir(b"a")
    await t.rename(b"c/b/f", b"a/f")
    await t.listdir(b"c/b")
    await t.listdir(b"a")
    await t.rmdir(b"c/b")
    await t.listdir(b"c")
    await t.stat(b"c")


@case("layers", "whiteout-recreate")
async def _(t: Ctx) -> None:
    """Removing and re-creating names made below, and a directory made below once it is emptied."""
    await t.mkdir(b"d", 0o755)
    await t.mknod(b"d/f", stat.S_IFREG | 0o600)
    await t.mknod(b"d/g", stat.S_IFREG | 0o600)
    await t.unlink(b"d/f")
    await t.listdir(b"d")
    await t.fails(errno.ENOENT, t.stat(b"d/f"))
    await t.mknod(b"d/f", stat.S_IFREG | 0o644)
    await t.stat(b"d/f")
    await t.listdir(b"d")
    await t.fails(errno.ENOTEMPTY, t.rmdir(b"d"))
    await t.unlink(b"d/f")
    await t.unlink(b"d/g")
    await t.stat(b"d")
    await t.rmdir(b"d")
    await t.fails(errno.ENOENT, t.stat(b"d"))
    await t.mkdir(b"d", 0o700)
    await t.listdir(b"d")
    await t.stat(b"d")


@case("layers", "lower-hardlinks")
async def _(t: Ctx) -> None:
    """Hard links made below share their inode after a chmod of one."""
    await t.mknod(b"a", stat.S_IFREG | 0o644)
    await t.link(b"a", b"b")
    await t.stat(b"a")
    await t.chmod(b"a", 0o600)
    await t.stat(b"b")
    await t.stat(b"a")


@case("layers", "replace-lower-dir")
async def _(t: Ctx) -> None:
    """Renaming a directory made below over another (not empty, then emptied)."""
    await t.mkdir(b"d", 0o755)
    await t.mkdir(b"e", 0o700)
    await t.mknod(b"e/x", stat.S_IFREG | 0o644)
    await t.fails(errno.ENOTEMPTY, t.rename(b"d", b"e"))
    await t.unlink(b"e/x")
    await t.rename(b"d", b"e")
    await t.listdir(b"e")
    await t.stat(b"e")
    await t.fails(errno.ENOENT, t.stat(b"d"))
    await t.listdir(b".")


@case("layers", "exchange-lower")
async def _(t: Ctx) -> None:
    """RENAME_EXCHANGE of a directory and a file made below."""
    await t.mkdir(b"d", 0o755)
    await t.mknod(b"d/in_d", stat.S_IFREG | 0o644)
    await t.mknod(b"f", stat.S_IFREG | 0o600)
    await t.rename(b"d", b"f", RENAME_EXCHANGE)
    await t.listdir(b"f")
    await t.stat(b"d")
    await t.stat(b"f/in_d")
    await t.listdir(b".")


@case("layers", "lower-dir-link-counts")
async def _(t: Ctx) -> None:
    """Link counts of a directory made below as subdirectories are added, removed and moved away."""
    await t.mkdir(b"p", 0o755)
    await t.mkdir(b"p/a", 0o755)
    await t.mkdir(b"p/b", 0o755)
    await t.stat(b"p")
    await t.mkdir(b"p/c", 0o755)
    await t.stat(b"p")
    await t.rmdir(b"p/a")
    await t.stat(b"p")
    await t.rename(b"p/b", b"q")
    await t.stat(b"p")
    await t.stat(b".")
