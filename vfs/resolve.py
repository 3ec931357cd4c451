"""Path resolution: the one place that knows Linux's rules for turning a path into a file.

Why one place: symlink following (40 links, then ELOOP), `.` and `..` (which never climb
above the caller's root and cross mount points upwards), mount points downwards, trailing
slashes, NAME_MAX/PATH_MAX and search permission on every directory must behave the same
on every filesystem. Filesystems only answer `lookup(parent, names)` for as many plain
names as they own in one call, so a 9P filesystem resolves `a/b/c` in one round trip.

A symlink normally holds a path; a filesystem may instead answer `jump_link` with the
file itself (Linux's "magic links" of /proc/PID/fd/N, cwd, root and exe, which
nd_jump_link follows): the walk then continues from that (mount, dentry) wherever it is,
even a file no path reaches any more (unlinked, an anonymous pipe).

The walker splits a path into a parent and its last component (Linux's LAST_NORM /
LAST_DOT / LAST_DOTDOT / LAST_ROOT); each operation decides what to do with the last
component, because create, unlink, rename and open treat it differently.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .abi import MAXSYMLINKS, MAY_EXEC, NAME_MAX, PATH_MAX, S_IFDIR, S_IFLNK, S_IFMT
from .errors import error
from .mount import FSContext, VirtualDentry
from .perm import permitted

if TYPE_CHECKING:
    from .creds import Credentials
    from .dentry import Dentry
    from .file import FileDescription
    from .mount import Mount

#: The "last component" of "/" (LAST_ROOT).
ROOT = b"/"
_DOTS = (b".", b"..")


class Walk:
    """State of one resolution: the caller's context and the symlinks followed so far."""

    __slots__ = ("mounts", "ctx", "creds", "links", "pre")

    def __init__(self, mounts: dict[tuple[Mount, Dentry], Mount], ctx: FSContext,
                 creds: Credentials) -> None:
        self.mounts = mounts
        self.ctx = ctx
        self.creds = creds
        self.links = 0
        #: The last component's dentry, when the walk to its parent found it too (see
        #: `walk`'s `prefetch`): the last step then needs no second lookup.
        self.pre: Dentry | None = None

    # -- helpers ------------------------------------------------------------------------------

    def follow_mounts(self, vd: VirtualDentry) -> VirtualDentry:
        """Step onto whatever is mounted at `vd` (the topmost of stacked mounts)."""
        while vd.dentry.mounted:
            m = self.mounts.get((vd.mount, vd.dentry))
            if m is None:
                break
            vd = VirtualDentry(m, m.root)
        return vd

    def dotdot(self, cur: VirtualDentry) -> VirtualDentry:
        """`..` of `cur`: stays at the caller's root, climbs out of mounts (follow_dotdot)."""
        root = self.ctx.root
        while True:
            if cur.dentry is root.dentry and cur.mount is root.mount:
                return cur
            m = cur.mount
            if cur.dentry is m.root:
                if m.parent is None or m.mountpoint is None:
                    return cur
                cur = VirtualDentry(m.parent, m.mountpoint)
                continue
            return self.follow_mounts(VirtualDentry(m, cur.dentry.parent))

    async def read_link(self, vd: VirtualDentry) -> bytes | VirtualDentry:
        """Count one more symlink (ELOOP past 40) and return its target: a path (ENOENT if
        empty), or for a magic link the file it stands for."""
        self.links += 1
        if self.links > MAXSYMLINKS:
            raise error(errno.ELOOP)
        fs = vd.mount.fs
        jump = await fs.jump_link(vd)
        if jump is not None:
            return jump
        target = await fs.readlink(vd.dentry)
        if not target:
            raise error(errno.ENOENT)
        return target

    def start(self, dirfd: FileDescription | None, path: bytes) -> VirtualDentry:
        """Where a path starts: the root, the cwd (AT_FDCWD) or the directory `dirfd`."""
        if path[:1] == b"/":
            return self.ctx.root
        if dirfd is None:
            return self.ctx.cwd
        vd = dirfd.vd
        if vd is None:
            raise error(errno.EBADF)
        if not vd.dentry.inode.is_dir:
            raise error(errno.ENOTDIR)
        return vd

    # -- walking -------------------------------------------------------------------------------

    async def walk(self, cur: VirtualDentry, comps: list[bytes],
                   prefetch: bytes | None = None) -> VirtualDentry:
        """Resolve every name of `comps` from `cur`, following every symlink met.

        Each step needs the current file to be a searchable directory; the result is
        whatever the last name is (its type is the caller's business). `prefetch` is the
        path's last component: it is handed to the filesystem with the final run of names
        so that a remote filesystem resolves the whole path in one round trip (the
        caller looks it up again, from the filesystem's cache).
        """
        creds = self.creds
        mount = cur.mount
        d = cur.dentry
        i = 0
        n = len(comps)
        while i < n:
            ino = d.inode
            if ino.mode & S_IFMT != S_IFDIR:
                raise error(errno.ENOTDIR)
            # (x for owner, group and others: searchable by anyone, no call needed)
            if ino.mode & 0o111 != 0o111 and not permitted(creds, ino.mode, ino.uid,
                                                            ino.gid, MAY_EXEC):
                raise error(errno.EACCES)
            name = comps[i]
            if name == b".":
                i += 1
                continue
            if name == b"..":
                vd = self.dotdot(VirtualDentry(mount, d))
                mount, d = vd.mount, vd.dentry
                i += 1
                continue
            run = comps[i:]
            if b"." in run or b".." in run or max(map(len, run)) > NAME_MAX:
                # The run of names stops before a dot or a name too long (scanned one by
                # one only then; the usual path is checked by the C-level scans above).
                if len(name) > NAME_MAX:
                    raise error(errno.ENAMETOOLONG)
                j = i + 1
                while j < n:
                    nm = comps[j]
                    if nm == b"." or nm == b".." or len(nm) > NAME_MAX:
                        break
                    j += 1
                run = comps[i:j]
            else:
                j = n
            if prefetch is not None and j == n:
                found = await mount.fs.lookup(d, run + [prefetch])
                if len(found) > j - i:
                    self.pre = found[j - i]
                    del found[j - i:]
            else:
                found = await mount.fs.lookup(d, run)
            prev = d
            for k, child in enumerate(found):
                if k:
                    # Every name after the run's first is looked up in the previous
                    # child, which needs search permission just like `d` did.
                    pi = prev.inode
                    if pi.mode & 0o111 != 0o111 and not permitted(creds, pi.mode, pi.uid,
                                                                  pi.gid, MAY_EXEC):
                        raise error(errno.EACCES)
                i += 1
                if child.mounted:
                    vd = self.follow_mounts(VirtualDentry(mount, child))
                    # (a bind of a directory on itself is the same dentry on another mount)
                    if vd.mount is not mount:
                        mount, d = vd.mount, vd.dentry
                        break
                if child.inode.mode & S_IFMT == S_IFLNK:
                    target = await self.read_link(VirtualDentry(mount, child))
                    if isinstance(target, VirtualDentry):
                        mount, d = target.mount, target.dentry
                        comps = comps[i:]
                        n = len(comps)
                        i = 0
                        break
                    comps = [c for c in target.split(b"/") if c] + comps[i:]
                    n = len(comps)
                    i = 0
                    if target[:1] == b"/":
                        mount, d = self.ctx.root.mount, self.ctx.root.dentry
                    else:
                        d = prev
                    break
                d = prev = child
            else:
                if len(found) < len(run):
                    # The filesystem stopped early: the next name is missing (or d is a file).
                    ino = d.inode
                    if ino.mode & S_IFMT != S_IFDIR:
                        raise error(errno.ENOTDIR)
                    if not permitted(creds, ino.mode, ino.uid, ino.gid, MAY_EXEC):
                        raise error(errno.EACCES)
                    raise error(errno.ENOENT)
        return VirtualDentry(mount, d)

    async def parent(self, start: VirtualDentry,
                     path: bytes) -> tuple[VirtualDentry, bytes, bool]:
        """Split `path` (from `start`) into (resolved searchable parent, last name, slash).

        The last name is b"/" for a path of only slashes, else a component (possibly "." or
        ".."); `slash` is True if the path ends with '/'.
        """
        if len(path) >= PATH_MAX:
            raise error(errno.ENAMETOOLONG)
        if path[:1] == b"/":
            start = self.ctx.root
        comps = [c for c in path.split(b"/") if c]
        if not comps:
            return start, ROOT, True
        last = comps[-1]
        pre = last if last not in _DOTS and len(last) <= NAME_MAX else None
        cur = await self.walk(start, comps[:-1], pre) if len(comps) > 1 else start
        ino = cur.dentry.inode
        if ino.mode & S_IFMT != S_IFDIR:
            raise error(errno.ENOTDIR)
        if ino.mode & 0o111 != 0o111 and not permitted(self.creds, ino.mode, ino.uid,
                                                        ino.gid, MAY_EXEC):
            raise error(errno.EACCES)
        return cur, last, path[-1:] == b"/"

    async def lookup_child(self, parent: VirtualDentry, name: bytes) -> VirtualDentry | None:
        """The child `name` of searchable directory `parent` (mounts followed), or None."""
        if len(name) > NAME_MAX:
            raise error(errno.ENAMETOOLONG)
        pre, self.pre = self.pre, None
        if pre is not None and parent.dentry.children.get(name) is pre and not pre.dead:
            child = pre  # (found by the walk to `parent`, and still that name's)
        else:
            found = await parent.mount.fs.lookup(parent.dentry, [name])
            if not found:
                return None
            child = found[0]
        vd = VirtualDentry(parent.mount, child)
        if vd.dentry.mounted:
            vd = self.follow_mounts(vd)
        return vd

    async def last(self, parent: VirtualDentry, name: bytes, slash: bool,
                   follow: bool) -> VirtualDentry:
        """Resolve the last component; follow a final symlink if `follow` or `slash`."""
        while True:
            if name == ROOT or name == b".":
                return parent
            if name == b"..":
                return self.dotdot(parent)
            vd = await self.lookup_child(parent, name)
            if vd is None:
                raise error(errno.ENOENT)
            ino = vd.dentry.inode
            ftype = ino.mode & S_IFMT
            if ftype == S_IFLNK and (follow or slash):
                target = await self.read_link(vd)
                if isinstance(target, VirtualDentry):
                    if slash and not target.dentry.inode.is_dir:
                        raise error(errno.ENOTDIR)
                    return target
                parent, name, slash2 = await self.parent(parent, target)
                slash = slash or slash2
                continue
            if slash and ftype != S_IFDIR:
                raise error(errno.ENOTDIR)
            return vd

    async def resolve(self, dirfd: FileDescription | None, path: bytes, *, follow: bool = True,
                      empty_ok: bool = False) -> VirtualDentry:
        """The file `path` names (relative to `dirfd` or the cwd).

        Args:
            follow: follow a symlink in the last component (not AT_SYMLINK_NOFOLLOW).
            empty_ok: an empty path names `dirfd` itself (AT_EMPTY_PATH).
        Raises:
            OSError: ENOENT, ENOTDIR, EACCES, ELOOP, ENAMETOOLONG as Linux would.
        """
        if not path:
            if not empty_ok:
                raise error(errno.ENOENT)
            if dirfd is None:
                return self.ctx.cwd
            if dirfd.vd is None:
                raise error(errno.EBADF)
            return dirfd.vd
        start = self.start(dirfd, path)
        parent, name, slash = await self.parent(start, path)
        return await self.last(parent, name, slash, follow)
