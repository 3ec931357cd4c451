"""The sandbox's UTS names: sethostname and setdomainname change the caller's UTS
namespace (`sentry.kernel.uts`), the one state uname(2) and
/proc/sys/kernel/{hostname,domainname} read.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.table import syscall
from sentry.kernel.uts import uts_of
from vfs.creds import CAP_SYS_ADMIN

from .sys_file import i32

if TYPE_CHECKING:
    from sentry.kernel.task import Task

UTS_LEN = 64  # __NEW_UTS_LEN


def _set_name(t: Task, attr: str, name: int, length: int) -> int:
    """sethostname's order of checks: CAP_SYS_ADMIN (EPERM), the length (EINVAL), the
    buffer (EFAULT). The name is kept as given (uname stops at a NUL in it)."""
    if not t.creds.has_cap(CAP_SYS_ADMIN):
        raise SyscallError(errno.EPERM)
    n = i32(length)
    if n < 0 or n > UTS_LEN:
        raise SyscallError(errno.EINVAL)
    setattr(uts_of(t), attr, t.mem_read(name, n) if n else b"")
    return 0


@syscall("sethostname")
def sys_sethostname(t: Task, name: int, length: int, *_: int) -> int:
    """Implements Linux syscall sethostname(2) for the sandbox's own UTS namespace."""
    return _set_name(t, "hostname", name, length)


@syscall("setdomainname")
def sys_setdomainname(t: Task, name: int, length: int, *_: int) -> int:
    """Implements Linux syscall setdomainname(2) for the sandbox's own UTS namespace."""
    return _set_name(t, "domainname", name, length)
