"""execve(2): argv and envp read from application memory, then `Kernel.execve`.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.table import syscall

if TYPE_CHECKING:
    from sentry.kernel.task import Task



MAX_ARG_STRLEN = 32 * 4096
MAX_ARGS_TOTAL = 2 << 20


def _strings(t: Task, addr: int) -> list[bytes]:
    if not addr:
        return []
    out, total = [], 0
    for p in t.read_pointers(addr):
        s = t.read_cstring(p, MAX_ARG_STRLEN)
        total += len(s) + 1 + 8
        if total > MAX_ARGS_TOTAL:
            raise SyscallError(errno.E2BIG)
        out.append(s)
    return out


@syscall("execve")
async def sys_execve(t: Task, path: int, argv: int, envp: int, *_: int) -> int:
    """Implements Linux syscall execve(2): the program and its interpreter are read
    through the VFS; on failure the caller's image is untouched."""
    name = t.read_cstring(path)
    await t.kernel.execve(t, name, _strings(t, argv), _strings(t, envp))
    return 0

