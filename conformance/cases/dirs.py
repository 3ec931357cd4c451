"""mkdir(2)/rmdir(2): creation modes, nlink accounting, and the errors."""

from __future__ import annotations

import errno
import os

from ..case import Ctx, case, register


def _mode(mode: int, mask: int):
    async def run(t: Ctx) -> None:
        t.umask(mask)
        await t.mkdir(b"d", mode)
        await t.stat(b"d")
    return run


for _m in (0o777, 0o755, 0o700, 0o000, 0o1777, 0o2755, 0o4755):
    for _k in (0o000, 0o022, 0o077):
        register("dirs", f"mkdir-mode-{_m:04o}-umask-{_k:03o}", _mode(_m, _k),
                 doc="mkdir's mode is mode & ~umask & 01777 (setgid only from the parent)")


@case("dirs", "mkdir-exists-eexist")
async def _(t: Ctx) -> None:
    """mkdir over a directory, a file or a dangling link is EEXIST."""
    await t.mkdir(b"d")
    await t.create(b"f")
    await t.symlink(b"nowhere", b"l")
    for p in (b"d", b"f", b"l", b"."):
        await t.fails(errno.EEXIST, t.mkdir(p))


@case("dirs", "mkdir-missing-parent-enoent")
async def _(t: Ctx) -> None:
    """mkdir in a missing parent is ENOENT."""
    await t.fails(errno.ENOENT, t.mkdir(b"a/b"))


@case("dirs", "mkdir-under-file-enotdir")
async def _(t: Ctx) -> None:
    """mkdir under a regular file is ENOTDIR."""
    await t.create(b"f")
    await t.fails(errno.ENOTDIR, t.mkdir(b"f/d"))


@case("dirs", "mkdir-trailing-slash")
async def _(t: Ctx) -> None:
    """mkdir 'd/' creates d."""
    await t.mkdir(b"d/")
    await t.stat(b"d")


@case("dirs", "nlink-accounting")
async def _(t: Ctx) -> None:
    """A directory's nlink is 2 plus its subdirectories."""
    await t.mkdir(b"d")
    await t.stat(b"d")
    await t.mkdir(b"d/a")
    await t.mkdir(b"d/b")
    await t.create(b"d/f")
    await t.stat(b"d")
    await t.rmdir(b"d/a")
    await t.stat(b"d")


@case("dirs", "rmdir-nonempty-enotempty")
async def _(t: Ctx) -> None:
    """rmdir of a non-empty directory is ENOTEMPTY."""
    await t.mkdir(b"d")
    await t.create(b"d/.hidden")
    await t.fails(errno.ENOTEMPTY, t.rmdir(b"d"))


@case("dirs", "rmdir-file-enotdir")
async def _(t: Ctx) -> None:
    """rmdir of a file is ENOTDIR."""
    await t.create(b"f")
    await t.fails(errno.ENOTDIR, t.rmdir(b"f"))


@case("dirs", "rmdir-dot-einval")
async def _(t: Ctx) -> None:
    """rmdir of '.' is EINVAL; of '..' ENOTEMPTY."""
    await t.mkdir(b"d")
    await t.fails(errno.EINVAL, t.rmdir(b"d/."))
    await t.fails(errno.ENOTEMPTY, t.rmdir(b"d/.."))


@case("dirs", "rmdir-symlink-enotdir")
async def _(t: Ctx) -> None:
    """rmdir of a symlink to a directory is ENOTDIR and removes nothing."""
    await t.mkdir(b"d")
    await t.symlink(b"d", b"l")
    await t.fails(errno.ENOTDIR, t.rmdir(b"l"))
    await t.listdir()


@case("dirs", "rmdir-missing-enoent")
async def _(t: Ctx) -> None:
    """rmdir of a missing name is ENOENT."""
    await t.fails(errno.ENOENT, t.rmdir(b"nope"))


@case("dirs", "rmdir-trailing-slash")
async def _(t: Ctx) -> None:
    """rmdir 'd/' removes d."""
    await t.mkdir(b"d")
    await t.rmdir(b"d/")
    await t.listdir()


@case("dirs", "deep-tree")
async def _(t: Ctx) -> None:
    """A 30-level tree is created, walked and removed."""
    path = b""
    for i in range(30):
        path += b"d%d/" % i
        await t.mkdir(path)
    await t.create(path + b"leaf", b"deep")
    t.check(await t.slurp(path + b"leaf") == b"deep", "deep read")
    await t.unlink(path + b"leaf")
    while path:
        await t.rmdir(path)
        path = path[: path.rstrip(b"/").rfind(b"/") + 1]
    await t.listdir()


