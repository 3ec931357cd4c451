"""ptrace(2) between processes of the sandbox, over `sentry.kernel.ptrace`.

A tracee's registers are the Sentry's copy (the task is held at a Sentry-side stop);
memory is read and written through its stub ignoring page protections, as Linux's
FOLL_FORCE (breakpoints in text). Attaching follows ptrace's access rule with Yama's scope
1 (`sys_procvm.ptrace_may_access`): a descendant, or CAP_SYS_PTRACE. The FPU state
(GETFPREGS, NT_PRFPREG, NT_X86_XSTATE) is the host thread's, read and written at its host
stop. PTRACE_SYSEMU(_SINGLESTEP) stops at syscall entry and skips the call. The debug
registers are kept per thread and checked as Linux does, but not loaded into the host
thread: enabling a hardware breakpoint in DR7 is ENOSPC (no free debug register). No
seccomp filter exists inside the sandbox, so SECCOMP_GET_FILTER/METADATA are EINVAL.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel import ptrace, signals, sigstate
from sentry.kernel.pidns import task_of
from sentry.kernel.ptrace import (
    O_MASK,
    RUN_CONT,
    RUN_SYSCALL,
    RUN_SYSEMU,
    STOP_EVENT,
    STOP_GROUP,
    Tracee,
)
from sentry.kernel.table import Level, syscall
from sentry.platform import libc
from vfs.creds import CAP_SYS_PTRACE

from .sys_file import i32
from .sys_procvm import ptrace_may_access

if TYPE_CHECKING:
    from sentry.kernel.task import Task

TRACEME, PEEKTEXT, PEEKDATA, PEEKUSER, POKETEXT, POKEDATA, POKEUSER = 0, 1, 2, 3, 4, 5, 6
CONT, KILL, SINGLESTEP, GETREGS, SETREGS, GETFPREGS, SETFPREGS = 7, 8, 9, 12, 13, 14, 15
ATTACH, DETACH, SYSCALL, ARCH_PRCTL, SYSEMU, SYSEMU_SINGLESTEP = 16, 17, 24, 30, 31, 32
SETOPTIONS, GETEVENTMSG, GETSIGINFO, SETSIGINFO = 0x4200, 0x4201, 0x4202, 0x4203
GETREGSET, SETREGSET, SEIZE, INTERRUPT, LISTEN = 0x4204, 0x4205, 0x4206, 0x4207, 0x4208
PEEKSIGINFO, GETSIGMASK, SETSIGMASK, GET_SYSCALL_INFO = 0x4209, 0x420A, 0x420B, 0x420E
SECCOMP_GET_FILTER, SECCOMP_GET_METADATA = 0x420C, 0x420D
PEEKSIGINFO_SHARED = 1
NT_PRSTATUS, NT_PRFPREG, NT_X86_XSTATE = 1, 2, 0x202
_MASK64 = (1 << 64) - 1
_NREGS = 27
_REGS_SIZE = 8 * _NREGS  # struct user_regs_struct
_DEBUGREG = 848  # offsetof(struct user, u_debugreg)
_DR6_RESERVED = 0xFFFF0FF0  # DR6's bits read as 1: Linux keeps DR6 flipped (virtual_dr6)
_DR7_ENABLE = 0xFF  # L0-3/G0-3
_TASK_SIZE_MAX = (1 << 47) - 4096  # a breakpoint's last byte must lie below it
_USER_SIZE = 928  # sizeof(struct user)
#: putreg's segment selectors: the tracer may not change them (Linux allows only valid
#: user selectors; these are the only ones a 64-bit program has)
_SEGMENTS = {17: "cs", 20: "ss", 23: "ds", 24: "es", 25: "fs", 26: "gs"}
_FLAG_MASK = 0x50DD5  # the eflags bits a tracer may change (Linux's FLAG_MASK)
_TASK_SIZE = 1 << 47


def _target(t: Task, pid: int) -> Task:
    target = task_of(t, i32(pid))  # `pid` as the caller's pid namespace numbers it
    if target is None:
        raise SyscallError(errno.ESRCH)
    return target


def _tracee(t: Task, pid: int, *, stopped: bool = True) -> tuple[Task, Tracee]:
    """ptrace_check_attach: `pid` is traced by the caller's process and (unless not
    `stopped`) in a ptrace stop; ESRCH otherwise."""
    target = _target(t, pid)
    tr = target.ptrace
    if tr is None or tr.tracer.tgid != t.tgid:
        raise SyscallError(errno.ESRCH)
    if stopped and (tr.stop_kind is None or tr.listening):
        raise SyscallError(errno.ESRCH)
    return target, tr


def _signal_arg(data: int) -> int:
    if data > 64:
        raise SyscallError(errno.EIO)
    return data


def _attach(t: Task, pid: int, *, seized: bool, options: int) -> int:
    target = _target(t, pid)
    if target.tgid == t.tgid or target.ptrace is not None:
        raise SyscallError(errno.EPERM)
    if target.leader.exit_status is not None or target.killed_by:
        raise SyscallError(errno.EPERM)
    if not ptrace_may_access(t, target, attach=True):
        raise SyscallError(errno.EPERM)
    ptrace.attach(t, target, seized=seized, options=options,
                  capable=t.creds.has_cap(CAP_SYS_PTRACE))
    if not seized:  # PTRACE_ATTACH stops the tracee with SIGSTOP
        signals.send(None, target, 19, sigstate.siginfo(19, sigstate.SI_USER, t.tgid,
                                                        t.creds.uid), thread=True)
    return 0


def _regs_bytes(target: Task) -> bytes:
    return bytes(target.stub.regs)


def _set_reg(target: Task, index: int, value: int) -> None:
    """putreg: one register of user_regs_struct, checked as Linux does."""
    regs = target.stub.regs
    name = libc.UserRegs._fields_[index][0]
    value &= _MASK64
    if index in _SEGMENTS:
        if value != getattr(regs, name):
            raise SyscallError(errno.EIO)
        return
    if name in ("fs_base", "gs_base") and value >= _TASK_SIZE:
        raise SyscallError(errno.EIO)
    if name == "eflags":
        value = (regs.eflags & ~_FLAG_MASK) | (value & _FLAG_MASK)
    setattr(regs, name, value)


def _set_regs(target: Task, raw: bytes) -> None:
    values = struct.unpack("<27Q", raw)
    regs = target.stub.regs
    saved = regs.copy()
    try:
        for i, v in enumerate(values):
            _set_reg(target, i, v)
    except SyscallError:
        ctypes.pointer(regs)[0] = saved
        raise


def _host_regset(target: Task, note: int, data: bytes | None, size: int) -> bytes:
    """The host thread's FPU state (`note`) read, or written from `data`; EIO when its
    host thread is not at a host stop (a notified call on the seccomp platform)."""
    buf = ctypes.create_string_buffer(data if data is not None else b"", max(size, 1))
    iov = (ctypes.c_uint64 * 2)(ctypes.addressof(buf), size)
    try:
        if note == NT_PRFPREG and data is None:
            libc.ptrace(GETFPREGS, target.stub.pid, 0, ctypes.addressof(buf))
            return buf.raw[:512]
        if note == NT_PRFPREG:
            libc.ptrace(SETFPREGS, target.stub.pid, 0, ctypes.addressof(buf))
            return b""
        libc.ptrace(GETREGSET if data is None else SETREGSET, target.stub.pid, note,
                    ctypes.addressof(iov))
    except OSError:
        raise SyscallError(errno.EIO) from None
    return buf.raw[:iov[1]] if data is None else b""


def _get_debugreg(target: Task, n: int) -> int:
    """ptrace_get_debugreg: DR0-3 and DR7 as set, DR6 flipped back (reserved bits 1)."""
    value = target.debugregs[n]
    return value ^ _DR6_RESERVED if n == 6 else value


def _set_debugreg(target: Task, n: int, value: int) -> None:
    """ptrace_set_debugreg as Linux checks it: no DR4/DR5 (EIO); DR0-3 an address a user
    breakpoint may watch with its slot's length (EINVAL); DR7 the length and type of each
    slot enabled or holding a breakpoint (a DR0-3 written: Linux's ptrace_bps; EINVAL for
    an I/O type, an execute breakpoint longer than a byte, an address not aligned to its
    length). Not honoured: an enabled breakpoint is refused with ENOSPC, as Linux answers
    when no debug register is free (the Sentry does not load the host thread's)."""
    regs = target.debugregs
    if n in (4, 5):
        raise SyscallError(errno.EIO)
    if n < 4:
        has_bp = regs[4] & 1 << n
        _check_breakpoint(value, *(_dr7_slot(regs[7], n) if has_bp else (1, 1)))
        regs[4] |= 1 << n
    elif n == 7:
        for i in range(4):
            if value & 3 << 2 * i or regs[4] & 1 << i:
                _check_breakpoint(regs[i], *_dr7_slot(value, i))
        if value & _DR7_ENABLE:
            raise SyscallError(errno.ENOSPC)
    regs[n] = value ^ _DR6_RESERVED if n == 6 else value


def _check_breakpoint(addr: int, length: int, kind: int) -> None:
    """hw_breakpoint_parse's EINVAL: a kind and length x86 has, an aligned user address."""
    if kind == 2 or kind == 0 and length != 1 or addr & (length - 1) \
            or addr + length - 1 >= _TASK_SIZE_MAX:
        raise SyscallError(errno.EINVAL)


def _dr7_slot(dr7: int, i: int) -> tuple[int, int]:
    """DR7's length in bytes and R/W type (0 execute, 1 write, 2 I/O, 3 read/write) of
    slot `i`."""
    bits = dr7 >> (16 + 4 * i)
    return {0: 1, 1: 2, 3: 4, 2: 8}[(bits >> 2) & 3], bits & 3


def _peek_siginfo(t: Task, target: Task, addr: int, data: int) -> int:
    """ptrace_peek_siginfo: copies of the siginfos queued to the thread (or, with
    PEEKSIGINFO_SHARED, its process) from index `off`, at most `nr`, none dequeued. The
    queue is in arrival order for each signal number, the numbers in the order their
    first pending instance came (Linux: one list in arrival order)."""
    off, flags, nr = struct.unpack("<QIi", t.mem_read(addr, 16))
    if flags & ~PEEKSIGINFO_SHARED or nr < 0:
        raise SyscallError(errno.EINVAL)
    pend = sigstate.hand(target).pending if flags & PEEKSIGINFO_SHARED \
        else sigstate.ts(target).pending
    queue = [info for infos in pend.values() for info in infos]
    copied = 0
    for info in queue[off:off + nr]:
        try:
            t.mem_write(data + 128 * copied, info[:128].ljust(128, b"\0"))
        except SyscallError:
            if copied:
                break
            raise
        copied += 1
    return copied


def _resume(target: Task, tr: Tracee, request: int, data: int) -> int:
    sig = _signal_arg(data)
    tr.run = RUN_SYSCALL if request == SYSCALL else \
        RUN_SYSEMU if request in (SYSEMU, SYSEMU_SINGLESTEP) else RUN_CONT
    if request in (SINGLESTEP, SYSEMU_SINGLESTEP):
        tr.singlestep = True
        target.stub.regs.eflags |= 0x100  # the trap flag: SIGTRAP after one instruction
    tr.resume(sig)
    return 0


@syscall("ptrace", level=Level.PARTIAL,
         note="tracer and tracee both in the sandbox; debug registers kept but no hardware "
              "breakpoint enabled (DR7 enable bits ENOSPC); no seccomp filters to dump "
              "(EINVAL)")
def sys_ptrace(t: Task, request: int, pid: int, addr: int, data: int, *_: int) -> int:
    """Implements Linux syscall ptrace(2)."""
    request &= 0xFFFFFFFF
    if request == TRACEME:
        parent = t.kernel.procs.get(t.ppid)
        if t.ptrace is not None or parent is None:
            raise SyscallError(errno.EPERM)
        ptrace.attach(parent, t, seized=False, capable=t.creds.has_cap(CAP_SYS_PTRACE))
        return 0
    if request == ATTACH:
        return _attach(t, pid, seized=False, options=0)
    if request == SEIZE:
        if addr or data & ~O_MASK:
            raise SyscallError(errno.EIO if addr else errno.EINVAL)
        return _attach(t, pid, seized=True, options=data)
    if request == KILL:
        target, tr = _tracee(t, pid, stopped=False)
        signals.send(None, target, 9, sigstate.siginfo(9, sigstate.SI_USER))
        return 0
    if request == INTERRUPT:
        target, tr = _tracee(t, pid, stopped=False)
        if not tr.seized:
            raise SyscallError(errno.EIO)
        if tr.stop_kind is None and not tr.trap:
            tr.trap = True
            if target._sleeps:  # cut its call short (restarted after the stop)
                sigstate.ts(target).interrupted = True
                target.interrupt()
            else:
                sigstate.kick(target)
        return 0
    target, tr = _tracee(t, pid)
    regs = target.stub.regs
    if request in (PEEKTEXT, PEEKDATA):
        if not (target.mm.is_mapped(addr, 8) or target.mm.host_area(addr)):
            raise SyscallError(errno.EIO)  # nothing of the stub's own beyond vdso/vvar
        try:
            word = target.stub.read_force(addr, 8)
        except OSError:
            raise SyscallError(errno.EIO) from None
        t.mem_write(data, word)
        return 0
    if request in (POKETEXT, POKEDATA):
        if not target.mm.is_mapped(addr, 8):
            raise SyscallError(errno.EIO)
        try:
            target.stub.write_force(addr, struct.pack("<Q", data & _MASK64))
        except OSError:
            raise SyscallError(errno.EIO) from None
        return 0
    if request == PEEKUSER:
        if addr & 7 or addr >= _USER_SIZE:
            raise SyscallError(errno.EIO)
        value = 0
        if addr < _REGS_SIZE:
            value = struct.unpack_from("<Q", _regs_bytes(target), addr)[0]
        elif _DEBUGREG <= addr < _DEBUGREG + 64:
            value = _get_debugreg(target, (addr - _DEBUGREG) // 8)
        t.mem_write(data, struct.pack("<Q", value))
        return 0
    if request == POKEUSER:
        if addr & 7 or addr >= _USER_SIZE:
            raise SyscallError(errno.EIO)
        if addr < _REGS_SIZE:
            _set_reg(target, addr // 8, data)
        elif _DEBUGREG <= addr < _DEBUGREG + 64:
            _set_debugreg(target, (addr - _DEBUGREG) // 8, data & _MASK64)
        else:
            raise SyscallError(errno.EIO)
        return 0
    if request == PEEKSIGINFO:
        return _peek_siginfo(t, target, addr, data)
    if request in (SECCOMP_GET_FILTER, SECCOMP_GET_METADATA):
        raise SyscallError(errno.EINVAL)  # no seccomp filters: as a kernel without them
    if request in (CONT, SYSCALL, SINGLESTEP, SYSEMU, SYSEMU_SINGLESTEP):
        return _resume(target, tr, request, data)
    if request == DETACH:
        ptrace.detach(target, _signal_arg(data))
        return 0
    if request == LISTEN:
        if not tr.seized or tr.stop_kind not in (STOP_GROUP, STOP_EVENT) or \
                tr.status >> 16 != ptrace.PTRACE_EVENT_STOP:
            raise SyscallError(errno.EIO)
        tr.listening = True
        return 0
    if request == GETREGS:
        t.mem_write(data, _regs_bytes(target))
        return 0
    if request == SETREGS:
        _set_regs(target, t.mem_read(data, _REGS_SIZE))
        return 0
    if request == GETFPREGS:
        t.mem_write(data, _host_regset(target, NT_PRFPREG, None, 512))
        return 0
    if request == SETFPREGS:
        _host_regset(target, NT_PRFPREG, t.mem_read(data, 512), 512)
        return 0
    if request in (GETREGSET, SETREGSET):
        base, length = struct.unpack("<QQ", t.mem_read(data, 16))
        if addr == NT_PRSTATUS:
            n = min(length, _REGS_SIZE)
            if request == GETREGSET:
                t.mem_write(base, _regs_bytes(target)[:n])
            else:
                if n < _REGS_SIZE:
                    raise SyscallError(errno.EINVAL)
                _set_regs(target, t.mem_read(base, _REGS_SIZE))
        elif addr in (NT_PRFPREG, NT_X86_XSTATE):
            length = min(length, 1 << 16)
            if request == GETREGSET:
                raw = _host_regset(target, addr, None, length)
                n = len(raw)
                t.mem_write(base, raw)
            else:
                n = length
                _host_regset(target, addr, t.mem_read(base, length), length)
        else:
            raise SyscallError(errno.EINVAL)
        t.mem_write(data + 8, struct.pack("<Q", n))
        return 0
    if request == SETOPTIONS:
        if data & ~O_MASK:
            raise SyscallError(errno.EINVAL)
        tr.options = data
        return 0
    if request == GETEVENTMSG:
        t.mem_write(data, struct.pack("<Q", tr.event_msg & _MASK64))
        return 0
    if request == GETSIGINFO:
        if not tr.siginfo:
            raise SyscallError(errno.EINVAL)
        t.mem_write(data, tr.siginfo[:128].ljust(128, b"\0"))
        return 0
    if request == SETSIGINFO:
        if not tr.siginfo:
            raise SyscallError(errno.EINVAL)
        tr.siginfo = t.mem_read(data, 128)
        return 0
    if request in (GETSIGMASK, SETSIGMASK):
        if addr != 8:
            raise SyscallError(errno.EINVAL)
        s = sigstate.ts(target)
        if request == GETSIGMASK:
            t.mem_write(data, struct.pack("<Q", s.mask))
        else:
            s.mask = struct.unpack("<Q", t.mem_read(data, 8))[0] & ~sigstate.UNBLOCKABLE
        return 0
    if request == GET_SYSCALL_INFO:
        info = ptrace.syscall_info(target, tr)
        if addr:
            t.mem_write(data, info[:addr])
        return len(info)
    if request == ARCH_PRCTL:
        if data not in (0x1003, 0x1004):  # ARCH_GET_FS, ARCH_GET_GS
            raise SyscallError(errno.EINVAL)
        t.mem_write(addr, struct.pack("<Q", regs.fs_base if data == 0x1003 else regs.gs_base))
        return 0
    raise SyscallError(errno.EIO)
