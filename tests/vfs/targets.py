"""The VFS targets behaviour cases run against (the host is `ops.HostTarget`).

Each factory is an async context manager taking the pytest tmp_path and yielding an object
with the `op_*` methods of `ops.VfsTarget`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from vfs import Credentials, Tmpfs, VirtualFilesystem
from vfs.fs import pipefs
from vfs.fs.overlay import Overlay

from .ops import VfsTarget

ROOT = Credentials.root()


def host_base() -> str | None:
    """The oracle runs on the host's tmpfs when there is one (/dev/shm), so that
    filesystem-specific answers (directory sizes, seek on directories, truncate times)
    are tmpfs's; exported directories live there too."""
    try:
        if os.stat("/dev/shm").st_mode & 0o777 == 0o777 and os.statvfs("/dev/shm").f_bsize:
            return "/dev/shm"
    except OSError:
        pass
    return None


@asynccontextmanager
async def tmpfs_target(tmp_path: Any) -> AsyncIterator[VfsTarget]:
    v = VirtualFilesystem(Tmpfs())
    pipefs.install(v)
    await v.mkdirat(v.new_context(), ROOT, None, b"/t", 0o755)
    t = await VfsTarget(v, b"/t", "tmpfs").start()
    try:
        yield t
    finally:
        await t.close()


#: Steps an overlay case applies to the lower layer while the case is still setting up.
SETUP_OPS = {"mkdir", "mknod", "symlink", "link", "chmod", "chown", "setxattr", "utimens"}
BOTH_OPS = {"umask", "user", "root"}


class OverlayTarget:
    """Runs a case's leading creation steps on the lower layer, the rest through the
    overlay, so that copy-up, whiteouts, opaque dirs and merged readdir are exercised."""

    name = "overlay"

    def __init__(self, lower: VfsTarget, over: VfsTarget) -> None:
        self.lower = lower
        self.over = over
        self.setting_up = True

    def __getattr__(self, attr: str) -> Any:
        op = attr.removeprefix("op_")
        if op in BOTH_OPS:
            async def both(*args: Any) -> Any:
                await getattr(self.lower, attr)(*args)
                return await getattr(self.over, attr)(*args)

            return both
        if self.setting_up and op in SETUP_OPS:
            return getattr(self.lower, attr)
        self.setting_up = False
        return getattr(self.over, attr)


@asynccontextmanager
async def _overlay_over(lower_fs: Any) -> AsyncIterator[OverlayTarget]:
    """A tmpfs upper over `lower_fs`; set-up steps go to the lower layer directly."""
    lv = VirtualFilesystem(lower_fs)
    await lv.mkdirat(lv.new_context(), ROOT, None, b"/t", 0o755)
    lower = await VfsTarget(lv, b"/t", "lower").start()
    ov = VirtualFilesystem(Overlay(Tmpfs(), lower_fs))
    pipefs.install(ov)
    over = await VfsTarget(ov, b"/t", "overlay").start()
    try:
        yield OverlayTarget(lower, over)
    finally:
        await over.close()
        await lower.close()


@asynccontextmanager
async def overlay_target(tmp_path: Any) -> AsyncIterator[OverlayTarget]:
    async with _overlay_over(Tmpfs()) as t:
        yield t


TARGETS = {"tmpfs": tmpfs_target, "overlay": overlay_target}


@asynccontextmanager
async def _gofer_client(tmp_path: Any, msize: int = 1 << 20) -> AsyncIterator[Any]:
    """A client connected to an in-process gofer exporting a fresh directory."""
    from gofer.host import Export

    from ..gofer.helpers import connect, gofer_fs

    top = tmp_path / "export"
    top.mkdir()
    top.chmod(0o755)
    # Export from the same kind of filesystem the oracle runs on (the host's tmpfs), so
    # filesystem-specific answers agree; tmp_path/export links to it for the tests.
    base = host_base()
    real = tempfile.mkdtemp(prefix="runpsc-vfs-export-", dir=base) if base else str(top)
    if base:
        os.chmod(real, 0o755)
        top.rmdir()
        top.symlink_to(real)
    try:
        async with gofer_fs([Export("e", real)]) as (fs, nursery):
            async with connect(fs, nursery, msize=msize) as client:
                yield client
    finally:
        if base:
            shutil.rmtree(real, ignore_errors=True)


@asynccontextmanager
async def _goferfs(tmp_path: Any, policy: str, msize: int = 1 << 20) -> AsyncIterator[Any]:
    from vfs.fs.goferfs import GoferFS

    async with _gofer_client(tmp_path, msize) as client:
        gfs = await GoferFS.attach(client, b"e", policy=policy)
        try:
            yield gfs
        finally:
            await gfs.release()


@asynccontextmanager
async def goferfs_target(tmp_path: Any, policy: str = "exclusive") -> AsyncIterator[VfsTarget]:
    async with _goferfs(tmp_path, policy) as gfs:
        v = VirtualFilesystem(gfs)
        pipefs.install(v)
        await v.mkdirat(v.new_context(), ROOT, None, b"/t", 0o755)
        t = await VfsTarget(v, b"/t", "goferfs").start()
        try:
            yield t
        finally:
            await t.close()


@asynccontextmanager
async def goferfs_shared_target(tmp_path: Any) -> AsyncIterator[VfsTarget]:
    async with goferfs_target(tmp_path, "shared") as t:
        yield t


@asynccontextmanager
async def overlay_gofer_target(tmp_path: Any) -> AsyncIterator[OverlayTarget]:
    """The sandbox's default root: a tmpfs upper over a goferfs lower."""
    async with _goferfs(tmp_path, "exclusive") as gfs, _overlay_over(gfs) as t:
        yield t


TARGETS.update({
    "goferfs": goferfs_target,
    "goferfs-shared": goferfs_shared_target,
    "overlay-gofer": overlay_gofer_target,
})


@asynccontextmanager
async def goferfs_diod_target(tmp_path: Any) -> AsyncIterator[VfsTarget]:
    """goferfs against diod, the reference 9P2000.L server (plain dialect, no extensions),
    run as a separate process on a unix socket."""
    from tests.support import need_binary, need_root

    diod_bin = need_binary("diod")
    need_root()
    base = host_base()
    top = tempfile.mkdtemp(prefix="runpsc-vfs-diod-", dir=base or str(tmp_path))
    os.chmod(top, 0o755)
    sock = str(tmp_path / "diod.sock")
    try:
        async with _diod_vfs(diod_bin, top, sock) as t:
            yield t
    finally:
        shutil.rmtree(top, ignore_errors=True)


@asynccontextmanager
async def _diod_vfs(diod_bin: str, top: str, sock: str) -> AsyncIterator[VfsTarget]:
    import p9
    from vfs.fs.goferfs import GoferFS

    from ..p9 import peers

    with peers.diod(diod_bin, top, unix_path=sock):
        stream = await p9.connect_unix(sock)
        async with p9.open_client(stream, msize=65536) as client:
            gfs = await GoferFS.attach(client, top.encode())
            v = VirtualFilesystem(gfs)
            pipefs.install(v)
            await v.mkdirat(v.new_context(), ROOT, None, b"/t", 0o755)
            t = await VfsTarget(v, b"/t", "goferfs-diod").start()
            try:
                yield t
            finally:
                await t.close()
                await gfs.release()


TARGETS["goferfs-diod"] = goferfs_diod_target
