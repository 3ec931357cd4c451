"""Attribute and extended-attribute operations by path (stat, statx, chmod, chown,
utimensat, truncate, access, readlink, statfs, the xattr family), with Linux's checks in
Linux's order (fs/stat.c, fs/attr.c, fs/open.c, fs/xattr.c)."""

from __future__ import annotations

import errno

from .abi import (
    AT_EACCESS,
    AT_EMPTY_PATH,
    AT_STATX_SYNC_TYPE,
    AT_SYMLINK_NOFOLLOW,
    MAY_READ,
    MAY_WRITE,
    S_IALLUGO,
    S_IFDIR,
    S_IFLNK,
    S_IFMT,
    S_IFREG,
    S_ISGID,
    S_ISUID,
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
from .creds import CAP_CHOWN, CAP_FSETID, CAP_SYS_ADMIN, Credentials
from .dentry import now_ns
from .errors import error
from .file import FileDescription
from .mount import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, FSContext, VirtualDentry
from .namespace import Namespace
from .notify import IN_ACCESS, IN_ATTRIB, IN_MODIFY, Notifier
from .perm import check, is_owner

_STAT_FLAGS = AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800  # AT_NO_AUTOMOUNT


class AttrOps(Namespace):
    """The attribute operations of a VirtualFilesystem (a base class of it)."""

    notifier: Notifier  # the VirtualFilesystem's: every change is reported to it

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
        mode &= S_IALLUGO
        if mode & S_ISGID and not creds.in_group(ino.gid) and not creds.has_cap(CAP_FSETID):
            mode &= ~S_ISGID
        await vd.mount.fs.setattr(vd.dentry, mode=(ino.mode & S_IFMT) | mode, ctime_ns=now_ns())
        self.notifier.file(vd.dentry, IN_ATTRIB)

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
        self.notifier.file(vd.dentry, IN_ATTRIB)

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
        # fsnotify_change: both times are a utime call (IN_ATTRIB), one alone an access
        # or a modification
        self.notifier.file(vd.dentry, IN_ATTRIB if at is not None and mt is not None
                           else IN_ACCESS if at is not None else IN_MODIFY)

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
        self.notifier.file(vd.dentry, IN_MODIFY)

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
        self.notifier.file(vd.dentry, IN_MODIFY)

    async def faccessat(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                        path: bytes, mode: int, flags: int = 0) -> None:
        """access/faccessat/faccessat2: checks with the real ids unless AT_EACCESS."""
        if mode & ~7:
            raise error(errno.EINVAL)
        if flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
            raise error(errno.EINVAL)
        if not flags & AT_EACCESS:
            creds = creds.for_access()
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
        self.notifier.file(vd.dentry, IN_ATTRIB)

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
        self.notifier.file(vd.dentry, IN_ATTRIB)


def _xattr_name(name: bytes) -> None:
    if not name or len(name) > 255:
        raise error(errno.ERANGE if name else errno.EINVAL)
    if not name.startswith((b"user.", b"trusted.", b"security.", b"system.")):
        raise error(errno.EOPNOTSUPP)
