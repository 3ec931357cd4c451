"""Process-local syscalls: ids, exit, credentials, limits, time, randomness, names.

Each handler is a thin layer over the Task and Kernel objects (sentry/kernel/).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import time
from typing import TYPE_CHECKING

import trio

from sentry.kernel.exit import TaskExit
from vfs.creds import CAP_SETGID, CAP_SETUID, Credentials

from .table import Level, SyscallError, fixed_errno, syscall

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


# exit ---------------------------------------------------------------------------------------


@syscall("exit")
def sys_exit(t: Task, code: int, *_: int) -> int:
    """Implements Linux syscall exit(2): ends the thread (the whole process while
    threads are not supported)."""
    raise TaskExit(code & 0xFF, group=False)


@syscall("exit_group")
def sys_exit_group(t: Task, code: int, *_: int) -> int:
    """Implements Linux syscall exit_group(2)."""
    raise TaskExit(code & 0xFF)


# thread state -------------------------------------------------------------------------------

ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
ARCH_GET_CPUID, ARCH_SET_CPUID = 0x1011, 0x1012


@syscall("arch_prctl", level=Level.PARTIAL, note="FS/GS base and GET_CPUID")
def sys_arch_prctl(t: Task, code: int, addr: int, *_: int) -> int:
    """Implements Linux syscall arch_prctl(2). The FS/GS bases are set in the saved
    registers, never by an injected host call (which a register restore would undo)."""
    if code in (ARCH_SET_FS, ARCH_SET_GS):
        if addr >= 1 << 47:
            raise SyscallError(errno.EPERM)
        if code == ARCH_SET_FS:
            t.regs.fs_base = addr
        else:
            t.regs.gs_base = addr
        return 0
    if code in (ARCH_GET_FS, ARCH_GET_GS):
        val = t.regs.fs_base if code == ARCH_GET_FS else t.regs.gs_base
        t.mem_write(addr, struct.pack("<Q", val))
        return 0
    if code == ARCH_GET_CPUID:
        return 1
    raise SyscallError(errno.EINVAL)


@syscall("set_tid_address")
def sys_set_tid_address(t: Task, addr: int, *_: int) -> int:
    """Implements Linux syscall set_tid_address(2): remembered for thread exit."""
    t.clear_child_tid = addr
    return t.tid


@syscall("set_robust_list")
def sys_set_robust_list(t: Task, head: int, length: int, *_: int) -> int:
    """Implements Linux syscall set_robust_list(2): the list is recorded."""
    if length != 24:
        raise SyscallError(errno.EINVAL)
    t.robust_list = head
    return 0


fixed_errno("rseq", errno.ENOSYS, "restartable sequences are not offered; glibc falls back")


# credentials --------------------------------------------------------------------------------


def _creds(t: Task) -> Credentials:
    if t.creds is None:
        t.creds = Credentials.root()
    return t.creds


@syscall("getuid")
def sys_getuid(t: Task, *_: int) -> int:
    """Implements Linux syscall getuid(2)."""
    return _creds(t).uid


@syscall("geteuid")
def sys_geteuid(t: Task, *_: int) -> int:
    """Implements Linux syscall geteuid(2)."""
    return _creds(t).euid


@syscall("getgid")
def sys_getgid(t: Task, *_: int) -> int:
    """Implements Linux syscall getgid(2)."""
    return _creds(t).gid


@syscall("getegid")
def sys_getegid(t: Task, *_: int) -> int:
    """Implements Linux syscall getegid(2)."""
    return _creds(t).egid


@syscall("getresuid")
def sys_getresuid(t: Task, ruid: int, euid: int, suid: int, *_: int) -> int:
    """Implements Linux syscall getresuid(2)."""
    c = _creds(t)
    for addr, v in ((ruid, c.uid), (euid, c.euid), (suid, c.suid)):
        t.mem_write(addr, struct.pack("<I", v))
    return 0


@syscall("getresgid")
def sys_getresgid(t: Task, rgid: int, egid: int, sgid: int, *_: int) -> int:
    """Implements Linux syscall getresgid(2)."""
    c = _creds(t)
    for addr, v in ((rgid, c.gid), (egid, c.egid), (sgid, c.sgid)):
        t.mem_write(addr, struct.pack("<I", v))
    return 0


@syscall("getgroups")
def sys_getgroups(t: Task, size: int, addr: int, *_: int) -> int:
    """Implements Linux syscall getgroups(2)."""
    groups = sorted(_creds(t).groups)
    size = _s32(size)
    if size < 0:
        raise SyscallError(errno.EINVAL)
    if size == 0:
        return len(groups)
    if size < len(groups):
        raise SyscallError(errno.EINVAL)
    t.mem_write(addr, struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


@syscall("setgroups")
def sys_setgroups(t: Task, size: int, addr: int, *_: int) -> int:
    """Implements Linux syscall setgroups(2): needs CAP_SETGID."""
    size = _s32(size)
    if size < 0 or size > 65536:
        raise SyscallError(errno.EINVAL)
    c = _creds(t)
    if not c.has_cap(CAP_SETGID):
        raise SyscallError(errno.EPERM)
    groups = struct.unpack(f"<{size}I", t.mem_read(addr, 4 * size)) if size else ()
    t.creds = c.with_ids(groups=frozenset(groups))
    return 0


_NOCHANGE = 0xFFFFFFFF


def _set_ids(t: Task, kind: str, r: int, e: int, s: int, *, strict_saved: bool) -> None:
    """setres[ug]id's rule: unprivileged callers may only pick among real/effective/saved."""
    c = _creds(t)
    cap = CAP_SETUID if kind == "u" else CAP_SETGID
    real, eff, saved = (c.uid, c.euid, c.suid) if kind == "u" else (c.gid, c.egid, c.sgid)
    r, e, s = (x & 0xFFFFFFFF for x in (r, e, s))
    if not c.has_cap(cap):
        allowed = {real, eff, saved}
        for v in (r, e, s):
            if v != _NOCHANGE and v not in allowed:
                raise SyscallError(errno.EPERM)
    real = real if r == _NOCHANGE else r
    eff = eff if e == _NOCHANGE else e
    saved = saved if s == _NOCHANGE else s
    if kind == "u":
        t.creds = c.with_ids(uid=real, euid=eff, suid=saved, fsuid=eff)
    else:
        t.creds = c.with_ids(gid=real, egid=eff, sgid=saved, fsgid=eff)


