"""inotify_init, inotify_init1, inotify_add_watch, inotify_rm_watch; fanotify refused.

An `InotifyFD` is an inotify instance (`sentry.kernel.inotify.Instance`: its watches
and event queue) as a file: a read returns whole struct inotify_event records (EINVAL if
the first does not fit), waits for one or fails with EAGAIN under O_NONBLOCK; FIONREAD
tells the bytes queued; POLLIN while events are queued, notified as they come.

Events are the changes made through the sandbox's VFS (vfs.notify): creating, deleting,
moving (IN_MOVED_FROM/IN_MOVED_TO sharing a cookie), opening, reading, writing, closing,
attribute changes. A file changed on the host behind a gofer is not seen. IN_DELETE_SELF
of a file removed while open comes at its last close, as in Linux (a process's cwd in a
removed directory does not delay it). IN_EXCL_UNLINK is accepted and has no effect;
IN_UNMOUNT is never sent.

fanotify_init and fanotify_mark fail with EPERM, as for a user without CAP_SYS_ADMIN:
the sandbox has no fanotify groups.
"""

from __future__ import annotations

import errno
import os
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel import fasync
from sentry.kernel.inotify import (
    IN_DONT_FOLLOW,
    IN_EXCL_UNLINK,
    IN_MASK_ADD,
    IN_MASK_CREATE,
    IN_ONESHOT,
    IN_ONLYDIR,
    Event,
    Instance,
)
from sentry.kernel.table import Level, fixed_errno, syscall
from vfs.abi import MAY_READ, O_NONBLOCK, POLLIN, POLLRDNORM
from vfs.errors import error
from vfs.file import Memory
from vfs.notify import IN_ALL_EVENTS, IN_IGNORED, IN_ISDIR, IN_Q_OVERFLOW, IN_UNMOUNT
from vfs.perm import check

from .anon import AnonFile
from .sys_file import i32, vfs_of

if TYPE_CHECKING:
    from sentry.kernel.pidns import PidNamespace
    from sentry.kernel.task import Task

IN_CLOEXEC, IN_NONBLOCK = 0o2000000, 0o4000
FIONREAD = 0x541B
_ALL_BITS = (IN_ALL_EVENTS | IN_UNMOUNT | IN_Q_OVERFLOW | IN_IGNORED | IN_ONLYDIR
             | IN_DONT_FOLLOW | IN_EXCL_UNLINK | IN_MASK_ADD | IN_MASK_CREATE | IN_ISDIR
             | IN_ONESHOT)
_EVENT = struct.Struct("<iIII")  # wd, mask, cookie, len


def _record(ev: Event) -> bytes:
    wd, mask, cookie, name = ev
    size = (len(name) + 16) // 16 * 16 if name else 0  # NUL-padded to 16 bytes
    return _EVENT.pack(wd, mask, cookie, size) + name.ljust(size, b"\0")


class InotifyFD(AnonFile):
    """An inotify instance as a file."""

    anon_name = b"anon_inode:inotify"

    def __init__(self, t: Task, flags: int) -> None:
        super().__init__(t.kernel.anon_inode_stat, flags, mode=0)
        self.inst = Instance(t.kernel.inotify, self._queued)

    def _queued(self) -> None:
        self.waitq.notify(POLLIN | POLLRDNORM)

    def readiness(self, mask: int) -> int:
        return mask & (POLLIN | POLLRDNORM) if self.inst.queue else 0

    def fasync_reason(self, mask: int) -> int:
        """O_ASYNC: each event queued (not one merged with the last) is POLL_IN, as
        fsnotify_add_event's kill_fasync."""
        return fasync.POLL_IN

    async def do_read(self, n: int) -> bytes:
        q = self.inst.queue
        while not q:
            if self.flags & O_NONBLOCK:
                raise error(errno.EAGAIN)
            await self.wait_ready(POLLIN)
        out = bytearray()
        while q:
            rec = _record(q[0])
            if len(out) + len(rec) > n:
                if not out:
                    raise error(errno.EINVAL)
                break
            self.inst.take()
            out += rec
        return bytes(out)

    async def do_ioctl(self, cmd: int, arg: int, mem: Memory | None) -> int:
        if cmd != FIONREAD or mem is None:
            return await super().do_ioctl(cmd, arg, mem)
        mem.mem_write(arg, struct.pack("<i", sum(len(_record(e)) for e in self.inst.queue)))
        return 0

    async def release(self) -> None:
        self.inst.close()

    def fdinfo(self, pidns: PidNamespace) -> bytes:
        out = b""
        for w in reversed(self.inst.watches.values()):  # newest first, as Linux
            mask = w.mask & (IN_ALL_EVENTS | IN_ONESHOT | IN_EXCL_UNLINK)
            out += b"inotify wd:%x ino:%x sdev:%x mask:%x ignored_mask:0\n" % (
                w.wd, w.ino, w.dev, mask)
        return out


