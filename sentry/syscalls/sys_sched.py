"""Scheduling: sched_yield, affinity (the caller's CPUs, not the Sentry's pinned mask),
getcpu, nice values, policies and I/O priorities (recorded and reported with Linux's
checks, not applied: the host schedules every stub as SCHED_OTHER).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

import trio

from sentry.errors import SyscallError
from sentry.kernel.pidns import task_of
from sentry.kernel.table import Level, syscall
from sentry.platform.affinity import caller_cpus
from vfs.creds import CAP_SYS_ADMIN, CAP_SYS_NICE

from .sys_file import i32

if TYPE_CHECKING:
    from sentry.kernel.task import Task


# scheduling, accounting, names ---------------------------------------------------------------


@syscall("sched_yield")
async def sys_sched_yield(t: Task, *_: int) -> int:
    """Implements Linux syscall sched_yield(2): lets other sandbox tasks run."""
    await trio.lowlevel.checkpoint()
    return 0


def _cpumask_size() -> int:
    """Bytes of Linux's cpumask (whole longs for the host's CPU numbers)."""
    return max(8, (max(caller_cpus()) // 64 + 1) * 8)


def _affinity_target(t: Task, pid: int) -> Task:
    """The thread `pid` names; a negative pid names none (ESRCH, not EINVAL as for the
    scheduler-policy calls)."""
    if i32(pid) < 0:
        raise SyscallError(errno.ESRCH)
    return _target(t, pid)


@syscall("sched_getaffinity")
def sys_sched_getaffinity(t: Task, pid: int, size: int, mask: int, *_: int) -> int:
    """Implements Linux syscall sched_getaffinity(2): the thread's mask as set by
    sched_setaffinity, else the CPUs the caller of runpsc allowed (not the Sentry's own
    pinned mask: see sentry.platform.affinity)."""
    nbytes = _cpumask_size()
    if size < nbytes or size & 7:
        raise SyscallError(errno.EINVAL)
    target = _affinity_target(t, pid)
    cpus = target.cpu_affinity if target.cpu_affinity is not None else caller_cpus()
    t.mem_write(mask, sum(1 << c for c in cpus).to_bytes(nbytes, "little"))
    return nbytes


# scheduling and accounting queries ----------------------------------------------------------


def _target(t: Task, pid: int) -> Task:
    """The thread a sched_* call names: 0 is the caller; negative is EINVAL."""
    pid = i32(pid)
    if pid < 0:
        raise SyscallError(errno.EINVAL)
    target = t if pid == 0 else task_of(t, pid)
    if target is None:
        raise SyscallError(errno.ESRCH)
    return target


@syscall("getcpu")
def sys_getcpu(t: Task, cpu: int, node: int, *_: int) -> int:
    """Implements Linux syscall getcpu(2): where the stub last ran on the host."""
    try:
        fields = open(f"/proc/{t.stub.pid}/stat").read().rsplit(")", 1)[1].split()
        n = int(fields[36])
    except (OSError, IndexError, ValueError):
        n = 0
    if cpu:
        t.mem_write(cpu, struct.pack("<I", n))
    if node:
        t.mem_write(node, struct.pack("<I", 0))
    return 0


PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2


@syscall("getpriority", level=Level.PARTIAL, note="nice values are recorded, not applied")
def sys_getpriority(t: Task, which: int, who: int, *_: int) -> int:
    """Implements Linux syscall getpriority(2) (returns 20 - nice, as the kernel does)."""
    if which not in (PRIO_PROCESS, PRIO_PGRP, PRIO_USER):
        raise SyscallError(errno.EINVAL)
    target = _target(t, who) if which == PRIO_PROCESS else t
    return 20 - target.leader.prctl_state.get(-1, 0)


@syscall("setpriority", level=Level.PARTIAL, note="nice values are recorded, not applied")
def sys_setpriority(t: Task, which: int, who: int, prio: int, *_: int) -> int:
    """Implements Linux syscall setpriority(2): lowering nice needs CAP_SYS_NICE."""
    if which not in (PRIO_PROCESS, PRIO_PGRP, PRIO_USER):
        raise SyscallError(errno.EINVAL)
    target = _target(t, who) if which == PRIO_PROCESS else t
    nice = max(-20, min(19, i32(prio)))
    if nice < target.leader.prctl_state.get(-1, 0) and not t.creds.has_cap(CAP_SYS_NICE):
        raise SyscallError(errno.EACCES)
    target.leader.prctl_state[-1] = nice
    return 0


SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE = 0, 1, 2, 3, 5, 6
SCHED_RESET_ON_FORK = 0x40000000
_RT = (SCHED_FIFO, SCHED_RR)
_POLICIES = (SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE)
RLIMIT_RTPRIO = 14
#: sched_attr: size, policy, flags, nice, priority, runtime, deadline, period, util min/max
SCHED_ATTR = struct.Struct("<IIQiIQQQII")
SCHED_ATTR_SIZE_VER0 = 48
SCHED_FLAG_RESET_ON_FORK, SCHED_FLAG_KEEP_POLICY, SCHED_FLAG_KEEP_PARAMS = 0x01, 0x08, 0x10
_SCHED_FLAGS_ALL = 0x7F
_NICE = -1  # the key of the process's nice value in prctl_state (getpriority's)


def _set_policy(t: Task, target: Task, policy: int, prio: int, reset: bool,
                nice: int | None = None) -> None:
    """__sched_setscheduler's checks and the change (recorded, not applied to the host)."""
    if policy not in _POLICIES:
        raise SyscallError(errno.EINVAL)
    if prio < 0 or prio > 99 or (policy in _RT) != (prio != 0):
        raise SyscallError(errno.EINVAL)
    if not t.creds.has_cap(CAP_SYS_NICE):
        if policy in _RT:
            limit = t.rlimits.get(RLIMIT_RTPRIO, (0, 0))[0]
            if policy != target.sched_policy and not limit:
                raise SyscallError(errno.EPERM)
            if prio > target.sched_priority and prio > limit:
                raise SyscallError(errno.EPERM)
        if target.sched_policy == SCHED_IDLE and policy != SCHED_IDLE:
            raise SyscallError(errno.EPERM)
        if t.creds.euid not in (target.creds.euid, target.creds.uid):
            raise SyscallError(errno.EPERM)
        if target.sched_reset_on_fork and not reset:
            raise SyscallError(errno.EPERM)
        if nice is not None and nice < target.leader.prctl_state.get(_NICE, 0):
            raise SyscallError(errno.EPERM)
    target.sched_policy, target.sched_priority = policy, prio
    target.sched_reset_on_fork = reset
    if nice is not None:
        target.leader.prctl_state[_NICE] = nice


