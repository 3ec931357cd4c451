"""The calling thread's own calls: its ids (getpid, gettid, getppid), exit and exit_group,
thread state (arch_prctl, set_tid_address, set_robust_list/get_robust_list; rseq refused).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.exit import TaskExit
from sentry.kernel.pidns import task_of
from sentry.kernel.table import Level, fixed_errno, syscall

from .sys_file import i32
from .sys_procvm import ptrace_may_access

if TYPE_CHECKING:
    from sentry.kernel.task import Task



@syscall("getpid")
def sys_getpid(t: Task, *_: int) -> int:
    """Implements Linux syscall getpid(2): the thread-group id in the caller's pid
    namespace, never the host's."""
    return t.pidns.vpid(t.tgid)


@syscall("gettid")
def sys_gettid(t: Task, *_: int) -> int:
    """Implements Linux syscall gettid(2): the thread id in the caller's pid namespace."""
    return t.pidns.vpid(t.tid)


@syscall("getppid")
def sys_getppid(t: Task, *_: int) -> int:
    """Implements Linux syscall getppid(2): the parent's pid in the caller's pid namespace
    (0 for pid 1, and for a namespace's init, whose parent is outside)."""
    return t.pidns.vpid(t.ppid)


# exit ---------------------------------------------------------------------------------------


@syscall("exit")
def sys_exit(t: Task, code: int, *_: int) -> int:
    """Implements Linux syscall exit(2): ends the thread (the whole process while
    threads are not supported)."""
    raise TaskExit(code & 0xFF, group=False)


@syscall("exit_group")
def sys_exit_group(t: Task, code: int, *_: int) -> int:
    """Implements Linux syscall exit_group(2)."""
    raise TaskExit(code & 0xFF)


# thread state -------------------------------------------------------------------------------

ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
ARCH_GET_CPUID, ARCH_SET_CPUID = 0x1011, 0x1012


@syscall("arch_prctl", level=Level.PARTIAL, note="FS/GS base and GET_CPUID")
def sys_arch_prctl(t: Task, code: int, addr: int, *_: int) -> int:
    """Implements Linux syscall arch_prctl(2). The FS/GS bases are set in the saved
    registers, never by an injected host call (which a register restore would undo)."""
    if code in (ARCH_SET_FS, ARCH_SET_GS):
        if addr >= 1 << 47:
            raise SyscallError(errno.EPERM)
        if code == ARCH_SET_FS:
            t.regs.fs_base = addr
        else:
            t.regs.gs_base = addr
        return 0
    if code in (ARCH_GET_FS, ARCH_GET_GS):
        val = t.regs.fs_base if code == ARCH_GET_FS else t.regs.gs_base
        t.mem_write(addr, struct.pack("<Q", val))
        return 0
    if code == ARCH_GET_CPUID:
        return 1
    raise SyscallError(errno.EINVAL)


@syscall("set_tid_address")
def sys_set_tid_address(t: Task, addr: int, *_: int) -> int:
    """Implements Linux syscall set_tid_address(2): remembered for thread exit."""
    t.clear_child_tid = addr
    return t.pidns.vpid(t.tid)


@syscall("set_robust_list")
def sys_set_robust_list(t: Task, head: int, length: int, *_: int) -> int:
    """Implements Linux syscall set_robust_list(2): the list is walked when the thread
    ends (`sentry.kernel.robust`)."""
    if length != 24:
        raise SyscallError(errno.EINVAL)
    t.robust_list = head
    return 0


@syscall("get_robust_list")
def sys_get_robust_list(t: Task, pid: int, head_ptr: int, len_ptr: int, *_: int) -> int:
    """Implements Linux syscall get_robust_list(2): a thread's own list, or another's with
    ptrace read access (PTRACE_MODE_READ_REALCREDS)."""
    pid = i32(pid)
    target = t if pid == 0 else task_of(t, pid)
    if target is None:
        raise SyscallError(errno.ESRCH)
    if not ptrace_may_access(t, target, attach=False):
        raise SyscallError(errno.EPERM)
    t.mem_write(len_ptr, struct.pack("<Q", 24))
    t.mem_write(head_ptr, struct.pack("<Q", target.robust_list))
    return 0


fixed_errno("rseq", errno.ENOSYS, "restartable sequences are not offered; glibc falls back")
