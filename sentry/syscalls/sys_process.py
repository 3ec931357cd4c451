"""Process-local syscalls: ids, exit, credentials, limits, time, randomness, names.

Each handler is a thin layer over the Task and Kernel objects (sentry/kernel/).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .table import syscall

if TYPE_CHECKING:
    from sentry.kernel.task import Task


@syscall("getpid")
def sys_getpid(t: Task, *_: int) -> int:
    """Implements Linux syscall getpid(2): the sandbox's thread-group id, never the host's."""
    return t.tgid


@syscall("gettid")
def sys_gettid(t: Task, *_: int) -> int:
    """Implements Linux syscall gettid(2): the sandbox thread id."""
    return t.tid


@syscall("getppid")
def sys_getppid(t: Task, *_: int) -> int:
    """Implements Linux syscall getppid(2): the sandbox parent's pid (0 for pid 1)."""
    return t.ppid