def _read_param(t: Task, param: int) -> int:
    if not param:
        raise SyscallError(errno.EINVAL)
    return struct.unpack("<i", t.mem_read(param, 4))[0]


@syscall("sched_setscheduler", level=Level.PARTIAL,
         note="the policy and priority are recorded and reported, not applied to the host")
def sys_sched_setscheduler(t: Task, pid: int, policy: int, param: int, *_: int) -> int:
    """Implements Linux syscall sched_setscheduler(2): Linux's checks (RLIMIT_RTPRIO and
    CAP_SYS_NICE for real-time policies), SCHED_RESET_ON_FORK."""
    policy, pid = i32(policy), i32(pid)
    if policy < 0 or pid < 0 or not param:
        raise SyscallError(errno.EINVAL)
    prio = _read_param(t, param)
    target = _target(t, pid)
    reset = bool(policy & SCHED_RESET_ON_FORK)
    _set_policy(t, target, policy & ~SCHED_RESET_ON_FORK, prio, reset)
    return 0


@syscall("sched_setparam", level=Level.PARTIAL,
         note="the priority is recorded and reported, not applied to the host")
def sys_sched_setparam(t: Task, pid: int, param: int, *_: int) -> int:
    """Implements Linux syscall sched_setparam(2): the priority within the current policy."""
    if i32(pid) < 0 or not param:
        raise SyscallError(errno.EINVAL)
    prio = _read_param(t, param)
    target = _target(t, pid)
    _set_policy(t, target, target.sched_policy, prio, target.sched_reset_on_fork)
    return 0


@syscall("sched_getscheduler")
def sys_sched_getscheduler(t: Task, pid: int, *_: int) -> int:
    """Implements Linux syscall sched_getscheduler(2): the recorded policy."""
    target = _target(t, pid)
    return target.sched_policy | (SCHED_RESET_ON_FORK if target.sched_reset_on_fork else 0)


@syscall("sched_getparam")
def sys_sched_getparam(t: Task, pid: int, param: int, *_: int) -> int:
    """Implements Linux syscall sched_getparam(2): the recorded real-time priority."""
    if not param or i32(pid) < 0:
        raise SyscallError(errno.EINVAL)
    target = _target(t, pid)
    t.mem_write(param, struct.pack("<i", target.sched_priority))
    return 0


