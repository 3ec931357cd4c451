"""A Task: one application thread, as the syscall handlers see it."""

from __future__ import annotations

import errno
import struct
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from sentry.errors import SyscallError
from sentry.platform.ptrace import PtraceStub

from . import signals, usage
from .exit import TaskExit

if TYPE_CHECKING:
    from sentry.mm.address_space import MemoryManager
    from sentry.platform.libc import UserRegs
    from vfs.creds import Credentials
    from vfs.mount import FSContext

    from .fdtable import FDTable
    from .image import ProcessImage
    from .ipc import IpcNamespace
    from .jobctl import JobState
    from .kernel import Kernel
    from .pidns import PidNamespace
    from .posix_timers import ProcessTimers
    from .ptrace import Tracee
    from .sigstate import SigHand, ThreadSignals
    from .uts import Uts

T = TypeVar("T")
#: prctl options, the keys of `Task.prctl_state` (the kernel reads PDEATHSIG and SUBREAPER).
PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
PR_GET_KEEPCAPS, PR_SET_KEEPCAPS, PR_SET_NAME, PR_GET_NAME = 7, 8, 15, 16
PR_CAPBSET_READ, PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 23, 36, 37
PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 38, 39
#: Yama's: the process (its leader's state) names the one process allowed to attach to it
#: (with its descendants), or any (`PTRACER_ANY`)
PR_SET_PTRACER, PTRACER_ANY = 0x59616D61, -1
#: personality(2) bits the Sentry honours, and the one execve of a 64-bit program clears
PER_LINUX32, UNAME26, ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC = 0x8, 0x20000, 0x40000, 0x400000
MMAP_PAGE_ZERO, ADDR_COMPAT_LAYOUT = 0x100000, 0x200000
#: What an execve whose set-id bits apply clears from the personality (personality.h).
PER_CLEAR_ON_SETID = READ_IMPLIES_EXEC | ADDR_NO_RANDOMIZE | ADDR_COMPAT_LAYOUT | MMAP_PAGE_ZERO
_MAX_RW = 0x7FFFF000  # Linux's MAX_RW_COUNT
UIO_MAXIOV = 1024
_CHECK_ABOVE = 1 << 20  # reads larger than this are checked against the mapping list first
__all__ = ["Task", "TaskExit"]


#: What `Task.read_cstring` reads first: paths and names are short.
_CSTRING_FIRST = 256


