"""The seccomp platform: application syscalls as seccomp user notifications, no ptrace stop each.

The stub runs under PTRACE_CONT with its own filter (`stub.notif_filter`): a call whose
whole effect is a return value plus memory the Sentry reads and writes (the Kernel chooses
the set: `sentry/kernel/platforms.py`) becomes a user notification on the filter's listener
fd, which the Sentry holds (taken with pidfd_getfd); every other call is a
PTRACE_EVENT_SECCOMP stop, served as a PTRACE_SYSEMU stop is on the ptrace platform and
skipped on resume (orig_rax = -1, rax = the result). So everything that changes registers
or the thread (signal delivery, execve, clone, sigreturn, arch_prctl) keeps the ptrace
code. A notified call is answered with SECCOMP_IOCTL_NOTIF_SEND, never with
SECCOMP_USER_NOTIF_FLAG_CONTINUE: no application call runs on the host.

The filter is installed with SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: once the Sentry has
received a notification only a fatal signal interrupts the wait, so a signal the Sentry
queues (its KICK) before answering stops the thread exactly at the call's return, where
the ptrace platform's signal delivery runs. A thread kicked while its notification is not
yet received leaves it with -ERESTARTSYS; the Sentry never saw that call, so its registers
are rewound to the `syscall` instruction (`_rewind`), and it is made again after the
signal is handled.

Forks and threads of a stub inherit its filter, so one `Listener` serves every host
thread descended from one `start`; a notification names its host tid, and one received
for another thread than the one being waited for goes to that thread's mailbox.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import itertools
import os
import socket
import struct
from collections.abc import Iterable

import trio

from . import affinity, libc
from .libc import UserRegs
from .ptrace import (
    _OPTIONS,
    BLOCK_NS,
    NR_CLOSE,
    NR_FUTEX,
    NR_MADVISE,
    NR_MINCORE,
    NR_MMAP,
    NR_MPROTECT,
    NR_MREMAP,
    NR_MSYNC,
    NR_MUNMAP,
    PtraceStub,
    SigchldWaiter,
    Stop,
    StopKind,
    StubGone,
    _ffi,
    _hot,
    _Parked,
    classify,
    gadget_call,
)
from .stub import GADGET_RETURN, notif_filter
from .zygote import Zygote

_MASK64 = (1 << 64) - 1
_NEW_LISTENER = 1 << 3
_WAIT_KILLABLE_RECV = 1 << 5
#: The wait status of a PTRACE_EVENT_SECCOMP stop: an application call to serve. A
#: notified call is reported with the same status (its registers filled from the
#: notification: number, arguments, rip).
SECCOMP_STOP_STATUS = ((libc.PTRACE_EVENT_SECCOMP << 8 | 5) << 8) | 0x7F  # SIGTRAP
_NOTIF_SIZE = 80  # struct seccomp_notif
_ERESTART = (-512, -513, -514, -516)  # ERESTARTSYS, NOINTR, NOHAND, RESTART_RESTARTBLOCK
#: Injected calls that may run in place of the application's TRACEd call (`_in_place`):
#: the memory calls and futex's FUTEX_WAKE_OP. fork, clone and exit make or end threads
#: and keep the gadget; close and recvmsg are notified calls.
_IN_PLACE = frozenset((NR_MMAP, NR_MPROTECT, NR_MUNMAP, NR_MREMAP, NR_MADVISE, NR_MSYNC,
                       NR_MINCORE, NR_FUTEX))


@functools.lru_cache(maxsize=4)
def _filter_of(notified: frozenset[int]) -> bytes:
    """The filter's BPF for a notified set (a pure function, built once per set: 0.4 ms
    of every stub start otherwise)."""
    return notif_filter(sorted(notified))


def available() -> bool:
    """The platform needs the C extension (built with the sc_* calls)."""
    return _hot is not None and hasattr(_hot, "sc_run")


#: The oldest host the platform runs on: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (5.19);
#: pidfd_getfd (5.6) and PTRACE_GET_SYSCALL_INFO (5.3) are older.
MIN_LINUX = (5, 19)


def host_supports(release: str | None = None) -> bool:
    """Whether the host's Linux (`release`, by default uname's) is MIN_LINUX or later."""
    rel = release if release is not None else os.uname().release
    nums = []
    for part in rel.split(".")[:2]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        nums.append(int(digits) if digits else 0)
    return tuple(nums) >= MIN_LINUX


#: The C round trips (hotloop.c), for the Kernel's loop to call inline: answer and wait
#: (`sc_step`), and the same answering repeats of a per-task-value call (`sc_run`); what
#: they return for a notification of the thread itself (`HOT_NOTIF`). None without C.
sc_step = _hot.sc_step if available() else None
sc_run = _hot.sc_run if available() else None
HOT_NOTIF = _hot.HOT_NOTIF if available() else None


class Listener:
    """The filter's listener fd in the Sentry, shared by every stub descended from one
    `SeccompStub.start`, with the notifications received for a thread other than the
    one being waited for (its mailbox, by host tid)."""

    def __init__(self, fd: int, notified: frozenset[int]) -> None:
        self.fd = fd
        #: the calls the filter notifies (every other one is TRACEd)
        self.notified = notified
        self.users = 0
        self.mail: dict[int, bytes] = {}
        self._buf = _ffi.new(f"char[{_NOTIF_SIZE}]")
        self._scope: trio.CancelScope | None = None
        self._watched = False

    def route(self, notif: bytes) -> None:
        """Keep a notification for its thread (one at most per thread: it waits)."""
        self.mail[struct.unpack_from("<I", notif, 8)[0]] = notif

    def drain(self) -> bool:
        """Receive every notification waiting into the mailboxes; False once no thread
        is left on the filter (or the fd is closed)."""
        while self.fd >= 0:
            r = _hot.sc_recv(self.fd, self._buf)
            if r == 1:
                self.route(bytes(_ffi.buffer(self._buf)))
                continue
            return r == 0
        return False

    def watch(self, waiter: SigchldWaiter) -> None:
        """Make parked tasks wake when a notification comes (once per listener)."""
        if not self._watched and self.fd >= 0:
            self._scope = waiter.watch(self.fd, self.drain)
            self._watched = self._scope is not None

    def release(self) -> None:
        self.users -= 1
        if self.users > 0 or self.fd < 0:
            return
        if self._scope is not None:
            self._scope.cancel()
            try:
                trio.lowlevel.notify_closing(self.fd)
            except RuntimeError:  # not in trio (a start that failed)
                pass
        os.close(self.fd)
        self.fd = -1
        self.mail.clear()


class SeccompStub(PtraceStub):
    """A PtraceStub whose application calls come as seccomp notifications or
    PTRACE_EVENT_SECCOMP stops (module docstring)."""

    SYSCALL_STATUS = SECCOMP_STOP_STATUS

    def __init__(self, pid: int, sock: socket.socket, peer: socket.socket,
                 listener: Listener | None = None) -> None:
        super().__init__(pid, sock, peer)
        self.listener = listener
        #: the listener's fd (-1: none), for the C loop
        self.lfd = -1
        if listener is not None:
            listener.users += 1
            self.lfd = listener.fd
        #: the notification being served (struct seccomp_notif), for the C loop
        self.notif = _ffi.new(f"char[{_NOTIF_SIZE}]")
        #: `_in_place`'s out-parameters: signals met (count first), the call's rax
        self._sigs = _ffi.new(f"int[{_hot.SC_SIGS + 1}]")
        self._out = _ffi.new("long[1]")
        #: under the notifying filter (forks and threads inherit it; `start` installs it)
        self.filtered = listener is not None

    @classmethod
    def start(cls, notified: Iterable[int] = (), *,
              zygote: Zygote | None = None) -> SeccompStub:
        """A stub under the notifying filter (from `zygote` if given); `notified` are the
        calls the Sentry answers from notifications (every other call is a
        PTRACE_EVENT_SECCOMP stop)."""
        if not available():
            raise OSError(errno.ENOSYS, "the seccomp platform needs the C extension "
                                        "(sentry.platform._hotloop with sc_step)")
        nrs = frozenset(notified)
        stub, lfd = cls._start(_OPTIONS | libc.PTRACE_O_TRACESECCOMP, _filter_of(nrs),
                               _NEW_LISTENER | _WAIT_KILLABLE_RECV, zygote)
        assert isinstance(stub, SeccompStub)
        stub.filtered = True
        try:
            pidfd = os.pidfd_open(stub.pid)
            try:
                fd = libc.pidfd_getfd(pidfd, lfd)
            finally:
                os.close(pidfd)
            stub.inject(NR_CLOSE, lfd)  # the stub keeps only its socket
        except BaseException:
            stub.kill()
            raise
        _hot.sc_setup(fd)  # best effort: the synchronous wakeup (Linux 6.6)
        stub.listener = Listener(fd, nrs)
        stub.listener.users = 1
        stub.lfd = fd
        return stub

    def _child(self, pid: int) -> PtraceStub:
        return SeccompStub(pid, self._sock.dup(), self._peer.dup(), self.listener)

    @staticmethod
    def classify(status: int) -> Stop:
        if status == SECCOMP_STOP_STATUS:
            return Stop(StopKind.SYSCALL, status=status)
        return classify(status)

    # running -----------------------------------------------------------------------------

    def resume(self, sig: int = 0) -> None:
        """Store `self.regs` (orig_rax = -1: a call at this stop is skipped) and run the
        application under PTRACE_CONT."""
        r = _hot.sc_resume(self.pid, self._regs_ptr, sig)
        if r < 0:
            raise OSError(-r, f"resume {self.pid}: {os.strerror(-r)}")
        self._at_sysemu_entry = False
        self.in_notif = False

    def step(self, rax: int, waiter: SigchldWaiter) -> int:
        """Answer the current call with `rax` (the notification, or the seccomp stop) and
        wait up to BLOCK_S for the thread's next call or stop: its status (registers
        loaded; SECCOMP_STOP_STATUS for a call), or -1 if it still runs."""
        timeout = 0 if waiter.parked else BLOCK_NS
        st = _hot.sc_step(self.pid, self._regs_ptr, self.lfd, self.notif, self.in_notif,
                          rax & _MASK64, timeout)
        return self._settle(self._others(st, timeout))

    def settle(self, st: int) -> int:
        return self._settle(self._others(st, 0))

    def _others(self, st: int, timeout: int) -> int:
        """Route notifications of other threads (sc_* returned HOT_NOTIF_OTHER) and wait
        on for this one's."""
        while st == _hot.HOT_NOTIF_OTHER:
            assert self.listener is not None
            self.listener.route(bytes(_ffi.buffer(self.notif)))
            _Parked.lot.unpark_all()
            st = _hot.sc_wait(self.pid, self._regs_ptr, self.lfd, self.notif, timeout)
        return st

    def _settle(self, st: int) -> int:
        """Bookkeeping for an sc_* result: the status for the Kernel, or -1."""
        self.in_notif = st == _hot.HOT_NOTIF
        self._at_sysemu_entry = False
        if self.in_notif:
            return SECCOMP_STOP_STATUS
        if st >= 0:
            if not os.WIFSTOPPED(st):
                self.dead_status = st
            elif st == SECCOMP_STOP_STATUS:
                self._at_sysemu_entry = True
            elif not st >> 16:
                self._rewind()
            return st
        if st == _hot.HOT_NOT_YET:
            return -1
        raise OSError(-st, f"step {self.pid}: {os.strerror(-st)}")

    def _rewind(self) -> None:
        """At a signal stop: a notified call the Sentry never received was cut short with
        -ERESTART*; put the thread back at its `syscall` instruction, out of the call."""
        r = self.regs
        rax = r.rax - (1 << 64) if r.rax >= 1 << 63 else r.rax
        if r.orig_rax != _MASK64 and rax in _ERESTART:
            r.rax = r.orig_rax
            r.rip -= 2
            r.orig_rax = _MASK64

    def _next(self, timeout: int) -> int:
        """This thread's next event: its mailbox first, then sc_wait. A status, or -1."""
        if self.listener is not None:
            mail = self.listener.mail.pop(self.pid, None)
            if mail is not None:
                _ffi.memmove(self.notif, mail, _NOTIF_SIZE)
                _hot.sc_load_notif(self._regs_ptr, self.notif)
                return self._settle(_hot.HOT_NOTIF)
        st = _hot.sc_wait(self.pid, self._regs_ptr, self.lfd, self.notif, timeout)
        return self._settle(self._others(st, timeout))

    async def wait(self, waiter: SigchldWaiter) -> Stop:
        """Wait for the thread's next call or stop; registers are loaded."""
        timeout = 0 if waiter.parked else BLOCK_NS
        st = self._next(timeout)
        if st < 0:
            if self.listener is not None:
                self.listener.watch(waiter)
            loose = timeout > 0 and affinity.loosen(self.pid)

            def poll() -> int | None:
                s = self._next(0)
                return None if s < 0 else s

            try:
                st = await waiter.park_until(poll)
            finally:
                if loose:
                    affinity.tighten(self.pid)
        return self.classify(st)

    # injection ---------------------------------------------------------------------------

    def inject(self, nr: int, a0: int = 0, a1: int = 0, a2: int = 0, a3: int = 0,
               a4: int = 0, a5: int = 0) -> int:
        """As PtraceStub.inject, with fewer stops. At the PTRACE_EVENT_SECCOMP stop of a
        `syscall` the Sentry serves, a memory call or futex runs in the application call's
        place (`_in_place`: one stop, its exit); otherwise at the gadget, reaching it
        under PTRACE_CONT so its first stop is the filter's TRACE (`_at_gadget`: two
        stops, or three when the application's call must be skipped first). Not possible
        while the thread waits in a notification (not at a ptrace stop)."""
        if self.in_notif:
            raise OSError(errno.EAGAIN, f"inject into {self.pid}: in a notification")
        if not self.filtered:  # `_start`'s own calls, before the filter
            return super().inject(nr, a0, a1, a2, a3, a4, a5)
        if self.dead_status is not None:
            raise StubGone(self.dead_status)
        listener = self.listener
        if (self._at_sysemu_entry and nr in _IN_PLACE and listener is not None
                and nr not in listener.notified):
            got = self._in_place(nr, a0, a1, a2, a3, a4, a5)
            if got is not None:
                return got
        return self._at_gadget(nr, a0, a1, a2, a3, a4, a5)

    def _in_place(self, nr: int, a0: int, a1: int, a2: int, a3: int, a4: int,
                  a5: int) -> int | None:
        """The injected call made by the stopped application call's own entry: its number
        and arguments replaced, resumed with PTRACE_SYSCALL. The host re-runs the filter
        on a call the tracer changed at a TRACE stop, and a TRACE result then lets it
        run (never a notification: `nr` is not notified), so the next stop is its exit.
        Only for a call that came by `syscall` (the arch the host reports): an int 0x80's
        entry would read `nr` in the i386 table; None then (nothing done). All of it in
        C (hotloop.c's sc_in_place): every mmap and munmap of the application comes here."""
        m = _MASK64
        sigs, out = self._sigs, self._out
        r = _hot.sc_in_place(self.pid, self._regs_ptr, nr,
                             [a0 & m, a1 & m, a2 & m, a3 & m, a4 & m, a5 & m], sigs, out)
        if r == _hot.SC_NOT_IN_PLACE:
            return None
        self._at_sysemu_entry = False
        for i in range(sigs[0]):  # real signals met on the way: delivered later
            self.pending_signals.append(sigs[i + 1])
        if r == 0:
            rax = out[0] & m
            return rax - (1 << 64) if rax >= 1 << 63 else rax
        if r == _hot.SC_GONE:
            self.dead_status = out[0]
            raise StubGone(out[0])
        if r == _hot.SC_ASTRAY:
            self.kill()
            raise StubGone(-1)
        raise OSError(-r, f"inject into {self.pid}: {os.strerror(-r)}")

    def _at_gadget(self, nr: int, a0: int, a1: int, a2: int, a3: int, a4: int,
                   a5: int) -> int:
        """The injected call made at the stub's gadget; at an application call's stop,
        that call is skipped first (orig_rax = -1: its exit stop)."""
        saved = self.regs.copy()
        if self._at_sysemu_entry:
            r = saved.copy()
            r.orig_rax = _MASK64
            libc.set_regs(self.pid, r)
            self._step_to_syscall_stop()
            self._at_sysemu_entry = False
        r = gadget_call(saved, nr, a0, a1, a2, a3, a4, a5)
        libc.set_regs(self.pid, r)
        self._step_to_seccomp_stop()  # a call at the gadget is always TRACEd
        libc.get_regs(self.pid, r)
        if r.orig_rax != nr or r.rip != GADGET_RETURN:
            self.kill()
            raise StubGone(-1)
        self._step_to_syscall_stop()  # exit stop: the host ran it
        libc.get_regs(self.pid, r)
        return self._restore(saved, r.rax)

    def _restore(self, saved: UserRegs, rax: int) -> int:
        """Put the application's registers back; the injected call's result, signed."""
        ctypes.pointer(self.regs)[0] = saved  # same buffer: the hot loop holds its address
        libc.set_regs(self.pid, self.regs)
        return rax - (1 << 64) if rax >= 1 << 63 else rax

    def _step_to_seccomp_stop(self) -> None:
        """PTRACE_CONT and wait for the thread's PTRACE_EVENT_SECCOMP stop, remembering
        real signals that arrive meanwhile (as `_step_to_syscall_stop`)."""
        libc.resume(libc.PTRACE_CONT, self.pid, 0)
        while True:
            _, status = os.waitpid(self.pid, libc.WALL)
            if status == SECCOMP_STOP_STATUS:
                return
            stop = classify(status)
            if stop.kind is StopKind.EXITED:
                self.dead_status = status
                raise StubGone(status)
            if stop.kind is StopKind.SIGNAL:
                self.pending_signals.append(stop.sig)
            libc.resume(libc.PTRACE_CONT, self.pid, 0)

    # teardown ----------------------------------------------------------------------------

    def kill(self) -> None:
        super().kill()
        self.lfd = -1
        if self.listener is not None:
            listener, self.listener = self.listener, None
            listener.release()