@syscall("setresuid")
def sys_setresuid(t: Task, r: int, e: int, s: int, *_: int) -> int:
    """Implements Linux syscall setresuid(2) (capabilities are not dropped on change)."""
    _set_ids(t, "u", r, e, s, strict_saved=True)
    return 0


@syscall("setresgid")
def sys_setresgid(t: Task, r: int, e: int, s: int, *_: int) -> int:
    """Implements Linux syscall setresgid(2)."""
    _set_ids(t, "g", r, e, s, strict_saved=True)
    return 0


@syscall("setuid")
def sys_setuid(t: Task, uid: int, *_: int) -> int:
    """Implements Linux syscall setuid(2): all ids when privileged, else the effective."""
    if _creds(t).has_cap(CAP_SETUID):
        _set_ids(t, "u", uid, uid, uid, strict_saved=False)
    else:
        _set_ids(t, "u", _NOCHANGE, uid, _NOCHANGE, strict_saved=False)
    return 0


@syscall("setgid")
def sys_setgid(t: Task, gid: int, *_: int) -> int:
    """Implements Linux syscall setgid(2)."""
    if _creds(t).has_cap(CAP_SETGID):
        _set_ids(t, "g", gid, gid, gid, strict_saved=False)
    else:
        _set_ids(t, "g", _NOCHANGE, gid, _NOCHANGE, strict_saved=False)
    return 0


