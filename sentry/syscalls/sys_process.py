"""Process-local syscalls: ids, exit, credentials, limits, time, randomness, names.

Each handler is a thin layer over the Task and Kernel objects (sentry/kernel/).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import time
from typing import TYPE_CHECKING, Any

import trio

from sentry.errors import SyscallError
from sentry.kernel import jobctl, signals, sigstate
from sentry.kernel.exit import TaskExit
from sentry.kernel.table import Level, fixed_errno, syscall
from sentry.platform.affinity import caller_cpus
from vfs.creds import CAP_SETGID, CAP_SETUID, Credentials

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


def _ids_of(t: Task, kind: str) -> tuple[int, int, int, bool]:
    c = _creds(t)
    ids = (c.uid, c.euid, c.suid) if kind == "u" else (c.gid, c.egid, c.sgid)
    return (*ids, c.has_cap(CAP_SETUID if kind == "u" else CAP_SETGID))


def _set_ids(t: Task, kind: str, r: int, e: int, s: int) -> None:
    """setres[ug]id's rule: unprivileged callers may only pick among real/effective/saved."""
    real, eff, saved, privileged = _ids_of(t, kind)
    r, e, s = (x & 0xFFFFFFFF for x in (r, e, s))
    if not privileged:
        allowed = {real, eff, saved}
        for v in (r, e, s):
            if v != _NOCHANGE and v not in allowed:
                raise SyscallError(errno.EPERM)
    _commit_ids(t, kind, real if r == _NOCHANGE else r, eff if e == _NOCHANGE else e,
                saved if s == _NOCHANGE else s)


def _commit_ids(t: Task, kind: str, real: int, eff: int, saved: int) -> None:
    c = _creds(t)
    if kind == "u":
        t.creds = _caps_after_uid_change(t, c, c.with_ids(uid=real, euid=eff, suid=saved,
                                                          fsuid=eff))
    else:
        t.creds = c.with_ids(gid=real, egid=eff, sgid=saved, fsgid=eff)


def _caps_after_uid_change(t: Task, old: Credentials, new: Credentials) -> Credentials:
    """capabilities(7), "Effect of user ID changes on capabilities": leaving uid 0 drops
    privileges, so a process that setuid()s away from root really is unprivileged."""
    permitted, effective = new.cap_permitted, new.cap_effective
    had_root = 0 in (old.uid, old.euid, old.suid)
    if had_root and 0 not in (new.uid, new.euid, new.suid):
        if not t.prctl_state.get(PR_SET_KEEPCAPS):
            permitted = 0
        effective = 0
    elif old.euid == 0 and new.euid != 0:
        effective = 0
    elif old.euid != 0 and new.euid == 0:
        effective = permitted
    return new.with_ids(cap_permitted=permitted, cap_effective=effective)


@syscall("setresuid")
def sys_setresuid(t: Task, r: int, e: int, s: int, *_: int) -> int:
    """Implements Linux syscall setresuid(2), capabilities following the uid change."""
    _set_ids(t, "u", r, e, s)
    return 0


@syscall("setresgid")
def sys_setresgid(t: Task, r: int, e: int, s: int, *_: int) -> int:
    """Implements Linux syscall setresgid(2)."""
    _set_ids(t, "g", r, e, s)
    return 0


def _setid(t: Task, kind: str, v: int) -> None:
    """set[ug]id: all three ids when privileged, else the effective one, which must be the
    real or saved id."""
    real, _eff, saved, privileged = _ids_of(t, kind)
    v &= 0xFFFFFFFF
    if v == _NOCHANGE:
        raise SyscallError(errno.EINVAL)
    if privileged:
        _commit_ids(t, kind, v, v, v)
    elif v in (real, saved):
        _commit_ids(t, kind, real, v, saved)
    else:
        raise SyscallError(errno.EPERM)


def _setreid(t: Task, kind: str, r: int, e: int) -> None:
    """setre[ug]id: the saved id follows the new effective one when the real id is set or
    the effective id changes away from the old real id."""
    real, eff, saved, privileged = _ids_of(t, kind)
    r, e = r & 0xFFFFFFFF, e & 0xFFFFFFFF
    if not privileged:
        if r != _NOCHANGE and r not in (real, eff):
            raise SyscallError(errno.EPERM)
        if e != _NOCHANGE and e not in (real, eff, saved):
            raise SyscallError(errno.EPERM)
    new_real = real if r == _NOCHANGE else r
    new_eff = eff if e == _NOCHANGE else e
    if r != _NOCHANGE or (e != _NOCHANGE and e != real):
        saved = new_eff
    _commit_ids(t, kind, new_real, new_eff, saved)


