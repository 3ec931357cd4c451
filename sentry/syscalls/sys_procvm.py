"""process_vm_readv and process_vm_writev between processes of the sandbox.

Access is ptrace's PTRACE_MODE_ATTACH_REALCREDS rule (same thread group; or the caller's
real uid and gid equal to all of the target's, a dumpable target, and under the Yama
scope 1 the sandbox's /proc/sys/kernel/yama/ptrace_scope reports, a descendant; or
CAP_SYS_PTRACE). Copies stop at the first fault on either side and return what moved.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.pidns import task_of
from sentry.kernel.table import syscall
from sentry.kernel.task import PR_SET_DUMPABLE, PR_SET_PTRACER, PTRACER_ANY
from vfs.creds import CAP_SYS_PTRACE

from .sys_file import i32

if TYPE_CHECKING:
    from sentry.kernel.task import Task

UIO_MAXIOV = 1024


def _is_descendant(t: Task, target: Task) -> bool:
    k = t.kernel
    pid = target.tgid
    seen = set()
    while pid and pid not in seen:
        if pid == t.tgid:
            return True
        seen.add(pid)
        proc = k.procs.get(pid)
        if proc is None:
            return False
        pid = proc.ppid
    return False


def ptrace_may_access(t: Task, target: Task, *, attach: bool) -> bool:
    """__ptrace_may_access with the REALCREDS rule: the same thread group; or CAP_SYS_PTRACE;
    or the caller's real uid and gid equal to all of the target's and a dumpable target,
    and for an attach (PTRACE_MODE_ATTACH) Yama's scope 1: a descendant, or a process
    the target named with PR_SET_PTRACER (`ptracer_named`)."""
    if target.tgid == t.tgid:
        return True
    c, tc = t.creds, target.creds
    if c.has_cap(CAP_SYS_PTRACE):
        return True
    same = c.uid == tc.uid == tc.euid == tc.suid and c.gid == tc.gid == tc.egid == tc.sgid
    if not same or not target.leader.prctl_state.get(PR_SET_DUMPABLE, 1):
        return False
    return not attach or _is_descendant(t, target) or ptracer_named(t, target)


def ptracer_named(t: Task, target: Task) -> bool:
    """Yama's ptracer_exception_found: `target`'s process named `t`'s process or an
    ancestor of it with PR_SET_PTRACER (and that process still lives), or any."""
    named = target.leader.prctl_state.get(PR_SET_PTRACER)
    if named == PTRACER_ANY:
        return True
    tracer = t.kernel.procs.get(named) if named else None
    return tracer is not None and _is_descendant(tracer, t)


def _vecs(t: Task, addr: int, count: int) -> list[tuple[int, int]]:
    count &= 0xFFFFFFFFFFFFFFFF
    if count > UIO_MAXIOV:
        raise SyscallError(errno.EINVAL)
    return [(b, n) for b, n in t.read_iovecs(addr, count) if n]


def _readable(mem: Task, vecs: list[tuple[int, int]], to_app: bool) -> list[tuple[int, int]]:
    """The leading part of `vecs` that can be copied before the first fault."""
    out = []
    for base, n in vecs:
        ok = mem.copyable(base, n, to_app=to_app)
        if ok:
            out.append((base, ok))
        if ok < n:
            break
    return out


async def _transfer(t: Task, pid: int, local: int, lcnt: int, remote: int, rcnt: int,
                    flags: int, write: bool) -> int:
    if flags & 0xFFFFFFFFFFFFFFFF:
        raise SyscallError(errno.EINVAL)
    lvecs = _vecs(t, local, lcnt)
    rvecs = _vecs(t, remote, rcnt)
    target = task_of(t, i32(pid))
    if target is None or target.exit_status is not None:
        raise SyscallError(errno.ESRCH)
    if not ptrace_may_access(t, target, attach=True):
        raise SyscallError(errno.EPERM)
    if not lvecs or not rvecs:
        return 0
    src_mem, dst_mem = (t, target) if write else (target, t)
    src_vecs, dst_vecs = (lvecs, rvecs) if write else (rvecs, lvecs)
    dst_ok = _readable(dst_mem, dst_vecs, True)
    room = sum(n for _, n in dst_ok)
    data = bytearray()
    for base, n in _readable(src_mem, src_vecs, False):
        if len(data) >= room:
            break
        data += src_mem.mem_read(base, min(n, room - len(data)))
    if not data:
        # nothing could be copied: a fault on the remote side is EFAULT, as is one here
        raise SyscallError(errno.EFAULT)
    pos = 0
    for base, n in dst_ok:
        if pos >= len(data):
            break
        piece = bytes(data[pos : pos + n])
        dst_mem.mem_write(base, piece)
        pos += len(piece)
    return pos


@syscall("process_vm_readv")
async def sys_process_vm_readv(t: Task, pid: int, local: int, liovcnt: int, remote: int,
                               riovcnt: int, flags: int) -> int:
    """Implements Linux syscall process_vm_readv(2) between sandboxed processes."""
    return await _transfer(t, pid, local, liovcnt, remote, riovcnt, flags, False)


@syscall("process_vm_writev")
async def sys_process_vm_writev(t: Task, pid: int, local: int, liovcnt: int, remote: int,
                                riovcnt: int, flags: int) -> int:
    """Implements Linux syscall process_vm_writev(2) between sandboxed processes (page
    protections of the target apply: no write to read-only memory)."""
    return await _transfer(t, pid, local, liovcnt, remote, riovcnt, flags, True)
