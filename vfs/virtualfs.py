"""VirtualFilesystem: the mount namespace and every path-based file operation.

Each operation takes the caller's `FSContext` (root, cwd, umask), `Credentials`, a
directory `FileDescription` for *at() calls (None means AT_FDCWD) and the path bytes, and
either returns a result or raises `OSError(errno)`. The checks are ordered as Linux orders
them (fs/namei.c, fs/open.c, fs/stat.c, fs/attr.c), so the errno for a misuse matches.
"""

from __future__ import annotations

import errno
import functools
import os
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from .abi import (
    AT_EACCESS,
    AT_EMPTY_PATH,
    AT_REMOVEDIR,
    AT_STATX_SYNC_TYPE,
    AT_SYMLINK_FOLLOW,
    AT_SYMLINK_NOFOLLOW,
    MAY_EXEC,
    MAY_READ,
    MAY_WRITE,
    NAME_MAX,
    O_ACCMODE,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_NOATIME,
    O_NOFOLLOW,
    O_PATH,
    O_RDONLY,
    O_RDWR,
    O_TMPFILE,
    O_TRUNC,
    O_WRONLY,
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    RENAME_WHITEOUT,
    S_IFBLK,
    S_IFCHR,
    S_IFDIR,
    S_IFIFO,
    S_IFLNK,
    S_IFMT,
    S_IFREG,
    S_IFSOCK,
    S_ISGID,
    S_ISUID,
    S_ISVTX,
    S_IXGRP,
    ST_NODEV,
    ST_NOEXEC,
    ST_NOSUID,
    ST_RDONLY,
    ST_VALID,
    STATX_ATTR_MOUNT_ROOT,
    UTIME_NOW,
    UTIME_OMIT,
    Stat,
    StatFS,
)
from .creds import (
    CAP_CHOWN,
    CAP_DAC_READ_SEARCH,
    CAP_FSETID,
    CAP_MKNOD,
    CAP_SYS_ADMIN,
    CAP_SYS_CHROOT,
    Credentials,
)
from .dentry import Dentry, now_ns
from .errors import error
from .file import FileDescription, PathFD
from .filesystem import Filesystem
from .mount import (
    MNT_DETACH,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    FSContext,
    Mount,
    VirtualDentry,
)
from .perm import check, check_sticky, is_owner, permitted
from .resolve import ROOT, Walk

_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])


def _namespace_op(fn: _F) -> _F:
    """Run a namespace-changing operation under the VFS's namespace lock."""

    @functools.wraps(fn)
    async def wrapper(self: VirtualFilesystem, *args: Any, **kwargs: Any) -> Any:
        lock = self._ns_lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            return await fn(self, *args, **kwargs)
        finally:
            lock.release()

    return wrapper  # type: ignore[return-value]


Opener = Callable[[VirtualDentry, int, Credentials], Awaitable[FileDescription]]
_STAT_FLAGS = AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800  # AT_NO_AUTOMOUNT
_MODE_BITS = 0o7777