@syscall("setuid")
def sys_setuid(t: Task, uid: int, *_: int) -> int:
    """Implements Linux syscall setuid(2)."""
    _setid(t, "u", uid)
    return 0


@syscall("setgid")
def sys_setgid(t: Task, gid: int, *_: int) -> int:
    """Implements Linux syscall setgid(2)."""
    _setid(t, "g", gid)
    return 0


@syscall("setreuid")
def sys_setreuid(t: Task, r: int, e: int, *_: int) -> int:
    """Implements Linux syscall setreuid(2)."""
    _setreid(t, "u", r, e)
    return 0


@syscall("setregid")
def sys_setregid(t: Task, r: int, e: int, *_: int) -> int:
    """Implements Linux syscall setregid(2)."""
    _setreid(t, "g", r, e)
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
    if res == RLIMIT_NOFILE:
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
    await t.sleep_interruptibly(trio.sleep(ns / 1e9))
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
        await t.sleep_interruptibly(trio.sleep(ns / 1e9))
    return 0


@syscall("pause")
async def sys_pause(t: Task, *_: int) -> int:
    """Implements Linux syscall pause(2): sleeps until a signal arrives."""
    await t.sleep_interruptibly(trio.sleep_forever())
    return 0


# scheduling, accounting, names ---------------------------------------------------------------


@syscall("sched_yield")
async def sys_sched_yield(t: Task, *_: int) -> int:
    """Implements Linux syscall sched_yield(2): lets other sandbox tasks run."""
    await trio.lowlevel.checkpoint()
    return 0


@syscall("sched_getaffinity")
def sys_sched_getaffinity(t: Task, pid: int, size: int, mask: int, *_: int) -> int:
    """Implements Linux syscall sched_getaffinity(2): the CPUs the caller of runpsc allowed
    (not the Sentry's own pinned mask: see sentry.platform.affinity)."""
    if pid not in (0, t.tid, t.tgid):
        raise SyscallError(errno.ESRCH)
    cpus = caller_cpus()
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
        return _creds(t).cap_bounding >> a2 & 1
    raise SyscallError(errno.EINVAL)


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


# process lifecycle: fork, exec, wait, default-action kill ---------------------------------

CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_PIDFD, CLONE_PTRACE, CLONE_VFORK, CLONE_PARENT = 0x1000, 0x2000, 0x4000, 0x8000
CLONE_THREAD, CLONE_NEWNS, CLONE_SYSVSEM, CLONE_SETTLS = 0x10000, 0x20000, 0x40000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID = 0x100000, 0x200000
CLONE_DETACHED, CLONE_UNTRACED, CLONE_CHILD_SETTID = 0x400000, 0x800000, 0x1000000
CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER = 0x4000000, 0x8000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET, CLONE_IO = 0x20000000, 0x40000000, 0x80000000
_CLONE_NS = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID \
    | CLONE_NEWNET | 0x02000000  # CLONE_NEWCGROUP


