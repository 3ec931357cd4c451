"""prctl(2) (names, death signal, subreaper, dumpable, no_new_privs, capabilities) and
personality(2).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.table import Level, syscall
from sentry.kernel.task import (
    PR_CAPBSET_READ,
    PR_GET_CHILD_SUBREAPER,
    PR_GET_DUMPABLE,
    PR_GET_KEEPCAPS,
    PR_GET_NAME,
    PR_GET_NO_NEW_PRIVS,
    PR_GET_PDEATHSIG,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_DUMPABLE,
    PR_SET_KEEPCAPS,
    PR_SET_NAME,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
)

from .sys_file import i32

PR_GET_SECUREBITS = 27
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET, PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_LOWER = 1, 2, 3
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_LAST_CAP = 40

if TYPE_CHECKING:
    from sentry.kernel.task import Task



@syscall("prctl", level=Level.PARTIAL,
         note="names, pdeathsig, dumpable, keepcaps, subreaper, no_new_privs, capbset_read,"
              " get_securebits (none kept), cap_ambient (the ambient set stays empty:"
              " raising it is EPERM)")
def sys_prctl(t: Task, option: int, a2: int, a3: int, a4: int, a5: int, *_: int) -> int:
    """Implements Linux syscall prctl(2) for the harmless per-process options."""
    option = i32(option)
    st = t.prctl_state
    if option == PR_SET_NAME:
        try:
            name = t.read_cstring(a2, 16)
        except SyscallError as e:
            if e.errno != errno.ENAMETOOLONG:
                raise
            name = t.mem_read(a2, 15)
        t.comm = name[:15]
        return 0
    if option == PR_GET_NAME:
        t.mem_write(a2, t.comm[:15].ljust(16, b"\0"))
        return 0
    if option in (PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_KEEPCAPS, PR_SET_CHILD_SUBREAPER,
                  PR_SET_NO_NEW_PRIVS):
        if option == PR_SET_PDEATHSIG and not 0 <= a2 <= 64:
            raise SyscallError(errno.EINVAL)
        if option in (PR_SET_DUMPABLE, PR_SET_KEEPCAPS) and a2 > 1:
            raise SyscallError(errno.EINVAL)
        if option == PR_SET_NO_NEW_PRIVS and a2 != 1:
            raise SyscallError(errno.EINVAL)
        st[option] = int(bool(a2)) if option == PR_SET_CHILD_SUBREAPER else a2
        return 0
    if option == PR_GET_PDEATHSIG:
        t.mem_write(a2, struct.pack("<i", st.get(PR_SET_PDEATHSIG, 0)))
        return 0
    if option == PR_GET_CHILD_SUBREAPER:
        t.mem_write(a2, struct.pack("<i", st.get(PR_SET_CHILD_SUBREAPER, 0)))
        return 0
    if option == PR_GET_DUMPABLE:
        return st.get(PR_SET_DUMPABLE, 1)
    if option == PR_GET_KEEPCAPS:
        return st.get(PR_SET_KEEPCAPS, 0)
    if option == PR_GET_NO_NEW_PRIVS:
        return st.get(PR_SET_NO_NEW_PRIVS, 0)
    if option == PR_CAPBSET_READ:
        if a2 > 40:
            raise SyscallError(errno.EINVAL)
        return t.creds.cap_bounding >> a2 & 1
    if option == PR_GET_SECUREBITS:
        return 0
    if option == PR_CAP_AMBIENT:
        return _cap_ambient(t, a2, a3, a4, a5)
    raise SyscallError(errno.EINVAL)


def _cap_ambient(t: Task, op: int, cap: int, a4: int, a5: int) -> int:
    """PR_CAP_AMBIENT with Linux's argument checks (cap_task_prctl) over an ambient set
    that is always empty: what a process whose inheritable set is empty (root's default)
    sees; raising a capability it could raise is refused too, as the set is not kept."""
    if op == PR_CAP_AMBIENT_CLEAR_ALL:
        if cap | a4 | a5:
            raise SyscallError(errno.EINVAL)
        return 0
    if cap > CAP_LAST_CAP or a4 | a5:
        raise SyscallError(errno.EINVAL)
    if op == PR_CAP_AMBIENT_IS_SET or op == PR_CAP_AMBIENT_LOWER:
        return 0
    if op == PR_CAP_AMBIENT_RAISE:
        raise SyscallError(errno.EPERM)
    raise SyscallError(errno.EINVAL)


PER_LINUX = 0


@syscall("personality", level=Level.PARTIAL, note="PER_LINUX only")
def sys_personality(t: Task, persona: int, *_: int) -> int:
    """Implements Linux syscall personality(2): query, or set PER_LINUX."""
    persona &= 0xFFFFFFFF
    if persona != 0xFFFFFFFF and persona != PER_LINUX:
        raise SyscallError(errno.EINVAL)
    return PER_LINUX