def _instance(t: Task, fd: int) -> InotifyFD:
    f = t.fdtable.get(i32(fd))
    if not isinstance(f, InotifyFD):
        raise SyscallError(errno.EINVAL)
    return f


@syscall("inotify_init")
def sys_inotify_init(t: Task, *_: int) -> int:
    """Implements Linux syscall inotify_init(2)."""
    return sys_inotify_init1(t, 0)


@syscall("inotify_init1")
def sys_inotify_init1(t: Task, flags: int, *_: int) -> int:
    """Implements Linux syscall inotify_init1(2): IN_CLOEXEC, IN_NONBLOCK."""
    flags = i32(flags)
    if flags & ~(IN_CLOEXEC | IN_NONBLOCK):
        raise SyscallError(errno.EINVAL)
    return t.fdtable.install(InotifyFD(t, flags), cloexec=bool(flags & IN_CLOEXEC))


@syscall("inotify_add_watch", level=Level.PARTIAL,
         note="changes made through the sandbox's VFS only (not on the host behind a gofer); "
         "IN_EXCL_UNLINK has no effect; no IN_UNMOUNT")
async def sys_inotify_add_watch(t: Task, fd: int, path: int, mask: int, *_: int) -> int:
    """Implements Linux syscall inotify_add_watch(2): a new watch, or a changed mask of
    the instance's watch on that inode (IN_MASK_ADD, IN_MASK_CREATE), IN_ONESHOT,
    IN_ONLYDIR, IN_DONT_FOLLOW."""
    mask &= 0xFFFFFFFF
    if mask & IN_MASK_ADD and mask & IN_MASK_CREATE or not mask & _ALL_BITS:
        raise SyscallError(errno.EINVAL)
    f = _instance(t, fd)
    vfs, fs = vfs_of(t)
    name = t.read_cstring(path)
    vd = await vfs.resolve(fs, t.creds, None, name, follow=not mask & IN_DONT_FOLLOW)
    ino = vd.dentry.inode
    if mask & IN_ONLYDIR and not ino.is_dir:
        raise SyscallError(errno.ENOTDIR)
    check(t.creds, ino, MAY_READ)
    inst = f.inst
    w = inst.watch_of(ino)
    keep = mask & (IN_ALL_EVENTS | IN_ONESHOT | IN_EXCL_UNLINK)
    if w is not None:
        if mask & IN_MASK_CREATE:
            raise SyscallError(errno.EEXIST)
        w.mask = (w.mask | keep) if mask & IN_MASK_ADD else keep
        return w.wd
    dev = (await vd.mount.fs.stat(vd.dentry)).dev
    return inst.add(ino, keep, (os.major(dev) << 20) | os.minor(dev))


@syscall("inotify_rm_watch")
def sys_inotify_rm_watch(t: Task, fd: int, wd: int, *_: int) -> int:
    """Implements Linux syscall inotify_rm_watch(2): the watch ends with IN_IGNORED."""
    inst = _instance(t, fd).inst
    w = inst.watches.get(i32(wd))
    if w is None:
        raise SyscallError(errno.EINVAL)
    inst.remove(w)
    return 0


fixed_errno("fanotify_init", errno.EPERM,
            "EPERM as for a user without CAP_SYS_ADMIN: the sandbox has no fanotify")

FAN_MARK_ADD, FAN_MARK_REMOVE, FAN_MARK_FLUSH = 0x1, 0x2, 0x80


@syscall("fanotify_mark", level=Level.ERRNO,
         note="no fanotify group can exist (fanotify_init is EPERM): EINVAL or EBADF")
def sys_fanotify_mark(t: Task, fd: int, flags: int, *_: int) -> int:
    """Implements Linux syscall fanotify_mark(2) for a sandbox without fanotify groups:
    EINVAL for a bad command, EBADF for a closed fd, else EINVAL (not a group)."""
    cmd = flags & (FAN_MARK_ADD | FAN_MARK_REMOVE | FAN_MARK_FLUSH)
    if cmd not in (FAN_MARK_ADD, FAN_MARK_REMOVE, FAN_MARK_FLUSH):
        raise SyscallError(errno.EINVAL)
    t.fdtable.get(i32(fd))
    raise SyscallError(errno.EINVAL)
