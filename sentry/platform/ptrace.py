"""The ptrace platform: a stub process per address space, run under PTRACE_SYSEMU.

Every ptrace call must come from the tracing thread, so all of this runs on the thread of
the trio loop. A stopped thread is announced by SIGCHLD; `SigchldWaiter` turns that into a
trio wakeup, and `PtraceStub.wait` polls waitpid for its own pid only, so children of the
Sentry process that are not stubs (a gofer, a helper) keep their exit statuses.
"""

from __future__ import annotations

import ctypes
import enum
import errno
import os
import signal
import socket
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import trio

from . import affinity, libc
from .libc import UserRegs

try:  # the C hot loop, built at install time (setup.py); ctypes otherwise
    if os.environ.get("RUNPSC_NO_CFFI"):
        raise ImportError("RUNPSC_NO_CFFI is set")
    from ._hotloop import ffi as _ffi
    from ._hotloop import lib as _hot

    if not all(hasattr(_hot, f) for f in ("hot_resume", "hot_wait", "hot_step")):
        raise ImportError("stale _hotloop build (rerun pip install -e .)")
except ImportError:  # pragma: no cover - depends on the build
    _ffi = _hot = None
from .stub import GADGET, SCRATCH, STUB_ADDR, STUB_END, seccomp_filter, stub_elf
from .zygote import STUB_SOCK_FD, Zygote, exec_stub

#: The C fast path (rax, SETREGS, SYSEMU, wait, GETREGS), or None without the extension.
hot_step = _hot.hot_step if _hot is not None else None
#: hot_step that also answers repeats of a per-task-value syscall in C (see hotloop.c),
#: or None (no extension, or one built before it existed: then every call goes to Python).
hot_run = getattr(_hot, "hot_run", None)
#: The out-parameter of hot_run (how many calls C answered); the loop's thread only.
hot_answered = _ffi.new("long[1]") if hot_run is not None else None
#: The C data path of the Sentry's host sockets (hotloop.c's sio_send, sio_recv, sio_poll)
#: and its ffi, or None without the extension (sentry/socket/hostsock.py falls back).
sockio = _hot if _hot is not None and hasattr(_hot, "sio_send") else None
sockio_ffi = _ffi if sockio is not None else None

# Syscalls the Sentry injects into a stub; the stub's seccomp filter allows exactly these.
NR_MMAP, NR_MPROTECT, NR_MUNMAP = 9, 10, 11
NR_RT_SIGRETURN, NR_MREMAP, NR_MSYNC, NR_MINCORE, NR_MADVISE = 15, 25, 26, 27, 28
NR_EXIT, NR_EXIT_GROUP = 60, 231
NR_CLOSE, NR_RECVMSG, NR_CLONE, NR_FORK = 3, 47, 56, 57
NR_FUTEX = 202  # FUTEX_WAKE_OP only: an atomic read-modify-write of an application word
_THREAD_FLAGS = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000  # VM FS FILES SIGHAND
#                                                                 THREAD SYSVSEM
INJECTED = [
    NR_CLONE,
    NR_FORK,
    NR_CLOSE,
    NR_RECVMSG,
    NR_MMAP,
    NR_MPROTECT,
    NR_MUNMAP,
    NR_MREMAP,
    NR_MADVISE,
    NR_MSYNC,
    NR_MINCORE,
    NR_RT_SIGRETURN,
    NR_EXIT,
    NR_EXIT_GROUP,
    NR_FUTEX,
]
_NR_PRCTL, _NR_SECCOMP = 157, 317
_SECCOMP_SET_MODE_FILTER = 1

_SYSCALL_STOP = signal.SIGTRAP | 0x80
SYSCALL_STOP_STATUS = (_SYSCALL_STOP << 8) | 0x7F  # waitpid status of a syscall stop
_MASK64 = (1 << 64) - 1
_OPTIONS = (
    libc.PTRACE_O_TRACESYSGOOD
    | libc.PTRACE_O_EXITKILL
    | libc.PTRACE_O_TRACEFORK
    | libc.PTRACE_O_TRACECLONE
    | libc.PTRACE_O_TRACEEXIT
)
# How long a waiter sleeps in sigtimedwait before parking on the trio loop. A syscall round
# trip is ~10 µs; parking costs a signal, a wakeup-fd write and a task switch.
BLOCK_S = 0.0005
BLOCK_NS = int(BLOCK_S * 1e9)
_SIGCHLD_SET = {signal.SIGCHLD}
PARK_POLL_S = 0.02


