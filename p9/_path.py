"""A path-level layer over a root Fid, for scripts, tests and tools.

Paths are str or bytes, "/"-separated, relative to the attach root (a leading "/" is
ignored). Each call walks from the root, does its work and clunks what it walked, so no
fid outlives a call.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod

from . import _messages as m
from ._client_fid import Fid, Stat
from ._constants import AT_REMOVEDIR, GetattrMask


def split(path: str | bytes) -> list[bytes]:
    """Split a path into components, dropping empty ones and "."."""
    return [p for p in os.fsencode(path).split(b"/") if p and p != b"."]


class PathFS:
    """Path-level operations on the tree under `root` (which stays owned by the caller)."""

    def __init__(self, root: Fid) -> None:
        self.root = root

    async def walk(self, path: str | bytes) -> Fid:
        """A new Fid for `path` (the caller clunks it)."""
        return await self.root.walk(split(path))

    async def _parent(self, path: str | bytes) -> tuple[Fid, bytes]:
        parts = split(path)
        if not parts:
            raise OSError(22, f"no final component in {path!r}")
        return await self.root.walk(parts[:-1]), parts[-1]

    async def stat(self, path: str | bytes, mask: int = GetattrMask.ALL) -> Stat:
        f, st = await self.root.walk_getattr(split(path), mask)
        await f.clunk()
        return st

    async def exists(self, path: str | bytes) -> bool:
        try:
            await self.stat(path)
        except FileNotFoundError:
            return False
        return True

    async def read_file(self, path: str | bytes) -> bytes:
        async with await self.walk(path) as f:
            await f.open(os.O_RDONLY)
            out = []
            offset = 0
            step = max(f.client.iosize * 8, 1 << 20)
            while True:
                data = await f.read(offset, step)
                out.append(data)
                offset += len(data)
                if len(data) < step:
                    return b"".join(out)

    async def write_file(
        self, path: str | bytes, data: bytes, *, mode: int = 0o644, append: bool = False
    ) -> int:
        """Create or truncate `path` (or append to it) and write `data`."""
        d, name = await self._parent(path)
        async with d:
            try:
                f = await d.walk([name])
            except FileNotFoundError:
                f = await d.walk()
                try:
                    await f.create(name, os.O_WRONLY | os.O_CREAT, mode)
                except BaseException:
                    await f.clunk()
                    raise
                offset = 0
            else:
                try:
                    await f.open(os.O_WRONLY)
                    if append:
                        offset = (await f.getattr(GetattrMask.SIZE)).attr.size
                    else:
                        # Truncate with Tsetattr, as Linux's v9fs does: some servers
                        # (nfs-ganesha) ignore O_TRUNC in Tlopen.
                        await f.setattr(size=0)
                        offset = 0
                except BaseException:
                    await f.clunk()
                    raise
            async with f:
                return await f.write(offset, data)

    async def listdir(self, path: str | bytes = b"") -> list[bytes]:
        """Names in directory `path`, without "." and ".."."""
        return [e.name for e in await self.scandir(path) if e.name not in (b".", b"..")]

    async def scandir(self, path: str | bytes = b"") -> list[m.Dirent]:
        async with await self.walk(path) as f:
            await f.open(os.O_RDONLY | os.O_DIRECTORY)
            return await f.readdir_all()

    async def mkdir(self, path: str | bytes, mode: int = 0o755) -> None:
        d, name = await self._parent(path)
        async with d:
            await d.mkdir(name, mode)

    async def makedirs(self, path: str | bytes, mode: int = 0o755) -> None:
        parts = split(path)
        for i in range(1, len(parts) + 1):
            try:
                await self.mkdir(b"/".join(parts[:i]), mode)
            except FileExistsError:
                pass

    async def unlink(self, path: str | bytes) -> None:
        """unlink(2): EISDIR for a directory, checked here as Linux's VFS does.

        Why: the kernel never asks the filesystem to unlink a directory, so servers differ
        (nfs-ganesha answers ENOTEMPTY); checking the type first gives Linux's answer.
        """
        await self._remove(path, 0)

    async def rmdir(self, path: str | bytes) -> None:
        """rmdir(2): ENOTDIR for a non-directory, checked before asking the server."""
        await self._remove(path, AT_REMOVEDIR)

    async def _remove(self, path: str | bytes, flags: int) -> None:
        d, name = await self._parent(path)
        async with d:
            f, st = await d.walk_getattr([name], GetattrMask.MODE)
            await f.clunk()
            if st.is_dir and not flags & AT_REMOVEDIR:
                raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), os.fsdecode(path))
            if not st.is_dir and flags & AT_REMOVEDIR:
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), os.fsdecode(path))
            await d.unlinkat(name, flags)

    async def rename(self, old: str | bytes, new: str | bytes) -> None:
        od, oname = await self._parent(old)
        async with od:
            nd, nname = await self._parent(new)
            async with nd:
                await od.renameat(oname, nd, nname)

    async def symlink(self, target: str | bytes, path: str | bytes) -> None:
        d, name = await self._parent(path)
        async with d:
            await d.symlink(name, target)

    async def readlink(self, path: str | bytes) -> bytes:
        async with await self.walk(path) as f:
            return await f.readlink()

    async def link(self, existing: str | bytes, new: str | bytes) -> None:
        async with await self.walk(existing) as t:
            d, name = await self._parent(new)
            async with d:
                await d.link(t, name)

    async def mknod(self, path: str | bytes, mode: int, device: int = 0) -> None:
        d, name = await self._parent(path)
        async with d:
            await d.mknod(name, mode or stat_mod.S_IFREG | 0o644, os.major(device), os.minor(device))

    async def chmod(self, path: str | bytes, mode: int) -> None:
        async with await self.walk(path) as f:
            await f.setattr(mode=mode)

    async def chown(self, path: str | bytes, uid: int = -1, gid: int = -1) -> None:
        async with await self.walk(path) as f:
            await f.setattr(uid=None if uid < 0 else uid, gid=None if gid < 0 else gid)

    async def truncate(self, path: str | bytes, size: int) -> None:
        async with await self.walk(path) as f:
            await f.setattr(size=size)

    async def utime(self, path: str | bytes, ns: tuple[int, int] | None = None) -> None:
        """Set (atime, mtime) in nanoseconds, or both to now."""
        async with await self.walk(path) as f:
            if ns is None:
                await f.setattr(atime=True, mtime=True)
            else:
                await f.setattr(atime=ns[0], mtime=ns[1])

    async def statfs(self, path: str | bytes = b"") -> m.Rstatfs:
        async with await self.walk(path) as f:
            return await f.statfs()

    async def getxattr(self, path: str | bytes, name: str | bytes) -> bytes:
        async with await self.walk(path) as f:
            return await f.getxattr(name)

    async def setxattr(self, path: str | bytes, name: str | bytes, value: bytes, flags: int = 0) -> None:
        async with await self.walk(path) as f:
            await f.setxattr(name, value, flags)

    async def listxattr(self, path: str | bytes) -> list[bytes]:
        async with await self.walk(path) as f:
            return await f.listxattr()

    async def removexattr(self, path: str | bytes, name: str | bytes) -> None:
        async with await self.walk(path) as f:
            await f.removexattr(name)
