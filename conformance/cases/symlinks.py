"""symlink(2)/readlink(2) and resolution: relative, absolute, dangling, loops, in the
middle of a path, and O_NOFOLLOW."""

from __future__ import annotations

import errno
import os

from ..case import Ctx, case, register


@case("symlinks", "relative")
async def _(t: Ctx) -> None:
    """A relative symlink resolves against its own directory."""
    await t.mkdir(b"d")
    await t.create(b"d/f", b"rel")
    await t.symlink(b"f", b"d/l")
    t.check(await t.slurp(b"d/l") == b"rel", "relative")
    await t.lstat(b"d/l")
    await t.readlink(b"d/l")


@case("symlinks", "absolute")
async def _(t: Ctx) -> None:
    """An absolute symlink resolves from the root."""
    await t.create(b"f", b"abs")
    await t.symlink(t.target.abspath(b"f"), b"l")
    t.check(await t.slurp(b"l") == b"abs", "absolute")
    await t.readlink(b"l")


@case("symlinks", "dangling")
async def _(t: Ctx) -> None:
    """A dangling symlink: lstat works, stat and open fail ENOENT."""
    await t.symlink(b"nowhere", b"l")
    await t.lstat(b"l")
    await t.fails(errno.ENOENT, t.stat(b"l"))
    await t.fails(errno.ENOENT, t.open(b"l"))


@case("symlinks", "self-loop-eloop")
async def _(t: Ctx) -> None:
    """A link to itself is ELOOP."""
    await t.symlink(b"l", b"l")
    await t.fails(errno.ELOOP, t.stat(b"l"))
    await t.fails(errno.ELOOP, t.open(b"l"))


@case("symlinks", "two-loop-eloop")
async def _(t: Ctx) -> None:
    """Two links pointing at each other are ELOOP."""
    await t.symlink(b"b", b"a")
    await t.symlink(b"a", b"b")
    await t.fails(errno.ELOOP, t.stat(b"a"))
    await t.fails(errno.ELOOP, t.open(b"a/x", os.O_CREAT | os.O_WRONLY))


def _chain(n: int):
    async def run(t: Ctx) -> None:
        await t.create(b"f", b"end")
        prev = b"f"
        for i in range(n):
            name = b"l%d" % i
            await t.symlink(prev, name)
            prev = name
        await t.attempt(t.stat(prev))
        await t.attempt(t.slurp(prev))
    return run


for _n in (1, 8, 39, 40, 41):
    register("symlinks", f"chain-{_n}", _chain(_n), doc="Linux follows at most 40 links")


@case("symlinks", "middle-of-path")
async def _(t: Ctx) -> None:
    """A symlink to a directory in the middle of a path is followed."""
    await t.mkdir(b"real")
    await t.create(b"real/f", b"mid")
    await t.symlink(b"real", b"l")
    t.check(await t.slurp(b"l/f") == b"mid", "middle")
    await t.create(b"l/g", b"new")
    await t.listdir(b"real")


@case("symlinks", "middle-to-file-enotdir")
async def _(t: Ctx) -> None:
    """A symlink to a file in the middle of a path is ENOTDIR."""
    await t.create(b"f")
    await t.symlink(b"f", b"l")
    await t.fails(errno.ENOTDIR, t.stat(b"l/x"))


@case("symlinks", "middle-dangling-enoent")
async def _(t: Ctx) -> None:
    """A dangling symlink in the middle of a path is ENOENT."""
    await t.symlink(b"nowhere", b"l")
    await t.fails(errno.ENOENT, t.stat(b"l/x"))


@case("symlinks", "nofollow-eloop")
async def _(t: Ctx) -> None:
    """O_NOFOLLOW on a final symlink is ELOOP; earlier components are still followed."""
    await t.mkdir(b"d")
    await t.create(b"d/f", b"x")
    await t.symlink(b"d", b"ld")
    await t.symlink(b"f", b"d/lf")
    await t.fails(errno.ELOOP, t.open(b"ld/lf", os.O_RDONLY | os.O_NOFOLLOW))
    h = await t.open(b"ld/f", os.O_RDONLY | os.O_NOFOLLOW)
    await t.close(h)


@case("symlinks", "readlink-not-link-einval")
async def _(t: Ctx) -> None:
    """readlink of a non-symlink is EINVAL."""
    await t.create(b"f")
    await t.mkdir(b"d")
    await t.fails(errno.EINVAL, t.readlink(b"f"))
    await t.fails(errno.EINVAL, t.readlink(b"d"))
    await t.fails(errno.ENOENT, t.readlink(b"nope"))


def _content(target: bytes, label: str):
    async def run(t: Ctx) -> None:
        await t.symlink(target, b"l")
        got = await t.readlink(b"l")
        t.check(got == target, "readlink differs")
        st = await t.lstat(b"l")
        t.check(st.size == len(target), "size is not the target length")
    return run


for _label, _tgt in {
    "short": b"x",
    "dots": b"../..",
    "spaces": b"a b  c",
    "non-utf8": b"\xff\xfe\x80",
    "trailing-slash": b"dir/",
    "long-1000": b"a/" * 500,
    "long-4095": b"b" * 4095,
    "newline": b"a\nb",
}.items():
    register("symlinks", f"content-{_label}", _content(_tgt, _label),
             doc="readlink returns the target byte for byte; lstat size is its length")


@case("symlinks", "empty-target-enoent")
async def _(t: Ctx) -> None:
    """An empty symlink target is ENOENT."""
    await t.fails(errno.ENOENT, t.symlink(b"", b"l"))


@case("symlinks", "too-long-target")
async def _(t: Ctx) -> None:
    """A target of PATH_MAX bytes or more is ENAMETOOLONG."""
    await t.fails(errno.ENAMETOOLONG, t.symlink(b"c" * 4096, b"l"))