async def _clone(t: Task, flags: int, stack: int, ptid: int, ctid: int, tls: int) -> int:
    """fork/vfork/clone. A new process is a host fork of the stub (its private memory
    copy-on-write); CLONE_VM for a process is honoured only together with CLONE_VFORK
    (posix_spawn's use), where the parent sleeps until the child execs or exits. A new
    thread (CLONE_THREAD) is a host thread of the same stub."""
    if flags & CLONE_THREAD:
        return _clone_thread(t, flags, stack, ptid, ctid, tls)
    if flags & CLONE_SIGHAND and not flags & CLONE_VM:
        raise SyscallError(errno.EINVAL)
    if flags & CLONE_VM and not flags & CLONE_VFORK:
        raise SyscallError(errno.EINVAL)
    if flags & (_CLONE_NS | CLONE_PIDFD):
        raise SyscallError(errno.EPERM if flags & _CLONE_NS else errno.EINVAL)
    k = t.kernel
    child_stub = t.stub.fork()
    try:
        child_mm = t.mm.fork(child_stub)
        pid = k.alloc_pid()
        fdtable = t.fdtable
        if not flags & CLONE_FILES:
            fdtable = fdtable.fork()
        fs = t.fs
        if not flags & CLONE_FS and fs is not None:
            fs = fs.fork()
        child = type(t)(k, child_stub, child_mm, tid=pid, tgid=pid,
                        ppid=t.ppid if flags & CLONE_PARENT else t.tgid,
                        fdtable=fdtable, fs=fs, creds=t.creds)
    except BaseException:
        child_stub.kill()
        raise
    child.comm, child.rlimits = t.comm, dict(t.rlimits)
    child.image = t.leader.image  # same program, same argv/env addresses
    # the parent-death signal and the subreaper mark are not inherited (prctl(2))
    child.prctl_state = {k: v for k, v in t.prctl_state.items()
                         if k not in (PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER)}
    child.pgid, child.sid = t.pgid, t.sid
    _start_regs(child_stub, t, flags, stack, tls)
    if flags & CLONE_PARENT_SETTID:
        t.mem_write(ptid, struct.pack("<i", pid))
        child.mem_write(ptid, struct.pack("<i", pid))
    if flags & CLONE_CHILD_SETTID:
        child.mem_write(ctid, struct.pack("<i", pid))
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = ctid
    k.spawn(child)
    if flags & CLONE_VFORK:
        await child.vfork_done.wait()
    return pid


def _start_regs(stub: Any, t: Task, flags: int, stack: int, tls: int) -> None:
    """A clone's first registers: the caller's, returning 0, on `stack` if one was given,
    with the new TLS under CLONE_SETTLS."""
    ctypes.pointer(stub.regs)[0] = t.regs
    r = stub.regs
    r.rax = 0
    if stack:
        r.rsp = stack
    if flags & CLONE_SETTLS:
        r.fs_base = tls


def _clone_thread(t: Task, flags: int, stack: int, ptid: int, ctid: int, tls: int) -> int:
    """A new thread: a host thread of the same stub (same memory), its own Task."""
    if not flags & CLONE_VM or not flags & CLONE_SIGHAND:
        raise SyscallError(errno.EINVAL)
    if flags & (_CLONE_NS | CLONE_PIDFD | CLONE_VFORK):
        raise SyscallError(errno.EINVAL)
    k = t.kernel
    leader = t.leader
    tstub = t.stub.clone_thread()
    tid = k.alloc_pid()
    th = type(t)(k, tstub, t.mm, tid=tid, tgid=t.tgid, ppid=0, fdtable=t.fdtable, fs=t.fs,
                 creds=t.creds)
    th.leader, th.threads, th.stubs = leader, set(), []
    th.rlimits, th.prctl_state, th.comm = leader.rlimits, leader.prctl_state, t.comm
    _start_regs(tstub, t, flags, stack, tls)
    if flags & CLONE_PARENT_SETTID:
        t.mem_write(ptid, struct.pack("<i", tid))
    if flags & CLONE_CHILD_SETTID:
        t.mem_write(ctid, struct.pack("<i", tid))
    if flags & CLONE_CHILD_CLEARTID:
        th.clear_child_tid = ctid
    k.spawn_thread(th)
    return tid


@syscall("fork")
async def sys_fork(t: Task, *_: int) -> int:
    """Implements Linux syscall fork(2)."""
    return await _clone(t, 17, 0, 0, 0, 0)


@syscall("vfork", level=Level.PARTIAL, note="the child gets a copy of memory, not a share")
async def sys_vfork(t: Task, *_: int) -> int:
    """Implements Linux syscall vfork(2): the parent waits until the child execs or exits."""
    return await _clone(t, CLONE_VM | CLONE_VFORK | 17, 0, 0, 0, 0)


@syscall("clone", level=Level.PARTIAL,
         note="threads (CLONE_THREAD) and processes; CLONE_VM for a process only with "
              "CLONE_VFORK")
async def sys_clone(t: Task, flags: int, stack: int, ptid: int, ctid: int, tls: int,
                    *_: int) -> int:
    """Implements Linux syscall clone(2) for new threads and processes."""
    return await _clone(t, flags, stack, ptid, ctid, tls)


