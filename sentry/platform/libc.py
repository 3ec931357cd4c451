"""ctypes bindings for the host calls the ptrace platform needs.

Why ctypes: the os module has no ptrace, process_vm_readv/writev or seccomp; python-ptrace's
wrappers add per-call overhead on the hot path. Everything here raises OSError with the host
errno on failure.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

PTRACE_TRACEME = 0
PTRACE_PEEKUSER = 3
PTRACE_POKEUSER = 6
PTRACE_CONT = 7
PTRACE_KILL = 8
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
AUDIT_ARCH_X86_64 = 0xC000003E
PTRACE_SYSCALL = 24
PTRACE_SYSEMU = 31

PTRACE_O_TRACESYSGOOD = 0x01
PTRACE_O_TRACEFORK = 0x02
PTRACE_O_TRACECLONE = 0x08
PTRACE_O_TRACEEXIT = 0x40
PTRACE_O_TRACESECCOMP = 0x80
PTRACE_EVENT_SECCOMP = 7
PTRACE_O_EXITKILL = 0x100000

WALL = 0x40000000  # __WALL: wait for every kind of child, threads included
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38


class UserRegs(ctypes.Structure):
    """struct user_regs_struct for x86_64 (the PTRACE_GETREGS layout)."""

    _fields_ = [
        (name, ctypes.c_ulonglong)
        for name in (
            "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs "
            "eflags rsp ss fs_base gs_base ds es fs gs"
        ).split()
    ]

    def copy(self) -> UserRegs:
        """An independent copy (ctypes structures are mutable buffers)."""
        c = UserRegs()
        ctypes.pointer(c)[0] = self
        return c


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_ptrace = _libc.ptrace
_ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
_ptrace.restype = ctypes.c_long

_pvr = _libc.process_vm_readv
_pvw = _libc.process_vm_writev
for _f in (_pvr, _pvw):
    _f.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(IoVec),
        ctypes.c_ulong,
        ctypes.POINTER(IoVec),
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    _f.restype = ctypes.c_ssize_t

_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int


def _fail(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def ptrace(request: int, pid: int, addr: int = 0, data: int = 0) -> int:
    """ptrace(2) for requests whose result is 0 or an errno."""
    ctypes.set_errno(0)
    r = _ptrace(request, pid, addr, data)
    if r == -1 and ctypes.get_errno():
        raise _fail(f"ptrace({request}, {pid})")
    return r


def get_regs(pid: int, regs: UserRegs) -> None:
    """Fill `regs` with the stopped thread's registers."""
    if _ptrace(PTRACE_GETREGS, pid, None, ctypes.addressof(regs)) == -1:
        raise _fail(f"PTRACE_GETREGS {pid}")


def set_regs(pid: int, regs: UserRegs) -> None:
    """Load `regs` into the stopped thread."""
    if _ptrace(PTRACE_SETREGS, pid, None, ctypes.addressof(regs)) == -1:
        raise _fail(f"PTRACE_SETREGS {pid}")


def resume(request: int, pid: int, sig: int = 0) -> None:
    """PTRACE_SYSEMU / PTRACE_SYSCALL / PTRACE_CONT with signal `sig` delivered."""
    if _ptrace(request, pid, None, sig) == -1:
        raise _fail(f"ptrace resume {request} {pid}")


_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_NR_PIDFD_GETFD = 438


def pidfd_getfd(pidfd: int, targetfd: int) -> int:
    """A copy, in this process (close-on-exec), of fd `targetfd` of the process `pidfd`
    refers to (the caller must be allowed to ptrace it)."""
    r = _syscall(ctypes.c_long(_NR_PIDFD_GETFD), ctypes.c_long(pidfd), ctypes.c_long(targetfd),
                 ctypes.c_long(0))
    if r < 0:
        raise _fail(f"pidfd_getfd({targetfd})")
    return r


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    r = _prctl(option, a2, a3, a4, a5)
    if r == -1:
        raise _fail(f"prctl({option})")
    return r


def vm_read(pid: int, addr: int, n: int) -> bytes:
    """Read `n` bytes at `addr` in `pid`; OSError(EFAULT) if any byte is unreadable."""
    if n == 0:
        return b""
    buf = ctypes.create_string_buffer(n)
    local = IoVec(ctypes.addressof(buf), n)
    remote = IoVec(addr, n)
    got = _pvr(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if got == -1:
        raise _fail(f"process_vm_readv {pid} {addr:#x}+{n}")
    if got != n:
        raise OSError(14, f"short read at {addr + got:#x}")
    return buf.raw


def vm_write(pid: int, addr: int, data: bytes) -> None:
    """Write `data` at `addr` in `pid`, honouring page protections; EFAULT if not all fits."""
    n = len(data)
    if n == 0:
        return
    buf = ctypes.create_string_buffer(bytes(data), n)
    local = IoVec(ctypes.addressof(buf), n)
    remote = IoVec(addr, n)
    got = _pvw(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if got == -1:
        raise _fail(f"process_vm_writev {pid} {addr:#x}+{n}")
    if got != n:
        raise OSError(14, f"short write at {addr + got:#x}")