@case("symlinks", "exists-eexist")
async def _(t: Ctx) -> None:
    """symlink onto an existing name is EEXIST, even onto a dangling link."""
    await t.create(b"f")
    await t.fails(errno.EEXIST, t.symlink(b"x", b"f"))
    await t.symlink(b"nowhere", b"l")
    await t.fails(errno.EEXIST, t.symlink(b"x", b"l"))


@case("symlinks", "trailing-slash-follows")
async def _(t: Ctx) -> None:
    """'l/' of a symlink to a directory names the directory."""
    await t.mkdir(b"d")
    await t.symlink(b"d", b"l")
    st = await t.lstat(b"l/")
    t.check(st.kind == "dir", "l/ is not the directory")


@case("symlinks", "to-dotdot")
async def _(t: Ctx) -> None:
    """A link to '..' from a subdirectory names the parent."""
    await t.mkdir(b"d")
    await t.create(b"f", b"up")
    await t.symlink(b"..", b"d/up")
    t.check(await t.slurp(b"d/up/f") == b"up", "..")


@case("symlinks", "chmod-follows")
async def _(t: Ctx) -> None:
    """chmod through a symlink changes the target; the link stays 0777."""
    await t.create(b"f", mode=0o644)
    await t.symlink(b"f", b"l")
    await t.chmod(b"l", 0o600)
    await t.lstat(b"f")
    await t.lstat(b"l")


@case("symlinks", "lchown")
async def _(t: Ctx) -> None:
    """lchown changes the symlink's owner and not the target's."""
    await t.create(b"f")
    await t.symlink(b"f", b"l")
    await t.chown(b"l", 1000, 1000, follow=False)
    await t.lstat(b"l")
    await t.lstat(b"f")


@case("symlinks", "mkdir-through-dangling")
async def _(t: Ctx) -> None:
    """mkdir does not follow a final symlink: EEXIST."""
    await t.symlink(b"nowhere", b"l")
    await t.fails(errno.EEXIST, t.mkdir(b"l"))


@case("symlinks", "in-subdir-absolute-to-dir")
async def _(t: Ctx) -> None:
    """An absolute link to a directory works in the middle of a path."""
    await t.mkdir(b"d")
    await t.create(b"d/f", b"abs-mid")
    await t.symlink(t.target.abspath(b"d"), b"l")
    t.check(await t.slurp(b"l/f") == b"abs-mid", "abs mid")
    await t.listdir(b"l")


@case("symlinks", "perm-0777")
async def _(t: Ctx) -> None:
    """A symlink's own mode is 0777 regardless of the umask."""
    t.umask(0o077)
    await t.symlink(b"x", b"l")
    st = await t.lstat(b"l")
    t.check(st.perm == 0o777, f"symlink mode {st.perm:o}")


@case("symlinks", "symlink-basic")
async def _(t: Ctx) -> None:
    """symlink: content and size, EEXIST, empty target ENOENT, trailing slash ENOENT, readlink of a
    non-symlink EINVAL."""
    await t.symlink(b"somewhere/else", b"l")
    await t.lstat(b"l")
    await t.readlink(b"l")
    await t.fails(errno.EEXIST, t.symlink(b"x", b"l"))
    await t.fails(errno.ENOENT, t.symlink(b"", b"empty"))
    await t.fails(errno.ENOENT, t.symlink(b"x", b"newdir/"))
    await t.fails(errno.ENOENT, t.readlink(b"missing"))
    await t.mkdir(b"d", 0o755)
    await t.fails(errno.EINVAL, t.readlink(b"d"))
    await t.fails(errno.ENOENT, t.stat(b"l"))


@case("symlinks", "symlink-then-dotdot", needs=("access",))
async def _(t: Ctx) -> None:
    """'..' after a symlink to a directory is the target's parent; mkdir over symlinks (even
    dangling) is EEXIST; access with and without following."""
    await t.mkdir(b"d", 0o755)
    await t.mkdir(b"d/e", 0o755)
    await t.open(b"d/marker", os.O_WRONLY | os.O_CREAT, 0o600)
    await t.symlink(b"d/e", b"l")
    await t.stat(b"l/../marker")
    await t.stat(b"l/..")
    await t.fails(errno.EINVAL, t.readlink(b"l/"))
    await t.fails(errno.EEXIST, t.mkdir(b"l", 0o755))
    await t.fails(errno.EEXIST, t.mkdir(b"l/", 0o755))
    await t.symlink(b"nowhere", b"dangling")
    await t.fails(errno.EEXIST, t.mkdir(b"dangling", 0o755))
    await t.fails(errno.EEXIST, t.mkdir(b"dangling/", 0o755))
    await t.lstat(b"dangling")
    await t.fails(errno.ENOENT, t.access(b"dangling", 0))
    await t.access(b"dangling", 0, follow=False)
    await t.fails(errno.ENOTDIR, t.unlink(b"l/"))
    await t.fails(errno.EISDIR, t.open(b"d/.", os.O_WRONLY))
    await t.open(b"d/..", os.O_RDONLY)


@case("symlinks", "nofollow-chown-utimens-on-symlink")
async def _(t: Ctx) -> None:
    """utimensat and lchown without following change the symlink itself; chown follows it."""
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.symlink(b"f", b"l")
    await t.utimens(b"l", 5_000_000_000, 6_000_000_000, follow=False)
    await t.lstat(b"l")
    await t.chown(b"l", 3, 4, follow=False)
    await t.lstat(b"l")
    await t.stat(b"l")
    await t.chown(b"l", 5, 6)
    await t.stat(b"f")
    await t.lstat(b"l")
