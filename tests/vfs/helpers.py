"""Filesystems the VFS tests build: a gofer exporting a fresh directory (in process, or diod),
goferfs attached to it, and the VFS kinds with a test directory `/t` in each."""

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

ROOT = Credentials.root()


def host_base() -> str | None:
    """The host's tmpfs (/dev/shm) when there is one: tests comparing filesystem-specific
    answers (directory sizes, listing order) with Linux compare with tmpfs, and exported
    directories live there too."""
    try:
        if os.stat("/dev/shm").st_mode & 0o777 == 0o777 and os.statvfs("/dev/shm").f_bsize:
            return "/dev/shm"
    except OSError:
        pass
    return None


@asynccontextmanager
async def gofer_client(tmp_path: Any, msize: int = 1 << 20) -> AsyncIterator[Any]:
    """A client connected to an in-process gofer exporting a fresh directory, which
    `tmp_path/export` names (a symlink into the host's tmpfs when there is one)."""
    from gofer.host import Export

    from ..gofer.helpers import connect, gofer_fs

    top = tmp_path / "export"
    top.mkdir()
    top.chmod(0o755)
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
async def goferfs(tmp_path: Any, policy: str = "exclusive",
                  msize: int = 1 << 20) -> AsyncIterator[Any]:
    """A GoferFS (cache `policy`) on `gofer_client`'s export."""
    from vfs.fs.goferfs import GoferFS

    async with gofer_client(tmp_path, msize) as client:
        gfs = await GoferFS.attach(client, b"e", policy=policy)
        try:
            yield gfs
        finally:
            await gfs.release()


@asynccontextmanager
async def diod_goferfs(tmp_path: Any) -> AsyncIterator[Any]:
    """A GoferFS on diod (plain 9P2000.L) exporting a fresh directory, over a unix socket."""
    import p9
    from tests.support import need_binary, need_root
    from vfs.fs.goferfs import GoferFS

    from ..p9 import peers

    diod_bin = need_binary("diod")
    need_root()
    top = tempfile.mkdtemp(prefix="runpsc-vfs-diod-", dir=host_base() or str(tmp_path))
    os.chmod(top, 0o755)
    sock = str(tmp_path / "diod.sock")
    try:
        with peers.diod(diod_bin, top, unix_path=sock):
            stream = await p9.connect_unix(sock)
            async with p9.open_client(stream, msize=65536) as client:
                gfs = await GoferFS.attach(client, top.encode())
                try:
                    yield gfs
                finally:
                    await gfs.release()
    finally:
        shutil.rmtree(top, ignore_errors=True)


#: The VFS kinds `layered` builds.
KINDS = ("tmpfs", "overlay", "goferfs", "goferfs-shared", "overlay-gofer", "goferfs-diod")


@asynccontextmanager
async def layered(kind: str, tmp_path: Any) -> AsyncIterator[tuple[VirtualFilesystem,
                                                                   VirtualFilesystem]]:
    """(the VFS of `kind`, the VFS of its lower layer), both with a directory `/t`; for a
    kind without layers the two are the same VFS. Files made through the second are
    below the overlay, so the first meets them through copy-up and whiteouts."""
    async def with_t(fs: Any) -> VirtualFilesystem:
        v = VirtualFilesystem(fs)
        pipefs.install(v)
        return v

    async def made(v: VirtualFilesystem) -> VirtualFilesystem:
        await v.mkdirat(v.new_context(), ROOT, None, b"/t", 0o755)
        return v

    if kind == "tmpfs":
        v = await made(await with_t(Tmpfs()))
        yield v, v
    elif kind == "overlay":
        lower = Tmpfs()
        base = await made(await with_t(lower))
        yield await with_t(Overlay(Tmpfs(), lower)), base
    elif kind in ("goferfs", "goferfs-shared"):
        async with goferfs(tmp_path, "shared" if kind == "goferfs-shared" else "exclusive") as g:
            v = await made(await with_t(g))
            yield v, v
    elif kind == "overlay-gofer":
        async with goferfs(tmp_path) as g:
            base = await made(await with_t(g))
            yield await with_t(Overlay(Tmpfs(), g)), base
    elif kind == "goferfs-diod":
        async with diod_goferfs(tmp_path) as g:
            v = await made(await with_t(g))
            yield v, v
    else:
        raise ValueError(f"unknown kind {kind!r}")


async def dents(fd: Any) -> list[tuple[bytes, int]]:
    """Every (name, d_type) an open directory lists from its offset on, `.` and `..` too."""
    from vfs import parse_dirents64

    out = []
    while chunk := await fd.getdents64(4096):
        out += [(name, t) for _, _, t, name in parse_dirents64(chunk)]
    return out
