"""The machine as the sandbox sees it: uname (the sandbox's host and domain names),
sysinfo, getrandom.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.limits import RELEASE, VERSION
from sentry.kernel.table import Level, syscall
from sentry.kernel.task import PER_LINUX32, UNAME26
from sentry.kernel.uts import uts_of

if TYPE_CHECKING:
    from sentry.kernel.task import Task



# identity of the machine ---------------------------------------------------------------------



@syscall("uname")
def sys_uname(t: Task, addr: int, *_: int) -> int:
    """Implements Linux syscall uname(2) with runpsc's own release string."""
    uts = uts_of(t)
    machine = b"i686" if t.personality & 0xFF == PER_LINUX32 else b"x86_64"  # linux32
    fields = [b"Linux", uts.hostname, _release(t), VERSION, machine, uts.domainname]
    t.mem_write(addr, b"".join(f[:64].ljust(65, b"\0") for f in fields))
    return 0


def _release(t: Task) -> bytes:
    """override_release: under UNAME26 a 2.6 release (2.6.<minor + 60> and the rest)."""
    if not t.personality & UNAME26:
        return RELEASE
    minor = RELEASE.split(b".")[1]
    rest = RELEASE.lstrip(b"0123456789.")
    return b"2.6.%d%s" % (int(minor) + 60, rest)


# randomness, system information --------------------------------------------------------------

GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE = 1, 2, 4


@syscall("getrandom")
def sys_getrandom(t: Task, buf: int, length: int, flags: int, *_: int) -> int:
    """Implements Linux syscall getrandom(2) from the host's CSPRNG."""
    if flags & ~7 or flags & (GRND_RANDOM | GRND_INSECURE) == GRND_RANDOM | GRND_INSECURE:
        raise SyscallError(errno.EINVAL)
    n = min(length, 32 << 20)
    t.mem_write(buf, os.urandom(n))
    return n


class _SysInfo(ctypes.Structure):
    _fields_ = [
        ("uptime", ctypes.c_long),
        ("loads", ctypes.c_ulong * 3),
        ("totalram", ctypes.c_ulong),
        ("freeram", ctypes.c_ulong),
        ("sharedram", ctypes.c_ulong),
        ("bufferram", ctypes.c_ulong),
        ("totalswap", ctypes.c_ulong),
        ("freeswap", ctypes.c_ulong),
        ("procs", ctypes.c_ushort),
        ("pad", ctypes.c_ushort),
        ("totalhigh", ctypes.c_ulong),
        ("freehigh", ctypes.c_ulong),
        ("mem_unit", ctypes.c_uint),
        ("_f", ctypes.c_char * 4),
    ]


_libc = ctypes.CDLL(None, use_errno=True)


@syscall("sysinfo", level=Level.PARTIAL, note="memory figures are the sandbox's memory limit "
         "and what is charged to it (no swap); the load averages are the host's")
def sys_sysinfo(t: Task, addr: int, *_: int) -> int:
    """Implements Linux syscall sysinfo(2): the sandbox's memory (what glibc's
    sysconf(_SC_PHYS_PAGES) and programs sizing themselves read, the same as MemTotal),
    uptime and tasks."""
    info = _SysInfo()
    if _libc.sysinfo(ctypes.byref(info)) != 0:
        raise SyscallError(ctypes.get_errno())
    mem = t.kernel.memory
    info.totalram, info.freeram = mem.limit, mem.room()
    info.sharedram = mem.charged["tmpfs"] + mem.charged["shmem"] + mem.charged["shm"]
    info.bufferram = info.totalswap = info.freeswap = info.totalhigh = info.freehigh = 0
    info.mem_unit = 1
    info.uptime = int(time.monotonic() - t.kernel.start_monotonic) + 1
    info.procs = 1
    t.mem_write(addr, ctypes.string_at(ctypes.addressof(info), ctypes.sizeof(info)))
    return 0
