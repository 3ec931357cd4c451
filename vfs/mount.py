"""Mounts, (mount, dentry) pairs, and each process's filesystem context.

A `Mount` attaches a filesystem's dentry (its root, or any directory for a bind mount) at a
dentry of a parent mount. A `VirtualDentry` names a file unambiguously: the same dentry
can be visible through several mounts. `FSContext` is Linux's `fs_struct`: root, cwd and
umask, shared by CLONE_FS threads and copied on fork.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from .dentry import Dentry
from .filesystem import Filesystem

# Mount flags (MS_* as mount(2) takes them).
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_RELATIME = 0x200000
MNT_FORCE = 0x1
MNT_DETACH = 0x2

_mount_ids = itertools.count(20)


class Mount:
    """One mount in the namespace.

    Attributes:
        id: the mount id statx and /proc/self/mountinfo report.
        fs: the filesystem.
        root: the dentry of `fs` seen at the mount point (fs.root unless a bind mount).
        parent: the mount this one sits on (None for the namespace root).
        mountpoint: the dentry of `parent` it covers.
        flags: MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC ...
        source: what /proc/mounts shows as the device.
    """

    __slots__ = ("id", "fs", "root", "parent", "mountpoint", "flags", "source", "children",
                 "__weakref__")

    def __init__(self, fs: Filesystem, root: Dentry, flags: int = 0, source: str = "none") -> None:
        self.id = next(_mount_ids)
        self.fs = fs
        self.root = root
        self.parent: Mount | None = None
        self.mountpoint: Dentry | None = None
        self.flags = flags
        self.source = source
        self.children: list[Mount] = []

    @property
    def readonly(self) -> bool:
        return bool(self.flags & MS_RDONLY)

    def __repr__(self) -> str:
        return f"<Mount {self.id} {self.fs.fstype} flags={self.flags:#x}>"


class VirtualDentry:
    """A (mount, dentry) pair: a file as a path names it."""

    __slots__ = ("mount", "dentry")

    def __init__(self, mount: Mount, dentry: Dentry) -> None:
        self.mount = mount
        self.dentry = dentry

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, VirtualDentry) and other.mount is self.mount
                and other.dentry is self.dentry)

    def __hash__(self) -> int:
        return hash((id(self.mount), id(self.dentry)))

    def __repr__(self) -> str:
        return f"<VD mount={self.mount.id} {self.dentry!r}>"


class MountTable:
    """One mount namespace's mounts: the root mount and, by (parent mount, dentry), the
    mount covering each mount point. A VFS has one; unshare(CLONE_NEWNS) gives a process
    a copy (`copy`), named by its `FSContext.table`."""

    __slots__ = ("root_mount", "mounts", "ns_ino", "__weakref__")

    def __init__(self, root_mount: Mount) -> None:
        self.root_mount = root_mount
        self.mounts: dict[tuple[Mount, Dentry], Mount] = {}
        #: the namespace's nsfs inode (/proc/PID/ns/mnt), set by whoever makes the copy;
        #: the initial namespace's until then
        self.ns_ino = 4026531841

    def all_mounts(self) -> list[Mount]:
        """Every attached mount, parents before children (what /proc/mounts lists)."""
        out: list[Mount] = []
        todo = [self.root_mount]
        while todo:
            m = todo.pop(0)
            out.append(m)
            todo.extend(m.children)
        return out

    def copy(self) -> tuple[MountTable, dict[Mount, Mount]]:
        """copy_mnt_ns: the same filesystems mounted at the same places, each mount a new
        one (its own id and flags), so mounts made in either table are not seen in the
        other. Returns the table and the mapping old mount -> its copy."""
        old_root = self.root_mount
        new_root = Mount(old_root.fs, old_root.root, old_root.flags, old_root.source)
        table = MountTable(new_root)
        mapping = {old_root: new_root}
        for m in self.all_mounts()[1:]:
            assert m.parent is not None and m.mountpoint is not None  # attached
            c = Mount(m.fs, m.root, m.flags, m.source)
            parent = mapping[m.parent]
            c.parent, c.mountpoint = parent, m.mountpoint
            table.mounts[(parent, m.mountpoint)] = c
            m.mountpoint.mounted += 1
            parent.children.append(c)
            mapping[m] = c
        return table, mapping


@dataclass(slots=True)
class FSContext:
    """A process's root, working directory and umask (Linux's fs_struct), and the mount
    namespace its paths resolve in (`table`; None: the VFS's own)."""

    root: VirtualDentry
    cwd: VirtualDentry
    umask: int = 0o022
    extra: dict = field(default_factory=dict)
    table: MountTable | None = None

    def fork(self) -> FSContext:
        """The copy a child gets from fork/clone without CLONE_FS."""
        return FSContext(self.root, self.cwd, self.umask, dict(self.extra), self.table)

    def enter(self, table: MountTable, mapping: dict[Mount, Mount]) -> None:
        """Move to the copied mount namespace `table`: root and cwd become the same
        places on the copies of their mounts."""
        self.table = table
        self.root = VirtualDentry(mapping.get(self.root.mount, self.root.mount),
                                  self.root.dentry)
        self.cwd = VirtualDentry(mapping.get(self.cwd.mount, self.cwd.mount), self.cwd.dentry)
