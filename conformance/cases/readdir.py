"""Directory listing: completeness for many sizes and names, and while the directory
changes underneath an open directory handle."""

from __future__ import annotations

import errno
import os
import stat

import trio

from ..case import Ctx, case, register


async def _touch(t: Ctx, name: bytes) -> None:
    """Create an empty file without recording it (setup, not behaviour)."""
    await t.target.close(await t.target.open(name, 0o101, 0o644))  # O_WRONLY|O_CREAT


def _many(n: int):
    async def run(t: Ctx) -> None:
        await t.mkdir(b"d")
        want = {b"f%05d" % i for i in range(n)}
        names = sorted(want)
        for first in range(0, n, 16):  # setup in parallel batches (slow targets)
            async with trio.open_nursery() as nursery:
                for name in names[first:first + 16]:
                    nursery.start_soon(_touch, t, b"d/" + name)
        got = await t.listdir(b"d")
        t.check(sorted(got) == sorted(want), "listing incomplete or duplicated")
        h = await t.opendir(b"d")
        seen: list[bytes] = []
        while batch := await t.target.getdents(h, 7):
            seen.extend(batch)
        await t.close(h)
        t.note("getdents batches cover all once", sorted(seen) == sorted(want))
        t.check(sorted(seen) == sorted(want), "getdents incomplete or duplicated")
    return run


for _n in (0, 1, 2, 10, 100, 1000):
    register("readdir", f"complete-{_n}", _many(_n), doc="every entry listed exactly once")


@case("readdir", "mixed-kinds")
async def _(t: Ctx) -> None:
    """Files, directories, symlinks and fifos all appear."""
    await t.create(b"f")
    await t.mkdir(b"d")
    await t.symlink(b"f", b"l")
    await t.mkfifo(b"p")
    await t.listdir()


@case("readdir", "odd-names")
async def _(t: Ctx) -> None:
    """Dot files, spaces, newlines and control characters are listed as they are."""
    names = [b".hidden", b"..dots", b"a b", b" lead", b"trail ", b"new\nline", b"tab\t",
             b"\x01ctl", b"back\\slash", b"-dash", b"*star?"]
    for n in names:
        await t.create(n)
    got = await t.listdir()
    t.check(sorted(got) == sorted(names), "names changed")


@case("readdir", "while-deleting")
async def _(t: Ctx) -> None:
    """Entries that stay are listed exactly once even while others are removed mid-listing."""
    names = [b"e%03d" % i for i in range(60)]
    for n in names:
        await _touch(t, n)
    h = await t.opendir()
    seen = list(await t.target.getdents(h, 5))
    removed = {n for n in names[1::2] if n not in seen}
    for n in removed:
        await t.target.unlink(n)
    while batch := await t.target.getdents(h, 5):
        seen.extend(batch)
    await t.close(h)
    stay = [n for n in names if n not in removed]
    t.note("stayers each once", all(seen.count(n) == 1 for n in stay))
    t.note("nothing unknown", set(seen) <= set(names))
    t.check(all(seen.count(n) == 1 for n in stay), "an unchanged entry was lost or repeated")


@case("readdir", "while-adding")
async def _(t: Ctx) -> None:
    """Entries present throughout are listed exactly once while new ones are added."""
    names = [b"e%03d" % i for i in range(60)]
    for n in names:
        await _touch(t, n)
    h = await t.opendir()
    seen = list(await t.target.getdents(h, 5))
    for i in range(40):
        await _touch(t, b"new%03d" % i)
    while batch := await t.target.getdents(h, 5):
        seen.extend(batch)
    await t.close(h)
    t.note("old each once", all(seen.count(n) == 1 for n in names))
    t.note("no duplicates", len(seen) == len(set(seen)))
    t.check(all(seen.count(n) == 1 for n in names), "an unchanged entry was lost or repeated")


@case("readdir", "rename-during-listing")
async def _(t: Ctx) -> None:
    """Entries not renamed are listed exactly once while others are renamed."""
    names = [b"e%03d" % i for i in range(40)]
    for n in names:
        await _touch(t, n)
    h = await t.opendir()
    seen = list(await t.target.getdents(h, 5))
    moved = [n for n in names[::3] if n not in seen]
    for n in moved:
        await t.target.rename(n, b"z" + n)
    while batch := await t.target.getdents(h, 5):
        seen.extend(batch)
    await t.close(h)
    stay = [n for n in names if n not in moved]
    t.note("stayers each once", all(seen.count(n) == 1 for n in stay))
    t.check(all(seen.count(n) == 1 for n in stay), "an unchanged entry was lost or repeated")


@case("readdir", "empty-after-unlink-all")
async def _(t: Ctx) -> None:
    """A directory emptied lists nothing and can be removed."""
    await t.mkdir(b"d")
    for i in range(5):
        await t.create(b"d/%d" % i)
    for i in range(5):
        await t.unlink(b"d/%d" % i)
    await t.listdir(b"d")
    await t.rmdir(b"d")


@case("readdir", "not-a-directory")
async def _(t: Ctx) -> None:
    """Listing a file is ENOTDIR; a missing name ENOENT."""
    await t.create(b"f")
    await t.attempt(t.listdir(b"f"))
    await t.attempt(t.listdir(b"nope"))


@case("readdir", "through-symlink")
async def _(t: Ctx) -> None:
    """Listing through a symlink to a directory lists the directory."""
    await t.mkdir(b"d")
    await t.create(b"d/x")
    await t.symlink(b"d", b"l")
    await t.listdir(b"l")


@case("readdir", "reopen-sees-new")
async def _(t: Ctx) -> None:
    """A fresh listing sees entries created after an earlier listing."""
    await t.create(b"a")
    await t.listdir()
    await t.create(b"b")
    await t.listdir()


@case("readdir", "directory-io", needs=("dtype",))
async def _(t: Ctx) -> None:
    """read and pread on a directory are EISDIR; reading entries through a file handle is ENOTDIR.
"""
    await t.mkdir(b"d", 0o755)
    h0 = await t.open(b"d", os.O_DIRECTORY)
    await t.fails(errno.EISDIR, t.read(h0, 10))
    await t.fails(errno.EISDIR, t.pread(h0, 10, 0))
    h1 = await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.fails(errno.ENOTDIR, t.readdir_kinds(h1))


@case("readdir", "getdents-types", needs=("dtype",))
async def _(t: Ctx) -> None:
    """Directory entries carry their kind (d_type); a removed entry disappears on rewinding."""
    await t.mkdir(b"d", 0o755)
    await t.mkdir(b"d/sub", 0o755)
    await t.open(b"d/file", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.symlink(b"file", b"d/link")
    await t.mknod(b"d/fifo", stat.S_IFIFO | 0o644)
    h1 = await t.open(b"d", os.O_DIRECTORY)
    await t.readdir_kinds(h1)
    await t.unlink(b"d/file")
    await t.readdir_kinds(h1)
    await t.listdir(b"d")


@case("readdir", "many-entries", needs=("dtype",))
async def _(t: Ctx) -> None:
    """A directory of 300 long names lists completely, by name and by reading the open directory."""
    await t.mkdir(b"d", 0o755)
    for i in range(300):
        await t.mknod(b"d/entry-with-a-long-name-%04d" % i, stat.S_IFREG | 0o644)
    await t.listdir(b"d")
    h0 = await t.open(b"d", os.O_RDONLY)
    await t.readdir_kinds(h0)