@case("dirs", "rmdir-open-dir")
async def _(t: Ctx) -> None:
    """A removed directory that is still open lists as empty."""
    await t.mkdir(b"d")
    h = await t.opendir(b"d")
    await t.rmdir(b"d")
    await t.attempt(t.getdents(h, 10))
    await t.fstat(h)
    await t.close(h)


@case("dirs", "create-in-removed-cwd-enoent")
async def _(t: Ctx) -> None:
    """Creating inside a removed directory fails ENOENT."""
    await t.mkdir(b"d")
    sub = t.target.derive(root=b"d")
    await t.rmdir(b"d")
    try:
        await t.fails(errno.ENOENT, Ctx(sub, t.trace).open(b"f", 0o101, 0o644))
    finally:
        await sub.aclose()


@case("dirs", "mkdir-then-list-parent")
async def _(t: Ctx) -> None:
    """New directories appear in their parent's listing."""
    for n in (b"a", b"b", b"c"):
        await t.mkdir(n)
    await t.listdir()


@case("dirs", "mkdir-basic")
async def _(t: Ctx) -> None:
    """mkdir: modes, EEXIST (also with a trailing slash, '.' and '..'), a trailing slash on a new
    name, ENOENT below a missing directory."""
    await t.mkdir(b"d", 0o755)
    await t.stat(b"d")
    await t.fails(errno.EEXIST, t.mkdir(b"d", 0o755))
    await t.fails(errno.EEXIST, t.mkdir(b"d/", 0o755))
    await t.mkdir(b"e/", 0o700)
    await t.stat(b"e")
    await t.mkdir(b"d/sub", 0o1777)
    await t.stat(b"d/sub")
    await t.stat(b"d")
    await t.fails(errno.ENOENT, t.mkdir(b"missing/sub", 0o755))
    await t.fails(errno.EEXIST, t.mkdir(b".", 0o755))
    await t.fails(errno.EEXIST, t.mkdir(b"d/..", 0o755))


@case("dirs", "mkdir-umask")
async def _(t: Ctx) -> None:
    """mkdir applies the umask (077, then 0 with all mode bits asked for)."""
    t.umask(0o77)
    await t.mkdir(b"d", 0o777)
    await t.stat(b"d")
    t.umask(0o0)
    await t.mkdir(b"e", 0o7777)
    await t.stat(b"e")


@case("dirs", "rmdir-basic")
async def _(t: Ctx) -> None:
    """rmdir: ENOTEMPTY, trailing slash, ENOTDIR on a file or symlink, EINVAL on '.', ENOTEMPTY on
    '..'."""
    await t.mkdir(b"d", 0o755)
    await t.mkdir(b"d/e", 0o755)
    await t.fails(errno.ENOTEMPTY, t.rmdir(b"d"))
    await t.rmdir(b"d/e/")
    await t.rmdir(b"d")
    await t.fails(errno.ENOENT, t.stat(b"d"))
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.fails(errno.ENOTDIR, t.rmdir(b"f"))
    await t.fails(errno.EINVAL, t.rmdir(b"."))
    await t.mkdir(b"x", 0o755)
    await t.fails(errno.EINVAL, t.rmdir(b"x/."))
    await t.fails(errno.ENOTEMPTY, t.rmdir(b"x/.."))
    await t.fails(errno.ENOENT, t.rmdir(b"missing"))
    await t.symlink(b"x", b"lx")
    await t.fails(errno.ENOTDIR, t.rmdir(b"lx"))
    await t.fails(errno.ENOTDIR, t.rmdir(b"lx/"))


@case("dirs", "parent-link-counts")
async def _(t: Ctx) -> None:
    """A directory's link count follows its subdirectories (mkdir and rmdir)."""
    await t.mkdir(b"p", 0o755)
    await t.mkdir(b"p/a", 0o755)
    await t.mkdir(b"p/b", 0o755)
    await t.stat(b"p")
    await t.rmdir(b"p/a")
    await t.stat(b"p")


@case("dirs", "rmdir-open-dir-handle", needs=("at-handle",))
async def _(t: Ctx) -> None:
    """An open directory that was removed still stats; creating inside it or opening it by name is
    ENOENT."""
    await t.mkdir(b"d", 0o755)
    h0 = await t.open(b"d", os.O_RDONLY)
    await t.rmdir(b"d")
    await t.fstat(h0)
    await t.fails(errno.ENOENT, t.mkdirat(h0, b"x", 0o755))
    await t.fails(errno.ENOENT, t.open(b"d", os.O_RDONLY))
