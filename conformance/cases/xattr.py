"""Extended attributes in the user namespace: set, get, list, remove, flags and limits."""

from __future__ import annotations

import errno
import os

from ..case import USER, Ctx, case, register
from ..target_api import XATTR_CREATE, XATTR_REPLACE

X = ("xattr",)


@case("xattr", "set-get", needs=X)
async def _(t: Ctx) -> None:
    """A value set reads back."""
    await t.create(b"f")
    await t.setxattr(b"f", b"user.a", b"value")
    t.check(await t.getxattr(b"f", b"user.a") == b"value", "value")


@case("xattr", "get-missing-enodata", needs=X)
async def _(t: Ctx) -> None:
    """A missing attribute is ENODATA."""
    await t.create(b"f")
    await t.fails(errno.ENODATA, t.getxattr(b"f", b"user.none"))


@case("xattr", "create-existing-eexist", needs=X)
async def _(t: Ctx) -> None:
    """XATTR_CREATE on an existing attribute is EEXIST."""
    await t.create(b"f")
    await t.setxattr(b"f", b"user.a", b"1")
    await t.fails(errno.EEXIST, t.setxattr(b"f", b"user.a", b"2", XATTR_CREATE))
    await t.getxattr(b"f", b"user.a")


@case("xattr", "replace-missing-enodata", needs=X)
async def _(t: Ctx) -> None:
    """XATTR_REPLACE on a missing attribute is ENODATA."""
    await t.create(b"f")
    await t.fails(errno.ENODATA, t.setxattr(b"f", b"user.a", b"2", XATTR_REPLACE))


@case("xattr", "replace-existing", needs=X)
async def _(t: Ctx) -> None:
    """XATTR_REPLACE replaces."""
    await t.create(b"f")
    await t.setxattr(b"f", b"user.a", b"1")
    await t.setxattr(b"f", b"user.a", b"22", XATTR_REPLACE)
    await t.getxattr(b"f", b"user.a")


@case("xattr", "list", needs=X)
async def _(t: Ctx) -> None:
    """listxattr names every attribute set."""
    await t.create(b"f")
    for n in (b"user.one", b"user.two", b"user.three"):
        await t.setxattr(b"f", n, b"v")
    await t.listxattr(b"f")


@case("xattr", "list-empty", needs=X)
async def _(t: Ctx) -> None:
    """A fresh file lists no user attributes."""
    await t.create(b"f")
    await t.listxattr(b"f")


@case("xattr", "remove", needs=X)
async def _(t: Ctx) -> None:
    """removexattr removes; a second time is ENODATA."""
    await t.create(b"f")
    await t.setxattr(b"f", b"user.a", b"1")
    await t.removexattr(b"f", b"user.a")
    await t.fails(errno.ENODATA, t.removexattr(b"f", b"user.a"))
    await t.listxattr(b"f")


def _value(label: str, value: bytes):
    async def run(t: Ctx) -> None:
        await t.create(b"f")
        await t.setxattr(b"f", b"user.v", value)
        t.check(await t.getxattr(b"f", b"user.v") == value, "value differs")
    return run


for _label, _v in {"empty": b"", "binary": bytes(range(256)), "nul-inside": b"a\0b",
                   "size-1000": b"v" * 1000, "size-4000": b"w" * 4000}.items():
    register("xattr", f"value-{_label}", _value(_label, _v), needs=X,
             doc="values read back byte for byte")


@case("xattr", "name-too-long-erange", needs=X)
async def _(t: Ctx) -> None:
    """A name longer than 255 bytes is ERANGE."""
    await t.create(b"f")
    await t.fails(errno.ERANGE, t.setxattr(b"f", b"user." + b"n" * 251, b"v"))


@case("xattr", "unknown-namespace", needs=X)
async def _(t: Ctx) -> None:
    """A name outside the known namespaces is EOPNOTSUPP."""
    await t.create(b"f")
    await t.fails(errno.EOPNOTSUPP, t.setxattr(b"f", b"bogus.a", b"v"))