@syscall("clone3", level=Level.PARTIAL, note="as clone; set_tid and cgroup are refused")
async def sys_clone3(t: Task, args: int, size: int, *_: int) -> int:
    """Implements Linux syscall clone3(2) for new threads and processes."""
    if size < 64 or size > 4096:
        raise SyscallError(errno.EINVAL)
    raw = t.mem_read(args, min(size, 88)).ljust(88, b"\0")
    (flags, _pidfd, ctid, ptid, exit_signal, stack, stack_size, tls, set_tid,
     set_tid_size, cgroup) = struct.unpack("<11Q", raw)
    if set_tid or set_tid_size or cgroup or exit_signal > 64:
        raise SyscallError(errno.EINVAL)
    if (stack == 0) != (stack_size == 0):
        raise SyscallError(errno.EINVAL)
    return await _clone(t, flags & ~0xFF, stack + stack_size if stack else 0, ptid, ctid, tls)


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


WNOHANG, WUNTRACED, WEXITED, WCONTINUED, WNOWAIT = 1, 2, 4, 8, 0x1000000
_WALL_FLAGS = 0x40000000 | 0x80000000 | 0x20000000  # __WALL, __WCLONE, __WNOTHREAD


def _matches(t: Task, pid: int, child: int) -> bool:
    k = t.kernel
    if pid == -1:
        return True
    if pid > 0:
        return child == pid
    pgid = t.pgid if pid == 0 else -pid
    proc = k.procs.get(child)
    return proc.pgid == pgid if proc is not None else k.zombie_pgid.get(child) == pgid


async def _wait(t: Task, pid: int, options: int, *,
                reap: bool = True) -> tuple[int, int, int, int, int]:
    """Find a child matching `pid` with something to report, in pid order: an exit (with
    WEXITED; reaped unless WNOWAIT), a completed stop (WUNTRACED/WSTOPPED) or a continue
    (WCONTINUED), the last two consumed unless WNOWAIT. Returns (pid, wait status,
    si_code, si_status, the child's uid); (0, 0, 0, 0, 0) for WNOHANG with nothing to
    report; ECHILD without matching children."""
    k = t.kernel
    while True:
        kids = [z for z, (pp, _) in k.zombies.items() if pp == t.tgid]
        kids += [c for c, p in k.procs.items() if p.ppid == t.tgid]
        kids = sorted(c for c in kids if _matches(t, pid, c))
        if not kids:
            raise SyscallError(errno.ECHILD)
        for c in kids:
            proc = k.procs.get(c)
            if proc is None:
                if not options & WEXITED:
                    continue
                status = k.zombies[c][1]
                uid = k.zombie_uid.get(c, 0)
                if reap:
                    del k.zombies[c]
                    k.zombie_pgid.pop(c, None)
                    k.zombie_uid.pop(c, None)
                    k.zombie_tasks.pop(c, None)
                if status & 0x7F:  # CLD_DUMPED / CLD_KILLED
                    return c, status, (3 if status & 0x80 else 2), status & 0x7F, uid
                return c, status, 1, (status >> 8) & 0xFF, uid  # CLD_EXITED
            got = jobctl.wait_report(proc, options, consume=reap)
            if got is not None:
                uid = proc.creds.uid
                return c, got[0], got[1], got[2], uid
        if options & WNOHANG:
            return 0, 0, 0, 0, 0
        await t.sleep_interruptibly(k.children_changed())


@syscall("wait4", level=Level.PARTIAL, note="rusage is zero")
async def sys_wait4(t: Task, pid: int, status: int, options: int, rusage: int, *_: int) -> int:
    """Implements Linux syscall wait4(2)."""
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | _WALL_FLAGS):
        raise SyscallError(errno.EINVAL)
    pid = _s32(pid)
    if pid == -(1 << 31):
        raise SyscallError(errno.ESRCH)
    got, st, *_ = await _wait(t, pid, options | WEXITED)
    if got and status:
        t.mem_write(status, struct.pack("<i", st))
    if got and rusage:
        t.mem_write(rusage, bytes(144))
    return got


P_ALL, P_PID, P_PGID = 0, 1, 2


