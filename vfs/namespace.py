"""The mount namespace of a VirtualFilesystem: its mounts, the contexts (root, cwd) that
path resolution starts from, and the operations on them (mount, umount, chdir, chroot,
getcwd, d_path). The path-based file operations build on it (`attrs.py`, `virtualfs.py`).
"""

from __future__ import annotations

import errno
import weakref
from collections.abc import Callable

from .abi import MAY_EXEC
from .creds import CAP_SYS_ADMIN, CAP_SYS_CHROOT, Credentials
from .dentry import Dentry
from .errors import error
from .file import FileDescription
from .filesystem import Filesystem
from .mount import MNT_DETACH, FSContext, Mount, MountTable, VirtualDentry
from .perm import check
from .resolve import Walk


class Namespace:
    """A mount namespace: the root mount and every mount attached below it.

    Args:
        root_fs: the filesystem mounted at "/".
        flags: MS_* flags of the root mount.

    Attributes:
        table: the first mount namespace (`MountTable`); a context may name a copy of its
            own (`FSContext.table`, made by `unshare_mounts`), which its operations use.
    """

    def __init__(self, root_fs: Filesystem, *, flags: int = 0, source: str = "none") -> None:
        self.table = MountTable(Mount(root_fs, root_fs.root, flags, source))
        self._roots: weakref.WeakSet[Mount] = weakref.WeakSet([self.table.root_mount])

    @property
    def root_mount(self) -> Mount:
        """The mount at "/" of the first mount namespace."""
        return self.table.root_mount

    @property
    def _mounts(self) -> dict[tuple[Mount, Dentry], Mount]:
        return self.table.mounts

    def table_of(self, ctx: FSContext | None) -> MountTable:
        """The mount namespace `ctx` resolves in."""
        return ctx.table if ctx is not None and ctx.table is not None else self.table

    def is_root_mount(self, m: Mount) -> bool:
        """True for the root mount of any mount namespace (not an internal, unattached
        mount such as pipefs's)."""
        return m in self._roots

    def unshare_mounts(self, ctx: FSContext) -> None:
        """unshare(CLONE_NEWNS) for the process whose (unshared) context is `ctx`: a copy
        of its mount namespace, which ctx moves to."""
        table, mapping = self.table_of(ctx).copy()
        self._roots.add(table.root_mount)
        ctx.enter(table, mapping)

    # -- contexts --------------------------------------------------------------------------------

    def new_context(self, umask: int = 0o022) -> FSContext:
        """A context with root and cwd at this namespace's root (the first process's)."""
        vd = VirtualDentry(self.root_mount, self.root_mount.root)
        return FSContext(vd, vd, umask)

    def _walk(self, ctx: FSContext, creds: Credentials) -> Walk:
        return Walk(self.table_of(ctx).mounts, ctx, creds)

    async def resolve(self, ctx: FSContext, creds: Credentials, dirfd: FileDescription | None,
                      path: bytes, *, follow: bool = True,
                      empty_ok: bool = False) -> VirtualDentry:
        """The (mount, dentry) a path names (see `Walk.resolve`)."""
        return await self._walk(ctx, creds).resolve(dirfd, path, follow=follow,
                                                    empty_ok=empty_ok)

    # -- mounts -----------------------------------------------------------------------------------

    def _attach(self, m: Mount, at: VirtualDentry, table: MountTable) -> None:
        m.parent = at.mount
        m.mountpoint = at.dentry
        table.mounts[(at.mount, at.dentry)] = m
        at.dentry.mounted += 1
        at.mount.children.append(m)

    async def mount(self, ctx: FSContext, creds: Credentials, fs: Filesystem,
                    dirfd: FileDescription | None, path: bytes, *, flags: int = 0,
                    source: str = "none", root: Dentry | None = None) -> Mount:
        """Mount `fs` on the directory `path` names (on top of any mount already there);
        with `root`, only that dentry of `fs` is seen there, as a bind of it: a file's goes
        on a file (how an OCI runtime binds a single host file such as /etc/hosts)."""
        if not creds.has_cap(CAP_SYS_ADMIN):
            raise error(errno.EPERM)
        at = await self.resolve(ctx, creds, dirfd, path)
        top = fs.root if root is None else root
        if top.inode.is_dir != at.dentry.inode.is_dir:
            raise error(errno.ENOTDIR if top.inode.is_dir else errno.EISDIR, path)
        m = Mount(fs, top, flags, source)
        self._attach(m, at, self.table_of(ctx))
        return m

    async def bind_mount(self, ctx: FSContext, creds: Credentials, src: bytes, dst: bytes, *,
                         flags: int = 0, recursive: bool = False) -> Mount:
        """mount --bind: make the subtree at `src` visible at `dst` too; `recursive`
        (--rbind, copy_tree) with a copy of every mount below `src` in that subtree, taken
        before the new one is attached (so binding a tree into itself copies it once)."""
        if not creds.has_cap(CAP_SYS_ADMIN):
            raise error(errno.EPERM)
        s = await self.resolve(ctx, creds, None, src)
        d = await self.resolve(ctx, creds, None, dst)
        if s.dentry.inode.is_dir != d.dentry.inode.is_dir:
            raise error(errno.ENOTDIR if not d.dentry.inode.is_dir else errno.EISDIR)
        table = self.table_of(ctx)
        m = Mount(s.mount.fs, s.dentry, flags, s.mount.source)
        if recursive:
            self._copy_below(s.mount, s.dentry, m, table)
        self._attach(m, d, table)
        return m

    def _copy_below(self, src: Mount, top: Dentry, dst: Mount, table: MountTable) -> None:
        """Copy onto `dst` (a copy of `src` seen from `top`) the mounts on `src` at or
        below `top`, and theirs, each with its own flags."""
        for c in list(src.children):
            if c.mountpoint is None or not _within(c.mountpoint, top):
                continue
            cc = Mount(c.fs, c.root, c.flags, c.source)
            self._copy_below(c, c.root, cc, table)
            self._attach(cc, VirtualDentry(dst, c.mountpoint), table)

    async def move_mount(self, ctx: FSContext, creds: Credentials, src: bytes,
                         dst: bytes) -> None:
        """mount --move (do_move_mount): the mount whose root `src` names, with its
        mounts, goes to `dst`. EINVAL for a path that is not a mount's root or for the
        root mount, ELOOP for a place inside the moved tree."""
        if not creds.has_cap(CAP_SYS_ADMIN):
            raise error(errno.EPERM)
        s = await self.resolve(ctx, creds, None, src)
        d = await self.resolve(ctx, creds, None, dst)
        m = s.mount
        if s.dentry is not m.root or m.parent is None or m.mountpoint is None:
            raise error(errno.EINVAL, src)
        if s.dentry.inode.is_dir != d.dentry.inode.is_dir:
            raise error(errno.ENOTDIR if not d.dentry.inode.is_dir else errno.EISDIR)
        up: Mount | None = d.mount
        while up is not None:
            if up is m:
                raise error(errno.ELOOP, dst)
            up = up.parent
        table = self.table_of(ctx)
        parent, point = m.parent, m.mountpoint
        table.mounts.pop((parent, point), None)
        point.mounted -= 1
        parent.children.remove(m)
        self._attach(m, d, table)

    async def pivot_root(self, ctx: FSContext, creds: Credentials, new: bytes, put_old: bytes,
                         contexts: list[FSContext]) -> None:
        """pivot_root(2) as Linux checks it: the mount at `new` becomes the namespace's
        root and the caller's root mount goes to `put_old` (at or below `new`); every
        context of `contexts` in this namespace whose root or cwd was the old root moves
        to the new one (chroot_fs_refs). EBUSY when `new` or `put_old` is on the root's
        mount; EINVAL when the caller's root, or `new`, is not a mount's root, or
        `put_old` is not below `new` or `new` not below the root. The namespace's first
        root mount has no parent here; it counts as attached (Linux's sits on rootfs)."""
        if not creds.has_cap(CAP_SYS_ADMIN):
            raise error(errno.EPERM)
        n = await self.resolve(ctx, creds, None, new)
        o = await self.resolve(ctx, creds, None, put_old)
        if not n.dentry.inode.is_dir or not o.dentry.inode.is_dir:
            raise error(errno.ENOTDIR)
        table = self.table_of(ctx)
        root = ctx.root
        new_mnt, root_mnt, old_mnt = n.mount, root.mount, o.mount
        if new_mnt is root_mnt or old_mnt is root_mnt:
            raise error(errno.EBUSY)
        if root.dentry is not root_mnt.root or n.dentry is not new_mnt.root \
                or new_mnt.parent is None or new_mnt.mountpoint is None:
            raise error(errno.EINVAL)
        if not _reachable(old_mnt, o.dentry, new_mnt, n.dentry) \
                or not _reachable(new_mnt, n.dentry, root_mnt, root.dentry):
            raise error(errno.EINVAL)
        ex_parent, ex_point = new_mnt.parent, new_mnt.mountpoint
        table.mounts.pop((ex_parent, ex_point), None)
        ex_point.mounted -= 1
        ex_parent.children.remove(new_mnt)
        new_mnt.parent = new_mnt.mountpoint = None
        r_parent, r_point = root_mnt.parent, root_mnt.mountpoint
        if r_parent is None or r_point is None:
            table.root_mount = new_mnt
            self._roots.add(new_mnt)
        else:  # a root that was itself mounted somewhere: the new one takes its place
            table.mounts.pop((r_parent, r_point), None)
            r_point.mounted -= 1
            r_parent.children.remove(root_mnt)
            root_mnt.parent = root_mnt.mountpoint = None
            self._attach(new_mnt, VirtualDentry(r_parent, r_point), table)
        self._attach(root_mnt, VirtualDentry(old_mnt, o.dentry), table)
        top = VirtualDentry(new_mnt, new_mnt.root)
        for c in contexts:
            if self.table_of(c) is not table:
                continue
            if c.root.mount is root_mnt and c.root.dentry is root_mnt.root:
                c.root = top
            if c.cwd.mount is root_mnt and c.cwd.dentry is root_mnt.root:
                c.cwd = top

    async def remount(self, ctx: FSContext, creds: Credentials, path: bytes, flags: int) -> None:
        """Change a mount's flags (MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC)."""
        if not creds.has_cap(CAP_SYS_ADMIN):
            raise error(errno.EPERM)
        vd = await self.resolve(ctx, creds, None, path)
        if vd.dentry is not vd.mount.root:
            raise error(errno.EINVAL, path)
        vd.mount.flags = flags

    async def unmount(self, ctx: FSContext, creds: Credentials, path: bytes,
                      flags: int = 0, in_use: Callable[[Mount], bool] | None = None) -> None:
        """umount2: EINVAL unless `path` is a mount root; EBUSY with mounts below it, or
        when `in_use(mount)` (an open file, a mapping, a root or cwd on it: the Sentry
        knows them), unless MNT_DETACH (which takes them all away)."""
        if not creds.has_cap(CAP_SYS_ADMIN):
            raise error(errno.EPERM)
        vd = await self.resolve(ctx, creds, None, path)
        m = vd.mount
        if vd.dentry is not m.root or m.parent is None:
            raise error(errno.EINVAL, path)
        if not flags & MNT_DETACH and (m.children or (in_use is not None and in_use(m))):
            raise error(errno.EBUSY, path)
        await self._detach(m, self.table_of(ctx))

    async def _detach(self, m: Mount, table: MountTable) -> None:
        for c in list(m.children):
            await self._detach(c, table)
        parent, point = m.parent, m.mountpoint
        if parent is not None and point is not None:
            del table.mounts[(parent, point)]
            point.mounted -= 1
            parent.children.remove(m)
        m.parent = m.mountpoint = None
        if not any(x.fs is m.fs for x in table.all_mounts()):
            # Written back, but not released: a working directory or an open file may still
            # be on it, and Linux keeps a detached filesystem alive for them (a goferfs's
            # fids go with its connection when the sandbox ends).
            await m.fs.sync()

    async def sync(self) -> None:
        """sync(2): write back every mounted filesystem's cached data. It reports nothing,
        as Linux's: one filesystem's failure does not stop the others, and the file whose
        write-back failed reports it at its next fsync/close (goferfs)."""
        seen: set[int] = set()
        for m in self.all_mounts():
            if id(m.fs) not in seen:
                seen.add(id(m.fs))
                try:
                    await m.fs.sync()
                except OSError:
                    pass

    def all_mounts(self, ctx: FSContext | None = None) -> list[Mount]:
        """Every attached mount of ctx's mount namespace (by default the first one),
        parents before children (what /proc/mounts lists)."""
        return self.table_of(ctx).all_mounts()

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


def _within(d: Dentry, top: Dentry) -> bool:
    """Whether dentry `d` is `top` or below it (a root is its own parent)."""
    while True:
        if d is top:
            return True
        if d.parent is d or d.parent is None:
            return False
        d = d.parent


def _reachable(mnt: Mount, d: Dentry, top_mnt: Mount, top: Dentry) -> bool:
    """is_path_reachable: (mnt, d) is at or below (top_mnt, top), through the mounts."""
    while mnt is not top_mnt:
        if mnt.parent is None or mnt.mountpoint is None:
            return False
        d, mnt = mnt.mountpoint, mnt.parent
    return _within(d, top)
