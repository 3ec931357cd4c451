"""prctl(2) (names, death signal, subreaper, dumpable, no_new_privs, capabilities) and
personality(2).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel import caps
from sentry.kernel.pidns import task_of
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
    PR_SET_PTRACER,
    PTRACER_ANY,
)

from .sys_file import i32
from .sys_identity import commit_creds

PR_CAPBSET_DROP, PR_GET_SECUREBITS, PR_SET_SECUREBITS = 24, 27, 28
PR_CAP_AMBIENT = 47

if TYPE_CHECKING:
    from sentry.kernel.task import Task



@syscall("prctl", level=Level.PARTIAL,
         note="names, pdeathsig, dumpable, subreaper, no_new_privs, Yama's set_ptracer; "
              "the capability options"
              " (capbset_read/drop, cap_ambient, keepcaps, securebits) on the credentials")
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
    if option in _CAPS:
        return _caps_option(t, option, a2, a3, a4, a5)
    if option in (PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER,
                  PR_SET_NO_NEW_PRIVS):
        if option == PR_SET_PDEATHSIG and not 0 <= a2 <= 64:
            raise SyscallError(errno.EINVAL)
        if option == PR_SET_DUMPABLE and a2 > 1:
            raise SyscallError(errno.EINVAL)
        if option == PR_SET_NO_NEW_PRIVS and a2 != 1:
            raise SyscallError(errno.EINVAL)
        st[option] = int(bool(a2)) if option == PR_SET_CHILD_SUBREAPER else a2
        return 0
    if option == PR_SET_PTRACER:
        return _set_ptracer(t, a2)
    if option == PR_GET_PDEATHSIG:
        t.mem_write(a2, struct.pack("<i", st.get(PR_SET_PDEATHSIG, 0)))
        return 0
    if option == PR_GET_CHILD_SUBREAPER:
        t.mem_write(a2, struct.pack("<i", st.get(PR_SET_CHILD_SUBREAPER, 0)))
        return 0
    if option == PR_GET_DUMPABLE:
        return st.get(PR_SET_DUMPABLE, 1)
    if option == PR_GET_NO_NEW_PRIVS:
        return st.get(PR_SET_NO_NEW_PRIVS, 0)
    raise SyscallError(errno.EINVAL)


_CAPS = frozenset((PR_CAPBSET_READ, PR_CAPBSET_DROP, PR_GET_SECUREBITS, PR_SET_SECUREBITS,
                   PR_GET_KEEPCAPS, PR_SET_KEEPCAPS, PR_CAP_AMBIENT))


def _caps_option(t: Task, option: int, a2: int, a3: int, a4: int, a5: int) -> int:
    """cap_task_prctl's options over the caller's credentials (`sentry.kernel.caps`); a
    change is committed as any other credential change."""
    c = t.creds
    if option == PR_CAPBSET_READ:
        if not caps.cap_valid(a2):
            raise SyscallError(errno.EINVAL)
        return c.cap_bounding >> a2 & 1
    if option == PR_GET_SECUREBITS:
        return c.securebits
    if option == PR_GET_KEEPCAPS:
        return int(bool(c.securebits & caps.SECBIT_KEEP_CAPS))
    answer = 0
    if option == PR_CAPBSET_DROP:
        new = caps.bounding_drop(c, a2)
    elif option == PR_SET_SECUREBITS:
        new = caps.set_securebits(c, a2)
    elif option == PR_SET_KEEPCAPS:
        new = caps.set_keepcaps(c, a2)
    else:
        answer, new = caps.ambient(c, a2, a3, a4, a5)
    if new is not c:
        commit_creds(t, new)
    return answer




@syscall("personality", level=Level.PARTIAL,
         note="any persona is taken and shown (/proc/PID/personality); honoured: "
              "ADDR_NO_RANDOMIZE (by the next execve), PER_LINUX32 and UNAME26 (uname), "
              "READ_IMPLIES_EXEC (mmap, mprotect), PER_CLEAR_ON_SETID cleared by a set-id "
              "execve; ADDR_LIMIT_* limit nothing, as Linux for a 64-bit program; "
              "MMAP_PAGE_ZERO (no page 0 mapped at execve), ADDR_COMPAT_LAYOUT (no legacy "
              "layout) and the other personalities are recorded only")
def sys_personality(t: Task, persona: int, *_: int) -> int:
    """Implements Linux syscall personality(2): query (0xffffffff), or set any value
    and return the old one, as Linux (which never refuses one)."""
    persona &= 0xFFFFFFFF
    old = t.personality
    if persona != 0xFFFFFFFF:
        t.personality = persona
    return old


def _set_ptracer(t: Task, arg: int) -> int:
    """Yama's PR_SET_PTRACER (the sandbox's ptrace_scope is 1): the process allows one
    process (named by any of its threads in the caller's pid namespace, EINVAL if none)
    and its descendants to attach to it, or any (PR_SET_PTRACER_ANY), or none (0). Not
    inherited by fork; it ends with the named process (`sys_procvm.ptracer_named`)."""
    st = t.leader.prctl_state
    if arg == 0:
        st.pop(PR_SET_PTRACER, None)
        return 0
    if arg == 0xFFFFFFFFFFFFFFFF:
        st[PR_SET_PTRACER] = PTRACER_ANY
        return 0
    tracer = task_of(t, i32(arg)) if arg < 1 << 31 else None
    if tracer is None:
        raise SyscallError(errno.EINVAL)
    st[PR_SET_PTRACER] = tracer.tgid
    return 0
