"""wait4 and waitid: reaping zombies, and what job control reports (stops, continues).
"""

from __future__ import annotations

import errno
import os
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel import jobctl, ptrace, usage
from sentry.kernel.table import Level, syscall
from vfs.abi import O_NONBLOCK

from .sys_file import i32
from .sys_pidfd import pidfd_of

if TYPE_CHECKING:
    from sentry.kernel.task import Task


WNOHANG, WUNTRACED, WEXITED, WCONTINUED, WNOWAIT = 1, 2, 4, 8, 0x1000000
_WALL_FLAGS = 0x40000000 | 0x80000000 | 0x20000000  # __WALL, __WCLONE, __WNOTHREAD


_NOBODY = 1 << 40  # a pid no process has: what a number absent from the namespace names


def _to_root(t: Task, pid: int) -> int:
    """wait's pid argument (a pid, -pgid, 0 or -1) in the caller's pid namespace, as the
    kernel's numbers."""
    if pid == 0 or pid == -1:
        return pid
    g = t.pidns.gpid(abs(pid))
    if g is None:
        return _NOBODY
    return g if pid > 0 else -g


def _matches(t: Task, pid: int, child: int) -> bool:
    k = t.kernel
    if pid == -1:
        return True
    if pid > 0:
        return child == pid
    pgid = t.pgid if pid == 0 else -pid
    proc = k.procs.get(child)
    return proc.pgid == pgid if proc is not None else k.zombie_pgid.get(child) == pgid


def _reaped_usage(t: Task, child: Task) -> usage.Totals:
    """wait_task_zombie's accounting: the child's own CPU time and its children's go to
    the waiter's process (the rusage wait4 reports is the same sum)."""
    got = usage.Totals()
    if child.final_usage is not None:
        got.add(child.final_usage)
    got.add(child.child_usage)
    t.leader.child_usage.add(got)
    t.leader.io.add(child.io)  # so are its I/O counters (wait_task_zombie)
    return got


def rusage_bytes(u: usage.Totals) -> bytes:
    """A struct rusage (144 bytes) with CPU times and maxrss; the other fields 0."""
    tck = os.sysconf("SC_CLK_TCK")
    ut, st = u.utime * 1_000_000 // tck, u.stime * 1_000_000 // tck
    return struct.pack("<qqqq", ut // 1_000_000, ut % 1_000_000, st // 1_000_000,
                       st % 1_000_000) + struct.pack("<14q", u.maxrss_kb, *([0] * 13))


_Report = tuple[int, int, int, int, int, usage.Totals]


def _scan(t: Task, pid: int, options: int, reap: bool) -> _Report | None:
    """One look at the children matching `pid`, in pid order: an exit (with WEXITED;
    reaped unless WNOWAIT), a completed stop (WUNTRACED/WSTOPPED) or a continue
    (WCONTINUED), the last two consumed unless WNOWAIT. Returns (pid, wait status,
    si_code, si_status, the child's uid, the reaped child's usage), or None if nothing is
    to report; ECHILD without matching children."""
    k = t.kernel
    kids = [z for z, (pp, _) in k.zombies.items() if pp == t.tgid]
    kids += [c for c, p in k.procs.items() if p.ppid == t.tgid]
    kids = sorted(c for c in kids if _matches(t, pid, c))
    traced = [c for c in ptrace.waitable(t) if _matches(t, pid, c)]
    if not kids and not traced:
        raise SyscallError(errno.ECHILD)
    if traced:  # a tracee's stop or exit (ptrace_do_wait)
        traps = ptrace.wait_report(t, lambda c: _matches(t, pid, c), reap)
        if traps is not None:
            tid, status, code, value = traps
            tracee = k.tasks.get(tid)
            return tid, status, code, value, tracee.creds.uid if tracee else 0, usage.Totals()
    for c in kids:
        proc = k.procs.get(c)
        if proc is None:
            z = k.zombie_tasks.get(c)
            if not options & WEXITED or z is not None and ptrace.held(z):
                continue  # (an exit its tracer has not waited for yet)
            status = k.zombies[c][1]
            uid = k.zombie_uid.get(c, 0)
            used = usage.Totals()
            if reap:
                z = k.reap(c)
                if z is not None:  # the child's time becomes its parent's cutime
                    used = _reaped_usage(t, z)
            if status & 0x7F:  # CLD_DUMPED / CLD_KILLED
                return c, status, (3 if status & 0x80 else 2), status & 0x7F, uid, used
            return c, status, 1, (status >> 8) & 0xFF, uid, used  # CLD_EXITED
        got = jobctl.wait_report(proc, options, consume=reap)
        if got is not None:
            uid = proc.creds.uid
            return c, got[0], got[1], got[2], uid, usage.Totals()
    return None


