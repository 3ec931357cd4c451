"""Sparse files: holes read as zeros wherever they come from."""

from __future__ import annotations

import errno
import os

from ..case import Ctx, case, register


def _hole(offsets: tuple[int, ...]):
    async def run(t: Ctx) -> None:
        h = await t.open(b"f", os.O_CREAT | os.O_RDWR, 0o644)
        for off in offsets:
            await t.pwrite(h, b"X" * 16, off)
        st = await t.fstat(h)
        t.check(st.size == max(offsets) + 16, "size")
        content = await t.pread(h, st.size + 10, 0)
        want = bytearray(st.size)
        for off in offsets:
            want[off:off + 16] = b"X" * 16
        t.check(content == bytes(want), "holes are not zero")
        t.note("content", content)
        await t.close(h)
    return run


for _name, _offs in {
    "tail-at-1m": (1 << 20,),
    "head-and-tail": (0, 1 << 20),
    "page-aligned": (0, 4096, 3 * 4096),
    "unaligned": (5, 10_000, 70_001),
    "far-8m": (8 << 20,),
    "descending": (50_000, 20_000, 100),
}.items():
    register("sparse", _name, _hole(_offs), doc="writes at scattered offsets leave zero holes")


@case("sparse", "truncate-grow-hole")
async def _(t: Ctx) -> None:
    """A file grown by truncate reads as zeros and keeps its head."""
    await t.create(b"f", b"head")
    await t.truncate(b"f", 1 << 20)
    h = await t.open(b"f")
    await t.pread(h, 8, 0)
    await t.pread(h, 8, 500_000)
    await t.pread(h, 8, (1 << 20) - 4)
    await t.close(h)


@case("sparse", "hole-read-across-boundary")
async def _(t: Ctx) -> None:
    """A read spanning data, hole and data returns all three."""
    h = await t.open(b"f", os.O_CREAT | os.O_RDWR, 0o644)
    await t.pwrite(h, b"A" * 10, 4090)
    await t.pwrite(h, b"B" * 10, 8200)
    await t.pread(h, 5000, 4085)
    await t.close(h)


@case("sparse", "fill-hole")
async def _(t: Ctx) -> None:
    """Writing into a hole leaves the rest of the hole zero."""
    h = await t.open(b"f", os.O_CREAT | os.O_RDWR, 0o644)
    await t.pwrite(h, b"end", 100_000)
    await t.pwrite(h, b"mid", 50_000)
    await t.pread(h, 6, 49_997)
    await t.pread(h, 6, 50_003)
    await t.close(h)


@case("sparse", "sparse-extend")
async def _(t: Ctx) -> None:
    """A write past the end leaves a hole that reads as zeros; SEEK_END, negative offsets and a bad
    whence."""
    h0 = await t.open(b"f", os.O_RDWR | os.O_CREAT, 0o644)
    await t.pwrite(h0, b"end", 100000)
    await t.fstat(h0)
    await t.pread(h0, 4, 99998)
    await t.lseek(h0, 0, os.SEEK_END)
    await t.lseek(h0, -3, os.SEEK_END)
    await t.read(h0, 10)
    await t.fails(errno.EINVAL, t.lseek(h0, -1, os.SEEK_SET))
    await t.fails(errno.EINVAL, t.lseek(h0, 5, 9))


@case("sparse", "sparse-seek-data-hole")
async def _(t: Ctx) -> None:
    """SEEK_DATA and SEEK_HOLE around a hole and past the end (ENXIO)."""
    h0 = await t.open(b"f", os.O_RDWR | os.O_CREAT, 0o644)
    await t.pwrite(h0, b"x", 1048576)
    await t.lseek(h0, 0, os.SEEK_DATA)
    await t.lseek(h0, 0, os.SEEK_HOLE)
    await t.fails(errno.ENXIO, t.lseek(h0, 1048577, os.SEEK_DATA))
    await t.fails(errno.ENXIO, t.lseek(h0, 5242880, os.SEEK_HOLE))


@case("sparse", "fallocate", needs=("fallocate",))
async def _(t: Ctx) -> None:
    """fallocate: allocate (growing the size), KEEP_SIZE, punching a hole, bad arguments, a read-
    only handle."""
    h0 = await t.open(b"f", os.O_RDWR | os.O_CREAT, 0o644)
    await t.write(h0, b"y" * 10000)
    await t.fallocate(h0, 0, 0, 20000)
    await t.fstat(h0)
    await t.fallocate(h0, 1, 0, 50000)
    await t.fstat(h0)
    await t.fallocate(h0, 3, 4096, 4096)
    await t.pread(h0, 8, 4092)
    await t.pread(h0, 4, 8190)
    await t.fstat(h0)
    await t.fails(errno.EOPNOTSUPP, t.fallocate(h0, 2, 0, 10))
    await t.fails(errno.EINVAL, t.fallocate(h0, 0, -1, 10))
    await t.fails(errno.EINVAL, t.fallocate(h0, 0, 0, 0))
    h1 = await t.open(b"f", os.O_RDONLY)
    await t.fails(errno.EBADF, t.fallocate(h1, 0, 0, 10))
