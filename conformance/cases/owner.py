"""Ownership of new objects, setgid directory inheritance, chown semantics."""

from __future__ import annotations

import os
import stat

from ..case import OTHER, USER, Ctx, case, register


async def _sgid_dir(t: Ctx, gid: int = 1001) -> None:
    await t.mkdir(b"sg")
    await t.chown(b"sg", 0, gid)
    await t.chmod(b"sg", 0o2777)


def _inherit(kind: str, who: str):
    async def run(t: Ctx) -> None:
        await _sgid_dir(t)
        c = {"root": t, "member": t.as_user(USER), "nonmember": t.as_user(OTHER)}[who]
        if kind == "file":
            await c.create(b"sg/x", mode=0o2755)
        elif kind == "dir":
            await c.mkdir(b"sg/x", 0o755)
        elif kind == "symlink":
            await c.symlink(b"target", b"sg/x")
        elif kind == "fifo":
            await c.mkfifo(b"sg/x", 0o644)
        await t.lstat(b"sg/x")
    return run


for _kind in ("file", "dir", "symlink", "fifo"):
    for _who in ("root", "member", "nonmember"):
        register("owner", f"setgid-inherit-{_kind}-{_who}", _inherit(_kind, _who),
                 doc=f"a {_kind} made by {_who} in a setgid directory takes its group",
                 needs=() if _who == "root" else ("unpriv",))


@case("owner", "setgid-nested-dirs")
async def _(t: Ctx) -> None:
    """Setgid propagates down a chain of new directories."""
    await _sgid_dir(t)
    await t.mkdir(b"sg/a")
    await t.mkdir(b"sg/a/b")
    await t.create(b"sg/a/b/f")
    for p in (b"sg/a", b"sg/a/b", b"sg/a/b/f"):
        await t.stat(p)


@case("owner", "setgid-rename-keeps-group")
async def _(t: Ctx) -> None:
    """A file moved into a setgid directory keeps its own group."""
    await _sgid_dir(t)
    await t.create(b"f")
    await t.rename(b"f", b"sg/f")
    await t.stat(b"sg/f")


@case("owner", "root-creates-as-root")
async def _(t: Ctx) -> None:
    """Objects created by root belong to 0:0."""
    await t.create(b"f")
    await t.mkdir(b"d")
    await t.symlink(b"f", b"l")
    for p in (b"f", b"d", b"l"):
        await t.lstat(p)


@case("owner", "chown-minus-one-keeps")
async def _(t: Ctx) -> None:
    """chown with -1 leaves that id alone."""
    await t.create(b"f")
    await t.chown(b"f", 1000, 1001)
    await t.chown(b"f", -1, -1)
    await t.chown(b"f", -1, 1002)
    await t.stat(b"f")
    await t.chown(b"f", 1003, -1)
    await t.stat(b"f")


@case("owner", "chown-dir")
async def _(t: Ctx) -> None:
    """A directory's owner and group can be changed by root and keep its mode."""
    await t.mkdir(b"d", 0o2775)
    await t.chmod(b"d", 0o2775)
    await t.chown(b"d", 1000, 1000)
    await t.stat(b"d")


@case("owner", "chown-fifo")
async def _(t: Ctx) -> None:
    """A fifo's owner can be changed."""
    await t.mkfifo(b"p")
    await t.chown(b"p", 1000, 1000)
    await t.lstat(b"p")


@case("owner", "chown-follows-symlink")
async def _(t: Ctx) -> None:
    """chown through a symlink changes the target."""
    await t.create(b"f")
    await t.symlink(b"f", b"l")
    await t.chown(b"l", 1000, 1000)
    await t.lstat(b"f")
    await t.lstat(b"l")


@case("owner", "chown-keeps-sgid-nonexec")
async def _(t: Ctx) -> None:
    """chown keeps S_ISGID on a file without group execute (mandatory-locking marker)."""
    await t.create(b"f")
    await t.chmod(b"f", 0o2644)
    await t.chown(b"f", 1000, 1000)
    await t.stat(b"f")


@case("owner", "chown-dir-keeps-sgid")
async def _(t: Ctx) -> None:
    """chown of a directory keeps its S_ISGID bit."""
    await t.mkdir(b"d")
    await t.chmod(b"d", 0o2755)
    await t.chown(b"d", 1000, 1000)
    await t.stat(b"d")


@case("owner", "user-file-in-user-dir", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """A user creates inside its own directory; objects belong to it."""
    await t.mkdir(b"home")
    await t.chown(b"home", 1000, 1000)
    u = t.as_user(USER)
    await u.create(b"home/f", b"mine")
    await u.mkdir(b"home/d")
    await t.stat(b"home/f")
    await t.stat(b"home/d")
    h = await u.open(b"home/f", os.O_RDWR)
    await u.close(h)


@case("owner", "setgid-inheritance")
async def _(t: Ctx) -> None:
    """In a setgid directory new directories inherit the group and the setgid bit; new files the
    group."""
    await t.mkdir(b"g", 0o2775)
    await t.chmod(b"g", 0o2775)
    await t.chown(b"g", 0, 1234)
    await t.mkdir(b"g/sub", 0o755)
    await t.stat(b"g/sub")
    await t.mknod(b"g/f", stat.S_IFREG | 0o2755)
    await t.stat(b"g/f")
