"""Helpers shared by case modules: building the usual kinds of objects, inspecting a name."""

from __future__ import annotations

import os

from ..case import Ctx

#: the kinds of object `make` can leave at a name
KINDS = ("missing", "file", "emptydir", "fulldir", "symlink-file", "symlink-dir", "dangling")


async def make(t: Ctx, kind: str, path: bytes, *, data: bytes = b"data") -> None:
    """Create an object of `kind` at `path` (siblings `path.tgt*` hold symlink targets)."""
    if kind == "missing":
        return
    if kind == "file":
        await t.create(path, data)
    elif kind == "emptydir":
        await t.mkdir(path)
    elif kind == "fulldir":
        await t.mkdir(path)
        await t.create(path + b"/inner", b"x")
    elif kind == "symlink-file":
        await t.create(path + b".tgt", data)
        await t.symlink(os.path.basename(path) + b".tgt", path)
    elif kind == "symlink-dir":
        await t.mkdir(path + b".tgtdir")
        await t.symlink(os.path.basename(path) + b".tgtdir", path)
    elif kind == "dangling":
        await t.symlink(b"nowhere", path)
    else:
        raise ValueError(f"unknown kind {kind!r}")


async def look(t: Ctx, *paths: bytes) -> None:
    """Record lstat of each path (or its errno) and the directory listing."""
    for p in paths:
        await t.attempt(t.lstat(p))
    await t.listdir(b".")


def ident(b: bytes) -> str:
    """A case-name-safe rendering of a path or name."""
    out = "".join(chr(c) if 32 < c < 127 and c not in b"/\\%" else f"%{c:02x}" for c in b)
    return out or "empty"


#: utimensat(2) value a case sets before checking whether an operation moved mtime (1 s).
OLD_NS = 1_000_000_000


async def mtime_moved(t: Ctx, path: bytes) -> None:
    """Record whether `path`'s mtime (not following symlinks) moved away from OLD_NS.

    The stat itself is not recorded: times differ between filesystems, the relation does not.
    """
    st = await t.target.stat(path, False)
    t.note(f"mtime of {path.decode(errors='replace')} moved", st.mtime_ns != OLD_NS)
