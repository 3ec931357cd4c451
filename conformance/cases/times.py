"""Timestamps: which operations change atime, mtime and ctime of the object and of its
directory, and utimensat's exact values, UTIME_NOW and UTIME_OMIT.

Change detection does not depend on the clock's value: atime and mtime are first set to a
date long past, and ctime is compared with its value before the operation after a short
pause, so "changed" means the operation touched it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable

import trio

from ..case import Ctx, case, register
from ..target_api import RENAME_EXCHANGE, UTIME_NOW, UTIME_OMIT, XATTR_CREATE
from ._util import mtime_moved

OLD = 1_000_000_000 * 10**9  # 2001-09-09


async def _age(t: Ctx, path: bytes, follow: bool = True) -> None:
    await t.target.utimens(path, OLD, OLD, follow)


async def _observe(t: Ctx, setup: Callable[[Ctx], Awaitable[None]],
                   op: Callable[[Ctx], Awaitable[object]], obj: bytes, parent: bytes) -> None:
    await setup(t)
    await _age(t, obj, follow=False)
    await _age(t, parent)
    before_o = await t.target.stat(obj, False)
    before_p = await t.target.stat(parent)
    await trio.sleep(0.02)
    await op(t)
    after_o = await t.attempt(t.target.stat(obj, False))
    after_p = await t.target.stat(parent)
    if isinstance(after_o, OSError):
        t.note("object", "gone")
    else:
        t.note("object atime/mtime/ctime changed",
               (after_o.atime_ns != before_o.atime_ns, after_o.mtime_ns != before_o.mtime_ns,
                after_o.ctime_ns != before_o.ctime_ns))
    t.note("parent mtime/ctime changed",
           (after_p.mtime_ns != before_p.mtime_ns, after_p.ctime_ns != before_p.ctime_ns))


async def _file(t: Ctx) -> None:
    await t.mkdir(b"p")
    await t.create(b"p/f", b"0123456789")


async def _dirobj(t: Ctx) -> None:
    await t.mkdir(b"p")
    await t.mkdir(b"p/f")


async def _write(t: Ctx) -> None:
    h = await t.open(b"p/f", os.O_WRONLY)
    await t.write(h, b"ab")
    await t.close(h)


async def _write0(t: Ctx) -> None:
    h = await t.open(b"p/f", os.O_WRONLY)
    await t.write(h, b"")
    await t.close(h)


async def _read(t: Ctx) -> None:
    h = await t.open(b"p/f")
    await t.read(h, 4)
    await t.close(h)


async def _open_only(t: Ctx) -> None:
    h = await t.open(b"p/f", os.O_RDWR)
    await t.close(h)


async def _open_trunc(t: Ctx) -> None:
    h = await t.open(b"p/f", os.O_WRONLY | os.O_TRUNC)
    await t.close(h)


async def _xattr(t: Ctx) -> None:
    await t.setxattr(b"p/f", b"user.t", b"v", XATTR_CREATE)


async def _readdir(t: Ctx) -> None:
    await t.listdir(b"p/f")


async def _mkdir_in(t: Ctx) -> None:
    await t.mkdir(b"p/f/sub")


async def _rename_exchange(t: Ctx) -> None:
    await t.create(b"p/g")
    await t.rename(b"p/f", b"p/g", RENAME_EXCHANGE)


OPS: dict[str, tuple[Callable[[Ctx], Awaitable[None]], Callable[[Ctx], Awaitable[object]],
                     tuple[str, ...]]] = {
    "write": (_file, _write, ()),
    "write-zero": (_file, _write0, ()),
    "read": (_file, _read, ()),
    "open-no-io": (_file, _open_only, ()),
    "open-trunc": (_file, _open_trunc, ()),
    "truncate-shrink": (_file, lambda t: t.truncate(b"p/f", 3), ()),
    "truncate-same": (_file, lambda t: t.truncate(b"p/f", 10), ()),
    "truncate-grow": (_file, lambda t: t.truncate(b"p/f", 100), ()),
    "chmod": (_file, lambda t: t.chmod(b"p/f", 0o600), ()),
    "chmod-same": (_file, lambda t: t.chmod(b"p/f", 0o644), ()),
    "chown": (_file, lambda t: t.chown(b"p/f", 1000, 1000), ()),
    "link": (_file, lambda t: t.link(b"p/f", b"p/g"), ()),
    "unlink-one-of-two": (_file, lambda t: t.link(b"p/f", b"p/g"), ()),
    "rename-within": (_file, lambda t: t.rename(b"p/f", b"p/g"), ()),
    "rename-exchange": (_file, _rename_exchange, ()),
    "stat": (_file, lambda t: t.stat(b"p/f"), ()),
    "utimens-now": (_file, lambda t: t.utimens(b"p/f", UTIME_NOW, UTIME_NOW), ()),
    "utimens-omit": (_file, lambda t: t.utimens(b"p/f", UTIME_OMIT, UTIME_OMIT), ()),
    "utimens-mtime-only": (_file, lambda t: t.utimens(b"p/f", UTIME_OMIT, UTIME_NOW), ()),
    "setxattr": (_file, _xattr, ("xattr",)),
    "readdir": (_dirobj, _readdir, ()),
    "mkdir-inside": (_dirobj, _mkdir_in, ()),
    "create-sibling": (_file, lambda t: t.create(b"p/new"), ()),
    "mkfifo-sibling": (_file, lambda t: t.mkfifo(b"p/pipe"), ()),
    "symlink-sibling": (_file, lambda t: t.symlink(b"f", b"p/l"), ()),
    "rmdir-sibling": (_file, lambda t: t.mkdir(b"p/sub"), ()),
}


def _timed(name: str):
    setup, op, _ = OPS[name]

    async def run(t: Ctx) -> None:
        if name == "unlink-one-of-two":
            async def setup2(t: Ctx) -> None:
                await setup(t)
                await op(t)
            await _observe(t, setup2, lambda t: t.unlink(b"p/g"), b"p/f", b"p")
        elif name == "rmdir-sibling":
            async def setup3(t: Ctx) -> None:
                await setup(t)
                await op(t)
            await _observe(t, setup3, lambda t: t.rmdir(b"p/sub"), b"p/f", b"p")
        else:
            await _observe(t, setup, op, b"p/f", b"p")
    return run


for _name, (_s, _o, _needs) in OPS.items():
    register("times", f"changes-{_name}", _timed(_name), needs=_needs,
             doc=f"which timestamps {_name} changes on the object and its directory")


def _exact(atime: int, mtime: int):
    async def run(t: Ctx) -> None:
        await t.create(b"f")
        await t.utimens(b"f", atime, mtime)
        st = await t.stat(b"f")
        t.note("atime_ns", st.atime_ns)
        t.note("mtime_ns", st.mtime_ns)
    return run


for _label, (_a, _m) in {
    "seconds": (1_500_000_000 * 10**9, 1_600_000_000 * 10**9),
    "nanoseconds": (1_234_567_890_123_456_789, 1_234_567_891_987_654_321),
    "epoch": (0, 0),
    "year-2038-plus": (2_200_000_000 * 10**9, 4_000_000_000 * 10**9 + 5),
}.items():
    register("times", f"utimens-exact-{_label}", _exact(_a, _m),
             doc="explicit times read back exactly")


@case("times", "utimens-symlink-nofollow")
async def _(t: Ctx) -> None:
    """utimensat with AT_SYMLINK_NOFOLLOW sets the link's times, not the target's."""
    await t.create(b"f")
    await t.symlink(b"f", b"l")
    await t.utimens(b"f", OLD, OLD)
    await t.utimens(b"l", 5 * 10**18, 5 * 10**18, follow=False)
    st_f = await t.target.stat(b"f")
    st_l = await t.target.stat(b"l", False)
    t.note("target untouched", (st_f.atime_ns, st_f.mtime_ns) == (OLD, OLD))
    t.note("link mtime", st_l.mtime_ns)


@case("times", "utimens-one-omitted")
async def _(t: Ctx) -> None:
    """UTIME_OMIT keeps that time while the other is set."""
    await t.create(b"f")
    await t.utimens(b"f", OLD, OLD)
    await t.utimens(b"f", UTIME_OMIT, OLD + 5)
    st = await t.target.stat(b"f")
    t.note("atime, mtime", (st.atime_ns, st.mtime_ns))
    await t.utimens(b"f", OLD + 7, UTIME_OMIT)
    st = await t.target.stat(b"f")
    t.note("atime, mtime", (st.atime_ns, st.mtime_ns))


@case("times", "new-file-times-equal")
async def _(t: Ctx) -> None:
    """A new file's atime, mtime and ctime start out equal."""
    await t.create(b"f")
    st = await t.target.stat(b"f")
    t.note("mtime == ctime", st.mtime_ns == st.ctime_ns)
    t.note("atime == mtime", st.atime_ns == st.mtime_ns)