@syscall("setreuid")
def sys_setreuid(t: Task, r: int, e: int, *_: int) -> int:
    """Implements Linux syscall setreuid(2)."""
    _set_ids(t, "u", r, e, _NOCHANGE, strict_saved=False)
    return 0


@syscall("setregid")
def sys_setregid(t: Task, r: int, e: int, *_: int) -> int:
    """Implements Linux syscall setregid(2)."""
    _set_ids(t, "g", r, e, _NOCHANGE, strict_saved=False)
    return 0


# identity of the machine ---------------------------------------------------------------------

RELEASE = b"6.1.0-runpsc"
VERSION = b"#1 SMP PREEMPT_DYNAMIC runpsc"


@syscall("uname")
def sys_uname(t: Task, addr: int, *_: int) -> int:
    """Implements Linux syscall uname(2) with runpsc's own release string."""
    k = t.kernel
    fields = [b"Linux", k.hostname, RELEASE, VERSION, b"x86_64", k.domainname]
    t.mem_write(addr, b"".join(f[:64].ljust(65, b"\0") for f in fields))
    return 0


# limits -------------------------------------------------------------------------------------

RLIM_INFINITY = (1 << 64) - 1
RLIMIT_STACK, RLIMIT_CORE, RLIMIT_NOFILE, RLIMIT_NLIMITS = 3, 4, 7, 16
DEFAULT_RLIMITS = {
    0: (RLIM_INFINITY, RLIM_INFINITY),  # CPU
    1: (RLIM_INFINITY, RLIM_INFINITY),  # FSIZE
    2: (RLIM_INFINITY, RLIM_INFINITY),  # DATA
    3: (8 << 20, RLIM_INFINITY),  # STACK
    4: (0, RLIM_INFINITY),  # CORE
    5: (RLIM_INFINITY, RLIM_INFINITY),  # RSS
    6: (63704, 63704),  # NPROC
    7: (1024, 1 << 20),  # NOFILE
    8: (8 << 20, 8 << 20),  # MEMLOCK
    9: (RLIM_INFINITY, RLIM_INFINITY),  # AS
    10: (RLIM_INFINITY, RLIM_INFINITY),  # LOCKS
    11: (63704, 63704),  # SIGPENDING
    12: (819200, 819200),  # MSGQUEUE
    13: (0, 0),  # NICE
    14: (0, 0),  # RTPRIO
    15: (RLIM_INFINITY, RLIM_INFINITY),  # RTTIME
}


def _rlimit(t: Task, res: int) -> tuple[int, int]:
    if res == RLIMIT_NOFILE and t.fdtable is not None and hasattr(t.fdtable, "limit"):
        return (t.fdtable.limit, t.rlimits.get(res, DEFAULT_RLIMITS[res])[1])
    return t.rlimits.get(res, DEFAULT_RLIMITS[res])


@syscall("prlimit64", level=Level.PARTIAL, note="limits are recorded; NOFILE is enforced")
def sys_prlimit64(t: Task, pid: int, res: int, new: int, old: int, *_: int) -> int:
    """Implements Linux syscall prlimit64(2) for the calling process."""
    if pid not in (0, t.tgid):
        raise SyscallError(errno.ESRCH)
    if res >= RLIMIT_NLIMITS:
        raise SyscallError(errno.EINVAL)
    cur = _rlimit(t, res)
    if new:
        soft, hard = struct.unpack("<QQ", t.mem_read(new, 16))
        if soft > hard:
            raise SyscallError(errno.EINVAL)
        if hard > cur[1] and not _creds(t).has_cap(24):  # CAP_SYS_RESOURCE
            raise SyscallError(errno.EPERM)
        if res == RLIMIT_NOFILE:
            if hard > 1 << 20:
                raise SyscallError(errno.EPERM)
            if t.fdtable is not None and hasattr(t.fdtable, "limit"):
                t.fdtable.limit = soft
    if old:
        t.mem_write(old, struct.pack("<QQ", *cur))
    if new:
        t.rlimits[res] = (soft, hard)
    return 0