class VirtualFilesystem:
    """A mount namespace and the file operations over it.

    Args:
        root_fs: the filesystem mounted at "/".
        flags: MS_* flags of the root mount.

    Attributes:
        root_mount: the mount at "/".
        devices: (S_IFCHR|S_IFBLK, major, minor) → opener of device nodes.
        fifo_opener: how a fifo node is opened (set by pipefs; ENXIO until then).
        sigpipe: hook called as `sigpipe()` when a write hits a pipe with no reader (the
            Sentry sets it to queue SIGPIPE for the current task).
    """

    def __init__(self, root_fs: Filesystem, *, flags: int = 0, source: str = "none") -> None:
        self.root_mount = Mount(root_fs, root_fs.root, flags, source)
        self._mounts: dict[tuple[Mount, Dentry], Mount] = {}
        self.devices: dict[tuple[int, int, int], Opener] = {}
        self.fifo_opener: Callable[[VirtualDentry, int, Credentials],
                                   Awaitable[FileDescription]] | None = None
        self._fifos: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.sigpipe: Callable[[], None] | None = None
        # Serialises namespace changes (Linux's directory i_rwsem, coarsened): between a
        # check ("does the name exist?") and the change, a remote filesystem awaits, and
        # another task must not change the same names meanwhile. Uncontended (always, on
        # filesystems that never suspend) it costs no checkpoint.
        self._ns_lock = trio.Lock()

    # -- contexts --------------------------------------------------------------------------------

    def new_context(self, umask: int = 0o022) -> FSContext:
        """A context with root and cwd at this namespace's root (the first process's)."""
        vd = VirtualDentry(self.root_mount, self.root_mount.root)
        return FSContext(vd, vd, umask)

    def _walk(self, ctx: FSContext, creds: Credentials) -> Walk:
        return Walk(self._mounts, ctx, creds)

    async def resolve(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                      path: bytes, *, follow: bool = True,
                      empty_ok: bool = False) -> VirtualDentry:
        """The (mount, dentry) a path names (see `Walk.resolve`)."""
        return await Walk(self._mounts, ctx, creds).resolve(dirfd, path, follow=follow,
                                                            empty_ok=empty_ok)

    # -- mounts -----------------------------------------------------------------------------------

    def _attach(self, m: Mount, at: VirtualDentry) -> None:
        m.parent = at.mount
        m.mountpoint = at.dentry
        self._mounts[(at.mount, at.dentry)] = m
        at.dentry.mounted += 1
        at.mount.children.append(m)

    async def mount(self, ctx: FSContext, creds: Credentials, fs: Filesystem,
                    dirfd: FileDescription | None, path: bytes, *, flags: int = 0,
                    source: str = "none") -> Mount:
        """Mount `fs` on the directory `path` names (on top of any mount already there)."""
        if not creds.has_cap(CAP_SYS_ADMIN):
            raise error(errno.EPERM)
        at = await self.resolve(ctx, creds, dirfd, path)
        if not at.dentry.inode.is_dir:
            raise error(errno.ENOTDIR, path)
        m = Mount(fs, fs.root, flags, source)
        self._attach(m, at)
        return m

    async def bind_mount(self, ctx: FSContext, creds: Credentials, src: bytes, dst: bytes, *,
                         flags: int = 0) -> Mount:
        """mount --bind: make the subtree at `src` visible at `dst` too."""
        if not creds.has_cap(CAP_SYS_ADMIN):
            raise error(errno.EPERM)
        s = await self.resolve(ctx, creds, None, src)
        d = await self.resolve(ctx, creds, None, dst)
        if s.dentry.inode.is_dir != d.dentry.inode.is_dir:
            raise error(errno.ENOTDIR if not d.dentry.inode.is_dir else errno.EISDIR)
        m = Mount(s.mount.fs, s.dentry, flags, s.mount.source)
        self._attach(m, d)
        return m

    async def remount(self, ctx: FSContext, creds: Credentials, path: bytes, flags: int) -> None:
        """Change a mount's flags (MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC)."""
        if not creds.has_cap(CAP_SYS_ADMIN):
            raise error(errno.EPERM)
        vd = await self.resolve(ctx, creds, None, path)
        if vd.dentry is not vd.mount.root:
            raise error(errno.EINVAL, path)
        vd.mount.flags = flags

    async def unmount(self, ctx: FSContext, creds: Credentials, path: bytes,
                      flags: int = 0) -> None:
        """umount2: EINVAL unless `path` is a mount root; EBUSY with mounts below it unless
        MNT_DETACH (which takes them all away)."""
        if not creds.has_cap(CAP_SYS_ADMIN):
            raise error(errno.EPERM)
        vd = await self.resolve(ctx, creds, None, path)
        m = vd.mount
        if vd.dentry is not m.root or m.parent is None:
            raise error(errno.EINVAL, path)
        if m.children and not flags & MNT_DETACH:
            raise error(errno.EBUSY, path)
        await self._detach(m)

    async def _detach(self, m: Mount) -> None:
        for c in list(m.children):
            await self._detach(c)
        parent, point = m.parent, m.mountpoint
        if parent is not None and point is not None:
            del self._mounts[(parent, point)]
            point.mounted -= 1
            parent.children.remove(m)
        m.parent = m.mountpoint = None
        if not any(x.fs is m.fs for x in self.all_mounts()):
            await m.fs.sync()
            await m.fs.release()

    async def sync(self) -> None:
        """sync(2): write back every mounted filesystem's cached data."""
        seen: set[int] = set()
        for m in self.all_mounts():
            if id(m.fs) not in seen:
                seen.add(id(m.fs))
                await m.fs.sync()

    def all_mounts(self) -> list[Mount]:
        """Every attached mount, parents before children (what /proc/mounts lists)."""
        out: list[Mount] = []
        todo = [self.root_mount]
        while todo:
            m = todo.pop(0)
            out.append(m)
            todo.extend(m.children)
        return out

    def path_of(self, ctx: FSContext, vd: VirtualDentry) -> bytes:
        """d_path: the absolute path of `vd` seen from ctx.root (" (deleted)" if unlinked)."""
        parts: list[bytes] = []
        root = ctx.root
        d, m = vd.dentry, vd.mount
        deleted = False
        while not (d is root.dentry and m is root.mount):
            if d is m.root:
                if m.parent is None or m.mountpoint is None:
                    break
                d, m = m.mountpoint, m.parent
                continue
            if d.dead:
                deleted = True
            parts.append(d.name)
            d = d.parent
        path = b"/" + b"/".join(reversed(parts))
        return path + b" (deleted)" if deleted else path

    # -- open -------------------------------------------------------------------------------------

    async def open(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                   path: bytes, flags: int, mode: int = 0) -> FileDescription:
        """open/openat/openat2 without RESOLVE_*: the new open file description.

        Raises: ENOENT, EEXIST (O_CREAT|O_EXCL), EISDIR, ENOTDIR, ELOOP (O_NOFOLLOW),
        EACCES, EROFS, ENXIO, EINVAL (O_CREAT|O_DIRECTORY, O_TMPFILE without write) ...
        """
        if flags & O_PATH:
            flags &= O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
        elif flags & O_TMPFILE == O_TMPFILE:
            return await self._open_tmpfile(ctx, creds, dirfd, path, flags, mode)
        elif flags & O_CREAT and flags & O_DIRECTORY:
            raise error(errno.EINVAL)
        w = self._walk(ctx, creds)
        if not flags & O_CREAT:
            vd = await w.resolve(dirfd, path, follow=not flags & O_NOFOLLOW)
            created = False
        else:
            lock = self._ns_lock
            try:
                lock.acquire_nowait()
            except trio.WouldBlock:
                await lock.acquire()
            try:
                vd, created = await self._open_create(w, ctx, creds, dirfd, path, flags, mode)
            finally:
                lock.release()
        return await self.open_at(vd, flags, creds, created=created)

    async def _open_create(self, w: Walk, ctx: FSContext, creds: Credentials,
                           dirfd: FileDescription | None, path: bytes, flags: int,
                           mode: int) -> tuple[VirtualDentry, bool]:
        if not path:
            raise error(errno.ENOENT)
        parent, name, slash = await w.parent(w.start(dirfd, path), path)
        while True:
            if name == ROOT or name in (b".", b"..") or slash:
                raise error(errno.EISDIR, path)
            vd = await w.lookup_child(parent, name)
            if vd is None:
                pd = parent.dentry
                if pd.dead:
                    raise error(errno.ENOENT, path)
                if parent.mount.readonly:
                    raise error(errno.EROFS, path)
                check(creds, pd.inode, MAY_WRITE | MAY_EXEC)
                uid, gid, m = self._new_owner(creds, pd, S_IFREG | (mode & _MODE_BITS & ~ctx.umask))
                d = await parent.mount.fs.mknod(pd, name, m, 0, uid, gid)
                return VirtualDentry(parent.mount, d), True
            if flags & O_EXCL:
                raise error(errno.EEXIST, path)
            if vd.dentry.inode.is_symlink:
                if flags & O_NOFOLLOW:
                    raise error(errno.ELOOP, path)
                target = await w.read_link(vd)
                parent, name, slash = await w.parent(parent, target)
                continue
            if vd.dentry.inode.is_dir:
                raise error(errno.EISDIR, path)
            return vd, False

    async def open_at(self, vd: VirtualDentry, flags: int, creds: Credentials, *,
                      created: bool = False) -> FileDescription:
        """Open the file at `vd` (may_open + the filesystem's or device's open)."""
        ino = vd.dentry.inode
        ftype = ino.mode & S_IFMT
        if flags & O_PATH:
            if flags & O_DIRECTORY and ftype != S_IFDIR:
                raise error(errno.ENOTDIR)
            return PathFD(vd, flags)
        if flags & O_DIRECTORY and ftype != S_IFDIR:
            raise error(errno.ENOTDIR)
        acc = flags & O_ACCMODE
        # access mode 3 is Linux's "check read and write permission, then do neither"
        may = (MAY_READ if acc != O_WRONLY else 0) | (MAY_WRITE if acc != O_RDONLY else 0)
        if flags & O_TRUNC:
            may |= MAY_WRITE
        if not created:
            if ftype == S_IFLNK:
                raise error(errno.ELOOP)
            if ftype == S_IFDIR and may & MAY_WRITE:
                raise error(errno.EISDIR)
            if ftype in (S_IFCHR, S_IFBLK) and vd.mount.flags & MS_NODEV:
                raise error(errno.EACCES)
            if may & MAY_WRITE and vd.mount.readonly and ftype in (S_IFREG, S_IFDIR):
                raise error(errno.EROFS)
            check(creds, ino, may)
            if flags & O_NOATIME and not is_owner(creds, ino):
                raise error(errno.EPERM)
        if ftype == S_IFREG or ftype == S_IFDIR:
            if flags & O_TRUNC and not created and ftype == S_IFREG:
                t = now_ns()  # Linux passes ATTR_MTIME|ATTR_CTIME with an open's truncate
                await vd.mount.fs.setattr(vd.dentry, size=0, mtime_ns=t, ctime_ns=t)
            fd = await vd.mount.fs.open(vd.dentry, flags & ~(O_CREAT | O_EXCL | O_TRUNC), creds)
        elif ftype == S_IFCHR or ftype == S_IFBLK:
            opener = self.devices.get((ftype, os.major(ino.rdev), os.minor(ino.rdev)))
            if opener is None:
                raise error(errno.ENXIO)
            fd = await opener(vd, flags, creds)
        elif ftype == S_IFIFO:
            if self.fifo_opener is None:
                raise error(errno.ENXIO)
            fd = await self.fifo_opener(vd, flags, creds)
        elif ftype == S_IFSOCK:
            raise error(errno.ENXIO)
        else:
            fd = await vd.mount.fs.open(vd.dentry, flags, creds)
        if fd.vd is None:
            fd.vd = vd
        return fd

    async def _open_tmpfile(self, ctx: FSContext, creds: Credentials,
                            dirfd: FileDescription | None, path: bytes, flags: int,
                            mode: int) -> FileDescription:
        if flags & O_ACCMODE not in (O_WRONLY, O_RDWR) or flags & O_CREAT:
            raise error(errno.EINVAL)
        vd = await self.resolve(ctx, creds, dirfd, path)
        pd = vd.dentry
        if not pd.inode.is_dir:
            raise error(errno.ENOTDIR)
        if vd.mount.readonly:
            raise error(errno.EROFS)
        check(creds, pd.inode, MAY_WRITE | MAY_EXEC)
        uid, gid, m = self._new_owner(creds, pd, S_IFREG | (mode & _MODE_BITS & ~ctx.umask))
        d = await vd.mount.fs.tmpfile(pd, m, uid, gid)
        return await self.open_at(VirtualDentry(vd.mount, d), flags & ~O_TMPFILE, creds,
                                  created=True)

    # -- creation ----------------------------------------------------------------------------------

    def _new_owner(self, creds: Credentials, parent: Dentry, mode: int) -> tuple[int, int, int]:
        """inode_init_owner: uid, gid and mode of a new file in `parent`."""
        pino = parent.inode
        gid = creds.fsgid
        if pino.mode & S_ISGID:
            gid = pino.gid
            if mode & S_IFMT == S_IFDIR:
                mode |= S_ISGID
        if (mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) and mode & S_IFMT != S_IFDIR:
            if not creds.in_group(gid) and not creds.has_cap(CAP_FSETID):
                mode &= ~S_ISGID
        return creds.fsuid, gid, mode

    async def _create_parent(self, w: Walk, dirfd: FileDescription | None, path: bytes, *,
                             is_dir: bool) -> tuple[VirtualDentry, bytes]:
        """filename_create: the parent and name for a new entry, or the right errno."""
        if not path:
            raise error(errno.ENOENT)
        parent, name, slash = await w.parent(w.start(dirfd, path), path)
        if name == ROOT or name in (b".", b".."):
            raise error(errno.EEXIST, path)
        if await w.lookup_child(parent, name) is not None:
            raise error(errno.EEXIST, path)
        if slash and not is_dir:
            raise error(errno.ENOENT, path)
        if parent.mount.readonly:
            raise error(errno.EROFS, path)
        if parent.dentry.dead:
            raise error(errno.ENOENT, path)
        check(w.creds, parent.dentry.inode, MAY_WRITE | MAY_EXEC)
        return parent, name

    @_namespace_op
    async def mkdirat(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                      path: bytes, mode: int) -> None:
        """mkdir/mkdirat. Raises EEXIST, ENOENT, ENOTDIR, EACCES, EROFS, ENAMETOOLONG ..."""
        w = self._walk(ctx, creds)
        parent, name = await self._create_parent(w, dirfd, path, is_dir=True)
        uid, gid, m = self._new_owner(
            creds, parent.dentry, S_IFDIR | (mode & (0o777 | S_ISVTX) & ~ctx.umask))
        await parent.mount.fs.mkdir(parent.dentry, name, m, uid, gid)

    @_namespace_op
    async def mknodat(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                      path: bytes, mode: int, dev: int = 0) -> None:
        """mknod/mknodat: regular files, fifos, sockets, and devices (CAP_MKNOD)."""
        ftype = mode & S_IFMT
        if ftype == 0:
            ftype = S_IFREG
        if ftype == S_IFDIR:
            raise error(errno.EPERM)
        if ftype not in (S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK):
            raise error(errno.EINVAL)
        w = self._walk(ctx, creds)
        parent, name = await self._create_parent(w, dirfd, path, is_dir=False)
        if ftype in (S_IFCHR, S_IFBLK):
            if not creds.has_cap(CAP_MKNOD):
                raise error(errno.EPERM)
        else:
            dev = 0
        uid, gid, m = self._new_owner(creds, parent.dentry,
                                      ftype | (mode & _MODE_BITS & ~ctx.umask))
        await parent.mount.fs.mknod(parent.dentry, name, m, dev, uid, gid)

    @_namespace_op
    async def symlinkat(self, ctx: FSContext, creds: Credentials, target: bytes,
                        dirfd: FileDescription | None, path: bytes) -> None:
        """symlink/symlinkat: create `path` pointing at `target` (ENOENT if target empty)."""
        if not target:
            raise error(errno.ENOENT)
        if len(target) >= 4096:
            raise error(errno.ENAMETOOLONG)
        w = self._walk(ctx, creds)
        parent, name = await self._create_parent(w, dirfd, path, is_dir=False)
        uid, gid, _ = self._new_owner(creds, parent.dentry, S_IFLNK | 0o777)
        await parent.mount.fs.symlink(parent.dentry, name, target, uid, gid)

    @_namespace_op
    async def linkat(self, ctx: FSContext, creds: Credentials, olddirfd: FileDescription | None,
                     oldpath: bytes, newdirfd: FileDescription | None, newpath: bytes,
                     flags: int = 0) -> None:
        """link/linkat (AT_SYMLINK_FOLLOW, AT_EMPTY_PATH with CAP_DAC_READ_SEARCH)."""
        if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
            raise error(errno.EINVAL)
        if flags & AT_EMPTY_PATH and not oldpath and not creds.has_cap(CAP_DAC_READ_SEARCH):
            raise error(errno.ENOENT)
        w = self._walk(ctx, creds)
        old = await w.resolve(olddirfd, oldpath, follow=bool(flags & AT_SYMLINK_FOLLOW),
                              empty_ok=bool(flags & AT_EMPTY_PATH))
        parent, name = await self._create_parent(self._walk(ctx, creds), newdirfd, newpath,
                                                 is_dir=False)
        if parent.mount is not old.mount:
            raise error(errno.EXDEV)
        ino = old.dentry.inode
        if ino.is_dir:
            raise error(errno.EPERM)
        if not is_owner(creds, ino):
            # fs.protected_hardlinks = 1
            if (ino.type != S_IFREG or ino.mode & S_ISUID
                    or (ino.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)
                    or not permitted(creds, ino.mode, ino.uid, ino.gid, MAY_READ | MAY_WRITE)):
                raise error(errno.EPERM)
        if ino.nlink == 0 and old.dentry.dead:
            raise error(errno.ENOENT)
        await parent.mount.fs.link(parent.dentry, name, old.dentry)

    # -- removal -----------------------------------------------------------------------------------

    def _may_delete(self, creds: Credentials, parent: Dentry, child: Dentry, is_dir: bool) -> None:
        check(creds, parent.inode, MAY_WRITE | MAY_EXEC)
        check_sticky(creds, parent.inode, child.inode)
        if is_dir:
            if not child.inode.is_dir:
                raise error(errno.ENOTDIR)
            if child.is_root:
                raise error(errno.EBUSY)
        elif child.inode.is_dir:
            raise error(errno.EISDIR)

    @_namespace_op
    async def unlinkat(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                       path: bytes, flags: int = 0) -> None:
        """unlink/unlinkat/rmdir (AT_REMOVEDIR)."""
        if flags & ~AT_REMOVEDIR:
            raise error(errno.EINVAL)
        if not path:
            raise error(errno.ENOENT)
        w = self._walk(ctx, creds)
        parent, name, slash = await w.parent(w.start(dirfd, path), path)
        rmdir = bool(flags & AT_REMOVEDIR)
        if rmdir:
            if name == ROOT:
                raise error(errno.EBUSY, path)
            if name == b".":
                raise error(errno.EINVAL, path)
            if name == b"..":
                raise error(errno.ENOTEMPTY, path)
        elif name == ROOT or name in (b".", b".."):
            raise error(errno.EISDIR, path)
        if parent.mount.readonly:
            raise error(errno.EROFS, path)
        if len(name) > NAME_MAX:
            raise error(errno.ENAMETOOLONG)
        found = await parent.mount.fs.lookup(parent.dentry, [name])
        if not found:
            raise error(errno.ENOENT, path)
        child = found[0]
        if not rmdir and slash:
            raise error(errno.EISDIR if child.inode.is_dir else errno.ENOTDIR, path)
        self._may_delete(creds, parent.dentry, child, rmdir)
        if child.mounted and (parent.mount, child) in self._mounts:
            raise error(errno.EBUSY, path)
        if rmdir:
            await parent.mount.fs.rmdir(parent.dentry, child)
        else:
            await parent.mount.fs.unlink(parent.dentry, child)

    @_namespace_op
    async def renameat2(self, ctx: FSContext, creds: Credentials,
                        olddirfd: FileDescription | None, oldpath: bytes,
                        newdirfd: FileDescription | None, newpath: bytes, flags: int = 0) -> None:
        """rename/renameat/renameat2 (RENAME_NOREPLACE, RENAME_EXCHANGE)."""
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT):
            raise error(errno.EINVAL)
        if flags & (RENAME_NOREPLACE | RENAME_WHITEOUT) and flags & RENAME_EXCHANGE:
            raise error(errno.EINVAL)
        if flags & RENAME_WHITEOUT:
            raise error(errno.EPERM if not creds.has_cap(CAP_MKNOD) else errno.EINVAL)
        if not oldpath or not newpath:
            raise error(errno.ENOENT)
        w = self._walk(ctx, creds)
        op, oname, oslash = await w.parent(w.start(olddirfd, oldpath), oldpath)
        w2 = self._walk(ctx, creds)
        np, nname, nslash = await w2.parent(w2.start(newdirfd, newpath), newpath)
        if op.mount is not np.mount:
            raise error(errno.EXDEV)
        if oname == ROOT or oname in (b".", b".."):
            raise error(errno.EBUSY)
        if nname == ROOT or nname in (b".", b".."):
            raise error(errno.EEXIST if flags & RENAME_NOREPLACE else errno.EBUSY)
        if op.mount.readonly:
            raise error(errno.EROFS)
        if len(oname) > NAME_MAX or len(nname) > NAME_MAX:
            raise error(errno.ENAMETOOLONG)
        fs = op.mount.fs
        found = await fs.lookup(op.dentry, [oname])
        if not found:
            raise error(errno.ENOENT, oldpath)
        src = found[0]
        found = await fs.lookup(np.dentry, [nname])
        dst = found[0] if found else None
        exchange = bool(flags & RENAME_EXCHANGE)
        if flags & RENAME_NOREPLACE and dst is not None:
            raise error(errno.EEXIST, newpath)
        if exchange:
            if dst is None:
                raise error(errno.ENOENT, newpath)
            if nslash and not dst.inode.is_dir:
                raise error(errno.ENOTDIR, newpath)
        src_dir = src.inode.is_dir
        if not src_dir:
            if oslash or (nslash and not exchange):
                raise error(errno.ENOTDIR)
        # The "trap": the common ancestor of the two parents (lock_rename).
        if _is_ancestor(src, np.dentry):
            raise error(errno.EINVAL)
        if dst is not None and _is_ancestor(dst, op.dentry):
            raise error(errno.EINVAL if exchange else errno.ENOTEMPTY)
        if dst is not None and dst.inode is src.inode:
            return
        self._may_delete(creds, op.dentry, src, src_dir)
        if dst is None:
            if np.dentry.dead:
                raise error(errno.ENOENT)
            check(creds, np.dentry.inode, MAY_WRITE | MAY_EXEC)
        else:
            self._may_delete(creds, np.dentry, dst, dst.inode.is_dir if exchange else src_dir)
        if op.dentry is not np.dentry:
            if src_dir:
                check(creds, src.inode, MAY_WRITE)
            if exchange and dst is not None and dst.inode.is_dir:
                check(creds, dst.inode, MAY_WRITE)
        if (src.mounted and (op.mount, src) in self._mounts) or (
            dst is not None and dst.mounted and (np.mount, dst) in self._mounts
        ):
            raise error(errno.EBUSY)
        await fs.rename(op.dentry, src, np.dentry, nname, dst, flags)

    # -- attributes ------------------------------------------------------------------------------------

    async def stat(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                   path: bytes, flags: int = 0) -> Stat:
        """stat/lstat/fstatat/newfstatat (AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH)."""
        if flags & ~_STAT_FLAGS:
            raise error(errno.EINVAL)
        vd = await self.resolve(ctx, creds, dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW,
                                empty_ok=bool(flags & AT_EMPTY_PATH))
        st = await vd.mount.fs.stat(vd.dentry)
        st.mnt_id = vd.mount.id
        if vd.dentry is vd.mount.root:
            st.attributes |= STATX_ATTR_MOUNT_ROOT
        return st

    async def statx(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                    path: bytes, flags: int = 0, mask: int = 0x7FF) -> Stat:
        """statx(2): like stat; pack the result with `Stat.pack_statx(mask)`."""
        if flags & ~(_STAT_FLAGS | AT_STATX_SYNC_TYPE) or flags & AT_STATX_SYNC_TYPE == 0x6000:
            raise error(errno.EINVAL)
        if mask & 0x80000000:
            raise error(errno.EINVAL)
        return await self.stat(ctx, creds, dirfd, path, flags & _STAT_FLAGS)

    async def _setattr_target(self, ctx: FSContext, creds: Credentials,
                              dirfd: FileDescription | None, path: bytes | None,
                              follow: bool, empty_ok: bool) -> VirtualDentry:
        if path is None:  # the fd itself (fchmod, fchown, futimens)
            if dirfd is None or dirfd.vd is None:
                raise error(errno.EBADF)
            return dirfd.vd
        return await self.resolve(ctx, creds, dirfd, path, follow=follow, empty_ok=empty_ok)

    async def fchmodat(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                       path: bytes | None, mode: int, flags: int = 0) -> None:
        """chmod/fchmod (path None: dirfd itself)/fchmodat/fchmodat2."""
        if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
            raise error(errno.EINVAL)
        if path is None and dirfd is not None and dirfd.is_path:
            raise error(errno.EBADF)
        vd = await self._setattr_target(ctx, creds, dirfd, path,
                                        not flags & AT_SYMLINK_NOFOLLOW,
                                        bool(flags & AT_EMPTY_PATH))
        ino = vd.dentry.inode
        if ino.is_symlink:
            raise error(errno.EOPNOTSUPP)
        if vd.mount.readonly:
            raise error(errno.EROFS)
        if not is_owner(creds, ino):
            raise error(errno.EPERM)
        mode &= _MODE_BITS
        if mode & S_ISGID and not creds.in_group(ino.gid) and not creds.has_cap(CAP_FSETID):
            mode &= ~S_ISGID
        await vd.mount.fs.setattr(vd.dentry, mode=(ino.mode & S_IFMT) | mode, ctime_ns=now_ns())

    async def fchownat(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                       path: bytes | None, uid: int, gid: int, flags: int = 0) -> None:
        """chown/lchown/fchown (path None)/fchownat; -1 (or 0xffffffff) leaves an id."""
        if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
            raise error(errno.EINVAL)
        if path is None and dirfd is not None and dirfd.is_path:
            raise error(errno.EBADF)
        uid = -1 if uid in (-1, 0xFFFFFFFF) else uid
        gid = -1 if gid in (-1, 0xFFFFFFFF) else gid
        vd = await self._setattr_target(ctx, creds, dirfd, path,
                                        not flags & AT_SYMLINK_NOFOLLOW,
                                        bool(flags & AT_EMPTY_PATH))
        ino = vd.dentry.inode
        if vd.mount.readonly:
            raise error(errno.EROFS)
        cap = creds.has_cap(CAP_CHOWN)
        if uid != -1 and uid != ino.uid and not cap:
            raise error(errno.EPERM)
        if uid != -1 and uid == ino.uid and creds.fsuid != ino.uid and not cap:
            raise error(errno.EPERM)
        if gid != -1 and not cap and (
            creds.fsuid != ino.uid or (gid != ino.gid and not creds.in_group(gid))
        ):
            raise error(errno.EPERM)
        mode = ino.mode
        if not ino.is_dir:
            mode &= ~S_ISUID
            if mode & S_IXGRP:
                mode &= ~S_ISGID
        await vd.mount.fs.setattr(
            vd.dentry, uid=None if uid == -1 else uid, gid=None if gid == -1 else gid,
            mode=mode if mode != ino.mode else None, ctime_ns=now_ns())

    async def utimensat(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                        path: bytes | None, times: tuple[tuple[int, int], tuple[int, int]] | None,
                        flags: int = 0) -> None:
        """utimensat/futimens (path None): times are ((sec, nsec), (sec, nsec)) for atime
        and mtime, nsec may be UTIME_NOW/UTIME_OMIT; None sets both to now."""
        if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
            raise error(errno.EINVAL)
        if times is not None:
            for _, ns in times:
                if ns not in (UTIME_NOW, UTIME_OMIT) and not 0 <= ns < 1_000_000_000:
                    raise error(errno.EINVAL)
        vd = await self._setattr_target(ctx, creds, dirfd, path,
                                        not flags & AT_SYMLINK_NOFOLLOW,
                                        bool(flags & AT_EMPTY_PATH))
        if times is not None and times[0][1] == UTIME_OMIT and times[1][1] == UTIME_OMIT:
            return
        ino = vd.dentry.inode
        if vd.mount.readonly:
            raise error(errno.EROFS)
        all_now = times is None or (times[0][1] == UTIME_NOW and times[1][1] == UTIME_NOW)
        if not is_owner(creds, ino):
            if not all_now:
                raise error(errno.EPERM)
            if path is None and dirfd is not None and dirfd.writable:
                pass
            else:
                check(creds, ino, MAY_WRITE)
        now = now_ns()

        def pick(t: tuple[int, int]) -> int | None:
            if t[1] == UTIME_OMIT:
                return None
            if t[1] == UTIME_NOW:
                return now
            return t[0] * 1_000_000_000 + t[1]

        at = now if times is None else pick(times[0])
        mt = now if times is None else pick(times[1])
        await vd.mount.fs.setattr(vd.dentry, atime_ns=at, mtime_ns=mt, ctime_ns=now)

    async def truncate(self, ctx: FSContext, creds: Credentials, path: bytes,
                       length: int) -> None:
        """truncate(2) by path (ftruncate is FileDescription.truncate)."""
        if length < 0:
            raise error(errno.EINVAL)
        vd = await self.resolve(ctx, creds, None, path)
        ino = vd.dentry.inode
        if ino.is_dir:
            raise error(errno.EISDIR)
        if ino.type != S_IFREG:
            raise error(errno.EINVAL)
        if vd.mount.readonly:
            raise error(errno.EROFS)
        check(creds, ino, MAY_WRITE)
        await vd.mount.fs.setattr(vd.dentry, size=length)

    async def ftruncate(self, fd: FileDescription, length: int) -> None:
        """ftruncate(2): needs an fd open for writing on a regular file."""
        if length < 0:
            raise error(errno.EINVAL)
        if fd.is_path:
            raise error(errno.EBADF)
        if not fd.writable:
            raise error(errno.EINVAL)
        vd = fd.vd
        if vd is None or vd.dentry.inode.type != S_IFREG:
            await fd.truncate(length)
            return
        t = now_ns()  # like Linux's do_sys_ftruncate: ATTR_MTIME|ATTR_CTIME
        await vd.mount.fs.setattr(vd.dentry, size=length, mtime_ns=t, ctime_ns=t)

    async def faccessat(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                        path: bytes, mode: int, flags: int = 0) -> None:
        """access/faccessat/faccessat2: checks with the real ids unless AT_EACCESS."""
        if mode & ~7:
            raise error(errno.EINVAL)
        if flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
            raise error(errno.EINVAL)
        if not flags & AT_EACCESS:
            caps = creds.cap_effective if creds.uid == 0 else 0
            creds = creds.with_ids(fsuid=creds.uid, fsgid=creds.gid, cap_effective=caps)
        vd = await self.resolve(ctx, creds, dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW,
                                empty_ok=bool(flags & AT_EMPTY_PATH))
        if not mode:
            return
        ino = vd.dentry.inode
        if mode & 2 and vd.mount.readonly and ino.type in (S_IFREG, S_IFDIR, S_IFLNK):
            raise error(errno.EROFS)
        if mode & 1 and ino.type == S_IFREG and vd.mount.flags & MS_NOEXEC:
            raise error(errno.EACCES)
        check(creds, ino, mode)

    async def readlinkat(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                         path: bytes) -> bytes:
        """readlink/readlinkat (an empty path reads the O_PATH symlink `dirfd`)."""
        vd = await self.resolve(ctx, creds, dirfd, path, follow=False, empty_ok=True)
        if not vd.dentry.inode.is_symlink:
            raise error(errno.ENOENT if not path else errno.EINVAL)
        return await vd.mount.fs.readlink(vd.dentry)

    async def statfs(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                     path: bytes) -> StatFS:
        """statfs(2) (fstatfs: pass the fd and an empty path)."""
        vd = await self.resolve(ctx, creds, dirfd, path, empty_ok=not path and dirfd is not None)
        return await self.statfs_at(vd)

    async def statfs_at(self, vd: VirtualDentry) -> StatFS:
        sf = await vd.mount.fs.statfs()
        f = vd.mount.flags
        sf.flags = ST_VALID | (ST_RDONLY if f & MS_RDONLY else 0) | (
            ST_NOSUID if f & MS_NOSUID else 0) | (ST_NODEV if f & MS_NODEV else 0) | (
            ST_NOEXEC if f & MS_NOEXEC else 0)
        return sf

    # -- extended attributes ---------------------------------------------------------------------------

    async def getxattr(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                       path: bytes, name: bytes, *, follow: bool = True) -> bytes:
        vd = await self.resolve(ctx, creds, dirfd, path, follow=follow, empty_ok=not path)
        _xattr_name(name)
        if name.startswith(b"user."):
            check(creds, vd.dentry.inode, MAY_READ)
        return await vd.mount.fs.getxattr(vd.dentry, name)

    async def setxattr(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                       path: bytes, name: bytes, value: bytes, flags: int = 0, *,
                       follow: bool = True) -> None:
        vd = await self.resolve(ctx, creds, dirfd, path, follow=follow, empty_ok=not path)
        _xattr_name(name)
        if flags & ~3:
            raise error(errno.EINVAL)
        if vd.mount.readonly:
            raise error(errno.EROFS)
        if name.startswith(b"user."):
            ino = vd.dentry.inode
            if ino.type not in (S_IFREG, S_IFDIR):
                raise error(errno.EPERM)
            check(creds, ino, MAY_WRITE)
        elif name.startswith((b"trusted.", b"security.")) and not creds.has_cap(CAP_SYS_ADMIN):
            raise error(errno.EPERM)
        await vd.mount.fs.setxattr(vd.dentry, name, value, flags)

    async def listxattr(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                        path: bytes, *, follow: bool = True) -> list[bytes]:
        vd = await self.resolve(ctx, creds, dirfd, path, follow=follow, empty_ok=not path)
        names = await vd.mount.fs.listxattr(vd.dentry)
        if not creds.has_cap(CAP_SYS_ADMIN):
            names = [n for n in names if not n.startswith(b"trusted.")]
        return names

    async def removexattr(self, ctx: FSContext, creds: Credentials,
                          dirfd: FileDescription | None, path: bytes, name: bytes, *,
                          follow: bool = True) -> None:
        vd = await self.resolve(ctx, creds, dirfd, path, follow=follow, empty_ok=not path)
        _xattr_name(name)
        if vd.mount.readonly:
            raise error(errno.EROFS)
        if name.startswith(b"user."):
            check(creds, vd.dentry.inode, MAY_WRITE)
        elif not creds.has_cap(CAP_SYS_ADMIN):
            raise error(errno.EPERM)
        await vd.mount.fs.removexattr(vd.dentry, name)

    # -- working directory --------------------------------------------------------------------------

    async def chdir(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                    path: bytes) -> None:
        """chdir (dirfd None) and fchdir (path b"")."""
        vd = await self.resolve(ctx, creds, dirfd, path, empty_ok=not path and dirfd is not None)
        if not vd.dentry.inode.is_dir:
            raise error(errno.ENOTDIR)
        check(creds, vd.dentry.inode, MAY_EXEC)
        ctx.cwd = vd

    async def chroot(self, ctx: FSContext, creds: Credentials, path: bytes) -> None:
        vd = await self.resolve(ctx, creds, None, path)
        if not vd.dentry.inode.is_dir:
            raise error(errno.ENOTDIR)
        check(creds, vd.dentry.inode, MAY_EXEC)
        if not creds.has_cap(CAP_SYS_CHROOT):
            raise error(errno.EPERM)
        ctx.root = vd

    def getcwd(self, ctx: FSContext) -> bytes:
        """getcwd(2): ENOENT once the cwd was removed, "(unreachable)" outside the root."""
        cwd = ctx.cwd
        d = cwd.dentry
        if d.dead:
            raise error(errno.ENOENT)
        # Reachable from root?
        path = self.path_of(ctx, cwd)
        m, x = cwd.mount, d
        root = ctx.root
        while not (x is root.dentry and m is root.mount):
            if x is m.root:
                if m.parent is None or m.mountpoint is None:
                    return b"(unreachable)" + path
                x, m = m.mountpoint, m.parent
                continue
            x = x.parent
        return path


def _is_ancestor(a: Dentry, d: Dentry) -> bool:
    """True if `a` is `d` or one of its ancestors (within one filesystem)."""
    while True:
        if d is a:
            return True
        if d.is_root:
            return False
        d = d.parent


def _xattr_name(name: bytes) -> None:
    if not name or len(name) > 255:
        raise error(errno.ERANGE if name else errno.EINVAL)
    if not name.startswith((b"user.", b"trusted.", b"security.", b"system.")):
        raise error(errno.EOPNOTSUPP)
