"""open(2): flags against every kind of existing object, creation modes under umask,
O_EXCL races, and the errors of the access mode."""

from __future__ import annotations

import errno
import os

import trio

from ..case import Ctx, case, register
from ._util import KINDS, look

O = os  # noqa: E741  (reads as the O_ flag prefix)
FLAG_SETS = {
    "rdonly": O.O_RDONLY,
    "wronly": O.O_WRONLY,
    "rdwr": O.O_RDWR,
    "creat": O.O_CREAT | O.O_WRONLY,
    "creat-excl": O.O_CREAT | O.O_EXCL | O.O_WRONLY,
    "trunc-wr": O.O_TRUNC | O.O_WRONLY,
    "trunc-rd": O.O_TRUNC | O.O_RDONLY,
    "append": O.O_APPEND | O.O_WRONLY,
    "directory": O.O_DIRECTORY | O.O_RDONLY,
    "directory-rdwr": O.O_DIRECTORY | O.O_RDWR,
    "nofollow": O.O_NOFOLLOW | O.O_RDONLY,
    "nofollow-creat": O.O_NOFOLLOW | O.O_CREAT | O.O_WRONLY,
    "creat-directory": O.O_CREAT | O.O_DIRECTORY | O.O_RDONLY,
    "creat-excl-nofollow": O.O_CREAT | O.O_EXCL | O.O_NOFOLLOW | O.O_WRONLY,
}
KIND_SETUP = [k for k in KINDS if k != "fulldir"]


async def _setup(t: Ctx, kind: str) -> None:
    if kind == "file":
        await t.create(b"n", b"data")
    elif kind == "emptydir":
        await t.mkdir(b"n")
    elif kind == "symlink-file":
        await t.create(b"tgt", b"data")
        await t.symlink(b"tgt", b"n")
    elif kind == "symlink-dir":
        await t.mkdir(b"tgt")
        await t.symlink(b"tgt", b"n")
    elif kind == "dangling":
        await t.symlink(b"tgt", b"n")


def _matrix(kind: str, flags: int, path: bytes):
    async def run(t: Ctx) -> None:
        await _setup(t, kind)
        r = await t.attempt(t.open(path, flags, 0o640))
        if not isinstance(r, OSError):
            await t.fstat(r)
            await t.close(r)
        await look(t, b"n", b"tgt")
    return run


for _kind in KIND_SETUP:
    for _fname, _flags in FLAG_SETS.items():
        register("open", f"{_fname}-on-{_kind}", _matrix(_kind, _flags, b"n"),
                 doc=f"open {_kind} with {_fname}")
    for _fname in ("rdonly", "creat", "directory", "creat-excl"):
        register("open", f"{_fname}-on-{_kind}-slash", _matrix(_kind, FLAG_SETS[_fname], b"n/"),
                 doc=f"open {_kind} with {_fname} and a trailing slash")


def _creat_mode(mode: int, mask: int):
    async def run(t: Ctx) -> None:
        t.umask(mask)
        h = await t.open(b"f", O.O_CREAT | O.O_WRONLY, mode)
        st = await t.fstat(h)
        t.check(st.perm == mode & ~mask & 0o7777, f"mode {st.perm:o} != {mode:o} & ~{mask:o}")
        await t.close(h)
        await t.lstat(b"f")
    return run


for _mode in (0o777, 0o666, 0o644, 0o600, 0o640, 0o000, 0o4755, 0o2755, 0o1777):
    for _mask in (0o000, 0o022, 0o077):
        register("open", f"creat-mode-{_mode:04o}-umask-{_mask:03o}", _creat_mode(_mode, _mask),
                 doc="a created file's mode is the requested mode less the umask")


@case("open", "creat-existing-keeps-mode")
async def _(t: Ctx) -> None:
    """O_CREAT on an existing file neither changes its mode nor its content."""
    await t.create(b"f", b"abc", 0o600)
    h = await t.open(b"f", O.O_CREAT | O.O_RDWR, 0o777)
    t.check((await t.fstat(h)).perm == 0o600, "mode changed")
    t.check(await t.read(h, 10) == b"abc", "content changed")
    await t.close(h)


