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


@dataclass(slots=True)
class FSContext:
    """A process's root, working directory and umask (Linux's fs_struct)."""

    root: VirtualDentry
    cwd: VirtualDentry
    umask: int = 0o022
    extra: dict = field(default_factory=dict)

    def fork(self) -> FSContext:
        """The copy a child gets from fork/clone without CLONE_FS."""
        return FSContext(self.root, self.cwd, self.umask, dict(self.extra))
