"""unshare and setns, and the new namespaces clone makes. The sandbox is one set of
namespaces of its own; inside it a process may make new UTS (`sentry.kernel.uts`), IPC
(`sentry.kernel.ipc`: empty System V and POSIX message queue spaces), mount (a copy of
its mount table, `vfs.MountTable`) and PID (`sentry.kernel.pidns`: the caller's next
child is pid 1 of it) namespaces, with CAP_SYS_ADMIN. New user, network, cgroup and time
namespaces are refused with EPERM (what a container's seccomp profile gives). The
unsharing of what is not a namespace (fd table, fs context, SysV undo
lists) is done. setns joins a pid (for the caller's next children), UTS, IPC or mount
(root and cwd moved to its root) namespace named by an open /proc/PID/ns file
(`sentry.kernel.nsfs`) or a pidfd.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.ipc import IpcNamespace, ipc_of
from sentry.kernel.nsfs import NsFile, mount_table
from sentry.kernel.pidns import PidNamespace
from sentry.kernel.table import Level, syscall
from sentry.kernel.uts import Uts, uts_of
from vfs.creds import CAP_SYS_ADMIN, CAP_SYS_CHROOT
from vfs.mount import MountTable, VirtualDentry

from .sys_file import i32, vfs_of
from .sys_pidfd import PidFD
from .sys_procvm import ptrace_may_access

if TYPE_CHECKING:
    from sentry.kernel.task import Task

CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_THREAD, CLONE_NEWNS, CLONE_SYSVSEM = 0x10000, 0x20000, 0x40000
CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWTIME = 0x10000000, 0x20000000, 0x40000000, 0x80
NEW_NAMESPACES = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
                  | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME)
UNSHARE_FLAGS = NEW_NAMESPACES | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_VM \
    | CLONE_THREAD | CLONE_SYSVSEM


#: The new namespaces a process may make inside the sandbox.
SUPPORTED_NAMESPACES = CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNS | CLONE_NEWPID


def check_new_namespaces(t: Task, flags: int) -> None:
    """unshare_nsproxy_namespaces / copy_namespaces: EPERM for a namespace the sandbox
    cannot make, and without CAP_SYS_ADMIN."""
    if flags & NEW_NAMESPACES & ~SUPPORTED_NAMESPACES:
        raise SyscallError(errno.EPERM)
    if flags & NEW_NAMESPACES and not t.creds.has_cap(CAP_SYS_ADMIN):
        raise SyscallError(errno.EPERM)


def enter_new_namespaces(t: Task, flags: int) -> None:
    """Put `t` (a caller of unshare, or a new child of clone) in new namespaces: a copy
    of its UTS names, an empty IPC namespace, a copy of its mount table (its fs context
    must be its own). A new PID namespace is the callers' own business (clone numbers
    the child in it, unshare keeps it for the next child)."""
    alloc = t.kernel.pidns.alloc_ino
    if flags & CLONE_NEWUTS:
        ns = uts_of(t)
        t.uts = Uts(ns.hostname, ns.domainname, alloc())
    if flags & CLONE_NEWIPC:
        t.ipc = ipc_of(t).new(alloc())
    if flags & CLONE_NEWNS:
        vfs, fs = vfs_of(t)
        vfs.unshare_mounts(fs)
        vfs.table_of(fs).ns_ino = alloc()


@syscall("unshare", level=Level.PARTIAL,
         note="new UTS, IPC, mount and PID namespaces; user, network, cgroup and time "
              "namespaces are refused (EPERM: one network per sandbox); "
              "CLONE_FILES gives the whole process its own fd table")
def sys_unshare(t: Task, flags: int, *_: int) -> int:
    """Implements Linux syscall unshare(2): check_unshare_flags (EINVAL for unknown flags,
    and for CLONE_THREAD, CLONE_SIGHAND or CLONE_VM in a multi-threaded process), then
    CLONE_FS (implied by CLONE_NEWNS), CLONE_FILES and the namespaces; leaving an IPC
    namespace undoes the process's SEM_UNDO adjustments there (exit_sem)."""
    flags &= 0xFFFFFFFF
    if flags & ~UNSHARE_FLAGS:
        raise SyscallError(errno.EINVAL)
    if flags & (CLONE_THREAD | CLONE_SIGHAND | CLONE_VM) and len(t.leader.threads) > 1:
        raise SyscallError(errno.EINVAL)
    if flags & CLONE_NEWNS:
        flags |= CLONE_FS
    check_new_namespaces(t, flags)
    if flags & CLONE_FS and t.fs is not None:
        t.fs = t.fs.fork()
    if flags & CLONE_FILES:
        t.kernel.unshare_files(t)
    if flags & CLONE_NEWPID:
        if t.pidns_for_children not in (None, t.pidns):
            raise SyscallError(errno.EINVAL)  # copy_pid_ns: one unshare before a fork
    if flags & CLONE_NEWIPC:
        t.kernel.sem_undo_drop(t)
        t.sem_undo_key = t.kernel.sem_undo_new()
    if flags & CLONE_NEWPID:  # not the caller's: the namespace its next child starts
        t.pidns_for_children = PidNamespace(t.pidns)
    enter_new_namespaces(t, flags)
    return 0