@syscall("getrlimit")
def sys_getrlimit(t: Task, res: int, addr: int, *_: int) -> int:
    """Implements Linux syscall getrlimit(2)."""
    return sys_prlimit64(t, 0, res, 0, addr)


@syscall("setrlimit")
def sys_setrlimit(t: Task, res: int, addr: int, *_: int) -> int:
    """Implements Linux syscall setrlimit(2)."""
    return sys_prlimit64(t, 0, res, addr, 0)


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


@syscall("sysinfo", level=Level.PARTIAL, note="memory figures are the host's")
def sys_sysinfo(t: Task, addr: int, *_: int) -> int:
    """Implements Linux syscall sysinfo(2): host memory, the sandbox's uptime and tasks."""
    info = _SysInfo()
    if _libc.sysinfo(ctypes.byref(info)) != 0:
        raise SyscallError(ctypes.get_errno())
    info.uptime = int(time.monotonic() - t.kernel.start_monotonic) + 1
    info.procs = 1
    t.mem_write(addr, ctypes.string_at(ctypes.addressof(info), ctypes.sizeof(info)))
    return 0


# time ---------------------------------------------------------------------------------------

_CLOCKS = {0: time.CLOCK_REALTIME, 1: time.CLOCK_MONOTONIC, 4: time.CLOCK_MONOTONIC_RAW,
           5: 5, 6: 6, 7: time.CLOCK_BOOTTIME, 8: 8, 9: 9, 11: 11}
CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 2, 3


def _cpu_ns(t: Task) -> int:
    """CPU time (user+system) of the application, from its stub's /proc stat."""
    try:
        fields = open(f"/proc/{t.stub.pid}/stat").read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _now_ns(t: Task, clk: int) -> int:
    clk = _s32(clk)
    if clk in (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID):
        return _cpu_ns(t)
    if clk not in _CLOCKS:
        raise SyscallError(errno.EINVAL)
    return time.clock_gettime_ns(_CLOCKS[clk])


