"""membarrier(2): a memory barrier on every thread of the process.

The sandbox's threads are host threads of stub processes the Sentry does not share an mm
with, so the host's private commands cannot reach them; every barrier is the host's
MEMBARRIER_CMD_GLOBAL (synchronize_rcu: every running thread of the machine passes a full
barrier), which is at least what each command promises. Registrations are the process's
(the thread-group leader's `membarrier`), cleared by fork and execve as Linux's per-mm state.
"""

from __future__ import annotations

import ctypes
import errno
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.table import Level, syscall

if TYPE_CHECKING:
    from sentry.kernel.task import Task

QUERY, GLOBAL, GLOBAL_EXPEDITED, REGISTER_GLOBAL_EXPEDITED = 0, 1, 2, 4
PRIVATE_EXPEDITED, REGISTER_PRIVATE_EXPEDITED = 8, 16
PRIVATE_EXPEDITED_SYNC_CORE, REGISTER_PRIVATE_EXPEDITED_SYNC_CORE = 32, 64
PRIVATE_EXPEDITED_RSEQ, REGISTER_PRIVATE_EXPEDITED_RSEQ = 128, 256
GET_REGISTRATIONS = 512
#: What QUERY answers: all but the rseq commands (rseq is not offered).
SUPPORTED = (GLOBAL | GLOBAL_EXPEDITED | REGISTER_GLOBAL_EXPEDITED | PRIVATE_EXPEDITED
             | REGISTER_PRIVATE_EXPEDITED | PRIVATE_EXPEDITED_SYNC_CORE
             | REGISTER_PRIVATE_EXPEDITED_SYNC_CORE | GET_REGISTRATIONS)
#: command -> the registration it needs
_NEEDS = {PRIVATE_EXPEDITED: REGISTER_PRIVATE_EXPEDITED,
          PRIVATE_EXPEDITED_SYNC_CORE: REGISTER_PRIVATE_EXPEDITED_SYNC_CORE}
_NR_MEMBARRIER = 324
_syscall = ctypes.CDLL(None, use_errno=True).syscall
_syscall.restype = ctypes.c_long


def _host_barrier() -> None:
    if _syscall(_NR_MEMBARRIER, GLOBAL, 0, 0) < 0:
        raise SyscallError(ctypes.get_errno())


@syscall("membarrier", level=Level.PARTIAL,
         note="every barrier is the host's MEMBARRIER_CMD_GLOBAL; the rseq commands are "
              "EINVAL (rseq is not offered)")
def sys_membarrier(t: Task, cmd: int, flags: int, cpu_id: int, *_: int) -> int:
    """Implements Linux syscall membarrier(2): QUERY, the global and private expedited
    commands with their registrations (EPERM unregistered), GET_REGISTRATIONS."""
    cmd &= 0xFFFFFFFF
    flags &= 0xFFFFFFFF
    if flags:
        raise SyscallError(errno.EINVAL)
    leader = t.leader
    if cmd == QUERY:
        return SUPPORTED
    if cmd == GET_REGISTRATIONS:
        return leader.membarrier
    if cmd in (REGISTER_GLOBAL_EXPEDITED, REGISTER_PRIVATE_EXPEDITED,
               REGISTER_PRIVATE_EXPEDITED_SYNC_CORE):
        leader.membarrier |= cmd
        return 0
    if cmd in _NEEDS:
        if not leader.membarrier & _NEEDS[cmd]:
            raise SyscallError(errno.EPERM)
        _host_barrier()
        return 0
    if cmd in (GLOBAL, GLOBAL_EXPEDITED):
        _host_barrier()
        return 0
    raise SyscallError(errno.EINVAL)