@syscall("setns", level=Level.PARTIAL,
         note="pid, UTS, IPC and mount namespaces from an ns file or a pidfd; the sandbox's "
              "one network, cgroup and time namespace joined as themselves; user (the "
              "caller's own) EINVAL")
def sys_setns(t: Task, fd: int, nstype: int, *_: int) -> int:
    """Implements Linux syscall setns(2): an open /proc/PID/ns/* file (nstype 0 or its
    own type) or a pidfd with a set of CLONE_NEW* flags; every namespace is checked
    before any is joined (validate_nsset, then commit_nsset)."""
    f = t.fdtable.get(i32(fd))
    nstype &= 0xFFFFFFFF
    joins: list[tuple[int, object]] = []
    if isinstance(f, NsFile):
        if nstype and nstype != f.nstype:
            raise SyscallError(errno.EINVAL)
        joins.append((f.nstype, f.ns))
    elif isinstance(f, PidFD):
        if not nstype or nstype & ~NEW_NAMESPACES:
            raise SyscallError(errno.EINVAL)  # check_setns_flags
        target = f.task()
        if target is None:  # reaped, or a zombie whose namespaces are gone
            raise SyscallError(errno.ESRCH)
        if not ptrace_may_access(t, target, attach=False):
            raise SyscallError(errno.EPERM)
        for flag in _ORDER:
            if nstype & flag:
                joins.append((flag, _JOIN_OF[flag](target)))
    else:
        raise SyscallError(errno.EINVAL)
    for flag, ns in joins:
        _validate(t, flag, ns)
    for flag, ns in joins:
        if flag == CLONE_NEWPID and isinstance(ns, PidNamespace):
            t.pidns_for_children = ns
        elif flag == CLONE_NEWUTS and isinstance(ns, Uts):
            t.uts = ns
        elif flag == CLONE_NEWIPC and isinstance(ns, IpcNamespace) and ns is not ipc_of(t):
            t.kernel.sem_undo_drop(t)  # commit_nsset's exit_sem
            t.sem_undo_key = t.kernel.sem_undo_new()
            t.ipc = ns
        elif flag == CLONE_NEWNS and isinstance(ns, MountTable) and t.fs is not None:
            # root and cwd go to the namespace's root (LOOKUP_DOWN: the top mount there)
            top = ns.root_mount
            while (top, top.root) in ns.mounts:
                top = ns.mounts[(top, top.root)]
            t.fs.table = ns
            t.fs.root = t.fs.cwd = VirtualDentry(top, top.root)
    return 0


#: validate_nsset's order of the namespaces a pidfd names
_ORDER = (CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID,
          CLONE_NEWCGROUP, CLONE_NEWNET, CLONE_NEWTIME)
_JOIN_OF = {CLONE_NEWUSER: lambda _t: None, CLONE_NEWNS: mount_table,
            CLONE_NEWUTS: uts_of, CLONE_NEWIPC: ipc_of, CLONE_NEWPID: lambda t: t.pidns,
            CLONE_NEWCGROUP: lambda _t: None, CLONE_NEWNET: lambda _t: None,
            CLONE_NEWTIME: lambda _t: None}


def _validate(t: Task, flag: int, ns: object) -> None:
    """The *ns_install checks of joining `ns` (of kind `flag`), nothing changed yet."""
    if flag == CLONE_NEWUSER:
        raise SyscallError(errno.EINVAL)  # the caller's own: no capabilities regained
    if flag == CLONE_NEWNS:
        # mntns_install: the fs context (root, cwd) must be the caller's alone; then
        # CAP_SYS_CHROOT besides CAP_SYS_ADMIN, since root and cwd move
        if not isinstance(ns, MountTable) or t.fs is None or any(
                th.fs is t.fs for th in t.kernel.tasks.values() if th is not t):
            raise SyscallError(errno.EINVAL)
        if not t.creds.has_cap(CAP_SYS_CHROOT):
            raise SyscallError(errno.EPERM)
    if flag == CLONE_NEWTIME and len(t.leader.threads) > 1:
        raise SyscallError(errno.EUSERS)
    if not t.creds.has_cap(CAP_SYS_ADMIN):
        raise SyscallError(errno.EPERM)
    if flag == CLONE_NEWPID and isinstance(ns, PidNamespace):
        # pidns_install: the caller's own namespace or one below it
        if not t.pidns.is_ancestor_of(ns):
            raise SyscallError(errno.EINVAL)