async def _wait(t: Task, pid: int, options: int, *, reap: bool = True) -> _Report:
    """Wait for a child matching `pid` with something to report (see `_scan`); zeros for
    WNOHANG with nothing to report. A signal that cuts the sleep short gives EINTR unless
    a child has something to report by then (its exit may be what sent the SIGCHLD)."""
    k = t.kernel
    while True:
        got = _scan(t, pid, options, reap)
        if got is not None:
            return got
        if options & WNOHANG:
            return 0, 0, 0, 0, 0, usage.Totals()
        got = await t.sleep_interruptibly(k.children_changed(),
                                          lambda: _scan(t, pid, options, reap))
        if got is not None:
            return got


@syscall("wait4", level=Level.PARTIAL,
         note="rusage: the reaped child's CPU times and maxrss; other fields 0")
async def sys_wait4(t: Task, pid: int, status: int, options: int, rusage: int, *_: int) -> int:
    """Implements Linux syscall wait4(2)."""
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | _WALL_FLAGS):
        raise SyscallError(errno.EINVAL)
    pid = i32(pid)
    if pid == -(1 << 31):
        raise SyscallError(errno.ESRCH)
    got, st, _code, _value, _uid, used = await _wait(t, _to_root(t, pid), options | WEXITED)
    got = t.pidns.vpid(got)
    if got and status:
        t.mem_write(status, struct.pack("<i", st))
    if got and rusage:
        t.mem_write(rusage, rusage_bytes(used))
    return got


P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3


@syscall("waitid", level=Level.PARTIAL,
         note="rusage: the reaped child's CPU times and maxrss; other fields 0")
async def sys_waitid(t: Task, idtype: int, ident: int, infop: int, options: int,
                     rusage: int, *_: int) -> int:
    """Implements Linux syscall waitid(2): P_ALL, P_PID, P_PGID and P_PIDFD (a pidfd
    with PIDFD_NONBLOCK makes it WNOHANG, and EAGAIN when nothing is to report)."""
    if options & ~(WNOHANG | WUNTRACED | WEXITED | WCONTINUED | WNOWAIT | _WALL_FLAGS):
        raise SyscallError(errno.EINVAL)
    if not options & (WEXITED | WUNTRACED | WCONTINUED):
        raise SyscallError(errno.EINVAL)
    ident = i32(ident)
    nonblock = False
    if idtype == P_ALL:
        pid = -1
    elif idtype == P_PID:
        if ident <= 0:
            raise SyscallError(errno.EINVAL)
        pid = _to_root(t, ident)
    elif idtype == P_PGID:
        if ident < 0:
            raise SyscallError(errno.EINVAL)
        pid = _to_root(t, -ident) if ident else 0
    elif idtype == P_PIDFD:
        if ident < 0:
            raise SyscallError(errno.EINVAL)
        pidfd = pidfd_of(t, ident)
        pid = pidfd.pid
        if pidfd.flags & O_NONBLOCK and not options & WNOHANG:
            options |= WNOHANG
            nonblock = True
    else:
        raise SyscallError(errno.EINVAL)
    got, _status, code, value, uid, used = await _wait(t, pid, options,
                                                       reap=not options & WNOWAIT)
    if not got and nonblock:
        raise SyscallError(errno.EAGAIN)
    if infop:
        info = bytearray(128)
        if got:
            struct.pack_into("<iii4xiIi", info, 0, 17, 0, code, t.pidns.vpid(got), uid, value)
        t.mem_write(infop, bytes(info))
    if got and rusage:
        t.mem_write(rusage, rusage_bytes(used))
    return 0