def _timespec(ns: int) -> bytes:
    return struct.pack("<qq", ns // 1_000_000_000, ns % 1_000_000_000)


@syscall("clock_gettime")
def sys_clock_gettime(t: Task, clk: int, tp: int, *_: int) -> int:
    """Implements Linux syscall clock_gettime(2) (the vDSO answers most calls without us)."""
    t.mem_write(tp, _timespec(_now_ns(t, clk)))
    return 0


@syscall("clock_getres")
def sys_clock_getres(t: Task, clk: int, tp: int, *_: int) -> int:
    """Implements Linux syscall clock_getres(2)."""
    _now_ns(t, clk)
    if tp:
        t.mem_write(tp, _timespec(4_000_000 if _s32(clk) in (5, 6) else 1))
    return 0


@syscall("gettimeofday")
def sys_gettimeofday(t: Task, tv: int, tz: int, *_: int) -> int:
    """Implements Linux syscall gettimeofday(2); the timezone is UTC."""
    ns = time.time_ns()
    if tv:
        t.mem_write(tv, struct.pack("<qq", ns // 1_000_000_000, ns % 1_000_000_000 // 1000))
    if tz:
        t.mem_write(tz, struct.pack("<ii", 0, 0))
    return 0


@syscall("time")
def sys_time(t: Task, tloc: int, *_: int) -> int:
    """Implements Linux syscall time(2)."""
    now = time.time_ns() // 1_000_000_000
    if tloc:
        t.mem_write(tloc, struct.pack("<q", now))
    return now


def _read_timespec(t: Task, addr: int) -> int:
    sec, nsec = struct.unpack("<qq", t.mem_read(addr, 16))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise SyscallError(errno.EINVAL)
    return sec * 1_000_000_000 + nsec


@syscall("nanosleep")
async def sys_nanosleep(t: Task, req: int, rem: int, *_: int) -> int:
    """Implements Linux syscall nanosleep(2); other tasks run meanwhile."""
    ns = _read_timespec(t, req)
    await trio.sleep(ns / 1e9)
    return 0


@syscall("clock_nanosleep")
async def sys_clock_nanosleep(t: Task, clk: int, flags: int, req: int, rem: int,
                              *_: int) -> int:
    """Implements Linux syscall clock_nanosleep(2), relative or TIMER_ABSTIME."""
    clk = _s32(clk)
    if clk in (CLOCK_THREAD_CPUTIME_ID,):
        raise SyscallError(errno.EINVAL)
    if clk not in (0, 1, 7, 8, 9, CLOCK_PROCESS_CPUTIME_ID):
        raise SyscallError(errno.EINVAL if clk in _CLOCKS else errno.EINVAL)
    ns = _read_timespec(t, req)
    if flags & 1:  # TIMER_ABSTIME
        ns -= _now_ns(t, clk)
    if ns > 0:
        await trio.sleep(ns / 1e9)
    return 0


# scheduling, accounting, names ---------------------------------------------------------------


@syscall("sched_yield")
async def sys_sched_yield(t: Task, *_: int) -> int:
    """Implements Linux syscall sched_yield(2): lets other sandbox tasks run."""
    await trio.lowlevel.checkpoint()
    return 0


@syscall("sched_getaffinity")
def sys_sched_getaffinity(t: Task, pid: int, size: int, mask: int, *_: int) -> int:
    """Implements Linux syscall sched_getaffinity(2): the host CPUs the stub may use."""
    if pid not in (0, t.tid, t.tgid):
        raise SyscallError(errno.ESRCH)
    cpus = os.sched_getaffinity(0)
    nbytes = max(8, (max(cpus) // 64 + 1) * 8)
    if size < nbytes or size & 7:
        raise SyscallError(errno.EINVAL)
    bits = sum(1 << c for c in cpus)
    t.mem_write(mask, bits.to_bytes(nbytes, "little"))
    return nbytes


@syscall("getrusage", level=Level.PARTIAL, note="CPU times and max RSS; other fields 0")
def sys_getrusage(t: Task, who: int, addr: int, *_: int) -> int:
    """Implements Linux syscall getrusage(2) from the stub's host accounting."""
    who = _s32(who)
    if who not in (0, -1, 1):
        raise SyscallError(errno.EINVAL)
    utime = stime = maxrss = 0
    if who != -1:
        try:
            fields = open(f"/proc/{t.stub.pid}/stat").read().rsplit(")", 1)[1].split()
            tck = os.sysconf("SC_CLK_TCK")
            utime, stime = int(fields[11]) * 1_000_000 // tck, int(fields[12]) * 1_000_000 // tck
            for line in open(f"/proc/{t.stub.pid}/status"):
                if line.startswith("VmHWM:"):
                    maxrss = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
    ru = struct.pack("<qqqq", utime // 1_000_000, utime % 1_000_000, stime // 1_000_000,
                     stime % 1_000_000) + struct.pack("<14q", maxrss, *([0] * 13))
    t.mem_write(addr, ru)
    return 0


PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
PR_GET_KEEPCAPS, PR_SET_KEEPCAPS, PR_SET_NAME, PR_GET_NAME = 7, 8, 15, 16
PR_CAPBSET_READ, PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 23, 36, 37
PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 38, 39


@syscall("prctl", level=Level.PARTIAL,
         note="names, pdeathsig, dumpable, keepcaps, subreaper, no_new_privs, capbset_read")
def sys_prctl(t: Task, option: int, a2: int, a3: int, *_: int) -> int:
    """Implements Linux syscall prctl(2) for the harmless per-process options."""
    option = _s32(option)
    st = t.prctl_state
    if option == PR_SET_NAME:
        name = t.mem_read(a2, 16).split(b"\0", 1)[0]
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
        st[option] = a2
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
        return _creds(t).cap_bounding >> a2 & 1
    raise SyscallError(errno.EINVAL)


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v
