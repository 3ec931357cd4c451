"""Scheduling: sched_yield, affinity (the caller's CPUs, not the Sentry's pinned mask),
getcpu, nice values (recorded, not applied) and the scheduler queries.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

import trio

from sentry.errors import SyscallError
from sentry.kernel.table import Level, syscall
from sentry.platform.affinity import caller_cpus

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
    pid = i32(pid)
    if pid < 0:
        raise SyscallError(errno.EINVAL)
    target = t if pid in (0, t.tid) else t.kernel.tasks.get(pid)
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
    if nice < target.leader.prctl_state.get(-1, 0) and not t.creds.has_cap(23):
        raise SyscallError(errno.EACCES)
    target.leader.prctl_state[-1] = nice
    return 0


@syscall("sched_getscheduler")
def sys_sched_getscheduler(t: Task, pid: int, *_: int) -> int:
    """Implements Linux syscall sched_getscheduler(2): always SCHED_OTHER."""
    _target(t, pid)
    return 0


@syscall("sched_getparam")
def sys_sched_getparam(t: Task, pid: int, param: int, *_: int) -> int:
    """Implements Linux syscall sched_getparam(2): priority 0 (SCHED_OTHER)."""
    if not param:
        raise SyscallError(errno.EINVAL)
    _target(t, pid)
    t.mem_write(param, struct.pack("<i", 0))
    return 0


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
