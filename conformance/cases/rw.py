"""read/write/pread/pwrite/lseek: data at, before and beyond EOF, O_APPEND, sizes that
cross page and message boundaries."""

from __future__ import annotations

import errno
import os

from ..case import Ctx, case, register


def _pattern(n: int) -> bytes:
    return bytes((i * 7 + i // 251) & 0xFF for i in range(n))


def _roundtrip(n: int):
    async def run(t: Ctx) -> None:
        data = _pattern(n)
        h = await t.open(b"f", os.O_CREAT | os.O_RDWR, 0o644)
        written = 0
        while written < n:
            written += await t.write(h, data[written:])
        await t.lseek(h, 0, os.SEEK_SET)
        back = b""
        while chunk := await t.read(h, 1 << 20):
            back += chunk
        t.check(back == data, "data differs")
        t.note("read back", back)
        await t.fstat(h)
        await t.close(h)
    return run


for _n in (0, 1, 4095, 4096, 4097, 65536, 65537, 200_000, 1 << 20):
    register("rw", f"roundtrip-{_n}", _roundtrip(_n), doc=f"{_n} bytes written read back")


def _pwrite_beyond(off: int):
    async def run(t: Ctx) -> None:
        await t.create(b"f", b"head")
        h = await t.open(b"f", os.O_RDWR)
        await t.pwrite(h, b"tail", off)
        st = await t.fstat(h)
        t.check(st.size == max(4, off + 4), "size")
        gap = await t.pread(h, max(0, off - 4), 4)
        t.check(gap == b"\0" * max(0, off - 4), "gap not zero")
        await t.pread(h, 8, off)
        await t.close(h)
    return run


for _off in (0, 2, 4, 5, 4096, 65536, 1 << 20):
    register("rw", f"pwrite-at-{_off}", _pwrite_beyond(_off), doc="pwrite at/beyond EOF")


def _pread_at(off: int, n: int):
    async def run(t: Ctx) -> None:
        await t.create(b"f", b"0123456789")
        h = await t.open(b"f")
        await t.pread(h, n, off)
        await t.read(h, 3)
        await t.close(h)
    return run


for _off, _n in ((0, 10), (0, 100), (5, 3), (9, 5), (10, 1), (11, 1), (1 << 20, 10), (3, 0)):
    register("rw", f"pread-{_n}-at-{_off}", _pread_at(_off, _n),
             doc="pread returns what exists, nothing at/after EOF, offset unchanged")


@case("rw", "read-sequential-eof")
async def _(t: Ctx) -> None:
    """Sequential reads advance and end with an empty read."""
    await t.create(b"f", b"abcdef")
    h = await t.open(b"f")
    for _ in range(4):
        await t.read(h, 4)
    await t.close(h)


@case("rw", "append-ignores-seek")
async def _(t: Ctx) -> None:
    """O_APPEND writes land at the end even after lseek(0)."""
    await t.create(b"f", b"abc")
    h = await t.open(b"f", os.O_WRONLY | os.O_APPEND)
    await t.lseek(h, 0, os.SEEK_SET)
    await t.write(h, b"XY")
    t.note("offset", await t.lseek(h, 0, os.SEEK_CUR))
    await t.close(h)
    t.check(await t.slurp(b"f") == b"abcXY", "append did not append")


@case("rw", "append-pwrite-appends")
async def _(t: Ctx) -> None:
    """On Linux, pwrite on an O_APPEND handle appends regardless of the offset (BUGS, pwrite(2))."""
    await t.create(b"f", b"abc")
    h = await t.open(b"f", os.O_RDWR | os.O_APPEND)
    await t.pwrite(h, b"Z", 0)
    await t.close(h)
    await t.slurp(b"f")


@case("rw", "append-two-handles")
async def _(t: Ctx) -> None:
    """Two O_APPEND handles interleave without overwriting each other."""
    await t.create(b"f")
    a = await t.open(b"f", os.O_WRONLY | os.O_APPEND)
    b = await t.open(b"f", os.O_WRONLY | os.O_APPEND)
    for i in range(3):
        await t.write(a, b"a%d" % i)
        await t.write(b, b"b%d" % i)
    await t.close(a)
    await t.close(b)
    t.check(await t.slurp(b"f") == b"a0b0a1b1a2b2", "appends lost")


@case("rw", "overwrite-middle")
async def _(t: Ctx) -> None:
    """A write in the middle replaces bytes without changing the size."""
    await t.create(b"f", b"0123456789")
    h = await t.open(b"f", os.O_WRONLY)
    await t.lseek(h, 3, os.SEEK_SET)
    await t.write(h, b"abc")
    await t.close(h)
    t.check(await t.slurp(b"f") == b"012abc6789", "overwrite")
    await t.stat(b"f")


@case("rw", "lseek-whence")
async def _(t: Ctx) -> None:
    """SEEK_SET, SEEK_CUR and SEEK_END give Linux's offsets; beyond EOF is allowed."""
    await t.create(b"f", b"0123456789")
    h = await t.open(b"f")
    await t.lseek(h, 4, os.SEEK_SET)
    await t.lseek(h, 2, os.SEEK_CUR)
    await t.lseek(h, -3, os.SEEK_END)
    await t.read(h, 10)
    await t.lseek(h, 100, os.SEEK_END)
    await t.read(h, 10)
    await t.close(h)


@case("rw", "lseek-negative-einval")
async def _(t: Ctx) -> None:
    """A resulting negative offset is EINVAL and leaves the offset alone."""
    await t.create(b"f", b"0123")
    h = await t.open(b"f")
    await t.read(h, 2)
    await t.fails(errno.EINVAL, t.lseek(h, -1, os.SEEK_SET))
    await t.fails(errno.EINVAL, t.lseek(h, -10, os.SEEK_END))
    await t.read(h, 2)
    await t.close(h)


@case("rw", "write-beyond-eof-after-seek")
async def _(t: Ctx) -> None:
    """Writing after seeking past EOF leaves a zero-filled gap."""
    await t.create(b"f", b"ab")
    h = await t.open(b"f", os.O_RDWR)
    await t.lseek(h, 10, os.SEEK_SET)
    await t.write(h, b"cd")
    await t.close(h)
    t.check(await t.slurp(b"f") == b"ab" + b"\0" * 8 + b"cd", "gap")


@case("rw", "zero-length-write")
async def _(t: Ctx) -> None:
    """A zero-length write returns 0 and changes nothing."""
    await t.create(b"f", b"ab")
    h = await t.open(b"f", os.O_WRONLY)
    await t.write(h, b"")
    await t.close(h)
    await t.stat(b"f")


@case("rw", "two-handles-see-writes")
async def _(t: Ctx) -> None:
    """A write through one handle is visible to a read through another at once."""
    await t.create(b"f")
    w = await t.open(b"f", os.O_WRONLY)
    r = await t.open(b"f", os.O_RDONLY)
    await t.write(w, b"hello")
    t.check(await t.read(r, 10) == b"hello", "not visible")
    await t.pwrite(w, b"J", 0)
    t.check(await t.pread(r, 10, 0) == b"Jello", "overwrite not visible")
    await t.close(w)
    await t.close(r)


@case("rw", "fstat-size-follows-writes")
async def _(t: Ctx) -> None:
    """fstat's size follows writes on the same handle."""
    h = await t.open(b"f", os.O_CREAT | os.O_WRONLY, 0o644)
    for chunk in (b"a", b"bb", b"ccc"):
        await t.write(h, chunk)
        await t.fstat(h)
    await t.fsync(h)
    await t.close(h)


@case("rw", "rdwr-read-after-write")
async def _(t: Ctx) -> None:
    """On one O_RDWR handle, reading continues from where writing stopped."""
    await t.create(b"f", b"0123456789")
    h = await t.open(b"f", os.O_RDWR)
    await t.write(h, b"ab")
    t.check(await t.read(h, 3) == b"234", "offset")
    await t.close(h)


@case("rw", "pread-pwrite-keep-offset")
async def _(t: Ctx) -> None:
    """pread and pwrite leave the handle's offset where it was."""
    await t.create(b"f", b"0123456789")
    h = await t.open(b"f", os.O_RDWR)
    await t.read(h, 2)
    await t.pwrite(h, b"XX", 6)
    await t.pread(h, 4, 5)
    t.check(await t.read(h, 2) == b"23", "offset moved")
    await t.close(h)


@case("rw", "pread-negative-einval")
async def _(t: Ctx) -> None:
    """A negative pread offset is EINVAL."""
    await t.create(b"f", b"0123")
    h = await t.open(b"f")
    await t.fails(errno.EINVAL, t.pread(h, 1, -1))
    await t.close(h)


@case("rw", "read-write-seek")
async def _(t: Ctx) -> None:
    """read, write, lseek and pread/pwrite share or ignore the offset as Linux does; bad offsets
    and whence are EINVAL."""
    h0 = await t.open(b"f", os.O_RDWR | os.O_CREAT, 0o644)
    await t.write(h0, b"hello")
    await t.read(h0, 10)
    await t.lseek(h0, 0, os.SEEK_CUR)
    await t.lseek(h0, 1, os.SEEK_SET)
    await t.read(h0, 2)
    await t.write(h0, b"XY")
    await t.pread(h0, 100, 0)
    await t.pwrite(h0, b"Z", 10)
    await t.pread(h0, 100, 0)
    await t.fails(errno.EINVAL, t.pread(h0, 10, -1))
    await t.read(h0, 0)
    await t.fails(errno.EINVAL, t.lseek(h0, 0, 7))
    await t.fstat(h0)


@case("rw", "append")
async def _(t: Ctx) -> None:
    """O_APPEND writes at the end whatever the offset, pwrite included."""
    h0 = await t.open(b"f", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    await t.write(h0, b"one")
    await t.lseek(h0, 0, os.SEEK_SET)
    await t.write(h0, b"two")
    await t.pwrite(h0, b"3", 0)
    h1 = await t.open(b"f", os.O_RDONLY)
    await t.read(h1, 100)


@case("rw", "large-unaligned")
async def _(t: Ctx) -> None:
    """Large writes and reads at unaligned offsets across page and message boundaries, after
    reopening too."""
    h0 = await t.open(b"f", os.O_RDWR | os.O_CREAT, 0o644)
    await t.pwrite(h0, bytes(range(256)) * 300, 60000)
    await t.pwrite(h0, b"middle", 65530)
    await t.pread(h0, 20, 65525)
    await t.pread(h0, 100, 136750)
    await t.fstat(h0)
    await t.close(h0)
    h1 = await t.open(b"f", os.O_RDONLY)
    await t.pread(h1, 7000, 131000)
    await t.fstat(h1)


@case("rw", "rename-over-open-file")
async def _(t: Ctx) -> None:
    """A file replaced by rename stays readable through the handle that had it open."""
    h0 = await t.open(b"a", os.O_RDWR | os.O_CREAT, 0o644)
    await t.write(h0, b"old contents")
    h1 = await t.open(b"b", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.write(h1, b"new")
    await t.close(h1)
    await t.rename(b"b", b"a")
    await t.pread(h0, 100, 0)
    h2 = await t.open(b"a", os.O_RDONLY)
    await t.read(h2, 100)
    await t.fstat(h0)
