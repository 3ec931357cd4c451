"""mount(2) and umount2(2) inside the sandbox's own mount table (the VFS's `Namespace`),
for a caller with CAP_SYS_ADMIN there (EPERM otherwise, as Linux's may_mount).

mount: a new tmpfs (size=, nr_inodes=, mode=, uid=, gid= options), another view of the
sandbox's proc or sysfs, a bind mount, a remount (MS_RDONLY, MS_NOSUID, MS_NODEV,
MS_NOEXEC), and the propagation changes (MS_SHARED, MS_PRIVATE, MS_SLAVE,
MS_UNBINDABLE), which are accepted on a mount point: there is one mount namespace, so
nothing propagates anyway.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from sentry.errors import SyscallError
from sentry.kernel.ipc import ipc_of
from sentry.kernel.table import Level, syscall
from vfs.creds import CAP_SYS_ADMIN
from vfs.fs.procfs import Procfs
from vfs.memlimit import MemoryLimit
from vfs.mount import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC

from .sys_file import vfs_of
from .sys_fs import path_arg

if TYPE_CHECKING:
    from sentry.kernel.pidns import PidNamespace
    from sentry.kernel.task import Task
    from vfs.mount import Mount

MS_REMOUNT, MS_MOVE = 0x20, 0x2000
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 1 << 17, 1 << 18, 1 << 19, 1 << 20
MS_PROPAGATION = MS_UNBINDABLE | MS_PRIVATE | MS_SLAVE | MS_SHARED
MS_MGC_MSK, MS_MGC_VAL = 0xFFFF0000, 0xC0ED0000
MNT_FORCE, MNT_DETACH, MNT_EXPIRE, UMOUNT_NOFOLLOW = 1, 2, 4, 8
_KEPT = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC  # the per-mount flags recorded
_NOTE = ("tmpfs, proc, sysfs, mqueue, bind and rbind, move, remount and propagation flags "
         "(accepted: every mount is private); other filesystem types ENODEV")


def _tmpfs(data: bytes, memory: MemoryLimit) -> Any:
    """A tmpfs from mount's option string (EINVAL for a bad value of a known option),
    charging the sandbox's memory; without size= it is half the memory, as on Linux."""
    from vfs import Tmpfs

    kw: dict[str, int] = {"size": memory.limit // 2}
    for opt in filter(None, data.split(b",")):
        key, _, value = opt.partition(b"=")
        try:
            if key == b"size":
                mult = {b"k": 1 << 10, b"m": 1 << 20, b"g": 1 << 30}.get(value[-1:].lower(), 1)
                kw["size"] = int(value[:-1] if mult > 1 else value) * mult
            elif key == b"nr_inodes":
                kw["nr_inodes"] = int(value)
            elif key == b"mode":
                kw["mode"] = int(value, 8) & 0o7777
            elif key in (b"uid", b"gid"):
                kw[key.decode()] = int(value)
        except ValueError:
            raise SyscallError(errno.EINVAL) from None
    return Tmpfs(**kw, memory=memory)


def _existing(vfs: Any, fstype: str) -> Any:
    """The sandbox's own proc or sysfs (mounting it again shows the same tree)."""
    for m in vfs.all_mounts():
        if m.fs.fstype == fstype:
            return m.fs
    raise SyscallError(errno.ENODEV)


def _proc_for(proc: Any, ns: PidNamespace) -> Any:
    """A proc mounted from inside a nested pid namespace: a proc of that namespace's
    processes (one per namespace, as Linux's proc superblock; reused by later mounts)."""
    found = ns.proc
    if found is None:
        found = Procfs(proc.vfs, proc.provider.for_pidns(ns) if proc.provider else None)
        ns.proc = found
    return found


@syscall("mount", level=Level.PARTIAL, note=_NOTE)
async def sys_mount(t: Task, source: int, target: int, fstype: int, flags: int, data: int,
                    *_: int) -> int:
    """Implements Linux syscall mount(2) on the sandbox's mount table."""
    if not t.creds.has_cap(CAP_SYS_ADMIN):
        raise SyscallError(errno.EPERM)
    flags &= 0xFFFFFFFF
    if flags & MS_MGC_MSK == MS_MGC_VAL:
        flags &= ~MS_MGC_MSK
    vfs, fs = vfs_of(t)
    path = path_arg(t, target)
    if flags & MS_REMOUNT:
        vd = await vfs.resolve(fs, t.creds, None, path)
        # with or without MS_BIND the mount's own flags become the ones given
        await vfs.remount(fs, t.creds, path, vd.mount.flags & ~_KEPT | flags & _KEPT)
        return 0
    if flags & MS_BIND:
        src = path_arg(t, source)
        await vfs.bind_mount(fs, t.creds, src, path, flags=flags & _KEPT & ~MS_RDONLY,
                             recursive=bool(flags & MS_REC))
        return 0
    if flags & MS_PROPAGATION:
        if bin(flags & MS_PROPAGATION).count("1") > 1 or flags & ~(MS_PROPAGATION | MS_REC):
            raise SyscallError(errno.EINVAL)
        vd = await vfs.resolve(fs, t.creds, None, path)
        if vd.dentry is not vd.mount.root:
            raise SyscallError(errno.EINVAL)
        return 0
    if flags & MS_MOVE:
        await vfs.move_mount(fs, t.creds, path_arg(t, source), path)
        return 0
    kind = t.read_cstring(fstype, 4096).decode(errors="replace") if fstype else ""
    name = t.read_cstring(source, 4096).decode(errors="replace") if source else "none"
    options = t.read_cstring(data, 4096) if data else b""
    if kind == "tmpfs":
        newfs = _tmpfs(options, t.kernel.memory)
    elif kind == "proc" and t.pidns is not t.kernel.pidns:
        newfs = _proc_for(_existing(vfs, kind), t.pidns)
    elif kind in ("proc", "sysfs"):
        newfs = _existing(vfs, kind)
    elif kind == "mqueue":
        newfs = ipc_of(t).mqueue  # the caller's IPC namespace's (mq_get_tree)
    else:
        raise SyscallError(errno.ENODEV)
    await vfs.mount(fs, t.creds, newfs, None, path, flags=flags & _KEPT, source=name)
    return 0


@syscall("umount2", level=Level.PARTIAL,
         note="MNT_EXPIRE unmounts at once (no first EAGAIN marking it); MNT_FORCE is "
              "plain")
async def sys_umount2(t: Task, target: int, flags: int, *_: int) -> int:
    """Implements Linux syscall umount2(2): EINVAL for unknown flags or a path that is not
    a mount point, EBUSY with mounts below it or while in use unless MNT_DETACH."""
    flags &= 0xFFFFFFFF
    if flags & ~(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW):
        raise SyscallError(errno.EINVAL)
    if flags & MNT_EXPIRE and flags & (MNT_FORCE | MNT_DETACH):
        raise SyscallError(errno.EINVAL)
    if not t.creds.has_cap(CAP_SYS_ADMIN):
        raise SyscallError(errno.EPERM)
    vfs, fs = vfs_of(t)
    await vfs.unmount(fs, t.creds, path_arg(t, target), flags & MNT_DETACH,
                      lambda m: _in_use(t, m))
    return 0


def _in_use(t: Task, m: Mount) -> bool:
    """propagate_mount_busy's references: an open file, a mapped file, a root or a working
    directory of any sandbox thread on mount `m` (not below it: those are on its children,
    which make it busy already)."""
    for th in t.kernel.tasks.values():
        fs = th.fs
        if fs is not None and (fs.root.mount is m or fs.cwd.mount is m):
            return True
        files = [f for _, f in th.fdtable.items()] if th.fdtable is not None else []
        if th.mm is not None:
            files += [v.file for v in th.mm.vmas if v.file is not None]
        if any(getattr(getattr(f, "vd", None), "mount", None) is m for f in files):
            return True
    return False


@syscall("pivot_root")
async def sys_pivot_root(t: Task, new_root: int, put_old: int, *_: int) -> int:
    """Implements Linux syscall pivot_root(2) in the caller's mount namespace (EPERM
    without CAP_SYS_ADMIN); the processes whose root or cwd was the old root move to the
    new one."""
    vfs, fs = vfs_of(t)
    if not t.creds.has_cap(CAP_SYS_ADMIN):
        raise SyscallError(errno.EPERM)
    new, old = path_arg(t, new_root), path_arg(t, put_old)
    contexts = list({id(th.fs): th.fs for th in t.kernel.tasks.values()
                     if th.fs is not None}.values())
    await vfs.pivot_root(fs, t.creds, new, old, contexts)
    return 0
