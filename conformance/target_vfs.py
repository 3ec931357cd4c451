"""`vfs:KIND` — the Sentry's VFS, in process (kinds: `open_vfs`).

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
from vfs.abi import (
    AT_EACCESS,
    AT_EMPTY_PATH,
    AT_REMOVEDIR,
    AT_SYMLINK_FOLLOW,
    AT_SYMLINK_NOFOLLOW,
)
from vfs.fs import pipefs

from .target_api import ROOT, UTIME_NOW, UTIME_OMIT, Creds, Stat, Target, kind_name

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

    features = frozenset({"unpriv", "xattr", "fifo-io", "mknod-dev", "at-handle", "dtype",
                          "access", "fallocate"})

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

    async def link(self, old: bytes, new: bytes, follow: bool = False) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.linkat(ctx, cr, d, old, d, new, AT_SYMLINK_FOLLOW if follow else 0)

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
    async def chmod(self, path: bytes, mode: int, follow: bool = True) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.fchmodat(ctx, cr, d, path, mode, 0 if follow else AT_SYMLINK_NOFOLLOW)

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

    # -- calls relative to an open handle, access, allocation --------------------------------
    async def statat(self, h: int, path: bytes, follow: bool = True,
                     empty_path: bool = False) -> Stat:
        flags = (0 if follow else AT_SYMLINK_NOFOLLOW) | (AT_EMPTY_PATH if empty_path else 0)
        return _stat(await self._sh.vfs.stat(self.ctx, self._vcreds, self._h(h), path, flags))

    async def mkdirat(self, h: int, path: bytes, mode: int = 0o777) -> None:
        await self._sh.vfs.mkdirat(self.ctx, self._vcreds, self._h(h), path, mode)

    async def flink(self, h: int, new: bytes) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.linkat(ctx, cr, self._h(h), b"", d, new, AT_EMPTY_PATH)

    async def readdir_kinds(self, h: int) -> list[tuple[bytes, str]]:
        fd = self._h(h)
        await fd.seek(0, os.SEEK_SET)
        out: list[tuple[bytes, str]] = []
        while data := await fd.getdents64(4096):
            out += [(n, kind_name(t << 12)) for _, _, t, n in parse_dirents64(data)
                    if n not in (b".", b"..")]
        return out

    async def access(self, path: bytes, mode: int, follow: bool = True) -> None:
        ctx, cr, d = await self._args()
        await self._sh.vfs.faccessat(ctx, cr, d, path, mode,
                                     AT_EACCESS | (0 if follow else AT_SYMLINK_NOFOLLOW))

    async def fallocate(self, h: int, mode: int, off: int, length: int) -> None:
        await self._h(h).fallocate(mode, off, length)


_SETUP_OPS = frozenset({"mkdir", "mknod", "symlink", "link", "chmod", "chown", "setxattr",
                        "utimens"})


class _Phase:
    """Whether a case (or the run directory) is still building its lower layer."""

    def __init__(self) -> None:
        self.setting_up = True


class CopyUpTarget(Target):
    """An overlay whose set-up happens below it: `vfs:overlay-copyup`, `vfs:overlay-gofer-copyup`.

    Why: creating every file through the overlay exercises only its upper layer. Here each
    view's leading creating calls (mkdir, mknod, symlink, link, chmod, chown, setxattr,
    utimens) go straight to the lower filesystem; the first other call, and everything after
    it, goes through the overlay, so a case's later steps meet copy-up, whiteouts, opaque
    directories and merged listings. `t.create` opens, so files a case wants below are made
    with `mknod`. Views with other credentials share the phase; another root starts afresh.
    """

    def __init__(self, lower: VfsTarget, over: VfsTarget, phase: _Phase | None = None) -> None:
        self.lower = lower
        self.over = over
        self._phase = phase or _Phase()
        self.creds = over.creds
        self.features = over.features

    def _to(self, op: str) -> VfsTarget:
        if self._phase.setting_up and op in _SETUP_OPS:
            return self.lower
        self._phase.setting_up = False
        return self.over

    def derive(self, *, root: bytes | None = None, creds: Creds | None = None) -> CopyUpTarget:
        return CopyUpTarget(self.lower.derive(root=root, creds=creds),
                            self.over.derive(root=root, creds=creds),
                            self._phase if root is None else None)

    def abspath(self, path: bytes) -> bytes:
        return self.over.abspath(path)

    async def aclose(self) -> None:
        await self.over.aclose()
        await self.lower.aclose()

    def umask(self, mask: int) -> int:
        self.lower.umask(mask)
        return self.over.umask(mask)

    async def open(self, path: bytes, flags: int, mode: int = 0o666) -> int:
        return await self._to("open").open(path, flags, mode)

    async def close(self, h: int) -> None:
        await self._to("close").close(h)

    async def read(self, h: int, n: int) -> bytes:
        return await self._to("read").read(h, n)

    async def write(self, h: int, data: bytes) -> int:
        return await self._to("write").write(h, data)

    async def pread(self, h: int, n: int, off: int) -> bytes:
        return await self._to("pread").pread(h, n, off)

    async def pwrite(self, h: int, data: bytes, off: int) -> int:
        return await self._to("pwrite").pwrite(h, data, off)

    async def lseek(self, h: int, off: int, whence: int) -> int:
        return await self._to("lseek").lseek(h, off, whence)

    async def ftruncate(self, h: int, size: int) -> None:
        await self._to("ftruncate").ftruncate(h, size)

    async def truncate(self, path: bytes, size: int) -> None:
        await self._to("truncate").truncate(path, size)

    async def fsync(self, h: int) -> None:
        await self._to("fsync").fsync(h)

    async def fstat(self, h: int) -> Stat:
        return await self._to("fstat").fstat(h)

    async def stat(self, path: bytes, follow: bool = True) -> Stat:
        return await self._to("stat").stat(path, follow)

    async def mkdir(self, path: bytes, mode: int = 0o777) -> None:
        await self._to("mkdir").mkdir(path, mode)

    async def rmdir(self, path: bytes) -> None:
        await self._to("rmdir").rmdir(path)

    async def unlink(self, path: bytes) -> None:
        await self._to("unlink").unlink(path)

    async def rename(self, old: bytes, new: bytes, flags: int = 0) -> None:
        await self._to("rename").rename(old, new, flags)

    async def link(self, old: bytes, new: bytes, follow: bool = False) -> None:
        await self._to("link").link(old, new, follow)

    async def symlink(self, target: bytes, path: bytes) -> None:
        await self._to("symlink").symlink(target, path)

    async def readlink(self, path: bytes) -> bytes:
        return await self._to("readlink").readlink(path)

    async def mknod(self, path: bytes, mode: int, dev: int = 0) -> None:
        await self._to("mknod").mknod(path, mode, dev)

    async def listdir(self, path: bytes) -> list[bytes]:
        return await self._to("listdir").listdir(path)

    async def opendir(self, path: bytes) -> int:
        return await self._to("opendir").opendir(path)

    async def getdents(self, h: int, count: int) -> list[bytes]:
        return await self._to("getdents").getdents(h, count)

    async def chmod(self, path: bytes, mode: int, follow: bool = True) -> None:
        await self._to("chmod").chmod(path, mode, follow)

    async def fchmod(self, h: int, mode: int) -> None:
        await self._to("fchmod").fchmod(h, mode)

    async def chown(self, path: bytes, uid: int, gid: int, follow: bool = True) -> None:
        await self._to("chown").chown(path, uid, gid, follow)

    async def utimens(self, path: bytes, atime_ns: int, mtime_ns: int,
                      follow: bool = True) -> None:
        await self._to("utimens").utimens(path, atime_ns, mtime_ns, follow)

    async def setxattr(self, path: bytes, name: bytes, value: bytes, flags: int = 0) -> None:
        await self._to("setxattr").setxattr(path, name, value, flags)

    async def getxattr(self, path: bytes, name: bytes) -> bytes:
        return await self._to("getxattr").getxattr(path, name)

    async def listxattr(self, path: bytes) -> list[bytes]:
        return await self._to("listxattr").listxattr(path)

    async def removexattr(self, path: bytes, name: bytes) -> None:
        await self._to("removexattr").removexattr(path, name)

    async def statat(self, h: int, path: bytes, follow: bool = True,
                     empty_path: bool = False) -> Stat:
        return await self._to("statat").statat(h, path, follow, empty_path)

    async def mkdirat(self, h: int, path: bytes, mode: int = 0o777) -> None:
        await self._to("mkdirat").mkdirat(h, path, mode)

    async def flink(self, h: int, new: bytes) -> None:
        await self._to("flink").flink(h, new)

    async def readdir_kinds(self, h: int) -> list[tuple[bytes, str]]:
        return await self._to("readdir_kinds").readdir_kinds(h)

    async def access(self, path: bytes, mode: int, follow: bool = True) -> None:
        await self._to("access").access(path, mode, follow)

    async def fallocate(self, h: int, mode: int, off: int, length: int) -> None:
        await self._to("fallocate").fallocate(h, mode, off, length)


@contextlib.asynccontextmanager
async def _goferfs_on(spec: str, policy: str = "exclusive", *,
                      tls: p9.TLSClientConfig | None = None) -> AsyncIterator[GoferFS]:
    """A GoferFS attached to the 9P2000.L server at `spec` ('unix:PATH,aname=NAME', as
    for `9p:` targets; msize=N optional)."""
    from vfs.fs.goferfs import GoferFS

    from .target_9p import parse_address

    addr, opts = parse_address(spec)
    async with p9.open_address(addr, tls=tls, msize=int(opts.get("msize", 1 << 20))) as client:
        gfs = await GoferFS.attach(client, os.fsencode(opts.get("aname", "")), policy=policy)
        try:
            yield gfs
        finally:
            await gfs.release()


@contextlib.asynccontextmanager
async def _gofer_lower(policy: str = "exclusive") -> AsyncIterator[GoferFS]:
    """A GoferFS (with cache `policy`) attached to a fresh `runpsc gofer serve` process
    exporting a temporary directory (the real topology: the gofer is its own process)."""
    top = tempfile.mkdtemp(prefix="runpsc-conformance-gofer-")
    os.chmod(top, 0o755)
    export = os.path.join(top, "export")
    os.mkdir(export, 0o755)
    sock = os.path.join(top, "gofer.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "gofer", "serve", "--export", f"x={export}:mknod",
         "--listen", f"unix:{sock}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with trio.fail_after(30):
            while True:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise OSError(errno.ECONNREFUSED, f"the gofer exited: {err[-500:]}")
                try:
                    await (await p9.connect_unix(sock)).aclose()  # listening yet?
                    break
                except OSError:
                    await trio.sleep(0.05)
        async with _goferfs_on(f"unix:{sock},aname=x", policy) as gfs:
            yield gfs
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
async def open_vfs(kind: str, *, tls: p9.TLSClientConfig | None = None) -> AsyncIterator[Target]:
    """A fresh in-process VFS: 'tmpfs' (a Tmpfs root), 'overlay' (tmpfs over tmpfs),
    'gofer' (goferfs on a `runpsc gofer serve` process; 'gofer-shared' with the cache
    policy for exports others change too), 'overlay-gofer' (tmpfs over goferfs: the
    sandbox's default root), '9p:ADDRESS,aname=NAME' (goferfs on that server);
    'overlay-copyup', 'overlay-gofer-copyup': the two overlays with each case's set-up
    made in the lower layer (`CopyUpTarget`)."""
    from vfs.fs.overlay import Overlay

    async with contextlib.AsyncExitStack() as stack:
        fs: Filesystem
        lower: Filesystem | None = None
        if kind == "tmpfs":
            fs = Tmpfs()
        elif kind == "overlay":
            fs = Overlay(upper=Tmpfs(), lower=Tmpfs())
        elif kind in ("gofer", "gofer-shared"):
            policy = "shared" if kind == "gofer-shared" else "exclusive"
            fs = await stack.enter_async_context(_gofer_lower(policy))
        elif kind == "overlay-gofer":
            fs = Overlay(upper=Tmpfs(), lower=await stack.enter_async_context(_gofer_lower()))
        elif kind == "overlay-copyup":
            lower = Tmpfs()
            fs = Overlay(upper=Tmpfs(), lower=lower)
        elif kind == "overlay-gofer-copyup":
            lower = await stack.enter_async_context(_gofer_lower())
            fs = Overlay(upper=Tmpfs(), lower=lower)
        elif kind.startswith("9p:"):
            fs = await stack.enter_async_context(_goferfs_on(kind[3:], tls=tls))
        else:
            raise ValueError(f"unknown vfs target {kind!r}")
        vfs = VirtualFilesystem(fs)
        pipefs.install(vfs)
        over = VfsTarget(_Shared(vfs))
        t: Target = over
        if lower is not None:
            t = CopyUpTarget(VfsTarget(_Shared(VirtualFilesystem(lower))), over)
        try:
            yield t
        finally:
            await t.aclose()
