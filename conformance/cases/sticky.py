"""Sticky directories: only the owner of the entry, of the directory, or root may remove
or rename an entry."""

from __future__ import annotations

import errno

from ..case import OTHER, USER, Ctx, case, register


async def _setup(t: Ctx, sticky: bool, file_owner: int, dir_owner: int = 0) -> None:
    await t.mkdir(b"tmp")
    await t.chown(b"tmp", dir_owner, dir_owner)
    await t.chmod(b"tmp", 0o1777 if sticky else 0o777)
    await t.create(b"tmp/f", b"x")
    await t.chmod(b"tmp/f", 0o666)
    await t.chown(b"tmp/f", file_owner, file_owner)


def _op(sticky: bool, file_owner: int, dir_owner: int, op: str):
    async def run(t: Ctx) -> None:
        await _setup(t, sticky, file_owner, dir_owner)
        u = t.as_user(USER)
        if op == "unlink":
            await u.attempt(u.unlink(b"tmp/f"))
        elif op == "rename-away":
            await u.attempt(u.rename(b"tmp/f", b"tmp/g"))
        elif op == "rename-over":
            await u.create(b"tmp/mine", b"m")
            await u.attempt(u.rename(b"tmp/mine", b"tmp/f"))
        elif op == "write":
            await u.attempt(u.create(b"tmp/f", b"y"))
        await t.listdir(b"tmp")
    return run


for _sticky in (True, False):
    for _fo, _do, _label in ((1002, 0, "others-file"), (1000, 0, "own-file"),
                             (1002, 1000, "own-dir")):
        for _op_name in ("unlink", "rename-away", "rename-over", "write"):
            register("sticky", f"{'sticky' if _sticky else 'plain'}-{_label}-{_op_name}",
                     _op(_sticky, _fo, _do, _op_name),
                     doc=f"{_op_name} of {_label} in a {'sticky' if _sticky else 'plain'} dir",
                     needs=("unpriv",))


@case("sticky", "root-may-remove")
async def _(t: Ctx) -> None:
    """Root removes anyone's file from a sticky directory."""
    await _setup(t, True, 1002)
    await t.unlink(b"tmp/f")
    await t.listdir(b"tmp")


@case("sticky", "dir-rmdir-others", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """Another user's empty directory in a sticky directory cannot be removed."""
    await _setup(t, True, 1002)
    await t.mkdir(b"tmp/d")
    await t.chown(b"tmp/d", 1002, 1002)
    u = t.as_user(USER)
    await u.fails(errno.EPERM, u.rmdir(b"tmp/d"))


@case("sticky", "owner-of-file-renames", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """The file's owner renames it within the sticky directory."""
    await _setup(t, True, 1002)
    o = t.as_user(OTHER)
    await o.rename(b"tmp/f", b"tmp/g")
    await t.listdir(b"tmp")


@case("sticky", "mode-visible")
async def _(t: Ctx) -> None:
    """The sticky bit shows in stat and survives chown."""
    await t.mkdir(b"d")
    await t.chmod(b"d", 0o1755)
    await t.chown(b"d", 1000, 1000)
    await t.stat(b"d")