@case("xattr", "on-directory", needs=X)
async def _(t: Ctx) -> None:
    """Directories carry user attributes."""
    await t.mkdir(b"d")
    await t.setxattr(b"d", b"user.d", b"dir")
    await t.getxattr(b"d", b"user.d")
    await t.listxattr(b"d")


@case("xattr", "on-symlink-eperm", needs=X)
async def _(t: Ctx) -> None:
    """user.* attributes on a symlink itself are EPERM."""
    await t.create(b"f")
    await t.symlink(b"f", b"l")
    await t.fails(errno.EPERM, t.setxattr(b"l", b"user.a", b"v"))


@case("xattr", "survives-rename", needs=X)
async def _(t: Ctx) -> None:
    """Attributes move with the file."""
    await t.create(b"f")
    await t.setxattr(b"f", b"user.a", b"moved")
    await t.rename(b"f", b"g")
    await t.getxattr(b"g", b"user.a")


@case("xattr", "shared-by-hardlinks", needs=X)
async def _(t: Ctx) -> None:
    """Attributes belong to the inode, so every link shows them."""
    await t.create(b"f")
    await t.link(b"f", b"g")
    await t.setxattr(b"f", b"user.a", b"shared")
    await t.getxattr(b"g", b"user.a")


@case("xattr", "missing-file-enoent", needs=X)
async def _(t: Ctx) -> None:
    """Attributes of a missing file are ENOENT."""
    await t.fails(errno.ENOENT, t.getxattr(b"nope", b"user.a"))
    await t.fails(errno.ENOENT, t.setxattr(b"nope", b"user.a", b"v"))


@case("xattr", "needs-write-permission", needs=("xattr", "unpriv"))
async def _(t: Ctx) -> None:
    """Setting a user attribute needs write permission; reading needs read permission."""
    await t.create(b"f")
    await t.chmod(b"f", 0o644)
    await t.setxattr(b"f", b"user.a", b"v")
    u = t.as_user(USER)
    await u.fails(errno.EACCES, u.setxattr(b"f", b"user.b", b"v"))
    await u.getxattr(b"f", b"user.a")
    await t.chmod(b"f", 0o600)
    await u.fails(errno.EACCES, u.getxattr(b"f", b"user.a"))


@case("xattr", "many", needs=X)
async def _(t: Ctx) -> None:
    """Twenty attributes on one file all list and read back."""
    await t.create(b"f")
    for i in range(20):
        await t.setxattr(b"f", b"user.k%02d" % i, b"v%d" % i)
    await t.listxattr(b"f")
    for i in range(0, 20, 5):
        await t.getxattr(b"f", b"user.k%02d" % i)


@case("xattr", "user-xattrs", needs=("xattr",))
async def _(t: Ctx) -> None:
    """user.* xattrs: get, set, XATTR_CREATE, XATTR_REPLACE, empty values, list, remove, unknown
    namespaces, symlinks."""
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.fails(errno.ENODATA, t.getxattr(b"f", b"user.a"))
    await t.setxattr(b"f", b"user.a", b"1")
    await t.getxattr(b"f", b"user.a")
    await t.fails(errno.EEXIST, t.setxattr(b"f", b"user.a", b"2", XATTR_CREATE))
    await t.fails(errno.ENODATA, t.setxattr(b"f", b"user.b", b"2", XATTR_REPLACE))
    await t.setxattr(b"f", b"user.b", b"", XATTR_CREATE)
    await t.listxattr(b"f")
    await t.removexattr(b"f", b"user.a")
    await t.fails(errno.ENODATA, t.removexattr(b"f", b"user.a"))
    await t.listxattr(b"f")
    await t.fails(errno.EOPNOTSUPP, t.setxattr(b"f", b"bogus.a", b"1"))
    await t.symlink(b"f", b"l")
    await t.fails(errno.EPERM, t.setxattr(b"l", b"user.x", b"1"))