@case("open", "excl-race")
async def _(t: Ctx) -> None:
    """Of many concurrent O_CREAT|O_EXCL opens of one name, exactly one succeeds."""
    wins: list[int] = []
    errs: list[int] = []

    async def one() -> None:
        try:
            wins.append(await t.target.open(b"f", O.O_CREAT | O.O_EXCL | O.O_WRONLY, 0o644))
        except OSError as e:
            errs.append(e.errno or 0)

    async with trio.open_nursery() as n:
        for _ in range(8):
            n.start_soon(one)
    t.note("winners", len(wins))
    t.note("losers all EEXIST", all(e == errno.EEXIST for e in errs))
    t.check(len(wins) == 1, f"{len(wins)} winners")
    for h in wins:
        await t.target.close(h)


@case("open", "rdonly-write-ebadf")
async def _(t: Ctx) -> None:
    """write on a handle opened O_RDONLY fails EBADF."""
    await t.create(b"f", b"abc")
    h = await t.open(b"f", O.O_RDONLY)
    await t.fails(errno.EBADF, t.write(h, b"x"))
    await t.close(h)


@case("open", "wronly-read-ebadf")
async def _(t: Ctx) -> None:
    """read on a handle opened O_WRONLY fails EBADF."""
    await t.create(b"f", b"abc")
    h = await t.open(b"f", O.O_WRONLY)
    await t.fails(errno.EBADF, t.read(h, 3))
    await t.close(h)


@case("open", "read-directory-eisdir")
async def _(t: Ctx) -> None:
    """read on a directory handle fails EISDIR."""
    await t.mkdir(b"d")
    h = await t.open(b"d", O.O_RDONLY | O.O_DIRECTORY)
    await t.fails(errno.EISDIR, t.read(h, 10))
    await t.close(h)


@case("open", "empty-path-enoent")
async def _(t: Ctx) -> None:
    """An empty path names nothing."""
    await t.fails(errno.ENOENT, t.open(b"", O.O_RDONLY))


@case("open", "dot-creat-eisdir")
async def _(t: Ctx) -> None:
    """O_CREAT of '.' fails EISDIR; plain open of '.' works."""
    await t.fails(errno.EISDIR, t.open(b".", O.O_CREAT | O.O_WRONLY))
    h = await t.open(b".", O.O_RDONLY)
    await t.close(h)


@case("open", "missing-parent-enoent")
async def _(t: Ctx) -> None:
    """Creating in a missing directory fails ENOENT."""
    await t.fails(errno.ENOENT, t.open(b"nodir/f", O.O_CREAT | O.O_WRONLY))


@case("open", "file-as-dir-enotdir")
async def _(t: Ctx) -> None:
    """A regular file in the middle of a path fails ENOTDIR."""
    await t.create(b"f", b"x")
    await t.fails(errno.ENOTDIR, t.open(b"f/g", O.O_CREAT | O.O_WRONLY))
    await t.fails(errno.ENOTDIR, t.open(b"f/g", O.O_RDONLY))


@case("open", "creat-through-dangling-creates-target")
async def _(t: Ctx) -> None:
    """O_CREAT through a dangling symlink creates the file it points at."""
    await t.symlink(b"target", b"l")
    h = await t.open(b"l", O.O_CREAT | O.O_WRONLY, 0o600)
    await t.write(h, b"hi")
    await t.close(h)
    t.check(await t.slurp(b"target") == b"hi", "target not created")
    await t.lstat(b"target")


@case("open", "dotdot-resolves")
async def _(t: Ctx) -> None:
    """'d/../f' names f."""
    await t.mkdir(b"d")
    await t.create(b"f", b"x")
    t.check(await t.slurp(b"d/../f") == b"x", "d/../f is not f")
    t.check(await t.slurp(b"./d/./../f") == b"x", "./d/./../f is not f")


@case("open", "independent-offsets")
async def _(t: Ctx) -> None:
    """Two opens of one file have independent offsets."""
    await t.create(b"f", b"0123456789")
    a = await t.open(b"f")
    b = await t.open(b"f")
    await t.read(a, 4)
    t.check(await t.read(b, 2) == b"01", "offset shared")
    t.check(await t.read(a, 2) == b"45", "offset lost")
    await t.close(a)
    await t.close(b)


@case("open", "close-twice-ebadf")
async def _(t: Ctx) -> None:
    """A closed handle is gone."""
    await t.create(b"f")
    h = await t.open(b"f")
    await t.close(h)
    await t.fails(errno.EBADF, t.read(h, 1))
