"""The open files of /proc/PID/ns/* (Linux's nsfs): what setns(2) takes to join a namespace.

An opened ns link holds the namespace itself, not the process: the namespace stays
joinable after the process is gone (a pid namespace whose init ended is then dead, and a
fork into it fails); a mount namespace is its `vfs.MountTable`. The sandbox has one user,
network, cgroup and time namespace; their files hold None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vfs.abi import O_ACCMODE
from vfs.file import FileDescription

from .ipc import ipc_of
from .uts import uts_of

if TYPE_CHECKING:
    from vfs.mount import MountTable

    from .ipc import IpcNamespace
    from .pidns import PidNamespace
    from .task import Task
    from .uts import Uts

#: CLONE_NEW* of each kind of ns file (setns's nstype)
NS_TYPES = {b"mnt": 0x20000, b"cgroup": 0x02000000, b"uts": 0x04000000, b"ipc": 0x08000000,
            b"user": 0x10000000, b"pid": 0x20000000, b"net": 0x40000000, b"time": 0x80}


class NsFile(FileDescription):
    """An open /proc/PID/ns/NAME: its kind's CLONE_NEW* flag and the namespace object."""

    def __init__(self, nstype: int, ns: PidNamespace | Uts | IpcNamespace | MountTable | None,
                 flags: int) -> None:
        super().__init__(None, flags & O_ACCMODE)
        self.nstype = nstype
        self.ns = ns


def ns_object(t: Task, name: bytes) -> PidNamespace | Uts | IpcNamespace | MountTable | None:
    """`t`'s namespace `name` (ns/ link name) as an object, None for those the sandbox
    has one of (user, net, cgroup, time)."""
    if name == b"pid":
        return t.pidns
    if name == b"pid_for_children":
        return t.pidns_for_children or t.pidns
    if name == b"uts":
        return uts_of(t)
    if name == b"ipc":
        return ipc_of(t)
    if name == b"mnt":
        return mount_table(t)
    return None


def mount_table(t: Task) -> MountTable | None:
    """The mount namespace `t`'s paths resolve in (None in a kernel without a VFS)."""
    vfs, fs = t.kernel.vfs, t.fs
    if vfs is None or fs is None:
        return None
    return vfs.table_of(fs)
