"""dnotify (fcntl F_NOTIFY): a directory's changes signalled to the process that asked.

Why over inotify: Linux's dnotify is another fsnotify group on the same marks; here a
registration is an inotify `Instance` of its own with one watch on the directory, whose
every event (drained at once) becomes Linux's send_sigio(POLL_MSG) to the file's owner,
which F_NOTIFY sets to the caller's process: SIGIO, or the F_SETSIG signal with si_fd the
fd F_NOTIFY was given. Without DN_MULTISHOT the first event ends the registration. A
registration lives on the open directory (`FileDescription.dnotify`) and ends when its
process closes any fd of it (dnotify_flush) or with arg 0.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from sentry.errors import SyscallError
from vfs.notify import (
    IN_ACCESS,
    IN_ATTRIB,
    IN_CREATE,
    IN_DELETE,
    IN_IGNORED,
    IN_MODIFY,
    IN_MOVED_FROM,
    IN_MOVED_TO,
)

from . import fasync
from .inotify import Instance

if TYPE_CHECKING:
    from vfs.dentry import Inode

    from .task import Task

DN_ACCESS, DN_MODIFY, DN_CREATE, DN_DELETE, DN_RENAME, DN_ATTRIB = 1, 2, 4, 8, 0x10, 0x20
DN_MULTISHOT = 0x80000000
#: convert_arg: the inotify events each DN_* bit stands for (DN_RENAME: an entry renamed
#: away or in, Linux's FS_RENAME)
_EVENTS = {DN_ACCESS: IN_ACCESS, DN_MODIFY: IN_MODIFY, DN_CREATE: IN_CREATE | IN_MOVED_TO,
           DN_DELETE: IN_DELETE | IN_MOVED_FROM, DN_RENAME: IN_MOVED_FROM | IN_MOVED_TO,
           DN_ATTRIB: IN_ATTRIB}


class Registration:
    """One open directory's F_NOTIFY: its watch, the fd to report, the owner process."""

    def __init__(self, t: Task, f: Any, inode: Inode) -> None:
        self.file = f
        self.tgid = t.tgid
        self.fd = -1
        self.multishot = False
        self.inst = Instance(t.kernel.inotify, self._event)
        self.inst.add(inode, 0, 0)

    def set(self, fd: int, arg: int) -> None:
        """Another F_NOTIFY of the same file: events and DN_MULTISHOT are added."""
        self.fd = fd
        self.multishot |= bool(arg & DN_MULTISHOT)
        w = next(iter(self.inst.watches.values()))
        w.mask |= sum(m for bit, m in _EVENTS.items() if arg & bit)

    def _event(self) -> None:
        q = self.inst.queue
        real = any(not ev[1] & IN_IGNORED for ev in q)
        q.clear()
        if not real or getattr(self.file, "dnotify", None) is not self:
            return
        fasync.send_sigio(fasync.owner(self.file), fasync.POLL_MSG, self.fd)
        if not self.multishot:
            self.end()

    def end(self) -> None:
        if getattr(self.file, "dnotify", None) is self:
            self.file.dnotify = None
        self.inst.close()


def fcntl_notify(t: Task, f: Any, fd: int, arg: int) -> int:
    """fcntl_dirnotify: arg without events removes the registration (any file); ENOTDIR
    for a file that is not a directory; else the owner becomes the caller's process and
    the events are added to the file's registration (made if none)."""
    arg &= 0xFFFFFFFF
    reg: Registration | None = getattr(f, "dnotify", None)
    if not arg & ~DN_MULTISHOT:
        if reg is not None:
            reg.end()
        return 0
    vd = getattr(f, "vd", None)
    if vd is None or not vd.dentry.inode.is_dir:
        raise SyscallError(errno.ENOTDIR)
    fasync.set_owner(t, f, fasync.F_OWNER_PID, t.pidns.vpid(t.tgid))
    if reg is None:
        reg = Registration(t, f, vd.dentry.inode)
        setattr(f, "dnotify", reg)  # noqa: B010 - an attribute of any open directory
    reg.set(fd, arg)
    return 0


def flush(f: Any, tgid: int) -> None:
    """dnotify_flush: process `tgid` closed an fd of `f`: its registration ends."""
    reg: Registration | None = getattr(f, "dnotify", None)
    if reg is not None and reg.tgid == tgid:
        reg.end()