@case("times", "utimens-missing-enoent")
async def _(t: Ctx) -> None:
    """utimensat of a missing file is ENOENT."""
    await t.attempt(t.utimens(b"nope", UTIME_NOW, UTIME_NOW))


@case("times", "utimens")
async def _(t: Ctx) -> None:
    """utimensat: explicit times, 'now', UTIME_OMIT, ENOENT."""
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.utimens(b"f", 1_000_000_000, 2_000_000_000)
    await t.utimens(b"f", UTIME_NOW, UTIME_NOW)
    await t.utimens(b"f", UTIME_OMIT, UTIME_NOW)
    await t.fails(errno.ENOENT, t.utimens(b"missing", UTIME_NOW, UTIME_NOW))


@case("times", "dir-mtime")
async def _(t: Ctx) -> None:
    """Which operations change a directory's mtime: creating, renaming and removing entries; not
    chmod or open of an existing entry."""
    await t.mkdir(b"d", 0o755)
    await t.utimens(b"d", 1_000_000_000, 1_000_000_000)
    await t.open(b"d/f", os.O_WRONLY | os.O_CREAT, 0o644)
    await mtime_moved(t, b"d")
    await t.utimens(b"d", 1_000_000_000, 1_000_000_000)
    await t.open(b"d/f", os.O_WRONLY | os.O_CREAT, 0o644)
    await mtime_moved(t, b"d")
    await t.chmod(b"d/f", 0o600)
    await mtime_moved(t, b"d")
    await t.rename(b"d/f", b"d/g")
    await mtime_moved(t, b"d")
    await t.utimens(b"d", 1_000_000_000, 1_000_000_000)
    await t.unlink(b"d/g")
    await mtime_moved(t, b"d")
    await t.utimens(b"d", 1_000_000_000, 1_000_000_000)
    await t.symlink(b"x", b"d/l")
    await mtime_moved(t, b"d")
    await t.utimens(b"d", 1_000_000_000, 1_000_000_000)
    await t.fails(errno.ENOENT, t.stat(b"d/l"))
    await mtime_moved(t, b"d")


