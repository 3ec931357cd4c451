"""Names: the 255-byte component limit, PATH_MAX, non-UTF-8 and odd bytes."""

from __future__ import annotations

import errno
import os

from ..case import Ctx, case, register
from ._util import ident


def _component(n: int, op: str):
    async def run(t: Ctx) -> None:
        name = b"n" * n
        if op == "create":
            r = await t.attempt(t.open(name, os.O_CREAT | os.O_WRONLY, 0o644))
            if not isinstance(r, OSError):
                await t.close(r)
        elif op == "mkdir":
            await t.attempt(t.mkdir(name))
        elif op == "symlink":
            await t.attempt(t.symlink(b"x", name))
        elif op == "rename":
            await t.create(b"f")
            await t.attempt(t.rename(b"f", name))
        elif op == "link":
            await t.create(b"f")
            await t.attempt(t.link(b"f", name))
        elif op == "stat":
            await t.attempt(t.stat(name))
        elif op == "mkfifo":
            await t.attempt(t.mkfifo(name))
        await t.listdir()
    return run


for _n in (255, 256):
    for _op in ("create", "mkdir", "symlink", "rename", "link", "stat", "mkfifo"):
        register("names", f"component-{_n}-{_op}", _component(_n, _op),
                 doc=f"{_op} with a {_n}-byte name (limit 255)")


def _long_path(total: int):
    async def run(t: Ctx) -> None:
        # Directories of 200-byte names, then a file name that brings the path to `total`
        # bytes (the limit is PATH_MAX = 4096 including the terminating NUL).
        comp = b"d" * 200
        path = b""
        while len(path) + len(comp) + 1 + 10 < total:
            path += comp + b"/"
            await t.target.mkdir(path)
        leaf = b"f" * (total - len(path))
        full = path + leaf
        t.check(len(full) == total, "path construction")
        r = await t.attempt(t.open(full, os.O_CREAT | os.O_WRONLY, 0o644))
        if not isinstance(r, OSError):
            await t.close(r)
            await t.stat(full)
        await t.attempt(t.stat(full))
    return run


for _len in (1000, 4000, 4094, 4095, 4096, 4097):
    register("names", f"path-length-{_len}", _long_path(_len),
             doc=f"a {_len}-byte path (PATH_MAX is 4096 with the NUL)")


@case("names", "deep-relative-beyond-path-max")
async def _(t: Ctx) -> None:
    """A tree deeper than PATH_MAX in total exists; each step is reachable relatively."""
    comp = b"e" * 250
    path = b""
    for _ in range(20):
        path += comp + b"/"
        await t.attempt(t.mkdir(path))
    t.note("total length", len(path))
    await t.attempt(t.stat(path))


def _odd(name: bytes):
    async def run(t: Ctx) -> None:
        await t.create(name, b"odd")
        t.check(await t.slurp(name) == b"odd", "content")
        await t.stat(name)
        got = await t.listdir()
        t.check(got == [name], "listing")
        await t.rename(name, name + b".2")
        await t.mkdir(name)
        await t.listdir()
        await t.unlink(name + b".2")
        await t.rmdir(name)
    return run


for _nm in (b"\xff\xfe", b"caf\xe9", b"\x80", b"\xc3\xa9", b"e\xcc\x81", b"\xf0\x9f\x98\x80",
            b"a\nb", b"\x01\x02", b"\\", b"   ", b"...", b"-rf", b"a:b", b"\x7f",
            b"\xed\xa0\x80"):
    register("names", f"odd-{ident(_nm)}", _odd(_nm), doc="a name with unusual bytes works")


@case("names", "nfc-nfd-distinct")
async def _(t: Ctx) -> None:
    """Precomposed and decomposed é are two different names."""
    await t.create(b"\xc3\xa9", b"nfc")
    await t.create(b"e\xcc\x81", b"nfd")
    await t.listdir()
    t.check(await t.slurp(b"\xc3\xa9") == b"nfc", "nfc")


@case("names", "case-sensitive")
async def _(t: Ctx) -> None:
    """Names differing only in case are different."""
    await t.create(b"Name", b"upper")
    await t.create(b"name", b"lower")
    await t.listdir()
    t.check(await t.slurp(b"Name") == b"upper", "case")


@case("names", "dot-names-reserved")
async def _(t: Ctx) -> None:
    """'.' and '..' cannot be created or removed as names."""
    await t.fails(errno.EEXIST, t.mkdir(b".."))
    await t.attempt(t.open(b"..", os.O_CREAT | os.O_WRONLY, 0o644))
    await t.attempt(t.symlink(b"x", b"."))


@case("names", "double-slashes")
async def _(t: Ctx) -> None:
    """Repeated slashes are one separator."""
    await t.mkdir(b"d")
    await t.create(b"d//f", b"x")
    await t.stat(b"d///f")
    await t.stat(b".//d//.//f")
