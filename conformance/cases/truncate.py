"""truncate/ftruncate: shrinking, growing (zero fill), errors."""

from __future__ import annotations

import errno
import os

from ..case import Ctx, case, register


def _data(n: int) -> bytes:
    return bytes(65 + i % 26 for i in range(n))


def _resize(initial: int, new: int, by_handle: bool):
    async def run(t: Ctx) -> None:
        await t.create(b"f", _data(initial))
        if by_handle:
            h = await t.open(b"f", os.O_WRONLY)
            await t.ftruncate(h, new)
            await t.fstat(h)
            await t.close(h)
        else:
            await t.truncate(b"f", new)
        content = await t.slurp(b"f")
        want = _data(initial)[:new] + b"\0" * max(0, new - initial)
        t.check(content == want, "content after truncate")
        await t.stat(b"f")
    return run


for _init in (0, 10, 5000):
    for _new in (0, 5, 10, 4096, 10000, 1 << 20):
        register("truncate", f"path-{_init}-to-{_new}", _resize(_init, _new, False),
                 doc="truncate(2) shrinks or zero-extends")
    for _new in (0, 7, 8192):
        register("truncate", f"fd-{_init}-to-{_new}", _resize(_init, _new, True),
                 doc="ftruncate(2) shrinks or zero-extends")


@case("truncate", "negative-einval")
async def _(t: Ctx) -> None:
    """A negative length is EINVAL."""
    await t.create(b"f", b"abc")
    await t.fails(errno.EINVAL, t.truncate(b"f", -1))
    h = await t.open(b"f", os.O_WRONLY)
    await t.fails(errno.EINVAL, t.ftruncate(h, -1))
    await t.close(h)


@case("truncate", "directory-eisdir")
async def _(t: Ctx) -> None:
    """truncate of a directory is EISDIR."""
    await t.mkdir(b"d")
    await t.fails(errno.EISDIR, t.truncate(b"d", 0))


@case("truncate", "missing-enoent")
async def _(t: Ctx) -> None:
    """truncate of a missing file is ENOENT."""
    await t.fails(errno.ENOENT, t.truncate(b"nope", 0))


@case("truncate", "rdonly-handle")
async def _(t: Ctx) -> None:
    """ftruncate on a handle not open for writing fails (EINVAL on Linux)."""
    await t.create(b"f", b"abc")
    h = await t.open(b"f", os.O_RDONLY)
    await t.fails(errno.EINVAL, t.ftruncate(h, 1))
    await t.close(h)
    await t.stat(b"f")


@case("truncate", "through-symlink")
async def _(t: Ctx) -> None:
    """truncate follows a symlink to the file."""
    await t.create(b"f", b"abcdef")
    await t.symlink(b"f", b"l")
    await t.truncate(b"l", 2)
    await t.stat(b"f")
    await t.lstat(b"l")


@case("truncate", "shrink-while-open-reader")
async def _(t: Ctx) -> None:
    """A reader past the new end sees EOF after a shrink."""
    await t.create(b"f", b"0123456789")
    r = await t.open(b"f")
    await t.read(r, 6)
    await t.truncate(b"f", 3)
    t.check(await t.read(r, 4) == b"", "read past new EOF")
    await t.pread(r, 10, 0)
    await t.close(r)


@case("truncate", "grow-then-write-middle")
async def _(t: Ctx) -> None:
    """Data written into a grown region reads back among the zeros."""
    await t.create(b"f", b"ab")
    await t.truncate(b"f", 20)
    h = await t.open(b"f", os.O_WRONLY)
    await t.pwrite(h, b"MID", 10)
    await t.close(h)
    await t.slurp(b"f")


@case("truncate", "fifo-einval")
async def _(t: Ctx) -> None:
    """truncate of a fifo is EINVAL (only regular files have a length)."""
    await t.mkfifo(b"p")
    await t.fails(errno.EINVAL, t.truncate(b"p", 0))


@case("truncate", "shrink-then-regrow-zeroes")
async def _(t: Ctx) -> None:
    """Bytes cut by a shrink come back as zeros when the file grows again."""
    await t.create(b"f", b"secretdata")
    await t.truncate(b"f", 3)
    await t.truncate(b"f", 10)
    t.check(await t.slurp(b"f") == b"sec" + b"\0" * 7, "old bytes resurfaced")


@case("truncate", "truncate")
async def _(t: Ctx) -> None:
    """truncate and ftruncate shrink and extend; EINVAL for negative sizes and read-only handles,
    EISDIR for directories."""
    h0 = await t.open(b"f", os.O_RDWR | os.O_CREAT, 0o644)
    await t.write(h0, b"0123456789")
    await t.truncate(b"f", 4)
    await t.pread(h0, 100, 0)
    await t.truncate(b"f", 8)
    await t.pread(h0, 100, 0)
    await t.fails(errno.EINVAL, t.truncate(b"f", -1))
    await t.ftruncate(h0, 2)
    await t.fstat(h0)
    h1 = await t.open(b"f", os.O_RDONLY)
    await t.fails(errno.EINVAL, t.ftruncate(h1, 0))
    await t.mkdir(b"d", 0o755)
    await t.fails(errno.EISDIR, t.truncate(b"d", 0))
    h2 = await t.open(b"d", os.O_RDONLY)
    await t.fails(errno.EINVAL, t.ftruncate(h2, 0))
    await t.fails(errno.ENOENT, t.truncate(b"missing", 0))
