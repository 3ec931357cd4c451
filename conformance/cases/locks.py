"""Byte-range locks with open-file-description semantics: two handles on one file conflict
as two processes would (F_OFD_SETLK / F_OFD_GETLK)."""

from __future__ import annotations

import errno
import os

from ..case import Ctx, case, register
from ..target_api import F_RDLCK, F_UNLCK, F_WRLCK

L = ("locks",)
KIND = {"rd": F_RDLCK, "wr": F_WRLCK}
# The second lock's (start, length) against a first lock on [100, 200).
RANGES = {"same": (100, 100), "overlap": (150, 100), "adjacent": (200, 50),
          "disjoint": (400, 10), "whole-file": (0, 0)}


def _conflict(held: str, want: str, rng: str):
    async def run(t: Ctx) -> None:
        await t.create(b"f", b"x" * 300)
        a = await t.open(b"f", os.O_RDWR)
        b = await t.open(b"f", os.O_RDWR)
        await t.setlk(a, KIND[held], 100, 100)
        start, length = RANGES[rng]
        await t.getlk(b, KIND[want], start, length)
        await t.attempt(t.setlk(b, KIND[want], start, length))
        await t.close(a)
        await t.close(b)
    return run


for _h in KIND:
    for _w in KIND:
        for _r in RANGES:
            register("locks", f"{_h}-then-{_w}-{_r}", _conflict(_h, _w, _r), needs=L,
                     doc=f"a {_w} lock ({_r}) against a held {_h} lock on another handle")


@case("locks", "same-handle-upgrade", needs=L)
async def _(t: Ctx) -> None:
    """One handle converts its own read lock to a write lock."""
    await t.create(b"f", b"x")
    a = await t.open(b"f", os.O_RDWR)
    await t.setlk(a, F_RDLCK, 0, 10)
    await t.setlk(a, F_WRLCK, 0, 10)
    await t.getlk(a, F_WRLCK, 0, 10)
    await t.close(a)


@case("locks", "unlock-releases", needs=L)
async def _(t: Ctx) -> None:
    """After F_UNLCK another handle may lock."""
    await t.create(b"f", b"x")
    a = await t.open(b"f", os.O_RDWR)
    b = await t.open(b"f", os.O_RDWR)
    await t.setlk(a, F_WRLCK, 0, 0)
    await t.fails(errno.EAGAIN, t.setlk(b, F_WRLCK, 0, 0))
    await t.setlk(a, F_UNLCK, 0, 0)
    await t.setlk(b, F_WRLCK, 0, 0)
    await t.close(a)
    await t.close(b)


@case("locks", "close-releases", needs=L)
async def _(t: Ctx) -> None:
    """Closing the handle releases its locks."""
    await t.create(b"f", b"x")
    a = await t.open(b"f", os.O_RDWR)
    b = await t.open(b"f", os.O_RDWR)
    await t.setlk(a, F_WRLCK, 0, 0)
    await t.close(a)
    await t.setlk(b, F_WRLCK, 0, 0)
    await t.close(b)


@case("locks", "unlock-middle-splits", needs=L)
async def _(t: Ctx) -> None:
    """Unlocking the middle of a lock leaves two locks around the hole."""
    await t.create(b"f", b"x")
    a = await t.open(b"f", os.O_RDWR)
    b = await t.open(b"f", os.O_RDWR)
    await t.setlk(a, F_WRLCK, 0, 300)
    await t.setlk(a, F_UNLCK, 100, 100)
    await t.getlk(b, F_WRLCK, 0, 0)
    await t.getlk(b, F_WRLCK, 100, 100)
    await t.getlk(b, F_WRLCK, 150, 200)
    await t.close(a)
    await t.close(b)


@case("locks", "beyond-eof", needs=L)
async def _(t: Ctx) -> None:
    """Locks may cover bytes beyond the end of the file."""
    await t.create(b"f", b"x")
    a = await t.open(b"f", os.O_RDWR)
    b = await t.open(b"f", os.O_RDWR)
    await t.setlk(a, F_WRLCK, 1 << 30, 10)
    await t.getlk(b, F_RDLCK, 1 << 30, 1)
    await t.close(a)
    await t.close(b)


@case("locks", "write-lock-needs-write-mode", needs=L)
async def _(t: Ctx) -> None:
    """A write lock on a read-only handle is EBADF; a read lock on a write-only one too."""
    await t.create(b"f", b"x")
    r = await t.open(b"f", os.O_RDONLY)
    w = await t.open(b"f", os.O_WRONLY)
    await t.fails(errno.EBADF, t.setlk(r, F_WRLCK, 0, 1))
    await t.fails(errno.EBADF, t.setlk(w, F_RDLCK, 0, 1))
    await t.setlk(r, F_RDLCK, 0, 1)
    await t.setlk(w, F_WRLCK, 1, 1)
    await t.close(r)
    await t.close(w)


@case("locks", "many-readers", needs=L)
async def _(t: Ctx) -> None:
    """Many handles share a read lock; a writer is refused until all are gone."""
    await t.create(b"f", b"x")
    hs = [await t.open(b"f", os.O_RDWR) for _ in range(4)]
    for h in hs[:3]:
        await t.setlk(h, F_RDLCK, 0, 0)
    await t.fails(errno.EAGAIN, t.setlk(hs[3], F_WRLCK, 0, 0))
    for h in hs[:3]:
        await t.close(h)
    await t.setlk(hs[3], F_WRLCK, 0, 0)
    await t.close(hs[3])


@case("locks", "merge-adjacent", needs=L)
async def _(t: Ctx) -> None:
    """Adjacent locks of one owner merge: getlk reports one range."""
    await t.create(b"f", b"x")
    a = await t.open(b"f", os.O_RDWR)
    b = await t.open(b"f", os.O_RDWR)
    await t.setlk(a, F_WRLCK, 0, 10)
    await t.setlk(a, F_WRLCK, 10, 10)
    await t.getlk(b, F_WRLCK, 0, 0)
    await t.close(a)
    await t.close(b)
