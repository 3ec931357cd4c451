"""open(2): flags against every kind of existing object, creation modes under umask,
O_EXCL races, and the errors of the access mode."""

from __future__ import annotations

import errno
import os

import trio

from ..case import Ctx, case, register
from ..target_api import Creds
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


@case("open", "create-and-stat")
async def _(t: Ctx) -> None:
    """O_CREAT makes a regular file with the mode asked for (fstat and stat agree)."""
    h0 = await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.fstat(h0)
    await t.stat(b"f")


@case("open", "create-excl-exists")
async def _(t: Ctx) -> None:
    """O_CREAT|O_EXCL is EEXIST on a file, a directory and a dangling symlink (not followed)."""
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o600)
    await t.fails(errno.EEXIST, t.open(b"f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    await t.mkdir(b"d", 0o755)
    await t.fails(errno.EEXIST, t.open(b"d", os.O_CREAT | os.O_EXCL, 0o600))
    await t.symlink(b"dangling", b"l")
    await t.fails(errno.EEXIST, t.open(b"l", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    await t.fails(errno.ENOENT, t.lstat(b"dangling"))


@case("open", "create-through-dangling-symlink")
async def _(t: Ctx) -> None:
    """O_CREAT through a dangling symlink creates its target; with O_NOFOLLOW it is ELOOP."""
    await t.symlink(b"target", b"l")
    await t.open(b"l", os.O_WRONLY | os.O_CREAT, 0o640)
    await t.stat(b"target")
    await t.fails(errno.ELOOP, t.open(b"l", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o640))


@case("open", "missing")
async def _(t: Ctx) -> None:
    """Opening a missing name, a name under a missing directory or the empty path is ENOENT."""
    await t.fails(errno.ENOENT, t.open(b"nope", os.O_RDONLY))
    await t.fails(errno.ENOENT, t.open(b"nope/x", os.O_WRONLY | os.O_CREAT, 0o644))
    await t.fails(errno.ENOENT, t.open(b"", os.O_RDONLY))


@case("open", "trunc")
async def _(t: Ctx) -> None:
    """O_TRUNC empties a file that another handle has open."""
    h0 = await t.open(b"f", os.O_RDWR | os.O_CREAT, 0o644)
    await t.write(h0, b"hello world")
    h1 = await t.open(b"f", os.O_TRUNC)
    await t.fstat(h0)
    await t.read(h1, 100)


@case("open", "directory-flags")
async def _(t: Ctx) -> None:
    """O_DIRECTORY, write modes and O_CREAT on directories, trailing slashes, O_CREAT|O_DIRECTORY.
"""
    await t.mkdir(b"d", 0o755)
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.open(b"d", os.O_DIRECTORY)
    await t.fails(errno.ENOTDIR, t.open(b"f", os.O_DIRECTORY))
    await t.fails(errno.EISDIR, t.open(b"d", os.O_WRONLY))
    await t.fails(errno.EISDIR, t.open(b"d", os.O_RDWR))
    await t.fails(errno.EISDIR, t.open(b"d", os.O_CREAT, 0o644))
    await t.fails(errno.EISDIR, t.open(b"d/", os.O_WRONLY | os.O_CREAT, 0o644))
    await t.fails(errno.EISDIR, t.open(b"new/", os.O_WRONLY | os.O_CREAT, 0o644))
    await t.fails(errno.EINVAL, t.open(b"x", os.O_CREAT | os.O_DIRECTORY, 0o644))
    await t.fails(errno.ENOENT, t.lstat(b"x"))
    await t.fails(errno.ENOTDIR, t.open(b"f/", os.O_RDONLY))


@case("open", "nofollow")
async def _(t: Ctx) -> None:
    """O_NOFOLLOW on a symlink is ELOOP, but O_PATH|O_NOFOLLOW opens the link itself."""
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.symlink(b"f", b"l")
    await t.fails(errno.ELOOP, t.open(b"l", os.O_NOFOLLOW))
    h2 = await t.open(b"l", os.O_NOFOLLOW | os.O_PATH)
    await t.open(b"l", os.O_RDONLY)
    await t.fstat(h2)


@case("open", "path-fd-limits")
async def _(t: Ctx) -> None:
    """An O_PATH handle stats but cannot read, write or fchmod (EBADF)."""
    h0 = await t.open(b"f", os.O_RDWR | os.O_CREAT, 0o644)
    await t.write(h0, b"data")
    h1 = await t.open(b"f", os.O_PATH)
    await t.fails(errno.EBADF, t.read(h1, 4))
    await t.fails(errno.EBADF, t.write(h1, b"x"))
    await t.fstat(h1)
    await t.fails(errno.EBADF, t.fchmod(h1, 0o600))


@case("open", "access-modes")
async def _(t: Ctx) -> None:
    """Reads on write-only and writes on read-only handles are EBADF; O_APPEND writes at the end."""
    h0 = await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.fails(errno.EBADF, t.read(h0, 10))
    h1 = await t.open(b"f", os.O_RDONLY)
    await t.fails(errno.EBADF, t.write(h1, b"x"))
    h2 = await t.open(b"f", os.O_RDWR | os.O_APPEND)
    await t.write(h2, b"ab")
    await t.lseek(h2, 0, os.SEEK_SET)
    await t.write(h2, b"cd")
    await t.pread(h2, 10, 0)


@case("open", "dot-and-root-names")
async def _(t: Ctx) -> None:
    """O_CREAT of '.' or '..' is EISDIR; '.' opens read-only as the directory."""
    await t.fails(errno.EISDIR, t.open(b".", os.O_CREAT, 0o644))
    await t.fails(errno.EISDIR, t.open(b"..", os.O_CREAT, 0o644))
    h2 = await t.open(b".", os.O_RDONLY)
    await t.fstat(h2)


@case("open", "access-mode-3-and-trunc-dir", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """Access mode 3 opens (no read, no write) but needs read and write permission; O_TRUNC on a
    directory is EISDIR."""
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    h1 = await t.open(b"f", os.O_ACCMODE)
    await t.fails(errno.EBADF, t.read(h1, 1))
    await t.fails(errno.EBADF, t.write(h1, b"x"))
    await t.chmod(b"f", 0o444)
    u = t.as_user(Creds(1000, 1000, ()))
    await u.fails(errno.EACCES, u.open(b"f", os.O_ACCMODE))
    await t.mkdir(b"d", 0o755)
    await t.fails(errno.EISDIR, t.open(b"d", os.O_TRUNC))
    await t.fails(errno.EISDIR, t.open(b"d", os.O_ACCMODE))


@case("open", "tmpfile", needs=("at-handle",))
async def _(t: Ctx) -> None:
    """O_TMPFILE makes a nameless file that linkat(AT_EMPTY_PATH) names; read-only or on a non-
    directory it fails."""
    await t.mkdir(b"d", 0o755)
    h0 = await t.open(b"d", os.O_TMPFILE | os.O_RDWR, 0o640)
    await t.write(h0, b"anonymous")
    await t.fstat(h0)
    await t.listdir(b"d")
    await t.flink(h0, b"d/named")
    await t.stat(b"d/named")
    await t.fails(errno.EINVAL, t.open(b"d", os.O_TMPFILE, 0o640))
    await t.fails(errno.ENOTDIR, t.open(b"d/named", os.O_TMPFILE | os.O_RDWR, 0o640))


@case("open", "noatime-needs-owner", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """O_NOATIME is EPERM for a caller who does not own the file."""
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o666)
    await t.open(b"f", os.O_NOATIME)
    u = t.as_user(Creds(1000, 1000, ()))
    await u.fails(errno.EPERM, u.open(b"f", os.O_NOATIME))
    await u.open(b"f", os.O_RDONLY)
