"""Two callers renaming, linking and unlinking in one directory at the same time: whatever
the interleaving, the tree stays consistent (invariants checked after a randomized run),
and on goferfs the VFS's view equals the host directory the gofer serves."""

from __future__ import annotations

import errno
import os
import random

import pytest
import trio

from vfs import Credentials, parse_dirents64
from vfs.abi import O_CREAT, O_DIRECTORY, O_RDONLY, O_WRONLY

from .helpers import layered

C = Credentials.root()
NAMES = [b"n%d" % i for i in range(6)]
STEPS = int(os.environ.get("VFS_CONCURRENCY_STEPS", "150"))
EXPECTED = {errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR,
            errno.EINVAL, errno.EBUSY, errno.EPERM}


async def caller(v, ctx, seed: int, steps: int) -> dict[str, int]:
    rng = random.Random(seed)
    stats: dict[str, int] = {}
    for _ in range(steps):
        a, b = rng.choice(NAMES), rng.choice(NAMES)
        op = rng.choice(["create", "mkdir", "rename", "rename", "unlink", "rmdir", "link",
                         "exchange"])
        try:
            if op == "create":
                fd = await v.open(ctx, C, None, b"/t/d/" + a, O_CREAT | O_WRONLY, 0o644)
                await fd.write(a)
                await fd.dec_ref()
            elif op == "mkdir":
                await v.mkdirat(ctx, C, None, b"/t/d/" + a, 0o755)
            elif op == "rename":
                await v.renameat2(ctx, C, None, b"/t/d/" + a, None, b"/t/d/" + b)
            elif op == "exchange":
                await v.renameat2(ctx, C, None, b"/t/d/" + a, None, b"/t/d/" + b, 2)
            elif op == "unlink":
                await v.unlinkat(ctx, C, None, b"/t/d/" + a)
            elif op == "rmdir":
                await v.unlinkat(ctx, C, None, b"/t/d/" + a, 0x200)
            elif op == "link":
                await v.linkat(ctx, C, None, b"/t/d/" + a, None, b"/t/d/" + b)
            stats[op] = stats.get(op, 0) + 1
        except OSError as e:
            assert e.errno in EXPECTED, (op, a, b, e)
            stats["E" + errno.errorcode[e.errno]] = stats.get("E" + errno.errorcode[e.errno], 0) + 1
        await trio.sleep(0)
    return stats


async def listing(v, ctx, path: bytes) -> dict[bytes, int]:
    fd = await v.open(ctx, C, None, path, O_RDONLY | O_DIRECTORY)
    out = {}
    while chunk := await fd.getdents64(4096):
        for _, _, t, name in parse_dirents64(chunk):
            if name not in (b".", b".."):
                out[name] = t
    await fd.dec_ref()
    return out


@pytest.mark.parametrize("target", ["tmpfs", "overlay", "goferfs", "overlay-gofer"])
async def test_concurrent_renames_keep_tree_consistent(target: str, tmp_path) -> None:
    async with layered(target, tmp_path) as (v, base):
        ctx = v.new_context()
        # Start from a populated directory; for the overlay it is in the lower layer, so
        # the callers race through copy-ups and whiteouts too.
        bctx = base.new_context()
        await base.mkdirat(bctx, C, None, b"/t/d", 0o755)
        for name in NAMES[:2]:
            fd = await base.open(bctx, C, None, b"/t/d/" + name, O_CREAT | O_WRONLY, 0o644)
            await fd.write(name)
            await fd.dec_ref()
        await base.mkdirat(bctx, C, None, b"/t/d/" + NAMES[2], 0o755)
        results = []

        async def run(seed: int) -> None:
            results.append(await caller(v, ctx, seed, STEPS))

        async with trio.open_nursery() as n:
            n.start_soon(run, 1)
            n.start_soon(run, 2)
        assert sum(sum(r.values()) for r in results) == 2 * STEPS
        names = await listing(v, ctx, b"/t/d")
        subdirs = 0
        for name, dtype in names.items():
            st = await v.stat(ctx, C, None, b"/t/d/" + name, 0x100)
            assert (st.mode >> 12) & 0xF == dtype, name
            if st.is_dir():
                subdirs += 1
                assert await listing(v, ctx, b"/t/d/" + name) == {}
            else:
                # every file still holds what its creator wrote (some name of NAMES)
                fd = await v.open(ctx, C, None, b"/t/d/" + name, O_RDONLY)
                assert await fd.read(10) in NAMES
                await fd.dec_ref()
        for name in set(NAMES) - set(names):
            with pytest.raises(FileNotFoundError):
                await v.stat(ctx, C, None, b"/t/d/" + name)
        st = await v.stat(ctx, C, None, b"/t/d")
        assert st.nlink == 2 + subdirs
        if target == "goferfs":
            host = tmp_path / "export" / "t" / "d"
            assert sorted(os.fsencode(n) for n in os.listdir(host)) == sorted(names)