@syscall("waitid", level=Level.PARTIAL, note="rusage is zero")
async def sys_waitid(t: Task, idtype: int, ident: int, infop: int, options: int,
                     rusage: int, *_: int) -> int:
    """Implements Linux syscall waitid(2)."""
    if options & ~(WNOHANG | WUNTRACED | WEXITED | WCONTINUED | WNOWAIT | _WALL_FLAGS):
        raise SyscallError(errno.EINVAL)
    if not options & (WEXITED | WUNTRACED | WCONTINUED):
        raise SyscallError(errno.EINVAL)
    ident = _s32(ident)
    if idtype == P_ALL:
        pid = -1
    elif idtype == P_PID:
        if ident <= 0:
            raise SyscallError(errno.EINVAL)
        pid = ident
    elif idtype == P_PGID:
        if ident < 0:
            raise SyscallError(errno.EINVAL)
        pid = -ident if ident else 0
    else:
        raise SyscallError(errno.EINVAL)
    got, _, code, value, uid = await _wait(t, pid, options, reap=not options & WNOWAIT)
    if infop:
        info = bytearray(128)
        if got:
            struct.pack_into("<iii4xiIi", info, 0, 17, 0, code, got, uid, value)
        t.mem_write(infop, bytes(info))
    if got and rusage:
        t.mem_write(rusage, bytes(144))
    return 0


_IGNORED_BY_DEFAULT = {17, 18, 23, 28}  # SIGCHLD, SIGCONT, SIGURG, SIGWINCH


def _send(t: Task, target: Task, sig: int, *, thread: bool = False) -> None:
    """Send `sig` (to one thread for tgkill/tkill): see sentry.kernel.signals."""
    uid = t.creds.uid
    info = sigstate.siginfo(sig, sigstate.SI_TKERNEL if thread else sigstate.SI_USER, t.tgid,
                           uid)
    signals.send(t, target, sig, info, thread=thread)


def _check_sig(sig: int) -> int:
    sig = _s32(sig)
    if not 0 <= sig <= 64:
        raise SyscallError(errno.EINVAL)
    return sig


@syscall("kill")
def sys_kill(t: Task, pid: int, sig: int, *_: int) -> int:
    """Implements Linux syscall kill(2): handlers, masks and default actions."""
    sig = _check_sig(sig)
    pid = _s32(pid)
    k = t.kernel
    if pid > 0:
        targets = [k.procs[pid]] if pid in k.procs else []
    elif pid == 0:
        targets = [p for p in k.procs.values() if p.pgid == t.pgid]
    elif pid == -1:
        targets = [p for p in k.procs.values() if p.tgid != 1 and p is not t] + [t]
    else:
        targets = [p for p in k.procs.values() if p.pgid == -pid]
    if not targets:
        raise SyscallError(errno.ESRCH)
    for target in targets:
        _send(t, target, sig)
    return 0


@syscall("tgkill")
def sys_tgkill(t: Task, tgid: int, tid: int, sig: int, *_: int) -> int:
    """Implements Linux syscall tgkill(2) (one thread per process)."""
    sig = _check_sig(sig)
    tgid, tid = _s32(tgid), _s32(tid)
    if tgid <= 0 or tid <= 0:
        raise SyscallError(errno.EINVAL)
    target = t.kernel.tasks.get(tid)
    if target is None or target.tgid != tgid:
        raise SyscallError(errno.ESRCH)
    _send(t, target, sig, thread=True)
    return 0


@syscall("tkill")
def sys_tkill(t: Task, tid: int, sig: int, *_: int) -> int:
    """Implements Linux syscall tkill(2)."""
    return sys_tgkill(t, tid, tid, sig)


# process groups and sessions -----------------------------------------------------------


@syscall("getpgrp")
def sys_getpgrp(t: Task, *_: int) -> int:
    """Implements Linux syscall getpgrp(2)."""
    return t.pgid


@syscall("getpgid")
def sys_getpgid(t: Task, pid: int, *_: int) -> int:
    """Implements Linux syscall getpgid(2)."""
    pid = _s32(pid)
    target = t if pid == 0 else t.kernel.procs.get(pid)
    if target is None:
        raise SyscallError(errno.ESRCH)
    return target.pgid


