"""VirtualFilesystem: the mount namespace and every path-based file operation. The class
is built in layers: `namespace.Namespace` (mounts, contexts, resolution, cwd),
`attrs.AttrOps` (attributes and xattrs), and here opening, creating, linking, removing
and renaming, which change the namespace under one lock.

Each operation takes the caller's `FSContext` (root, cwd, umask), `Credentials`, a
directory `FileDescription` for *at() calls (None means AT_FDCWD) and the path bytes, and
either returns a result or raises `OSError(errno)`. The checks are ordered as Linux orders
them (fs/namei.c, fs/open.c, fs/stat.c, fs/attr.c), so the errno for a misuse matches.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import trio

from .abi import (
    AT_EMPTY_PATH,
    AT_REMOVEDIR,
    AT_SYMLINK_FOLLOW,
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
    S_IALLUGO,
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
)
from .attrs import AttrOps
from .creds import CAP_DAC_READ_SEARCH, CAP_FSETID, CAP_MKNOD, Credentials
from .dentry import Dentry, now_ns
from .errors import error
from .file import FileDescription, PathFD
from .filesystem import Filesystem
from .mount import MS_NODEV, FSContext, VirtualDentry
from .notify import (
    IN_ATTRIB,
    IN_CREATE,
    IN_DELETE,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_OPEN,
    Notifier,
)
from .perm import check, check_sticky, is_owner, permitted
from .resolve import ROOT, Walk
from .restricted import RestrictedWalk

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _namespace_op(
    fn: Callable[Concatenate[VirtualFilesystem, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[VirtualFilesystem, _P], Coroutine[Any, Any, _R]]:
    """Run a namespace-changing operation under the VFS's namespace lock."""

    @functools.wraps(fn)
    async def wrapper(self: VirtualFilesystem, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        lock = self._ns_lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            return await fn(self, *args, **kwargs)
        finally:
            lock.release()

    return wrapper


Opener = Callable[[VirtualDentry, int, Credentials], Awaitable[FileDescription]]


class VirtualFilesystem(AttrOps):
    """A mount namespace (`Namespace`) and the file operations over it: attributes
    (`AttrOps`), and here opening, creating, linking, removing and renaming.

    Args:
        root_fs: the filesystem mounted at "/".
        flags: MS_* flags of the root mount.

    Attributes:
        devices: (S_IFCHR|S_IFBLK, major, minor) → opener of device nodes.
        fifo_opener: how a fifo node is opened (set by pipefs; ENXIO until then).
        pipefs: the filesystem pipe2's pipes live on (pipefs makes it on first use).
        sigpipe: hook called as `sigpipe()` when a write hits a pipe with no reader (the
            Sentry sets it to queue SIGPIPE for the current task).
        notifier: where every change made through this VFS is reported (`vfs.notify`;
            the Sentry's inotify sets its hook).
    """

    def __init__(self, root_fs: Filesystem, *, flags: int = 0, source: str = "none") -> None:
        super().__init__(root_fs, flags=flags, source=source)
        self.devices: dict[tuple[int, int, int], Opener] = {}
        self.pipefs: Filesystem | None = None
        self.fifo_opener: Callable[[VirtualDentry, int, Credentials],
                                   Awaitable[FileDescription]] | None = None
        self.sigpipe: Callable[[], None] | None = None
        self.notifier = Notifier()
        # Serialises namespace changes (Linux's directory i_rwsem, coarsened): between a
        # check ("does the name exist?") and the change, a remote filesystem awaits, and
        # another task must not change the same names meanwhile. Uncontended (always, on
        # filesystems that never suspend) it costs no checkpoint.
        self._ns_lock = trio.Lock()

    # -- open -------------------------------------------------------------------------------------

    async def open(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                   path: bytes, flags: int, mode: int = 0, *,
                   resolve: int = 0) -> FileDescription:
        """open/openat/openat2 (`resolve`: RESOLVE_* flags, see `restricted.py`): the new
        open file description.

        Raises: ENOENT, EEXIST (O_CREAT|O_EXCL), EISDIR, ENOTDIR, ELOOP (O_NOFOLLOW),
        EACCES, EROFS, ENXIO, EINVAL (O_CREAT|O_DIRECTORY, O_TMPFILE without write) ...
        """
        if flags & O_PATH:
            flags &= O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
        elif flags & O_TMPFILE == O_TMPFILE:
            return await self._open_tmpfile(ctx, creds, dirfd, path, flags, mode)
        elif flags & O_CREAT and flags & O_DIRECTORY:
            raise error(errno.EINVAL)
        w = self._walk(ctx, creds) if not resolve else self._restricted(ctx, creds, dirfd,
                                                                       resolve)
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

    def _restricted(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                    resolve: int) -> Walk:
        """A walk under openat2's RESOLVE_* flags, anchored at `dirfd` (or the cwd)."""
        anchor = ctx.cwd if dirfd is None else dirfd.vd
        if anchor is None:
            raise error(errno.EBADF)
        return RestrictedWalk(self.table_of(ctx).mounts, ctx, creds, resolve, anchor)

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
                uid, gid, m = self._new_owner(creds, pd, S_IFREG | (mode & S_IALLUGO & ~ctx.umask))
                d = await parent.mount.fs.mknod(pd, name, m, 0, uid, gid)
                self.notifier.entry(pd, name, IN_CREATE, False)
                return VirtualDentry(parent.mount, d), True
            if flags & O_EXCL:
                raise error(errno.EEXIST, path)
            if vd.dentry.inode.is_symlink:
                if flags & O_NOFOLLOW:
                    raise error(errno.ELOOP, path)
                target = await w.read_link(vd)
                if isinstance(target, VirtualDentry):
                    if target.dentry.inode.is_dir:
                        raise error(errno.EISDIR, path)
                    return target, False  # a magic link opens its file, never creates
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
                self.notifier.file(vd.dentry, IN_MODIFY)
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
        fd.notifier = self.notifier
        self.notifier.opened(ino)
        self.notifier.file(vd.dentry, IN_OPEN)
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
        uid, gid, m = self._new_owner(creds, pd, S_IFREG | (mode & S_IALLUGO & ~ctx.umask))
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
        self.notifier.entry(parent.dentry, name, IN_CREATE, True)

    @_namespace_op
    async def mknodat(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                      path: bytes, mode: int, dev: int = 0, *, bind: bool = False) -> None:
        """mknod/mknodat: regular files, fifos, sockets, and devices (CAP_MKNOD).

        `bind`: the S_IFSOCK node of a unix socket's bind (`Filesystem.bind_socket`)."""
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
                                      ftype | (mode & S_IALLUGO & ~ctx.umask))
        if bind and ftype == S_IFSOCK:
            await parent.mount.fs.bind_socket(parent.dentry, name, m, uid, gid)
        else:
            await parent.mount.fs.mknod(parent.dentry, name, m, dev, uid, gid)
        self.notifier.entry(parent.dentry, name, IN_CREATE, False)

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
        self.notifier.entry(parent.dentry, name, IN_CREATE, False)

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
        self.notifier.inode(ino, IN_ATTRIB)
        self.notifier.entry(parent.dentry, name, IN_CREATE, False)

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
        if child.mounted and (parent.mount, child) in self.table_of(ctx).mounts:
            raise error(errno.EBUSY, path)
        if rmdir:
            await parent.mount.fs.rmdir(parent.dentry, child)
        else:
            await parent.mount.fs.unlink(parent.dentry, child)
        self.notifier.removed(child)
        self.notifier.entry(parent.dentry, name, IN_DELETE, rmdir)

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
        mounts = self.table_of(ctx).mounts
        if (src.mounted and (op.mount, src) in mounts) or (
            dst is not None and dst.mounted and (np.mount, dst) in mounts
        ):
            raise error(errno.EBUSY)
        await fs.rename(op.dentry, src, np.dentry, nname, dst, flags)
        n = self.notifier
        if n.hook is not None:
            self._notify_move(op.dentry, oname, np.dentry, nname, src,
                              None if exchange else dst)
            if exchange and dst is not None:
                self._notify_move(np.dentry, nname, op.dentry, oname, dst, None)
            elif dst is not None and (dst.inode.nlink <= 0 or dst.inode.is_dir):
                n.gone(dst.inode)

    def _notify_move(self, old_dir: Dentry, old_name: bytes, new_dir: Dentry,
                     new_name: bytes, moved: Dentry, replaced: Dentry | None) -> None:
        """Linux's fsnotify_move: IN_MOVED_FROM and IN_MOVED_TO with one cookie, the
        replaced file's link count, then the moved file's IN_MOVE_SELF."""
        n = self.notifier
        cookie = n.cookie()
        is_dir = moved.inode.is_dir
        n.entry(old_dir, old_name, IN_MOVED_FROM, is_dir, cookie)
        n.entry(new_dir, new_name, IN_MOVED_TO, is_dir, cookie)
        if replaced is not None:
            n.inode(replaced.inode, IN_ATTRIB)
        n.inode(moved.inode, IN_MOVE_SELF)


def _is_ancestor(a: Dentry, d: Dentry) -> bool:
    """True if `a` is `d` or one of its ancestors (within one filesystem)."""
    while True:
        if d is a:
            return True
        if d.is_root:
            return False
        d = d.parent