class StubGone(Exception):
    """The stub process died (killed from outside, or by its own seccomp filter)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"stub exited with wait status {status:#x}")
        self.status = status


class StopKind(enum.Enum):
    SYSCALL = "syscall"  # PTRACE_SYSEMU entry stop: serve the call in the Sentry
    SIGNAL = "signal"  # a real signal for the application (faults included)
    EVENT = "event"  # PTRACE_EVENT_* stop (exit, clone)
    EXITED = "exited"  # the thread is gone; status is its wait status


@dataclass(slots=True)
class Stop:
    kind: StopKind
    sig: int = 0
    status: int = 0


def classify(status: int) -> Stop:
    """Turn a waitpid status of a traced thread into a Stop."""
    if os.WIFSTOPPED(status):
        sig = os.WSTOPSIG(status)
        if sig == _SYSCALL_STOP:
            return Stop(StopKind.SYSCALL, status=status)
        if status >> 16:
            return Stop(StopKind.EVENT, sig=status >> 16, status=status)
        return Stop(StopKind.SIGNAL, sig=sig, status=status)
    return Stop(StopKind.EXITED, status=status)


#: What signal.getsignal returns and signal.signal takes.
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class _Parked:
    """Process-wide: tasks parked waiting for SIGCHLD, whatever Kernel they belong to.

    trio delivers a signal only to the most recently opened receiver, so with several
    Kernels in one process any receiver must wake every parked task; and SIGCHLD's mask is
    per thread, so the count of parked tasks must be shared too.
    """

    lot = trio.lowlevel.ParkingLot()
    count = 0
    #: SigchldWaiters serving now, and what the first of them found (SIGCHLD's handler, and
    #: whether it was blocked): the last one to stop puts both back. trio's receivers each
    #: restore the handler they replaced, which is right only when they close in reverse
    #: order; two Kernels' receivers need not, and a stale trio handler left installed
    #: with SIGCHLD blocked made later native children's `wait` hang.
    serving = 0
    saved_handler: _Handler = signal.SIG_DFL
    saved_blocked = False


class SigchldWaiter:
    """Wakes tasks waiting for a traced thread to stop; one per Kernel.

    Run `serve` in a nursery (it reports readiness with task_status.started()). While it
    serves, SIGCHLD is blocked on the loop's thread except while some task is parked
    waiting for it: every syscall stop sends one, and taking a signal plus a wakeup-fd
    write per syscall would cost more than the syscall itself. A parked task also polls
    every PARK_POLL_S, so no interleaving of receivers can lose a wakeup for good.
    """

    _watchers: trio.Nursery | None = None

    def watch(self, fd: int, on_ready: Callable[[], bool]) -> trio.CancelScope | None:
        """Call `on_ready` whenever `fd` is readable, then wake the parked tasks, until it
        returns False or the returned scope is cancelled (cancel it, and call
        trio.lowlevel.notify_closing, before closing `fd`). None when not serving.

        Another source of stops than SIGCHLD (the seccomp platform's listener)."""
        if self._watchers is None:
            return None
        scope = trio.CancelScope()

        async def watcher() -> None:
            with scope:
                while True:
                    try:
                        await trio.lowlevel.wait_readable(fd)
                    except (trio.ClosedResourceError, OSError):
                        return
                    more = on_ready()
                    _Parked.lot.unpark_all()
                    if not more:
                        return

        self._watchers.start_soon(watcher)
        return scope

    @property
    def parked(self) -> bool:
        """True while some task is parked (then SIGCHLD is unblocked and must not be
        consumed by sigtimedwait)."""
        return _Parked.count > 0

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        affinity.hold()  # the Sentry's thread on its stubs' CPU while a Kernel runs
        if _Parked.serving == 0:
            # The first waiter saves SIGCHLD's state and blocks it; from then on the mask
            # belongs to the parked-task count (waitpid), whichever Kernel parks.
            _Parked.saved_handler = signal.getsignal(signal.SIGCHLD)
            _Parked.saved_blocked = signal.SIGCHLD in signal.pthread_sigmask(
                signal.SIG_BLOCK, {signal.SIGCHLD})
            _deadline_timer(start=True)
        _Parked.serving += 1
        try:
            async with trio.open_nursery() as self._watchers:
                with trio.open_signal_receiver(signal.SIGCHLD) as signals:
                    task_status.started()
                    async for _ in signals:
                        _Parked.lot.unpark_all()
        finally:
            self._watchers = None
            affinity.release()
            _Parked.serving -= 1
            if _Parked.serving == 0:
                _deadline_timer(start=False)
                signal.signal(signal.SIGCHLD, _Parked.saved_handler)
                if not _Parked.saved_blocked:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})

    async def waitpid(self, pid: int) -> int:
        """The next wait status of `pid`.

        Fast path: sleep in sigtimedwait(SIGCHLD) for up to BLOCK_S (the thread sleeps, so
        the kernel can hand the CPU straight to the stub and back, as a blocking waitpid
        would); then park the task until the SIGCHLD receiver wakes it, so a program that
        computes for long does not hold up the other tasks.
        """
        flags = os.WNOHANG | libc.WALL
        got, status = os.waitpid(pid, flags)
        if got:
            return status
        if not _Parked.count:  # SIGCHLD is blocked, so it stays pending for sigtimedwait
            deadline = time.monotonic() + BLOCK_S
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                signal.sigtimedwait(_SIGCHLD_SET, remaining)
                got, status = os.waitpid(pid, flags)
                if got:
                    return status

        def poll() -> int | None:
            got, status = os.waitpid(pid, flags)
            return status if got else None

        return await self.park_until(poll)

    async def park_until(self, poll: Callable[[], int | None]) -> int:
        """Park the task until `poll()` returns a status (it is tried on every SIGCHLD,
        every wakeup of a `watch`, and every PARK_POLL_S); SIGCHLD is unblocked meanwhile."""
        _Parked.count += 1
        if _Parked.count == 1:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        try:
            while True:
                got = poll()
                if got is not None:
                    return got
                with trio.move_on_after(PARK_POLL_S):
                    await _Parked.lot.park()
        finally:
            _Parked.count -= 1
            if _Parked.count == 0 and _Parked.serving:
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})


