"""The Kernel: runs programs in stubs and serves their syscalls from the table."""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any, TextIO

import trio

from sentry.loader import ExecSource, VfsFiles, load
from sentry.mm import MemoryManager
from sentry.platform.ptrace import PtraceStub, SigchldWaiter, StopKind, StubGone
from sentry.syscalls.table import TABLE, Entry, SyscallError, name_of

from .task import Task, TaskExit

log = logging.getLogger("runpsc.sentry")

_MASK64 = (1 << 64) - 1
# Default dispositions (signal(7)) for signals the application cannot yet handle itself.
_IGNORED = {signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH}
_STOPPING = {signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}
UNSUPPORTED_REPORT_LIMIT = 20


class Kernel:
    """One sandbox's kernel.

    Args:
        exec_source: where execve reads programs from; by default the VFS, as each
            process sees it (its root, cwd and credentials).
        vfs: the `vfs.VirtualFilesystem`, for handlers (``t.kernel.vfs``).
        table: number -> Entry; the shared `TABLE` unless a test brings its own.
        stderr: where user-visible events go (rate-limited), besides the debug log.
    """

    def __init__(self, *, exec_source: ExecSource | None = None, vfs: Any = None,
                 table: Mapping[int, Entry] | None = None, stderr: TextIO | None = None,
                 hostname: bytes = b"runpsc") -> None:
        import sentry.syscalls  # noqa: F401  (registers every handler family)

        self.exec_source = exec_source
        self.vfs = vfs
        self.table = TABLE if table is None else table
        self.stderr = stderr if stderr is not None else sys.stderr
        self.hostname = hostname
        self.domainname = b"(none)"
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._reported: set[int] = set()
        self._next_pid = 1
        self.start_monotonic = time.monotonic()

    def emit(self, event: str, **fields: Any) -> None:
        """Report a user-visible event: always to the debug log, and to stderr for
        unsupported syscalls (once per syscall, at most UNSUPPORTED_REPORT_LIMIT) and
        internal errors."""
        self.events.append((event, fields))
        log.info("%s %s", event, fields)
        if event == "unsupported-syscall":
            nr = fields.get("nr", -1)
            if nr in self._reported or len(self._reported) >= UNSUPPORTED_REPORT_LIMIT:
                return
            self._reported.add(nr)
            msg = f"runpsc: unsupported syscall {fields.get('name')} ({nr}): ENOSYS"
        elif event == "internal-error":
            msg = f"runpsc: internal error in {fields.get('name')}: {fields.get('error')}"
        else:
            return
        try:
            print(msg, file=self.stderr, flush=True)
        except (OSError, ValueError):
            pass

    def alloc_pid(self) -> int:
        pid = self._next_pid
        self._next_pid += 1
        return pid

    async def run(self, argv: list[bytes], envp: list[bytes], fdtable: Any, fs: Any = None,
                  creds: Any = None, *, path: bytes | None = None) -> int:
        """Run one program to completion in a fresh address space; return its wait status.

        At exit every fd in `fdtable` is closed (as Linux's exit does). The status is Linux's: ``code << 8`` for an exit, the signal number for a kill
        (os.waitstatus_to_exitcode turns it into what a shell reports). The first program
        is pid 1. A program that cannot be executed raises SyscallError (ENOENT, EACCES,
        ENOEXEC) before anything runs.
        """
        stub = PtraceStub.start()
        mm: MemoryManager | None = None
        try:
            mm = MemoryManager(stub)
            ids = {}
            if creds is not None:
                ids = dict(uid=creds.uid, gid=creds.gid, euid=creds.euid, egid=creds.egid)
            source = self.exec_source or VfsFiles(self.vfs, fs, creds)
            loaded = await load(mm, source, path or argv[0], argv, envp, **ids)
            pid = self.alloc_pid()
            t = Task(self, stub, mm, tid=pid, tgid=pid, ppid=0, fdtable=fdtable, fs=fs,
                     creds=creds)
            t.comm = os.path.basename(loaded.execfn)[:15]
            r = stub.regs
            for name in ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
                         "rax", "rcx", "rdx", "rsi", "rdi", "fs_base", "gs_base"):
                setattr(r, name, 0)
            r.rip, r.rsp, r.eflags = loaded.entry, loaded.sp, 0x202
            r.orig_rax = _MASK64
            waiter = SigchldWaiter()
            async with trio.open_nursery() as nursery:
                await nursery.start(waiter.serve)
                stub.resume()
                status = await self._serve(t, waiter)
                nursery.cancel_scope.cancel()
            return status
        finally:
            stub.kill()
            with trio.CancelScope(shield=True):
                await self._exit_cleanup(mm, fdtable)

    async def _exit_cleanup(self, mm: MemoryManager | None, fdtable: Any) -> None:
        """What exit does after the threads are gone: write back shared mappings, close
        every fd (so pipe readers see EOF)."""
        if mm is not None:
            try:
                await mm.release()
            except Exception:
                log.exception("releasing the address space")
        if fdtable is not None and hasattr(fdtable, "close_all"):
            for fdesc in fdtable.close_all():
                try:
                    await fdesc.dec_ref()
                except Exception:
                    log.exception("closing %r at exit", fdesc)

    async def _serve(self, t: Task, waiter: SigchldWaiter) -> int:
        """The hot loop: wait for a stop, dispatch the syscall, write rax, resume."""
        stub = t.stub
        table = self.table
        served = 0
        while True:
            served += 1
            if not served & 63:  # let other tasks run even if every call completes at once
                await trio.lowlevel.checkpoint()
            try:
                stop = await stub.wait(waiter)
            except StubGone as e:
                return e.status
            kind = stop.kind
            if kind is StopKind.SYSCALL:
                regs = stub.regs
                nr = regs.orig_rax
                entry = table.get(nr)
                try:
                    if entry is None or entry.handler is None:
                        self.emit("unsupported-syscall", nr=nr, name=name_of(nr))
                        res = -errno.ENOSYS
                    elif entry.is_async:
                        res = await entry.handler(t, regs.rdi, regs.rsi, regs.rdx, regs.r10,
                                                  regs.r8, regs.r9)
                    else:
                        res = entry.handler(t, regs.rdi, regs.rsi, regs.rdx, regs.r10,
                                            regs.r8, regs.r9)
                except SyscallError as e:
                    res = -e.errno
                except TaskExit as e:
                    return (e.status & 0xFF) << 8
                except StubGone as e:
                    return e.status
                except OSError as e:
                    if not e.errno:
                        return self._internal_error(entry, e)
                    res = -e.errno
                except Exception as e:  # a Sentry bug: never crash, end the sandbox
                    return self._internal_error(entry, e)
                try:
                    stub.regs.rax = res & _MASK64
                    stub.resume()
                except OSError:  # the thread died under us (killed from outside)
                    return stub.dead_status or signal.SIGKILL
            elif kind is StopKind.SIGNAL:
                sig = stop.sig
                if sig in _IGNORED or sig in _STOPPING:
                    stub.resume()
                    continue
                # No application handlers yet: the default action is to terminate.
                self.emit("fatal-signal", sig=sig, rip=stub.regs.rip)
                return sig
            elif kind is StopKind.EVENT:
                stub.resume()
            else:
                return stop.status

    def _internal_error(self, entry: Entry | None, e: BaseException) -> int:
        name = entry.name if entry else "?"
        log.error("internal error in %s:\n%s", name, traceback.format_exc())
        self.emit("internal-error", name=name, error=f"{type(e).__name__}: {e}")
        return signal.SIGKILL