class Task:
    """An application thread: sandbox ids, memory access, files, credentials.

    Attributes the handlers use: `tid`, `tgid`, `ppid`, `kernel`, `mm`, `fdtable`, `fs`
    (None only when programs come from the host: `Kernel(exec_source=HostFiles())`),
    `creds`, `regs` (the registers at the current syscall stop). Threads of one process
    share `mm`, `fdtable` and `fs`; `leader` is the thread-group leader, which holds the
    process-wide state (`ppid`, `pgid`, `sid`, `killed_by` forward to it).
    """

    def __init__(self, kernel: Kernel, stub: PtraceStub, mm: MemoryManager, *, tid: int,
                 tgid: int, ppid: int, fdtable: FDTable, fs: FSContext | None,
                 creds: Credentials) -> None:
        self.kernel = kernel
        self.stub = stub
        self.mm = mm
        self.tid = tid
        self.tgid = tgid
        # Process-wide state is kept on the thread-group leader; properties forward to it.
        self.leader: Task = self
        self.threads: set[Task] = {self}  # live threads (meaningful on the leader)
        self.stubs: list[PtraceStub] = [stub]  # every host thread ever (on the leader)
        self.exit_status: int | None = None  # the process's wait status once it ends
        self.scope: trio.CancelScope | None = None  # cancels this thread's service
        self.exec_replaced = False  # ended by another thread's execve, not an exit
        self.sem_undo_key = kernel.sem_undo_new()  # its SEM_UNDO list (Kernel.sem_undo_users)
        self.thread_exit = False  # ended by exit(2) rather than exit_group(2)
        self._ppid = ppid
        self.fdtable = fdtable
        self.fs = fs
        self.creds = creds
        self.comm = b""
        self.image: ProcessImage | None = None  # what execve loaded (for /proc)
        self.clear_child_tid = 0
        self.robust_list = 0
        self.rlimits: dict[int, tuple[int, int]] = {}
        self.prctl_state: dict[int, int] = {}
        self.cpu_affinity: frozenset[int] | None = None  # sched_setaffinity's (None: all)
        self._killed_by = 0  # a signal whose default action ends this process
        self.vfork_done = trio.Event()
        self.ended = trio.Event()  # set when the process (not just this thread) is gone
        self._sleeps: set[trio.CancelScope] = set()
        #: The dispatcher's cancel scope for interruptible syscalls (`call_interruptibly`):
        #: entered once when the task's service starts and replaced only after a signal
        #: cancelled it, so an ordinary call pays no scope of its own.
        self._call_scope: trio.CancelScope | None = None
        self._pgid = tgid
        self._sid = tgid
        self.start_time = time.monotonic()  # /proc/PID/stat's starttime
        self.oom_score_adj = 0  # /proc/PID/oom_score_adj (the leader's is the process's)
        # CPU time and peak RSS: the process's own once it ended, its reaped children's
        # (times' tms_cutime, getrusage(RUSAGE_CHILDREN), /proc/PID/stat's cutime).
        self.final_usage: usage.Totals | None = None
        self.child_usage = usage.Totals()
        self.io = usage.IoCounters()  # /proc/PID/io (the leader's: the whole process's)
        # scheduling policy, real-time priority, SCHED_RESET_ON_FORK, and the I/O priority
        # (recorded and reported; the host schedules every stub as SCHED_OTHER)
        self.sched_policy = 0
        self.sched_priority = 0
        self.sched_reset_on_fork = False
        self.ioprio = 0
        self.mempolicy = (0, 0)  # set_mempolicy's mode (with its flags) and node mask
        self.membarrier = 0  # membarrier registrations (the leader's are the process's)
        self.aio_contexts: dict[int, Any] = {}  # io_setup's contexts (the leader's), by id
        self.uts: Uts | None = None  # a UTS namespace of its own (None: the kernel's)
        self.ipc: IpcNamespace | None = None  # an IPC namespace of its own (None: the kernel's)
        self.ptrace: Tracee | None = None  # this thread's tracer and stop (kernel/ptrace.py)
        #: the debug registers a tracer set (u_debugreg: DR0-3; in DR4's place the mask of
        #: slots holding a breakpoint, as Linux's ptrace_bps; -; DR6 in positive polarity
        #: as Linux's virtual_dr6; DR7); kept, not loaded (`sys_ptrace`)
        self.debugregs: list[int] = [0] * 8
        self.personality = 0  # personality(2)'s persona (any value; see sys_prctl)
        #: The pid namespace this task's pid lives in, and the one its new children get
        #: after unshare(CLONE_NEWPID) (None: its own); see `pidns`.
        self.pidns: PidNamespace = kernel.pidns
        self.pidns_for_children: PidNamespace | None = None

    # Signal and job-control state, created on first use (sigstate.ts/hand, jobctl.job):
    # a Task that never meets a signal costs nothing. Only declared here.
    _sig: ThreadSignals
    _sighand: SigHand
    _job: JobState
    _posix_timers: ProcessTimers  # the leader's: posix_timers.timers_of

    @property
    def ppid(self) -> int:
        return self.leader._ppid

    @ppid.setter
    def ppid(self, v: int) -> None:
        self.leader._ppid = v

    @property
    def pgid(self) -> int:
        return self.leader._pgid

    @pgid.setter
    def pgid(self, v: int) -> None:
        self.leader._pgid = v

    @property
    def sid(self) -> int:
        return self.leader._sid

    @sid.setter
    def sid(self, v: int) -> None:
        self.leader._sid = v

    @property
    def killed_by(self) -> int:
        """The signal ending this thread's process (0 while it lives on)."""
        return self.leader._killed_by

    @killed_by.setter
    def killed_by(self, v: int) -> None:
        self.leader._killed_by = v

    @property
    def regs(self) -> UserRegs:
        return self.stub.regs

    async def sleep_interruptibly(self, aw: Awaitable[T],
                                  ready: Callable[[], T | None] | None = None) -> T:
        """Await `aw` (a blocking wait of a syscall) unless a signal ends the process
        first; then raise SyscallError(EINTR) (the dispatcher sees `killed_by`).

        `ready`, if given, is asked once after a signal cut the sleep short: a result it
        returns completes the call instead of EINTR, as Linux's wait loops look for their
        event before they look for a signal (the event may be what sent the signal)."""
        with trio.CancelScope() as scope:
            self._sleeps.add(scope)
            try:
                if self.killed_by or signals.should_interrupt(self):
                    scope.cancel()
                return await aw
            finally:
                self._sleeps.discard(scope)
        if ready is not None and not self.killed_by:
            got = ready()
            if got is not None:
                return got
        raise SyscallError(errno.EINTR)

    def open_call_scope(self) -> None:
        """Enter a fresh `_call_scope` (at the service's start, and after a cancelled one
        was left); `close_call_scope` leaves it. Both run in the task's own trio task,
        with no scope of a handler open inside it."""
        self._call_scope = trio.CancelScope()
        self._call_scope.__enter__()

    def close_call_scope(self) -> None:
        scope, self._call_scope = self._call_scope, None
        if scope is not None:
            scope.__exit__(None, None, None)

    async def call_interruptibly(self, aw: Awaitable[T]) -> T:
        """The dispatcher's `sleep_interruptibly`: the same outcome (the result, or
        SyscallError(EINTR) when a signal cut the call short), without entering a cancel
        scope per call. A trio.CancelScope costs ~11 µs to enter and leave on this
        machine, a third of a small syscall's Python work, and most interruptible calls
        (a read of data already there, a write with room) never sleep at all; so one scope
        is kept open across calls, put in `_sleeps` for the call's duration only, and left
        (and a new one entered) only once cancelled, before anything could checkpoint in
        it again."""
        scope = self._call_scope
        if scope is None:  # not under the dispatcher (or its scope is gone): the plain way
            return await self.sleep_interruptibly(aw)
        self._sleeps.add(scope)
        try:
            # (should_interrupt's own first test inlined: this runs on every read and open)
            if self.leader._killed_by or self.kernel.signals_queued \
                    and signals.should_interrupt(self):
                scope.cancel()
            return await aw
        except BaseException as e:
            if not scope.cancel_called:
                raise
            # What the scope's own exit would do: take its Cancelled, let the rest go on.
            if isinstance(e, BaseExceptionGroup):
                rest = e.split(trio.Cancelled)[1]
                if rest is not None:
                    raise rest from None
            elif not isinstance(e, trio.Cancelled):
                raise
        finally:
            self._sleeps.discard(scope)
            if scope.cancel_called:
                self.close_call_scope()
                self.open_call_scope()
                # A cancelled outer scope (the process ends) still ends the call: its
                # Cancelled would have passed ours, as it does at this checkpoint.
                await trio.lowlevel.checkpoint_if_cancelled()
        raise SyscallError(errno.EINTR)

    def interrupt(self) -> None:
        """Cut short the syscall this task sleeps in (a signal arrived)."""
        for scope in self._sleeps:
            scope.cancel()

    # memory --------------------------------------------------------------------------------

    def mem_read(self, addr: int, n: int) -> bytes:
        """Read `n` bytes of application memory; SyscallError(EFAULT) if any is unmapped."""
        if n < 0 or addr < 0 or addr + n > 1 << 47:
            raise SyscallError(errno.EFAULT)
        if n > _MAX_RW:
            n = _MAX_RW
        if n > _CHECK_ABOVE and not self.mm.is_mapped(addr, n):
            raise SyscallError(errno.EFAULT)  # before allocating a buffer that large
        try:
            return self.stub.read(addr, n)
        except OSError:
            raise SyscallError(errno.EFAULT) from None
        except MemoryError:
            raise SyscallError(errno.ENOMEM) from None

    def mem_write(self, addr: int, data: bytes) -> None:
        """Write application memory (page protections apply); SyscallError(EFAULT)."""
        if addr < 0 or addr + len(data) > 1 << 47:
            raise SyscallError(errno.EFAULT)
        try:
            self.stub.write(addr, data)
        except OSError:
            raise SyscallError(errno.EFAULT) from None

    def copyable(self, addr: int, n: int, *, to_app: bool) -> int:
        """How much of a copy of `n` bytes to (`to_app`) or from application memory at
        `addr` Linux completes before it faults: the bytes in consecutive mappings that
        allow it (`n` if all do). A read or write moves that much and returns the short
        count (see `FileDescription.read_upto`)."""
        if n <= 0 or addr < 0:
            return n
        return self.mm.accessible(addr, n, 2 if to_app else 1)  # PROT_WRITE / PROT_READ

    def read_cstring(self, addr: int, limit: int = 4096) -> bytes:
        """The NUL-terminated string at `addr` (without the NUL): EFAULT for a bad
        address, ENAMETOOLONG if no NUL within `limit` bytes (`PtraceStub.read_cstring`)."""
        try:
            return self.stub.read_cstring(addr, limit, _CSTRING_FIRST)
        except OSError as e:
            raise SyscallError(errno.ENAMETOOLONG if e.errno == errno.ENAMETOOLONG
                               else errno.EFAULT) from None

    def read_iovecs(self, addr: int, count: int) -> list[tuple[int, int]]:
        """The (base, len) pairs of an iovec array; EINVAL for count > 1024 or a negative
        total length, EFAULT for a bad array."""
        if count < 0 or count > UIO_MAXIOV:
            raise SyscallError(errno.EINVAL)
        if count == 0:
            return []
        raw = self.mem_read(addr, 16 * count)
        vecs = list(struct.iter_unpack("<QQ", raw))
        total = 0
        for _, ln in vecs:
            if ln >= 1 << 63:
                raise SyscallError(errno.EINVAL)
            total += ln
            if total >= 1 << 63:
                raise SyscallError(errno.EINVAL)
        return vecs

    def read_pointers(self, addr: int, limit: int = 1 << 16) -> list[int]:
        """A NULL-terminated array of pointers (argv/envp); E2BIG past `limit` entries."""
        out: list[int] = []
        while True:
            (p,) = struct.unpack("<Q", self.mem_read(addr + 8 * len(out), 8))
            if not p:
                return out
            out.append(p)
            if len(out) > limit:
                raise SyscallError(errno.E2BIG)