#: The signal of the C wait's deadline timer (see hotloop.c), kept blocked on the
#: loop's thread while a SigchldWaiter serves; no one else in runpsc uses it.
DEADLINE_SIG = signal.SIGRTMAX - 1
_deadline = {"on": False, "was_blocked": False}


def _deadline_timer(*, start: bool) -> None:
    """Create (start=True) or delete the C wait's deadline timer on this thread.

    Without the extension, or with one built before the timer existed, the C wait keeps
    sleeping in sigtimedwait with a timeout."""
    if _hot is None or not hasattr(_hot, "hot_deadline_start"):
        return
    if start and not _deadline["on"]:
        was = DEADLINE_SIG in signal.pthread_sigmask(signal.SIG_BLOCK, {DEADLINE_SIG})
        if _hot.hot_deadline_start(DEADLINE_SIG) < 0:  # no timer: sigtimedwait it is
            if not was:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {DEADLINE_SIG})
            return
        _deadline.update(on=True, was_blocked=was)
    elif not start and _deadline["on"]:
        _hot.hot_deadline_stop()  # deleted, and a pending signal of it taken
        if not _deadline["was_blocked"]:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {DEADLINE_SIG})
        _deadline["on"] = False


_memfd_works: bool | None = None


def _spawn(image: bytes, sock: int, zygote: Zygote | None = None) -> int:
    """fork + PTRACE_TRACEME + exec the stub image; return the pid stopped at exec.

    The stub keeps exactly one host fd: `sock` as STUB_SOCK_FD. With `zygote` (a Sentry
    under its own seccomp filter, sentry/platform/zygote.py) the zygote makes the process,
    still this one's child and tracee; only from a memfd (no writable directory then)."""
    global _memfd_works
    tmpdir = None
    if _memfd_works is not False or zygote is not None:
        fd = os.memfd_create("runpsc-stub", os.MFD_CLOEXEC)
        os.write(fd, image)
        path = None
    else:
        tmpdir = tempfile.mkdtemp(prefix="runpsc-stub-")
        path = os.path.join(tmpdir, "stub")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o500)
        os.write(fd, image)
        os.close(fd)
        fd = -1
    cpus = affinity.stub_cpus()
    parent = os.getpid()
    try:
        if zygote is not None:
            pid = zygote.spawn(fd, sock, cpus)
        else:
            pid = os.fork()
            if pid == 0:  # child: only async-signal-safe work, then exec
                exec_stub(sock, fd, path, cpus, parent)
        _, status = os.waitpid(pid, libc.WALL)
    finally:
        if fd >= 0:
            os.close(fd)
        if tmpdir is not None and path is not None:
            os.unlink(path)
            os.rmdir(tmpdir)
    if os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGTRAP:
        if _memfd_works is None and path is None:
            _memfd_works = True
        return pid
    if _memfd_works is None and path is None and zygote is None:
        _memfd_works = False  # e.g. vm.memfd_noexec=2: retry from a private file
        return _spawn(image, sock)
    raise OSError(errno.ENOEXEC, f"stub failed to start: wait status {status:#x}")