@syscall("sched_rr_get_interval")
def sys_sched_rr_get_interval(t: Task, pid: int, tp: int, *_: int) -> int:
    """Implements Linux syscall sched_rr_get_interval(2): 100 ms for SCHED_RR
    (RR_TIMESLICE), 0 for the other policies (EEVDF's slice is under a jiffy)."""
    target = _target(t, pid)
    ns = 100_000_000 if target.sched_policy == SCHED_RR else 0
    t.mem_write(tp, struct.pack("<qq", ns // 10**9, ns % 10**9))
    return 0


@syscall("sched_setattr", level=Level.PARTIAL,
         note="SCHED_DEADLINE refused (EPERM); policies recorded, not applied; utilization "
              "clamps refused (EOPNOTSUPP, as a kernel without CONFIG_UCLAMP_TASK)")
def sys_sched_setattr(t: Task, pid: int, attr: int, flags: int, *_: int) -> int:
    """Implements Linux syscall sched_setattr(2): sched_attr's size rules (E2BIG with the
    kernel's size written back), nice for the fair policies, priority for real-time."""
    if not attr or i32(pid) < 0 or flags & 0xFFFFFFFF:
        raise SyscallError(errno.EINVAL)
    size = struct.unpack("<I", t.mem_read(attr, 4))[0] or SCHED_ATTR_SIZE_VER0
    if size < SCHED_ATTR_SIZE_VER0 or size > 4096:
        t.mem_write(attr, struct.pack("<I", SCHED_ATTR.size))
        raise SyscallError(errno.E2BIG)
    raw = t.mem_read(attr, size)
    if size > SCHED_ATTR.size and any(raw[SCHED_ATTR.size:]):
        t.mem_write(attr, struct.pack("<I", SCHED_ATTR.size))
        raise SyscallError(errno.E2BIG)
    raw = raw[: SCHED_ATTR.size].ljust(SCHED_ATTR.size, b"\0")
    _, policy, sflags, nice, prio, *_rest = SCHED_ATTR.unpack(raw)
    if policy >= 1 << 31:
        raise SyscallError(errno.EINVAL)
    if sflags & ~_SCHED_FLAGS_ALL:
        raise SyscallError(errno.EINVAL)
    if sflags & 0x60:  # SCHED_FLAG_UTIL_CLAMP_MIN/MAX
        raise SyscallError(errno.EOPNOTSUPP)
    target = _target(t, pid)
    if sflags & SCHED_FLAG_KEEP_POLICY:
        policy = target.sched_policy
    if policy == SCHED_DEADLINE:
        raise SyscallError(errno.EPERM)
    if sflags & SCHED_FLAG_KEEP_PARAMS:
        prio = target.sched_priority
        nice = None
    elif policy in _RT:
        nice = None
    else:
        nice = max(-20, min(19, nice))
    _set_policy(t, target, policy, prio, bool(sflags & SCHED_FLAG_RESET_ON_FORK), nice)
    return 0


@syscall("sched_getattr", level=Level.PARTIAL,
         note="sched_runtime of fair tasks is 0 (as Linux before 6.6)")
def sys_sched_getattr(t: Task, pid: int, attr: int, size: int, flags: int, *_: int) -> int:
    """Implements Linux syscall sched_getattr(2): the recorded policy, nice and priority;
    min(size, the kernel's) bytes are written and the size field says how many."""
    size &= 0xFFFFFFFF
    if not attr or i32(pid) < 0 or size > 4096 or size < SCHED_ATTR_SIZE_VER0 or \
            flags & 0xFFFFFFFF:
        raise SyscallError(errno.EINVAL)
    target = _target(t, pid)
    n = min(size, SCHED_ATTR.size)
    nice = target.leader.prctl_state.get(_NICE, 0) if target.sched_policy not in _RT else 0
    out = SCHED_ATTR.pack(n, target.sched_policy,
                          SCHED_FLAG_RESET_ON_FORK if target.sched_reset_on_fork else 0,
                          nice, target.sched_priority, 0, 0, 0, 0, 0)
    t.mem_write(attr, out[:n] + bytes(size - n))
    return 0


IOPRIO_WHO_PROCESS, IOPRIO_WHO_PGRP, IOPRIO_WHO_USER = 1, 2, 3
IOPRIO_CLASS_NONE, IOPRIO_CLASS_RT, IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE = 0, 1, 2, 3


def _io_targets(t: Task, which: int, who: int) -> list[Task]:
    """The threads an ioprio call names (ESRCH if none, EINVAL for a bad `which`)."""
    who = i32(who)
    k = t.kernel
    if which == IOPRIO_WHO_PROCESS:
        found = [t] if who == 0 else [x for x in (task_of(t, who),) if x is not None]
    elif which == IOPRIO_WHO_PGRP:
        pgid = t.pgid if who == 0 else t.pidns.gpid(who)
        found = [x for x in k.tasks.values() if x.pgid == pgid]
    elif which == IOPRIO_WHO_USER:
        uid = t.creds.uid if who == 0 else who
        found = [x for x in k.tasks.values() if x.creds.uid == uid]
    else:
        raise SyscallError(errno.EINVAL)
    if not found:
        raise SyscallError(errno.ESRCH)
    return found


@syscall("ioprio_set", level=Level.PARTIAL,
         note="the I/O priority is recorded and reported; the VFS does not order I/O by it")
def sys_ioprio_set(t: Task, which: int, who: int, ioprio: int, *_: int) -> int:
    """Implements Linux syscall ioprio_set(2): class and level checks as ioprio_check_cap
    (the real-time class needs CAP_SYS_NICE or CAP_SYS_ADMIN)."""
    ioprio = i32(ioprio) & 0xFFFF
    cls, level = ioprio >> 13, ioprio & 0x7
    hint = (ioprio >> 3) & 0x3FF
    if cls == IOPRIO_CLASS_RT:
        if not (t.creds.has_cap(CAP_SYS_NICE) or t.creds.has_cap(CAP_SYS_ADMIN)):
            raise SyscallError(errno.EPERM)
    elif cls in (IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE):
        pass
    elif cls == IOPRIO_CLASS_NONE:
        if level or hint:
            raise SyscallError(errno.EINVAL)
    else:
        raise SyscallError(errno.EINVAL)
    for x in _io_targets(t, which, who):
        if x.creds.uid != t.creds.euid and x.creds.uid != t.creds.uid and \
                not t.creds.has_cap(CAP_SYS_NICE):
            raise SyscallError(errno.EPERM)
        x.ioprio = ioprio
    return 0


@syscall("ioprio_get")
def sys_ioprio_get(t: Task, which: int, who: int, *_: int) -> int:
    """Implements Linux syscall ioprio_get(2): the recorded value (the best of several
    threads, as Linux compares them)."""
    found = _io_targets(t, which, who)
    return min((x.ioprio for x in found),
               key=lambda p: (p >> 13 or IOPRIO_CLASS_BE, p & 7 if p >> 13 else 4))


@syscall("sched_get_priority_max")
def sys_sched_get_priority_max(t: Task, policy: int, *_: int) -> int:
    """Implements Linux syscall sched_get_priority_max(2)."""
    policy = i32(policy)
    if policy in (1, 2):  # SCHED_FIFO, SCHED_RR
        return 99
    if policy in (0, 3, 5, 6):  # OTHER, BATCH, IDLE, DEADLINE
        return 0
    raise SyscallError(errno.EINVAL)


@syscall("sched_get_priority_min")
def sys_sched_get_priority_min(t: Task, policy: int, *_: int) -> int:
    """Implements Linux syscall sched_get_priority_min(2)."""
    policy = i32(policy)
    if policy in (1, 2):
        return 1
    if policy in (0, 3, 5, 6):
        return 0
    raise SyscallError(errno.EINVAL)


@syscall("sched_setaffinity", level=Level.PARTIAL, note="recorded per thread and reported "
         "(inherited by fork and clone), not applied: stubs run where the Sentry places them")
def sys_sched_setaffinity(t: Task, pid: int, size: int, mask: int, *_: int) -> int:
    """Implements Linux syscall sched_setaffinity(2): the mask (bytes beyond the cpumask
    ignored, a shorter one zero-filled, as get_user_cpu_mask) meets the CPUs the sandbox
    may use; EINVAL if nothing is left."""
    want = int.from_bytes(t.mem_read(mask, min(size & 0xFFFFFFFF, _cpumask_size())), "little")
    target = _affinity_target(t, pid)
    cpus = frozenset(c for c in caller_cpus() if want >> c & 1)
    if not cpus:
        raise SyscallError(errno.EINVAL)
    target.cpu_affinity = cpus
    return 0
