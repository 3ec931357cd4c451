"""Process and thread creation: fork, vfork, clone, clone3. A new process is a host fork
of the stub (its private memory copied by the host); a thread is a host thread of it.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from typing import TYPE_CHECKING, Any

from sentry.errors import SyscallError
from sentry.kernel import ptrace
from sentry.kernel.pidns import PidNamespace
from sentry.kernel.table import Level, syscall
from sentry.kernel.task import PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, PR_SET_PTRACER

from .sys_ns import check_new_namespaces, enter_new_namespaces
from .sys_pidfd import PidFD
from .sys_signal import watch_cpu_limit

if TYPE_CHECKING:
    from sentry.kernel.task import Task



# process lifecycle: fork, exec, wait, default-action kill ---------------------------------

CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_PIDFD, CLONE_PTRACE, CLONE_VFORK, CLONE_PARENT = 0x1000, 0x2000, 0x4000, 0x8000
CLONE_THREAD, CLONE_NEWNS, CLONE_SYSVSEM, CLONE_SETTLS = 0x10000, 0x20000, 0x40000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID = 0x100000, 0x200000
CLONE_DETACHED, CLONE_UNTRACED, CLONE_CHILD_SETTID = 0x400000, 0x800000, 0x1000000
CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER = 0x4000000, 0x8000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET, CLONE_IO = 0x20000000, 0x40000000, 0x80000000
_CLONE_NS = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID \
    | CLONE_NEWNET | 0x02000000  # CLONE_NEWCGROUP


async def _clone(t: Task, flags: int, stack: int, ptid: int, ctid: int, tls: int,
                 pidfd_at: int | None = None) -> int:
    """fork/vfork/clone. A new process is a host fork of the stub (its private memory
    copy-on-write); CLONE_VM for a process is honoured only together with CLONE_VFORK
    (posix_spawn's use), where the parent sleeps until the child execs or exits. A new
    thread (CLONE_THREAD) is a host thread of the same stub. CLONE_PIDFD puts a pidfd
    of the child in the parent's table and its number at `pidfd_at` (clone's parent_tid
    pointer unless clone3 gave one)."""
    if pidfd_at is None:
        pidfd_at = ptid
        if flags & CLONE_PIDFD and flags & CLONE_PARENT_SETTID:
            raise SyscallError(errno.EINVAL)  # both would use parent_tid
    _check_pids_limit(t)
    if flags & CLONE_THREAD:
        th = _clone_thread(t, flags, stack, ptid, ctid, tls)
        if t.ptrace is not None:
            await ptrace.clone_events(t, th, ptrace.clone_event(t, flags), False)
        return t.pidns.vpid(th.tid)
    if flags & CLONE_SIGHAND and not flags & CLONE_VM:
        raise SyscallError(errno.EINVAL)
    if flags & CLONE_VM and not flags & CLONE_VFORK:
        raise SyscallError(errno.EINVAL)
    if flags & CLONE_NEWNS and flags & CLONE_FS or \
            flags & CLONE_NEWIPC and flags & CLONE_SYSVSEM:
        raise SyscallError(errno.EINVAL)
    check_new_namespaces(t, flags)
    if flags & CLONE_PIDFD:
        if flags & CLONE_DETACHED:
            raise SyscallError(errno.EINVAL)
        # EFAULT now rather than after the fork (what was forked would have to be undone)
        t.mem_write(pidfd_at, t.mem_read(pidfd_at, 4))
    k = t.kernel
    child_stub = t.stub.fork()
    try:
        child_mm = t.mm.fork(child_stub)
        ns = t.pidns_for_children or t.pidns
        if flags & CLONE_NEWPID:
            if ns is not t.pidns:  # copy_pid_ns: not after unshare(CLONE_NEWPID)
                raise SyscallError(errno.EINVAL)
            ns = PidNamespace(ns)
        pid = k.alloc_pid(ns)
        fdtable = t.fdtable
        if not flags & CLONE_FILES:
            fdtable = fdtable.fork()
        fs = t.fs
        if not flags & CLONE_FS and fs is not None:
            fs = fs.fork()
        child = type(t)(k, child_stub, child_mm, tid=pid, tgid=pid,
                        ppid=t.ppid if flags & CLONE_PARENT else t.tgid,
                        fdtable=fdtable, fs=fs, creds=t.creds)
        child.pidns = ns
        if flags & CLONE_SYSVSEM:
            k.sem_undo_share(child, t)
        if flags & CLONE_PIDFD:
            fd = t.fdtable.install(PidFD(t, pid, 0), cloexec=True)
            t.mem_write(pidfd_at, struct.pack("<i", fd))
    except BaseException:
        child_stub.kill()
        raise
    child.comm, child.rlimits, child.cpu_affinity = t.comm, dict(t.rlimits), t.cpu_affinity
    child.personality = t.personality
    child.oom_score_adj = t.leader.oom_score_adj  # signal_struct's, copied by fork
    child.image = t.leader.image  # same program, same argv/env addresses
    # the parent-death signal and the subreaper mark are not inherited (prctl(2))
    child.prctl_state = {k: v for k, v in t.prctl_state.items()
                         if k not in (PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_PTRACER)}
    child.pgid, child.sid = t.pgid, t.sid
    inherit_sched(child, t)
    enter_new_namespaces(child, flags)
    _start_regs(child_stub, t, flags, stack, tls)
    seen = t.pidns.vpid(pid)  # the parent's number for it; the child's own is ns's
    if flags & CLONE_PARENT_SETTID:
        t.mem_write(ptid, struct.pack("<i", seen))
        child.mem_write(ptid, struct.pack("<i", seen))
    if flags & CLONE_CHILD_SETTID:
        child.mem_write(ctid, struct.pack("<i", ns.vpid(pid)))
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = ctid
    traced = ptrace.clone_event(t, flags)
    if traced is not None:
        ptrace.attach_child(t, child)
    k.spawn(child)
    watch_cpu_limit(child)  # RLIMIT_CPU is inherited; the child's CPU time starts at zero
    if t.ptrace is not None:  # the tracer's fork/vfork/clone and vfork-done stops
        await ptrace.clone_events(t, child, traced, bool(flags & CLONE_VFORK))
    elif flags & CLONE_VFORK:
        await child.vfork_done.wait()
    return seen


def inherit_sched(child: Task, t: Task) -> None:
    """A new task's scheduling policy, I/O priority, memory policy and UTS and IPC
    namespaces are its creator's; with
    SCHED_RESET_ON_FORK a real-time policy becomes SCHED_OTHER (sched_fork)."""
    child.ioprio, child.mempolicy, child.uts, child.ipc = t.ioprio, t.mempolicy, t.uts, t.ipc
    if t.sched_reset_on_fork:
        child.sched_policy = 0 if t.sched_policy in (1, 2) else t.sched_policy
        child.sched_priority = 0
        return
    child.sched_policy, child.sched_priority = t.sched_policy, t.sched_priority


def _start_regs(stub: Any, t: Task, flags: int, stack: int, tls: int) -> None:
    """A clone's first registers: the caller's, returning 0, on `stack` if one was given,
    with the new TLS under CLONE_SETTLS."""
    ctypes.pointer(stub.regs)[0] = t.regs
    r = stub.regs
    r.rax = 0
    if stack:
        r.rsp = stack
    if flags & CLONE_SETTLS:
        r.fs_base = tls


def _check_pids_limit(t: Task) -> None:
    """EAGAIN when the sandbox already has `Kernel.pids_limit` threads, as the pids
    cgroup refuses a fork."""
    limit = t.kernel.pids_limit
    if limit is not None and len(t.kernel.tasks) >= limit:
        raise SyscallError(errno.EAGAIN)


def _clone_thread(t: Task, flags: int, stack: int, ptid: int, ctid: int, tls: int) -> Task:
    """A new thread: a host thread of the same stub (same memory), its own Task."""
    if not flags & CLONE_VM or not flags & CLONE_SIGHAND:
        raise SyscallError(errno.EINVAL)
    if flags & (_CLONE_NS | CLONE_PIDFD | CLONE_VFORK):
        raise SyscallError(errno.EINVAL)
    if t.pidns_for_children not in (None, t.pidns):
        raise SyscallError(errno.EINVAL)  # a thread of a group is in the group's namespace
    k = t.kernel
    leader = t.leader
    tstub = t.stub.clone_thread()
    try:
        tid = k.alloc_pid(t.pidns)
    except BaseException:
        tstub.exit_thread()
        raise
    th = type(t)(k, tstub, t.mm, tid=tid, tgid=t.tgid, ppid=0, fdtable=t.fdtable, fs=t.fs,
                 creds=t.creds)
    th.pidns = t.pidns
    if flags & CLONE_SYSVSEM:
        k.sem_undo_share(th, t)
    th.leader, th.threads, th.stubs, th.cpu_affinity = leader, set(), [], t.cpu_affinity
    th.rlimits, th.prctl_state, th.comm = leader.rlimits, leader.prctl_state, t.comm
    inherit_sched(th, t)
    _start_regs(tstub, t, flags, stack, tls)
    seen = t.pidns.vpid(tid)
    if flags & CLONE_PARENT_SETTID:
        t.mem_write(ptid, struct.pack("<i", seen))
    if flags & CLONE_CHILD_SETTID:
        t.mem_write(ctid, struct.pack("<i", seen))
    if flags & CLONE_CHILD_CLEARTID:
        th.clear_child_tid = ctid
    if ptrace.clone_event(t, flags) is not None:
        ptrace.attach_child(t, th)
    k.spawn_thread(th)
    return th


@syscall("fork")
async def sys_fork(t: Task, *_: int) -> int:
    """Implements Linux syscall fork(2)."""
    return await _clone(t, 17, 0, 0, 0, 0)


@syscall("vfork", level=Level.PARTIAL, note="the child gets a copy of memory, not a share")
async def sys_vfork(t: Task, *_: int) -> int:
    """Implements Linux syscall vfork(2): the parent waits until the child execs or exits."""
    return await _clone(t, CLONE_VM | CLONE_VFORK | 17, 0, 0, 0, 0)


@syscall("clone", level=Level.PARTIAL,
         note="threads (CLONE_THREAD) and processes; CLONE_VM for a process only with "
              "CLONE_VFORK; CLONE_PIDFD for processes only; new UTS, IPC, mount and PID "
              "namespaces for processes (others EPERM, as unshare)")
async def sys_clone(t: Task, flags: int, stack: int, ptid: int, ctid: int, tls: int,
                    *_: int) -> int:
    """Implements Linux syscall clone(2) for new threads and processes."""
    return await _clone(t, flags, stack, ptid, ctid, tls)


@syscall("clone3", level=Level.PARTIAL, note="as clone; set_tid and cgroup are refused")
async def sys_clone3(t: Task, args: int, size: int, *_: int) -> int:
    """Implements Linux syscall clone3(2) for new threads and processes."""
    if size < 64 or size > 4096:
        raise SyscallError(errno.EINVAL)
    raw = t.mem_read(args, min(size, 88)).ljust(88, b"\0")
    (flags, pidfd, ctid, ptid, exit_signal, stack, stack_size, tls, set_tid,
     set_tid_size, cgroup) = struct.unpack("<11Q", raw)
    if set_tid or set_tid_size or cgroup or exit_signal > 64:
        raise SyscallError(errno.EINVAL)
    if (stack == 0) != (stack_size == 0):
        raise SyscallError(errno.EINVAL)
    # the exit signal in clone's place: a tracer's event is FORK for SIGCHLD, else CLONE
    return await _clone(t, flags & ~0xFF | exit_signal, stack + stack_size if stack else 0,
                        ptid, ctid, tls, pidfd)