def gadget_call(saved: UserRegs, nr: int, a0: int, a1: int, a2: int, a3: int, a4: int,
                a5: int) -> UserRegs:
    """Registers for host call `nr` made at the stub's gadget by a thread whose own
    registers are `saved` (its segments, flags and stack kept; the rest is the call)."""
    r = UserRegs()
    r.cs, r.ss, r.eflags = saved.cs, saved.ss, saved.eflags
    r.fs_base, r.gs_base = saved.fs_base, saved.gs_base
    r.ds, r.es, r.fs, r.gs = saved.ds, saved.es, saved.fs, saved.gs
    r.rsp = saved.rsp
    r.rip = GADGET
    r.rax = r.orig_rax = nr
    r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9 = a0, a1, a2, a3, a4, a5
    return r


class PtraceStub:
    """One application address space: a traced stub process and its (single) thread.

    The interface other platforms would implement: `start`, `wait`, `regs` /
    `load_regs`, `resume`, `read` / `write` / `write_force`, `inject`,
    `kill`.
    """

    def __init__(self, pid: int, sock: socket.socket, peer: socket.socket) -> None:
        self.pid = pid
        self._sock = sock
        # The Sentry's copy of the stub's end, to drain what an injected receive left queued
        # (see map_host_fd): the stub's own copy is fd STUB_SOCK_FD of the stub.
        self._peer = peer
        self.regs = UserRegs()
        self._regs_ptr = _ffi.cast("void *", ctypes.addressof(self.regs)) if _ffi else None
        self._mem = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)
        # True while the thread sits at a PTRACE_SYSEMU entry stop: a PTRACE_SYSCALL from
        # there yields the *exit* stop of the skipped call before anything can be injected.
        self._at_sysemu_entry = False
        self.dead_status: int | None = None
        self.pending_signals: list[int] = []

    #: The wait status of a stop at which an application syscall waits to be served.
    SYSCALL_STATUS = SYSCALL_STOP_STATUS
    #: True while the thread waits in a seccomp notification instead of at a ptrace stop
    #: (the seccomp platform, usernotif.py): its registers cannot be set.
    in_notif = False

    @classmethod
    def start(cls, *, zygote: Zygote | None = None) -> PtraceStub:
        """Start a stub (from `zygote` if given), trace it with EXITKILL, and confine it
        with its seccomp filter.

        Returns stopped, ready for `inject`; the stub's host stack is unmapped, so the
        address space holds only the stub, the vDSO and vvar.
        """
        stub, _ = cls._start(_OPTIONS, seccomp_filter(INJECTED), 0, zygote)
        return stub

    @classmethod
    def _start(cls, options: int, prog: bytes, flags: int,
               zygote: Zygote | None = None) -> tuple[PtraceStub, int]:
        """`start` with the ptrace options, the BPF program and the seccomp flags given;
        also returns what the seccomp call returned (a listener fd in the stub, if asked)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            pid = _spawn(stub_elf(), theirs.fileno(), zygote)
        except BaseException:
            ours.close()
            theirs.close()
            raise
        try:
            libc.ptrace(libc.PTRACE_SETOPTIONS, pid, 0, options)
            stub = cls(pid, ours, theirs)
        except BaseException:
            ours.close()
            theirs.close()
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, libc.WALL)
            raise
        try:
            stub.load_regs()
            stub.regs.rip = GADGET
            stub.write_force(SCRATCH + 16, prog)
            fprog = (len(prog) // 8).to_bytes(8, "little") + (SCRATCH + 16).to_bytes(8, "little")
            stub.write_force(SCRATCH, fprog)
            if stub.inject(_NR_PRCTL, libc.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                raise OSError(errno.EPERM, "stub: PR_SET_NO_NEW_PRIVS failed")
            r = stub.inject(_NR_SECCOMP, _SECCOMP_SET_MODE_FILTER, flags, SCRATCH)
            if r < 0 or (r != 0 and not flags):
                raise OSError(-r, f"stub: seccomp filter refused: {os.strerror(-r)}")
            stub.write_force(SCRATCH, bytes(16 + len(prog)))
            for start, end, name in stub.host_maps():
                if name == "[stack]":
                    stub.inject(NR_MUNMAP, start, end - start)
        except BaseException:
            stub.kill()
            raise
        return stub, r

    # registers ---------------------------------------------------------------------------

    def load_regs(self) -> UserRegs:
        """Fetch the stopped thread's registers into `self.regs`."""
        libc.get_regs(self.pid, self.regs)
        return self.regs

    # running -----------------------------------------------------------------------------

    def resume(self, sig: int = 0) -> None:
        """Store `self.regs` and run the application until its next syscall or signal."""
        if _hot is not None:
            r = _hot.hot_resume(self.pid, self._regs_ptr, libc.PTRACE_SYSEMU, sig)
            if r < 0:
                raise OSError(-r, f"resume {self.pid}: {os.strerror(-r)}")
        else:
            libc.set_regs(self.pid, self.regs)
            libc.resume(libc.PTRACE_SYSEMU, self.pid, sig)
        self._at_sysemu_entry = False

    def step(self, rax: int, waiter: SigchldWaiter) -> int:
        """The fast path of one syscall: store `rax`, resume under PTRACE_SYSEMU and wait up
        to BLOCK_S for the next stop. Returns its raw wait status (registers loaded) or -1
        if the thread is still running (then `await wait(...)`)."""
        if _hot is None:
            self.regs.rax = rax & _MASK64
            self.resume()
            return -1
        return self.settle(_hot.hot_step(self.pid, self._regs_ptr, rax & _MASK64,
                                         0 if waiter.parked else BLOCK_NS))

    def settle(self, st: int) -> int:
        """Bookkeeping for a `hot_step` result: the raw status, or -1 if still running."""
        if st >= 0:
            self._at_sysemu_entry = st == SYSCALL_STOP_STATUS
            if not os.WIFSTOPPED(st):
                self.dead_status = st
            return st
        self._at_sysemu_entry = False
        if st == _hot.HOT_NOT_YET:
            return -1
        raise OSError(-st, f"step {self.pid}: {os.strerror(-st)}")

    async def wait(self, waiter: SigchldWaiter) -> Stop:
        """Wait for the next stop of the application thread; registers are loaded."""
        loose = False
        if _hot is not None:
            timeout = 0 if waiter.parked else BLOCK_NS
            status = _hot.hot_wait(self.pid, self._regs_ptr, timeout)
            if status >= 0:  # the C loop already loaded the registers of a stopped thread
                stop = classify(status)
                if stop.kind is StopKind.SYSCALL:
                    self._at_sysemu_entry = True
                elif stop.kind is StopKind.EXITED:
                    self.dead_status = status
                return stop
            if status != _hot.HOT_NOT_YET:
                raise OSError(-status, f"wait {self.pid}: {os.strerror(-status)}")
            # computing for a while (not merely not waited for, as when others are
            # parked): it may use the caller's other CPUs until it stops (affinity.py)
            loose = timeout > 0 and affinity.loosen(self.pid)
        try:
            status = await waiter.waitpid(self.pid)
        finally:
            if loose:
                affinity.tighten(self.pid)
        stop = classify(status)
        if stop.kind is StopKind.SYSCALL:
            libc.get_regs(self.pid, self.regs)
            self._at_sysemu_entry = True
        elif stop.kind is StopKind.EXITED:
            self.dead_status = status
        else:
            libc.get_regs(self.pid, self.regs)
        return stop

    # memory ------------------------------------------------------------------------------

    def read(self, addr: int, n: int) -> bytes:
        """Read application memory (page protections apply); OSError(EFAULT) if unmapped."""
        if _hot is None or n <= 0:
            return libc.vm_read(self.pid, addr, n)
        buf = bytearray(n)
        e = _hot.mem_read(self.pid, addr, _ffi.from_buffer(buf), n)
        if e < 0:
            raise OSError(-e, f"process_vm_readv {self.pid} {addr:#x}+{n}")
        return bytes(buf)

    def write(self, addr: int, data: bytes) -> None:
        """Write application memory (page protections apply); OSError(EFAULT) otherwise."""
        if _hot is None:
            libc.vm_write(self.pid, addr, data)
            return
        n = len(data)
        if n:
            # cffi passes bytes and bytearray as `const char *` without a copy
            e = _hot.mem_write(self.pid, addr, data if isinstance(data, (bytes, bytearray))
                               else _ffi.from_buffer(data), n)
            if e < 0:
                raise OSError(-e, f"process_vm_writev {self.pid} {addr:#x}+{n}")

    def read_cstring(self, addr: int, limit: int, first: int = 256) -> bytes:
        """The NUL-terminated string at `addr`, without the NUL (strncpy_from_user): read
        in chunks that never cross a page, the first at most `first` bytes (most paths
        are short), so a string that ends just before an unreadable page is fine.
        OSError(EFAULT) for an unreadable byte before the NUL, OSError(ENAMETOOLONG)
        without a NUL in `limit` bytes."""
        out = b""
        if _hot is not None:  # a page's worth per call: execve's limit is 128 KiB
            while True:
                room = min(limit - len(out), 4096)
                buf = bytearray(room)
                n = _hot.mem_cstring(self.pid, addr, _ffi.from_buffer(buf), first, room)
                if n >= 0:
                    del buf[n:]
                    return out + buf if out else bytes(buf)
                if n != -errno.ENAMETOOLONG or len(out) + room >= limit:
                    raise OSError(-n, f"string at {addr:#x}")
                out += buf
                addr += room
                first = 4096
        while len(out) < limit:
            n = min(4096 - (addr % 4096), limit - len(out), first)
            first = 4096
            chunk = libc.vm_read(self.pid, addr, n)
            i = chunk.find(b"\0")
            if i >= 0:
                return out + chunk[:i]
            out += chunk
            addr += n
        raise OSError(errno.ENAMETOOLONG, f"string at {addr:#x}")

    def read_force(self, addr: int, n: int) -> bytes:
        """Read through /proc/PID/mem, ignoring protections (a write-only or PROT_NONE
        shared file mapping's pages, written back to the file)."""
        out = bytearray()
        while len(out) < n:
            got = os.pread(self._mem, n - len(out), addr + len(out))
            if not got:
                raise OSError(errno.EFAULT, f"read_force at {addr:#x}")
            out += got
        return bytes(out)

    def write_force(self, addr: int, data: bytes) -> None:
        """Write through /proc/PID/mem, ignoring protections (filling text at load time)."""
        view = memoryview(data)
        while view:
            n = os.pwrite(self._mem, view, addr)
            if n <= 0:
                raise OSError(errno.EFAULT, f"write_force at {addr:#x}")
            view = view[n:]
            addr += n

    def host_maps(self) -> list[tuple[int, int, str]]:
        """The host's view of the stub's mappings: (start, end, name) from /proc/PID/maps."""
        out = []
        with open(f"/proc/{self.pid}/maps") as f:
            for line in f:
                parts = line.split(maxsplit=5)
                start, end = (int(x, 16) for x in parts[0].split("-"))
                out.append((start, end, parts[5].strip() if len(parts) > 5 else ""))
        return out

    # injection ---------------------------------------------------------------------------

    def _step_to_syscall_stop(self) -> None:
        """PTRACE_SYSCALL and wait (blocking: injected calls are short) for the next syscall
        stop, remembering real signals that arrive meanwhile."""
        libc.resume(libc.PTRACE_SYSCALL, self.pid, 0)
        while True:
            _, status = os.waitpid(self.pid, libc.WALL)
            stop = classify(status)
            if stop.kind is StopKind.SYSCALL:
                return
            if stop.kind is StopKind.EXITED:
                self.dead_status = status
                raise StubGone(status)
            if stop.kind is StopKind.SIGNAL:
                self.pending_signals.append(stop.sig)
            libc.resume(libc.PTRACE_SYSCALL, self.pid, 0)

    def inject(self, nr: int, a0: int = 0, a1: int = 0, a2: int = 0, a3: int = 0,
               a4: int = 0, a5: int = 0) -> int:
        """Run host syscall `nr` in the stub with the Sentry's arguments; return raw rax.

        The application's registers (`self.regs`) are saved and restored around the call,
        so the application resumes exactly where it stopped. Ordering matters: at a SYSEMU
        entry stop the first PTRACE_SYSCALL only produces the exit stop of the skipped
        call; only after that does the gadget's `syscall` run the injected call.
        """
        if self.dead_status is not None:
            raise StubGone(self.dead_status)
        saved = self.regs.copy()
        if self._at_sysemu_entry:
            libc.set_regs(self.pid, self.regs)
            self._step_to_syscall_stop()  # exit stop of the skipped application call
            self._at_sysemu_entry = False
        r = gadget_call(saved, nr, a0, a1, a2, a3, a4, a5)
        libc.set_regs(self.pid, r)
        self._step_to_syscall_stop()  # entry stop of the injected call, at the gadget
        libc.get_regs(self.pid, r)
        if r.orig_rax != nr or r.rip != GADGET + 2:
            self.kill()
            raise StubGone(-1)
        self._step_to_syscall_stop()  # exit stop: the host ran it
        libc.get_regs(self.pid, r)
        result = r.rax
        ctypes.pointer(self.regs)[0] = saved  # same buffer: the hot loop holds its address
        libc.set_regs(self.pid, self.regs)
        return result - (1 << 64) if result >= 1 << 63 else result

    def fork(self) -> PtraceStub:
        """A copy of this address space (host fork: private memory is copy-on-write,
        shared mappings stay shared) as a new stub, stopped; its registers are loaded.

        PTRACE_O_TRACEFORK makes the host attach the child to us before it runs, and it
        inherits the seccomp filter; the application's registers are the caller's to set.
        """
        return self._attached(self.inject(NR_FORK), "fork")

    def clone_thread(self) -> PtraceStub:
        """A new host thread in this stub's process, stopped; its registers are loaded.

        PTRACE_O_TRACECLONE attaches it before it runs; the caller sets its registers.
        """
        return self._attached(self.inject(NR_CLONE, _THREAD_FLAGS, 0, 0, 0, 0), "clone")

    def _attached(self, pid: int, what: str) -> PtraceStub:
        """The stub for the thread an injected fork/clone made (-errno: the call failed),
        once its first stop (the auto-attach) has come; its registers loaded."""
        if pid < 0:
            raise OSError(-pid, f"{what} in stub {self.pid}: {os.strerror(-pid)}")
        _, status = os.waitpid(pid, libc.WALL)
        if not os.WIFSTOPPED(status):
            raise StubGone(status)
        child = self._child(pid)
        child.load_regs()
        return child

    def _child(self, pid: int) -> PtraceStub:
        """The stub object of a host thread or process this one's fork/clone made."""
        return PtraceStub(pid, self._sock.dup(), self._peer.dup())

    @staticmethod
    def classify(status: int) -> Stop:
        """This platform's reading of a wait status (`classify`)."""
        return classify(status)

    def exit_thread(self) -> None:
        """End this host thread alone (the process goes on), reaping it."""
        try:
            self.inject(NR_EXIT, 0)
        except StubGone:
            pass
        self.kill()

    def map_host_fd(self, hostfd: int, addr: int, length: int, prot: int, flags: int,
                    offset: int) -> int:
        """mmap host file `hostfd` into the stub (MAP_SHARED of a memfd, typically).

        The fd travels over the stub's socket (SCM_RIGHTS), is received by an injected
        recvmsg, mapped by an injected mmap and closed again; returns mmap's raw result.

        The scratch page holding recvmsg's msghdr and control buffer is the application's
        to write (its threads run meanwhile), so nothing is read back from it: which fd the
        stub received is learnt from the host's /proc/PID/fd, matched by inode, and
        whatever a spoiled receive left queued is drained here, never received by the
        next mapping (of this process or of a forked one sharing the socket). A program
        that writes the page can only make its own mapping fail (EIO).
        """
        self._sock.sendmsg([b"F"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                     struct.pack("<i", hostfd))])
        try:
            iov, ctrl, msg = SCRATCH + 64, SCRATCH + 128, SCRATCH
            self.write_force(iov, struct.pack("<QQ", SCRATCH + 96, 1))
            self.write_force(ctrl, bytes(32))
            self.write_force(msg, struct.pack("<QQQQQQQ", 0, 0, iov, 1, ctrl, 24, 0))
            r = self.inject(NR_RECVMSG, STUB_SOCK_FD, msg, 0x40000000)  # MSG_CMSG_CLOEXEC
        finally:
            self._drain()
        fd = self._received(os.fstat(hostfd))
        if fd < 0:
            return r if r < 0 else -errno.EIO
        try:
            return self.inject(NR_MMAP, addr, length, prot, flags, fd, offset)
        finally:
            self.inject(NR_CLOSE, fd)

    def _drain(self) -> None:
        """Take (and close) whatever is still queued for the stub: nothing, unless the
        application spoiled the injected receive."""
        while True:
            try:  # not socket.recv_fds: 3.11's ignores its flags, and would block
                _, anc, _, _ = self._peer.recvmsg(1, socket.CMSG_SPACE(32), socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            for level, typ, data in anc:
                if (level, typ) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                    for (fd,) in struct.iter_unpack("<i", data[: len(data) - len(data) % 4]):
                        os.close(fd)

    def _received(self, want: os.stat_result) -> int:
        """The stub's fd for the file `want` describes, as the host lists its fds; every
        other fd but the socket (none, unless the application spoiled a receive) is
        closed. -1 if it holds none."""
        found = -1
        for name in os.listdir(f"/proc/{self.pid}/fd"):
            fd = int(name)
            if fd == STUB_SOCK_FD:
                continue
            try:
                st = os.stat(f"/proc/{self.pid}/fd/{fd}")
            except FileNotFoundError:
                continue
            if found < 0 and (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                found = fd
            else:
                self.inject(NR_CLOSE, fd)
        return found

    # teardown ----------------------------------------------------------------------------

    def terminate(self) -> None:
        """SIGKILL the stub without reaping it: its owner's `wait` sees it exit."""
        if self.dead_status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the stub and reap it (idempotent).

        With PTRACE_O_TRACEEXIT a killed thread may first stop at PTRACE_EVENT_EXIT (this
        kernel does so when it was at a syscall stop): such stops are resumed until it is
        gone, or it would stay behind, stopped, for as long as the Sentry lives."""
        if self.dead_status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                while True:
                    _, status = os.waitpid(self.pid, libc.WALL)
                    if not os.WIFSTOPPED(status):
                        break
                    try:
                        libc.resume(libc.PTRACE_CONT, self.pid, 0)
                    except OSError:
                        pass
                self.dead_status = status
            except (ChildProcessError, ProcessLookupError):
                self.dead_status = -1
        if self._mem >= 0:
            os.close(self._mem)
            self._mem = -1
        self._sock.close()
        self._peer.close()

    @staticmethod
    def reserved() -> tuple[int, int]:
        """The range the stub itself occupies in every address space."""
        return STUB_ADDR, STUB_END