@syscall("getsid")
def sys_getsid(t: Task, pid: int, *_: int) -> int:
    """Implements Linux syscall getsid(2)."""
    pid = _s32(pid)
    target = t if pid == 0 else t.kernel.procs.get(pid)
    if target is None:
        raise SyscallError(errno.ESRCH)
    return target.sid


@syscall("setpgid")
def sys_setpgid(t: Task, pid: int, pgid: int, *_: int) -> int:
    """Implements Linux syscall setpgid(2) for the caller or its children."""
    pid, pgid = _s32(pid), _s32(pgid)
    if pgid < 0:
        raise SyscallError(errno.EINVAL)
    target = t if pid in (0, t.tgid) else t.kernel.procs.get(pid)
    if target is None or (target is not t and target.ppid != t.tgid):
        raise SyscallError(errno.ESRCH)
    if target.sid != t.sid:
        raise SyscallError(errno.EPERM)
    if target.sid == target.tgid:
        raise SyscallError(errno.EPERM)  # a session leader cannot move
    pgid = pgid or target.tgid
    if pgid != target.tgid and not any(p.pgid == pgid and p.sid == t.sid
                                       for p in t.kernel.procs.values()):
        raise SyscallError(errno.EPERM)
    target.pgid = pgid
    return 0


@syscall("setsid")
def sys_setsid(t: Task, *_: int) -> int:
    """Implements Linux syscall setsid(2)."""
    if any(p.pgid == t.tgid for p in t.kernel.procs.values()):
        raise SyscallError(errno.EPERM)
    t.sid = t.pgid = t.tgid
    return t.tgid


# scheduling and accounting queries ----------------------------------------------------------


def _target(t: Task, pid: int) -> Task:
    pid = _s32(pid)
    if pid < 0:
        raise SyscallError(errno.EINVAL)
    target = t if pid in (0, t.tid) else t.kernel.tasks.get(pid)
    if target is None:
        raise SyscallError(errno.ESRCH)
    return target


@syscall("times", level=Level.PARTIAL, note="children's times are 0")
def sys_times(t: Task, buf: int, *_: int) -> int:
    """Implements Linux syscall times(2): the process's CPU time in clock ticks."""
    tck = os.sysconf("SC_CLK_TCK")
    cpu = _cpu_ns(t) * tck // 1_000_000_000
    if buf:
        t.mem_write(buf, struct.pack("<4q", cpu, 0, 0, 0))
    return int((time.monotonic() - t.kernel.start_monotonic) * tck) + 1


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
    nice = max(-20, min(19, _s32(prio)))
    if nice < target.leader.prctl_state.get(-1, 0) and not _creds(t).has_cap(23):
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
    policy = _s32(policy)
    if policy in (1, 2):  # SCHED_FIFO, SCHED_RR
        return 99
    if policy in (0, 3, 5, 6):  # OTHER, BATCH, IDLE, DEADLINE
        return 0
    raise SyscallError(errno.EINVAL)


@syscall("sched_get_priority_min")
def sys_sched_get_priority_min(t: Task, policy: int, *_: int) -> int:
    """Implements Linux syscall sched_get_priority_min(2)."""
    policy = _s32(policy)
    if policy in (1, 2):
        return 1
    if policy in (0, 3, 5, 6):
        return 0
    raise SyscallError(errno.EINVAL)


@syscall("sched_setaffinity", level=Level.PARTIAL, note="checked against the host CPUs, "
         "not applied")
def sys_sched_setaffinity(t: Task, pid: int, size: int, mask: int, *_: int) -> int:
    """Implements Linux syscall sched_setaffinity(2): EINVAL unless the mask names a CPU
    the sandbox may use."""
    _target(t, pid)
    want = int.from_bytes(t.mem_read(mask, min(size, 1024)), "little")
    allowed = sum(1 << c for c in caller_cpus())
    if not want & allowed:
        raise SyscallError(errno.EINVAL)
    return 0


PER_LINUX = 0


@syscall("personality", level=Level.PARTIAL, note="PER_LINUX only")
def sys_personality(t: Task, persona: int, *_: int) -> int:
    """Implements Linux syscall personality(2): query, or set PER_LINUX."""
    persona &= 0xFFFFFFFF
    if persona != 0xFFFFFFFF and persona != PER_LINUX:
        raise SyscallError(errno.EINVAL)
    return PER_LINUX
