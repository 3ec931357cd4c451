"""The VFS targets behaviour cases run against (the host is `ops.HostTarget`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from vfs import Credentials, Tmpfs, VirtualFilesystem
from vfs.fs import pipefs

from .ops import VfsTarget


@asynccontextmanager
async def tmpfs_target(tmp_path: Any) -> AsyncIterator[VfsTarget]:
    v = VirtualFilesystem(Tmpfs())
    pipefs.install(v)
    ctx = v.new_context()
    await v.mkdirat(ctx, Credentials.root(), None, b"/t", 0o755)
    t = await VfsTarget(v, b"/t", "tmpfs").start()
    try:
        yield t
    finally:
        await t.close()


TARGETS = {"tmpfs": tmpfs_target}
