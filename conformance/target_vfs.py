"""`vfs:tmpfs`, `vfs:overlay` — the Sentry's VFS, in process.

Why: the VFS is where runpsc implements Linux's path resolution, permission checks and
file semantics for every filesystem; running the cases against it directly (no Sentry, no
sandboxed program) shows where it departs from the kernel, one operation at a time.

Each case gets its own `FSContext` (so its umask is its own) whose working directory is the
case directory; identities are `vfs.Credentials` (an unprivileged user has no capabilities
and exactly the supplementary groups the case asks for).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import trio

import p9
from vfs import (
    Credentials,
    FileDescription,
    Filesystem,
    FSContext,
    Tmpfs,
    VirtualFilesystem,
    parse_dirents64,
)
from vfs import Stat as VfsStat
from vfs.abi import AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW
from vfs.fs import pipefs

from .target_api import ROOT, UTIME_NOW, UTIME_OMIT, Creds, Stat, Target

if TYPE_CHECKING:
    from vfs.fs.goferfs import GoferFS

_O_PATH_DIR = os.O_PATH | os.O_DIRECTORY


def _creds(c: Creds) -> Credentials:
    if c == ROOT:
        return Credentials.root()
    return Credentials.user(c.uid, c.gid, c.groups)


def _stat(st: VfsStat) -> Stat:
    return Stat(mode=st.mode, ino=st.ino, nlink=st.nlink, uid=st.uid, gid=st.gid,
                size=st.size, atime_ns=st.atime_ns, mtime_ns=st.mtime_ns,
                ctime_ns=st.ctime_ns, rdev=st.rdev, blocks=st.blocks)


class _Shared:
    def __init__(self, vfs: VirtualFilesystem) -> None:
        self.vfs = vfs
        self.handles: dict[int, FileDescription] = {}
        self.next = 1


class VfsTarget(Target):
    """A VirtualFilesystem seen through the conformance operations."""

    features = frozenset({"unpriv", "xattr", "fifo-io", "mknod-dev"})

    def __init__(self, shared: _Shared, *, parent: VfsTarget | None = None, name: bytes = b"",
                 creds: Creds = ROOT, ctx: FSContext | None = None) -> None:
        self._sh = shared
        self._parent = parent
        self._name = name
        self.creds = creds
        self._vcreds = _creds(creds)
        self._ctx = ctx
        self._fd: FileDescription | None = None
        self._own: set[int] = set()
        self._abs: bytes = (parent._abs.rstrip(b"/") + b"/" + name) if parent else b"/"

    def derive(self, *, root: bytes | None = None, creds: Creds | None = None) -> VfsTarget:
        if root is None:
            t = VfsTarget(self._sh, parent=self._parent, name=self._name,
                          creds=creds or self.creds, ctx=self._ctx)
            t._fd_source = self  # share the directory (and the case's context)
            return t
        return VfsTarget(self._sh, parent=self, name=root, creds=creds or self.creds)

    _fd_source: VfsTarget | None = None

    def abspath(self, path: bytes) -> bytes:
        return self._abs.rstrip(b"/") + b"/" + path if path else self._abs

    async def _dir(self) -> FileDescription:
        """This view's directory (opened lazily, relative to the parent's)."""
        if self._fd_source is not None:
            return await self._fd_source._dir()
        if self._fd is None:
            vfs = self._sh.vfs
            if self._parent is None:
                self._fd = await vfs.open(self.ctx, self._vcreds, None, b"/", _O_PATH_DIR)
            else:
                self._fd = await vfs.open(self.ctx, self._vcreds, await self._parent._dir(),
                                          self._name, _O_PATH_DIR)
            vd = self._fd.vd
            assert vd is not None, "a directory opened by path has its (mount, dentry)"
            self.ctx.cwd = vd
        return self._fd

    @property
    def ctx(self) -> FSContext:
        if self._fd_source is not None:
            return self._fd_source.ctx
        if self._ctx is None:
            self._ctx = self._sh.vfs.new_context(0o022)
        return self._ctx

    async def aclose(self) -> None:
        for h in sorted(self._own):
            fd = self._sh.handles.pop(h, None)
            if fd is not None:
                await fd.dec_ref()
        self._own.clear()
        if self._fd is not None:
            await self._fd.dec_ref()
            self._fd = None

    def umask(self, mask: int) -> int:
        old, self.ctx.umask = self.ctx.umask, mask
        return old

    def _new(self, fd: FileDescription) -> int:
        h = self._sh.next
        self._sh.next += 1
        self._sh.handles[h] = fd
        self._own.add(h)
        return h

    def _h(self, h: int) -> FileDescription:
        try:
            return self._sh.handles[h]
        except KeyError:
            raise OSError(errno.EBADF, f"bad handle {h}") from None

    async def _args(self) -> tuple[FSContext, Credentials, FileDescription]:
        d = await self._dir()
        return self.ctx, self._vcreds, d

    # -- files -------------------------------------------------------------------------------
    async def open(self, path: bytes, flags: int, mode: int = 0o666) -> int:
        ctx, cr, d = await self._args()
        return self._new(await self._sh.vfs.open(ctx, cr, d, path, flags, mode))

    async def close(self, h: int) -> None:
        fd = self._h(h)
        del self._sh.handles[h]
        self._own.discard(h)
        await fd.dec_ref()

    async def read(self, h: int, n: int) -> bytes:
        return await self._h(h).read(n)

    async def write(self, h: int, data: bytes) -> int:
        return await self._h(h).write(data)

    async def pread(self, h: int, n: int, off: int) -> bytes:
        return await self._h(h).pread(n, off)

    async def pwrite(self, h: int, data: bytes, off: int) -> int:
        return await self._h(h).pwrite(data, off)

    async def lseek(self, h: int, off: int, whence: int) -> int:
        return await self._h(h).seek(off, whence)

    async def ftruncate(self, h: int, size: int) -> None:
        await self._sh.vfs.ftruncate(self._h(h), size)

    async def truncate(self, path: bytes, size: int) -> None:
        ctx, cr, _ = await self._args()  # the context's cwd is this directory
        await self._sh.vfs.truncate(ctx, cr, path, size)

    async def fsync(self, h: int) -> None:
        await self._h(h).fsync(False)

    async def fstat(self, h: int) -> Stat:
        return _stat(await self._h(h).stat())

    async def stat(self, path: bytes, follow: bool = True) -> Stat:
        ctx, cr, d = await self._args()
        return _stat(await self._sh.vfs.stat(ctx, cr, d, path,
                                             0 if follow else AT_SYMLINK_NOFOLLOW))

    # -- namespace ---------------------------------------------------------------------------
    async def mkdir(self, path: bytes, mode: int = 0o777) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.mkdirat(ctx, cr, d, path, mode)

    async def rmdir(self, path: bytes) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.unlinkat(ctx, cr, d, path, AT_REMOVEDIR)

    async def unlink(self, path: bytes) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.unlinkat(ctx, cr, d, path, 0)

    async def rename(self, old: bytes, new: bytes, flags: int = 0) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.renameat2(ctx, cr, d, old, d, new, flags)

    async def link(self, old: bytes, new: bytes) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.linkat(ctx, cr, d, old, d, new, 0)

    async def symlink(self, target: bytes, path: bytes) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.symlinkat(ctx, cr, target, d, path)

    async def readlink(self, path: bytes) -> bytes:
        ctx, cr, d = await self._args()
        return await self._sh.vfs.readlinkat(ctx, cr, d, path)

    async def mknod(self, path: bytes, mode: int, dev: int = 0) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.mknodat(ctx, cr, d, path, mode, dev)

    async def opendir(self, path: bytes) -> int:
        return await self.open(path, os.O_RDONLY | os.O_DIRECTORY)

    async def getdents(self, h: int, count: int) -> list[bytes]:
        fd = self._h(h)
        while True:
            data = await fd.getdents64(max(64, 40 * count))
            if not data:
                return []
            names = [n for _, _, _, n in parse_dirents64(data) if n not in (b".", b"..")]
            if names:
                return names

    async def listdir(self, path: bytes) -> list[bytes]:
        h = await self.opendir(path)
        try:
            out: list[bytes] = []
            while batch := await self.getdents(h, 256):
                out.extend(batch)
            return out
        finally:
            await self.close(h)

    # -- attributes --------------------------------------------------------------------------
    async def chmod(self, path: bytes, mode: int) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.fchmodat(ctx, cr, d, path, mode, 0)

    async def fchmod(self, h: int, mode: int) -> None:
        ctx, cr, _ = await self._args()
        await self._sh.vfs.fchmodat(ctx, cr, self._h(h), None, mode, 0)

    async def chown(self, path: bytes, uid: int, gid: int, follow: bool = True) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.fchownat(ctx, cr, d, path, uid, gid,
                                    0 if follow else AT_SYMLINK_NOFOLLOW)

    async def utimens(self, path: bytes, atime_ns: int, mtime_ns: int,
                      follow: bool = True) -> None:
        def ts(v: int) -> tuple[int, int]:
            return (0, v) if v in (UTIME_NOW, UTIME_OMIT) else divmod(v, 1_000_000_000)

        ctx, cr, d = await self._args()
        await self._sh.vfs.utimensat(ctx, cr, d, path, (ts(atime_ns), ts(mtime_ns)),
                                     0 if follow else AT_SYMLINK_NOFOLLOW)

    async def setxattr(self, path: bytes, name: bytes, value: bytes, flags: int = 0) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.setxattr(ctx, cr, d, path, name, value, flags, follow=False)

    async def getxattr(self, path: bytes, name: bytes) -> bytes:
        ctx, cr, d = await self._args()
        return await self._sh.vfs.getxattr(ctx, cr, d, path, name, follow=False)

    async def listxattr(self, path: bytes) -> list[bytes]:
        ctx, cr, d = await self._args()
        return await self._sh.vfs.listxattr(ctx, cr, d, path, follow=False)

    async def removexattr(self, path: bytes, name: bytes) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.removexattr(ctx, cr, d, path, name, follow=False)


@contextlib.asynccontextmanager
async def _gofer_lower() -> AsyncIterator[GoferFS]:
    """A GoferFS attached to a fresh `runpsc gofer serve` process exporting a temporary
    directory (the real topology: the gofer is its own process)."""
    from vfs.fs.goferfs import GoferFS

    top = tempfile.mkdtemp(prefix="runpsc-conformance-gofer-")
    os.chmod(top, 0o755)
    export = os.path.join(top, "export")
    os.mkdir(export, 0o755)
    sock = os.path.join(top, "gofer.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "gofer", "serve", "--export", f"x={export}",
         "--listen", f"unix:{sock}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with trio.fail_after(30):
            while True:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise OSError(errno.ECONNREFUSED, f"the gofer exited: {err[-500:]}")
                try:
                    stream = await p9.connect_unix(sock)
                    break
                except OSError:
                    await trio.sleep(0.05)
        async with p9.open_client(stream) as client:
            gfs = await GoferFS.attach(client, b"x", policy="exclusive")
            try:
                yield gfs
            finally:
                await gfs.release()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()
        shutil.rmtree(top, ignore_errors=True)


@contextlib.asynccontextmanager
async def open_vfs(kind: str) -> AsyncIterator[VfsTarget]:
    """A fresh in-process VFS: 'tmpfs' (a Tmpfs root), 'overlay' (tmpfs over tmpfs),
    'gofer' (goferfs on a `runpsc gofer serve` process), 'overlay-gofer' (tmpfs over
    goferfs: the sandbox's default root)."""
    async with contextlib.AsyncExitStack() as stack:
        fs: Filesystem
        if kind == "tmpfs":
            fs = Tmpfs()
        elif kind == "overlay":
            from vfs.fs.overlay import Overlay
            fs = Overlay(upper=Tmpfs(), lower=Tmpfs())
        elif kind == "gofer":
            fs = await stack.enter_async_context(_gofer_lower())
        elif kind == "overlay-gofer":
            from vfs.fs.overlay import Overlay
            fs = Overlay(upper=Tmpfs(), lower=await stack.enter_async_context(_gofer_lower()))
        else:
            raise ValueError(f"unknown vfs target {kind!r} (tmpfs, overlay, gofer, "
                             "overlay-gofer)")
        vfs = VirtualFilesystem(fs)
        pipefs.install(vfs)
        t = VfsTarget(_Shared(vfs))
        try:
            yield t
        finally:
            await t.aclose()
