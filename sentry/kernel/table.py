"""The one syscall table: x86_64 number -> handler, with a support level per entry.

Why one table: the dispatcher, `--strace`, `runpsc help syscalls` and docs/syscalls.md all
read the same entries, so what the documentation says is what the Sentry does.

Handlers have one signature, ``h(t: Task, a0, a1, a2, a3, a4, a5) -> int`` (sync) or the
same as ``async def``; a handler may take fewer arguments by ending with ``*_: int``. The
result is the non-negative return value; failure is ``raise SyscallError(errno)``.
"""

from __future__ import annotations

import enum
import errno as _errno
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from sentry.errors import SyscallError

__all__ = [
    "TABLE",
    "Entry",
    "Level",
    "fixed_errno",
    "name_of",
    "number",
    "syscall",
]


class Level(enum.Enum):
    """How completely an entry implements the Linux syscall."""

    SUPPORTED = "supported"
    PARTIAL = "partial"
    ERRNO = "errno"  # always fails with a fixed errno, by design
    UNIMPLEMENTED = "unimplemented"


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of the table."""

    number: int
    name: str
    handler: Callable | None
    level: Level
    note: str
    is_async: bool


TABLE: dict[int, Entry] = {}


def _ptrace_syscall_names() -> dict[int, str]:
    """python-ptrace's x86_64 syscall names, from the copy in `_ptrace_names` (importing
    python-ptrace's table loads its whole debugger first: 5-10 ms of every `runpsc do`)."""
    from ._ptrace_names import SYSCALL_NAMES

    return SYSCALL_NAMES


_PTRACE_NAMES = _ptrace_syscall_names()

# python-ptrace's table stops at Linux 5.8 and also lists the x32 numbers (>= 512), which are
# not valid x86_64 syscalls; keep the 64-bit ones and add what Linux gained since.
_NAMES: dict[int, str] = {nr: name for nr, name in _PTRACE_NAMES.items() if nr < 512}
_NAMES.update(
    {
        283: "timerfd_create",  # python-ptrace calls it "timerfd"
        441: "epoll_pwait2",
        442: "mount_setattr",
        443: "quotactl_fd",
        444: "landlock_create_ruleset",
        445: "landlock_add_rule",
        446: "landlock_restrict_self",
        447: "memfd_secret",
        448: "process_mrelease",
        449: "futex_waitv",
        450: "set_mempolicy_home_node",
        451: "cachestat",
        452: "fchmodat2",
        453: "map_shadow_stack",
        454: "futex_wake",
        455: "futex_wait",
        456: "futex_requeue",
        457: "statmount",
        458: "listmount",
        459: "lsm_get_self_attr",
        460: "lsm_set_self_attr",
        461: "lsm_list_modules",
        462: "mseal",
        463: "setxattrat",
        464: "getxattrat",
        465: "listxattrat",
        466: "removexattrat",
        467: "open_tree_attr",
    }
)
_NUMBERS: dict[str, int] = {name: nr for nr, name in _NAMES.items()}


def number(name: str) -> int:
    """Return the x86_64 syscall number of `name` (KeyError if Linux has no such call)."""
    try:
        return _NUMBERS[name]
    except KeyError:
        raise KeyError(f"no x86_64 syscall named {name!r}") from None


def name_of(nr: int) -> str:
    """Return the name of syscall `nr`, or ``syscall_<nr>`` for a number Linux does not use."""
    return _NAMES.get(nr, f"syscall_{nr}")


def _register(name: str, handler: Callable | None, level: Level, note: str) -> None:
    nr = number(name)
    if nr in TABLE:
        raise ValueError(f"syscall {name!r} ({nr}) registered twice")
    is_async = handler is not None and inspect.iscoroutinefunction(handler)
    TABLE[nr] = Entry(nr, name, handler, level, note, is_async)


def syscall(name: str, *, level: Level = Level.SUPPORTED, note: str = "") -> Callable:
    """Decorator: register the handler for x86_64 syscall `name`; duplicate numbers raise.

    The handler's docstring should start with "Implements Linux syscall name(2)" so the
    generated documentation says what it serves.
    """

    def deco(fn: Callable) -> Callable:
        _register(name, fn, level, note)
        return fn

    return deco


def fixed_errno(name: str, err: int, note: str) -> None:
    """Register `name` as always failing with `err` (level ERRNO), e.g. rseq -> ENOSYS."""

    def handler(t: object, *_: int) -> int:
        raise SyscallError(err)

    handler.__name__ = f"sys_{name}"
    handler.__qualname__ = handler.__name__
    handler.__doc__ = (
        f"Implements Linux syscall {name}(2) as a fixed failure: {_errno.errorcode[err]}."
    )
    _register(name, handler, Level.ERRNO, note)
