"""unshare and setns. The sandbox is one set of namespaces of its own; a task may get a
UTS namespace of its own (`sentry.kernel.uts`), while creating the others inside it is
refused (EPERM, as a container's seccomp profile and an unprivileged caller get); the
unsharing of what is not a namespace (fd table, fs context, SysV undo lists) is done, and
setns finds no namespace file to join (there is no nsfs: EINVAL).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.table import Level, syscall
from sentry.kernel.uts import Uts, uts_of
from vfs.creds import CAP_SYS_ADMIN

from .sys_file import i32

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


@syscall("unshare", level=Level.PARTIAL,
         note="a UTS namespace of one's own; other new namespaces are refused (EPERM); "
              "CLONE_FILES gives the whole process its own fd table")
def sys_unshare(t: Task, flags: int, *_: int) -> int:
    """Implements Linux syscall unshare(2): check_unshare_flags (EINVAL for unknown flags,
    and for CLONE_THREAD, CLONE_SIGHAND or CLONE_VM in a multi-threaded process), then
    CLONE_FS and CLONE_FILES."""
    flags &= 0xFFFFFFFF
    if flags & ~UNSHARE_FLAGS:
        raise SyscallError(errno.EINVAL)
    if flags & (CLONE_THREAD | CLONE_SIGHAND | CLONE_VM) and len(t.leader.threads) > 1:
        raise SyscallError(errno.EINVAL)
    if flags & NEW_NAMESPACES & ~CLONE_NEWUTS:
        raise SyscallError(errno.EPERM)
    if flags & CLONE_NEWUTS:
        if not t.creds.has_cap(CAP_SYS_ADMIN):
            raise SyscallError(errno.EPERM)
        ns = uts_of(t)
        t.uts = Uts(ns.hostname, ns.domainname)
    if flags & CLONE_FS and t.fs is not None:
        t.fs = t.fs.fork()
    if flags & CLONE_FILES:
        t.kernel.unshare_files(t)
    return 0


@syscall("setns", level=Level.PARTIAL, note="no namespace files exist to join (EINVAL)")
def sys_setns(t: Task, fd: int, nstype: int, *_: int) -> int:
    """Implements Linux syscall setns(2): EBADF for a bad fd; any open file is not a
    namespace (or pidfd) file, which Linux answers with EINVAL."""
    t.fdtable.get(i32(fd))
    raise SyscallError(errno.EINVAL)