@case("times", "file-mtime")
async def _(t: Ctx) -> None:
    """Which operations change a file's mtime: write, truncate (shrinking and growing),
    O_TRUNC (of an empty file too), ftruncate; not read, chmod or a plain open."""
    h0 = await t.open(b"f", os.O_RDWR | os.O_CREAT, 0o644)
    await t.utimens(b"f", 1_000_000_000, 1_000_000_000)
    await t.read(h0, 10)
    await mtime_moved(t, b"f")
    await t.write(h0, b"x")
    await mtime_moved(t, b"f")
    await t.utimens(b"f", 1_000_000_000, 1_000_000_000)
    await t.chmod(b"f", 0o600)
    await mtime_moved(t, b"f")
    await t.truncate(b"f", 1)
    await mtime_moved(t, b"f")
    await t.truncate(b"f", 5)
    await mtime_moved(t, b"f")
    await t.utimens(b"f", 1_000_000_000, 1_000_000_000)
    await t.open(b"f", os.O_RDONLY)
    await mtime_moved(t, b"f")
    await t.open(b"f", os.O_WRONLY | os.O_TRUNC)
    await mtime_moved(t, b"f")
    await t.utimens(b"f", 1_000_000_000, 1_000_000_000)
    await t.open(b"f", os.O_WRONLY | os.O_TRUNC)
    await mtime_moved(t, b"f")
    await t.utimens(b"f", 1_000_000_000, 1_000_000_000)
    await t.ftruncate(h0, 0)
    await mtime_moved(t, b"f")
    await t.link(b"f", b"g")
    await mtime_moved(t, b"f")
