"""The Kernel: runs programs in stubs and serves their syscalls from the table."""

from __future__ import annotations

import errno
import logging
import os
import signal
import struct
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from stat import S_ISGID, S_ISUID, S_IXGRP
from typing import Any, TextIO

import trio

from sentry.errors import SyscallError
from sentry.kernel.table import TABLE, Entry, name_of, number
from sentry.loader import ExecFile, ExecSource, Loaded, VfsFiles, load
from sentry.mm import MemoryManager
from sentry.mm.address_space import CALLER as mm_caller
from sentry.platform import usernotif
from sentry.platform.ptrace import (
    BLOCK_NS,
    SigchldWaiter,
    StopKind,
    StubGone,
    _Parked,
    hot_answered,
    hot_run,
    hot_step,
)
from sentry.platform.zygote import Zygote
from vfs.abi import POLLHUP, POLLIN, POLLRDNORM, Stat
from vfs.creds import Credentials
from vfs.file import FileDescription, WaitQueue
from vfs.filesystem import alloc_anon_dev
from vfs.memlimit import MemoryLimit
from vfs.mount import FSContext, Mount
from vfs.virtualfs import VirtualFilesystem

from . import caps, dnotify, platforms, posix_timers, ptrace, robust, signals, sigstate, usage
from .current import CURRENT_TASK
from .fdtable import FDTable
from .file_locks import FileLocks
from .freeze import Freezer
from .futex import Futexes
from .futex import key_of as futex_key_of
from .image import RecordingSource, image_of
from .inotify import Watches
from .ipc import IpcNamespace, ipc_of
from .network import Network
from .pidns import PidNamespace, init_of
from .platforms import VSYSCALL_PAGE
from .task import (
    ADDR_NO_RANDOMIZE,
    PER_CLEAR_ON_SETID,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    Task,
    TaskExit,
)
from .tty import TTYControl
from .uts import Uts

log = logging.getLogger("runpsc.sentry")

_MASK64 = (1 << 64) - 1
UNSUPPORTED_REPORT_LIMIT = 20
# The hot loop (_serve): syscalls whose answer is a per-task value, which C may repeat;
# the registers it reads in one unpack (r11 to eflags); how many calls between two trio
# checkpoints.
_PER_TASK_VALUE = frozenset(number(n) for n in ("getpid", "getppid", "gettid", "getuid",
                                                "geteuid", "getgid", "getegid", "getpgrp"))
_SYSCALL_REGS = struct.Struct("<13Q").unpack_from
_CHECKPOINT_EVERY = 64


class Kernel:
    """One sandbox's kernel.

    Args:
        exec_source: where execve reads programs from; by default the VFS, as each
            process sees it (its root, cwd and credentials).
        vfs: the `vfs.VirtualFilesystem`, for handlers (``t.kernel.vfs``).
        table: number -> Entry; by default the shared `TABLE`, which importing
            `sentry.syscalls` fills (the kernel never imports its handlers itself).
        stderr: where user-visible events go (rate-limited), besides the debug log.
        platform: how application code runs, ``"ptrace"`` or ``"seccomp"``
            (`sentry.kernel.platforms`); by default $RUNPSC_PLATFORM, else seccomp
            where the host supports it (`platforms.default`), else ptrace.
    """

    def __init__(self, *, exec_source: ExecSource | None = None,
                 vfs: VirtualFilesystem | None = None,
                 table: Mapping[int, Entry] | None = None, stderr: TextIO | None = None,
                 hostname: bytes = b"runpsc", network: Network | None = None,
                 memory: MemoryLimit | None = None, platform: str | None = None) -> None:
        #: the platform's name, and how an address space (a stub) is started on it
        self.platform = platforms.choose(platform)
        self._new_stub = platforms.stub_starter(self.platform)
        self.exec_source = exec_source
        #: the sandbox's memory limit: its address spaces, tmpfs files and System V
        #: segments charge it (the host's memory by default)
        self.memory = memory if memory is not None else MemoryLimit()
        self._network = network
        self.vfs = vfs
        if vfs is not None and vfs.sigpipe is None:
            vfs.sigpipe = self._sigpipe
        #: inotify's watches; while there are any, the VFS reports every change to them.
        self.inotify = Watches(vfs.notifier if vfs is not None else None)
        self.table = TABLE if table is None else table
        self.stderr = stderr if stderr is not None else sys.stderr
        self.uts = Uts(hostname)  # the sandbox's first UTS namespace
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._reported: set[tuple[str, int]] = set()  # (ABI, number) of unsupported calls
        self.forks = 0  # tasks made so far (/proc/stat's processes: total_forks)
        self.pidns = PidNamespace()  # the sandbox's first pid namespace: the numbers above
        self.start_monotonic = time.monotonic()
        self.procs: dict[int, Task] = {}  # live processes by pid (their leader thread)
        self.tasks: dict[int, Task] = {}  # live threads by tid
        #: SEM_UNDO lists (sem_undo_list) by key: how many threads share each (a thread made
        #: with CLONE_SYSVSEM shares its creator's; any other starts its own).
        self.sem_undo_users: dict[int, int] = {}
        self._sem_undo_next = 0
        # The wait status of each process run() or start_process() waits for, from its end
        # until that caller takes it (no other process's: a sandbox that forks for ever
        # keeps nothing of the ended ones).
        self.procs_ended: dict[int, int] = {}
        self._awaited: set[int] = set()
        self.zombies: dict[int, tuple[int, int]] = {}  # pid -> (parent pid, wait status)
        self.zombie_pgid: dict[int, int] = {}
        self.zombie_uid: dict[int, int] = {}
        self.zombie_tasks: dict[int, Task] = {}  # for /proc (State Z) until reaped
        self.ended_usage = usage.Totals()  # CPU time of every process that ended (/proc/stat)
        self._changed = trio.Event()
        self._fd_users: dict[int, int] = {}  # id(fdtable) -> processes sharing it
        self._waiter = SigchldWaiter()
        self._nursery: trio.Nursery | None = None
        # The sandbox's kernel state: nothing of it is shared with another Kernel.
        self.futexes = Futexes()
        self.file_locks = FileLocks(self.procs)
        self.ipc = IpcNamespace(self.memory)  # System V shared memory, semaphores, message queues
        #: Signals queued and not yet taken, plus processes in a group stop: while
        #: non-zero, the run loop calls `signals.on_return` after every syscall.
        self.signals_queued = 0
        #: The one anonymous inode of epoll and signalfd files (Linux's anon_inodefs,
        #: made at boot): its device and time.
        self._anon_dev = alloc_anon_dev()
        self._anon_time_ns = time.time_ns()
        #: Sockets (`sentry.socket`): family -> factory `(task, type, protocol) -> Socket`,
        #: and each family's own state (AF_UNIX's names, sockfs), keyed by family.
        self.socket_families: dict[int, Callable[..., Any]] = {}
        self.socket_state: dict[object, Any] = {}
        self._reported_families: set[int] = set()
        self._anon_ids: dict[str, int] = {}
        #: Notified whenever a process of the sandbox exits (pidfds' readiness).
        self.exits = WaitQueue()
        #: The internal tmpfs mount memfd_create's files live on (made on first use).
        self.memfd_mount: Mount | None = None

        #: Controlling terminals and their job control (devpts' hook).
        self.tty = TTYControl(self)
        #: The whole sandbox frozen (an OCI runtime's pause): the run loop holds threads.
        self.freezer = Freezer(self)
        #: The pids cgroup's limit an OCI runtime sets (linux.resources.pids.limit): fork
        #: and clone fail with EAGAIN once the sandbox has this many threads. None: none.
        self.pids_limit: int | None = None

    def stubs_from(self, zygote: Zygote) -> None:
        """Start every later address space's stub from `zygote` (a Sentry that has put
        itself under a seccomp filter its stubs must not inherit: platform/zygote.py)."""
        self._new_stub = platforms.stub_starter(self.platform, zygote)

    @property
    def network(self) -> Network:
        """The namespace the sandbox's sockets live in (by default made on first use: a
        fresh one with only ``lo``, the ``none`` mode)."""
        if self._network is None:
            self._network = Network.isolated()
        return self._network

    def emit(self, event: str, **fields: Any) -> None:
        """Report a user-visible event: always to the debug log, and to stderr for
        unsupported syscalls and socket families (once each, at most
        UNSUPPORTED_REPORT_LIMIT) and internal errors."""
        self.events.append((event, fields))
        log.info("%s %s", event, fields)
        if event == "unsupported-syscall":
            nr = fields.get("nr", -1)
            key = (fields.get("abi", "x86_64"), nr)
            if key in self._reported or len(self._reported) >= UNSUPPORTED_REPORT_LIMIT:
                return
            self._reported.add(key)
            msg = f"runpsc: unsupported syscall {fields.get('name')} ({nr}): ENOSYS"
        elif event == "unsupported-socket":
            fam = fields.get("family", -1)
            if fam in self._reported_families or \
                    len(self._reported_families) >= UNSUPPORTED_REPORT_LIMIT:
                return
            self._reported_families.add(fam)
            msg = (f"runpsc: unsupported socket family {fields.get('name')} ({fam}): "
                   f"{fields.get('errno', 'EAFNOSUPPORT')}")
        elif event == "internal-error":
            msg = f"runpsc: internal error in {fields.get('name')}: {fields.get('error')}"
        else:
            return
        try:
            print(msg, file=self.stderr, flush=True)
        except (OSError, ValueError):
            pass

    def anon_inode_stat(self) -> Stat:
        """What fstat says of an epoll or signalfd file: mode 0600, no file type."""
        t = self._anon_time_ns
        return Stat(mode=0o600, ino=1, dev=self._anon_dev, nlink=1, atime_ns=t, mtime_ns=t,
                    ctime_ns=t)

    def next_anon_id(self, kind: str) -> int:
        """The next number of a kind of anonymous file (eventfd-id in fdinfo)."""
        n = self._anon_ids.get(kind, 0)
        self._anon_ids[kind] = n + 1
        return n

    async def close_file(self, tgid: int, fdesc: FileDescription) -> None:
        """Drop one fd's reference to `fdesc` for process `tgid` (close(2), dup2 over an
        fd, close_range, exec, exit).

        Why one method: closing any fd of a file releases the process's POSIX record
        locks on it, and the last reference releases OFD and flock locks; every path that
        empties an fd slot does the same.
        """
        self.file_locks.on_close(tgid, fdesc)
        dnotify.flush(fdesc, tgid)
        fdesc.closed_by(tgid)
        try:
            await fdesc.flush()
        finally:
            await fdesc.dec_ref()
            if fdesc.refs <= 0:
                self.file_locks.on_release(fdesc)

    async def close_files(self, tgid: int, files: Iterable[FileDescription]) -> None:
        """close_file for each of `files` (what FDTable.close_all/close_on_exec returned);
        a failure of one does not stop the others."""
        for f in files:
            try:
                await self.close_file(tgid, f)
            except OSError:
                pass
            except Exception:
                log.exception("closing %r", f)

    def alloc_pid(self, ns: PidNamespace | None = None) -> int:
        """A new task's number (in the first namespace), numbered too in `ns` and its
        ancestors (ENOMEM if `ns`'s init has ended; EAGAIN if a namespace's pid_max
        leaves no number free)."""
        root = self.pidns
        pid = root.next_number(self.pid_busy)
        if root.wrapped:
            root.reused(pid)
        if ns is not None:
            ns.add(pid, self.pid_busy)
        self.forks += 1
        return pid

    def pid_busy(self, pid: int) -> bool:
        """Whether number `pid` (of the first namespace) is in use: a live thread's, a
        zombie's, or a live process group's or session's id (Linux frees a struct pid
        only when no task uses it for any of them)."""
        return (pid in self.tasks or pid in self.zombies
                or any(p.pgid == pid or p.sid == pid for p in self.procs.values()))

    async def run(self, argv: list[bytes], envp: list[bytes], fdtable: FDTable,
                  fs: FSContext | None = None, creds: Credentials | None = None, *,
                  path: bytes | None = None, setup: Callable[[Task], None] | None = None,
                  started: Callable[[], object] | None = None) -> int:
        """Run a program as pid 1 of a fresh sandbox; return its wait status.

        The status is Linux's: ``code << 8`` for an exit, the signal number for a kill
        (os.waitstatus_to_exitcode turns it into what a shell reports). The program may
        fork, exec and wait; when pid 1 ends, every other process of the sandbox is killed,
        as in a PID namespace. Each process's fds are closed when it exits (so pipe readers
        see EOF). A program that cannot be executed raises SyscallError (ENOENT, EACCES,
        ENOEXEC) before anything runs. `creds` defaults to root's. `setup` may adjust the
        new task (rlimits, prctl state) before it runs; `started` is called once it runs
        and `spawn` may add processes (an OCI runtime's exec).
        """
        if not self.table:
            raise RuntimeError("no syscall handlers: import sentry.syscalls (it registers "
                               "them) or pass Kernel(table=...)")
        t = await self._new_process(argv, envp, fdtable, fs, creds, path, setup)
        self._awaited.add(t.tgid)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self._waiter.serve)
            t.stub.resume()
            nursery.start_soon(self._task_main, t)
            if started is not None:
                started()
            await t.ended.wait()  # pid 1's process, whichever of its threads ends last
            status = self.procs_ended.pop(t.tgid)
            nursery.cancel_scope.cancel()  # init is gone: so is everything else
        self.ipc.release()  # the namespace goes with its last process
        return status

    async def start_process(self, argv: list[bytes], envp: list[bytes], fdtable: FDTable,
                            fs: FSContext | None = None, creds: Credentials | None = None, *,
                            path: bytes | None = None,
                            setup: Callable[[Task], None] | None = None) -> Task:
        """Start one more process in a running sandbox, with no parent inside it (what
        `setns` + exec from outside gives: ppid 0); await `task.ended`, then take
        `procs_ended.pop(task.tgid)`. Raises SyscallError as `run` does."""
        if self._nursery is None:
            raise RuntimeError("the sandbox is not running")
        t = await self._new_process(argv, envp, fdtable, fs, creds, path, setup)
        self._awaited.add(t.tgid)
        t.stub.resume()
        self.start_soon(self._task_main, t)
        return t

    async def _new_process(self, argv: list[bytes], envp: list[bytes], fdtable: FDTable,
                           fs: FSContext | None, creds: Credentials | None,
                           path: bytes | None, setup: Callable[[Task], None] | None) -> Task:
        """A new process with its program loaded, registered, not yet resumed."""
        if creds is None:
            creds = Credentials.root()
        stub = self._new_stub()
        try:
            mm = MemoryManager(stub, self.memory)
            source = RecordingSource(self._source(fs, creds))
            loaded = await load(mm, source, path or argv[0], argv, envp, uid=creds.uid,
                                gid=creds.gid, euid=creds.euid, egid=creds.egid)
            pid = self.alloc_pid()
            t = Task(self, stub, mm, tid=pid, tgid=pid, ppid=0, fdtable=fdtable, fs=fs,
                     creds=creds)
            t.image = image_of(loaded, source, envp, stub)
            self._fd_users[id(fdtable)] = 1
            self._start_regs(t, loaded)
            if setup is not None:
                setup(t)
        except BaseException:
            stub.kill()
            with trio.CancelScope(shield=True):
                await self._exit_cleanup(None, fdtable)
            raise
        self.procs[t.tgid] = t
        self.tasks[t.tid] = t
        return t

    @property
    def hostname(self) -> bytes:
        """The host name of the sandbox's first UTS namespace."""
        return self.uts.hostname

    @hostname.setter
    def hostname(self, v: bytes) -> None:
        self.uts.hostname = v

    @property
    def domainname(self) -> bytes:
        """The domain name of the sandbox's first UTS namespace."""
        return self.uts.domainname

    @domainname.setter
    def domainname(self, v: bytes) -> None:
        self.uts.domainname = v

    def _source(self, fs: FSContext | None, creds: Credentials) -> ExecSource:
        return self.exec_source or VfsFiles(self.vfs, fs, creds)

    @staticmethod
    def _start_regs(t: Task, loaded: Loaded) -> None:
        r = t.stub.regs
        for name in ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
                     "rax", "rcx", "rdx", "rsi", "rdi", "fs_base", "gs_base"):
            setattr(r, name, 0)
        r.rip, r.rsp, r.eflags = loaded.entry, loaded.sp, 0x202
        r.orig_rax = _MASK64
        t.comm = os.path.basename(loaded.execfn)[:15]

    # processes ---------------------------------------------------------------------------

    def unshare_files(self, t: Task) -> None:
        """unshare(CLONE_FILES): `t`'s process gets its own copy of an fd table it shares
        with other processes (CLONE_FILES at clone); a table it alone uses stays."""
        old = t.fdtable
        key = id(old)
        users = self._fd_users.get(key, 1)
        if users <= 1:
            return
        new = old.fork()
        self._fd_users[key] = users - 1
        self._fd_users[id(new)] = 1
        for th in {t, *t.leader.threads}:
            th.fdtable = new

    def spawn(self, child: Task) -> None:
        """Start serving `child` (already stopped, registers set) as a new process."""
        self.procs[child.tgid] = child
        self.tasks[child.tid] = child
        key = id(child.fdtable)
        self._fd_users[key] = self._fd_users.get(key, 0) + 1
        signals.inherit(CURRENT_TASK.get(None), child)
        child.stub.resume()
        self.start_soon(self._task_main, child)

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run `fn(*args)` as a trio task of this sandbox: it ends when the sandbox does
        (the services of tasks, interval timers)."""
        if self._nursery is None:
            raise RuntimeError("the kernel is not running")
        self._nursery.start_soon(fn, *args)

    def _sigpipe(self) -> None:
        """vfs hook: a write hit a pipe without readers. SIGPIPE's default action ends the
        writer (the handler still returns EPIPE; the loop then sees `killed_by`)."""
        t = CURRENT_TASK.get(None)
        if t is not None and not t.killed_by:
            signals.send(t, t, signal.SIGPIPE, sigstate.siginfo(signal.SIGPIPE, 0, t.tgid),
                         thread=True)

    def spawn_thread(self, th: Task) -> None:
        """Start serving thread `th` (already stopped, registers set) of an existing
        process."""
        th.leader.threads.add(th)
        th.leader.stubs.append(th.stub)
        self.tasks[th.tid] = th
        signals.inherit(CURRENT_TASK.get(None), th, thread=True)
        th.stub.resume()
        self.start_soon(self._task_main, th)

    def end_process(self, leader: Task, status: int) -> None:
        """The process of `leader` ends with wait status `status` (exit_group, a fatal
        signal): every thread's service is cancelled and the host process killed; the last
        thread out cleans up."""
        if leader.exit_status is None:
            leader.exit_status = status
        for th in list(leader.threads):
            if th.scope is not None:
                th.scope.cancel()
        for stub in leader.stubs:
            stub.terminate()

    async def _task_main(self, t: Task) -> int:
        CURRENT_TASK.set(t)
        mm_caller.set(t)
        status: int = signal.SIGKILL
        thread_exit = False
        try:
            with trio.CancelScope() as t.scope:
                t.open_call_scope()
                try:
                    status = await self._serve(t)
                finally:
                    t.close_call_scope()
                thread_exit = t.thread_exit
        finally:
            with trio.CancelScope(shield=True):
                await self._thread_done(t, status, thread_exit)
        leader = t.leader
        return leader.exit_status if leader.exit_status is not None else status

    def sem_undo_new(self) -> int:
        """A new, empty SEM_UNDO list with one user: its key."""
        self._sem_undo_next += 1
        self.sem_undo_users[self._sem_undo_next] = 1
        return self._sem_undo_next

    def sem_undo_share(self, child: Task, parent: Task) -> None:
        """clone(CLONE_SYSVSEM): `child` uses `parent`'s list instead of its own."""
        self.sem_undo_users.pop(child.sem_undo_key, None)
        child.sem_undo_key = parent.sem_undo_key
        self.sem_undo_users[child.sem_undo_key] = \
            self.sem_undo_users.get(child.sem_undo_key, 0) + 1

    def sem_undo_drop(self, t: Task) -> None:
        """exit_sem: `t` stops using its list; the last user's going applies its
        adjustments in `t`'s IPC namespace."""
        key = t.sem_undo_key
        left = self.sem_undo_users.get(key, 1) - 1
        if left > 0:
            self.sem_undo_users[key] = left
            return
        self.sem_undo_users.pop(key, None)
        ipc_of(t).process_exited(key, t.tgid)

    async def _thread_done(self, t: Task, status: int, thread_exit: bool) -> None:
        leader = t.leader
        leader.threads.discard(t)
        if t is not leader and t.ptrace is not None:  # a traced thread's end, to its tracer
            ptrace.exited(t, leader.exit_status if leader.exit_status is not None
                          else t.killed_by or status, 0)
        if self.tasks.get(t.tid) is t:
            del self.tasks[t.tid]
        signals.thread_gone(t)
        self.sem_undo_drop(t)  # exit_sem, per thread
        if t.exec_replaced:
            return  # another thread's execve took the process over
        if thread_exit and leader.threads:
            # exit(2) of one thread: the others go on
            robust.exit_futexes(t)
            await self._clear_child_tid(t)
            if t is not leader:
                t.stub.exit_thread()
            return  # a leader's host thread stays stopped until the process ends
        if leader.exit_status is None:
            # the first thread out of an ending process: its memory is still there, so
            # the robust futexes of every thread are released now (exit_robust_list)
            for th in [t, *leader.threads]:
                robust.exit_futexes(th, t)
            self.end_process(leader, t.killed_by or status)
        if leader.threads:
            return  # the last thread out cleans up
        leader.final_usage = usage.final(leader.stub.pid)  # before the stub's figures go
        self.ended_usage.add(leader.final_usage)
        for stub in sorted(leader.stubs, key=lambda s: s is leader.stub):
            stub.kill()  # non-leader host threads first: the leader is reaped last
        t.stub.kill()
        key = id(t.fdtable)
        self._fd_users[key] = self._fd_users.get(key, 1) - 1
        last = self._fd_users[key] <= 0
        await self._exit_cleanup(t.mm, t.fdtable if last else None, t.tgid)
        assert leader.exit_status is not None  # end_process set it
        if leader.pidns.parent is not None and leader.tgid == leader.pidns.init:
            await self._zap_pid_ns(leader)
        self._exited(leader, leader.exit_status)

    async def _clear_child_tid(self, t: Task) -> None:
        """CLONE_CHILD_CLEARTID: zero the tid word and wake a futex waiter (pthread_join)."""
        if not t.clear_child_tid:
            return
        try:
            t.mem_write(t.clear_child_tid, b"\0\0\0\0")
        except OSError:
            return
        self.futexes.wake(futex_key_of(t, t.clear_child_tid, private=False), 1)

    def _exited(self, t: Task, status: int) -> None:
        """Make `t` a zombie for its parent (SIGCHLD). Its children go to the nearest
        living ancestor that is a child subreaper, else to init (pid 1): they get their
        parent-death signal, the new parent gets SIGCHLD for those already zombies, and a
        process group this exit orphans with stopped members gets SIGHUP and SIGCONT
        (Linux's exit_notify)."""
        self.procs.pop(t.tgid, None)
        if t.tgid in self._awaited:
            self._awaited.discard(t.tgid)
            self.procs_ended[t.tgid] = status
        held = ptrace.exited(t, status, t.ppid)  # a tracer that is not the parent is first
        ptrace.tracer_gone(t)
        reaper = self._reaper_for(t)
        uid = t.creds.uid
        orphans = [c for c in self.procs.values() if c.ppid == t.tgid]
        for c in orphans:
            c.ppid = reaper
            sig = c.prctl_state.get(PR_SET_PDEATHSIG, 0)
            if sig:
                signals.send(None, c, sig, sigstate.siginfo(sig, sigstate.SI_USER,
                                                            c.pidns.vpid(t.tgid), uid),
                             force=not c.pidns.sees(t.tgid))  # from the dying parent
        for z, (ppid, st) in list(self.zombies.items()):
            if ppid == t.tgid and not reaper:  # a dead namespace's: reaped by its init
                self.reap(z)
            elif ppid == t.tgid:
                self.zombies[z] = (reaper, st)
                signals.notify_exit(self.procs.get(reaper), z, self.zombie_uid.get(z, 0), st)
        for c in orphans:
            signals.kill_orphaned_pgrp(self, c, t)
        signals.kill_orphaned_pgrp(self, t, None)
        self.tty.process_exited(t)
        if t.ppid:
            self.zombies[t.tgid] = (t.ppid, status)
            self.zombie_pgid[t.tgid] = t.pgid
            self.zombie_uid[t.tgid] = uid
            self.zombie_tasks[t.tgid] = t
        t.vfork_done.set()
        t.ended.set()
        signals.process_exited(None if held else self.procs.get(t.ppid), t, status)
        self.notify_children_changed()

    def _reaper_for(self, t: Task) -> int:
        """find_new_reaper: the nearest living ancestor with PR_SET_CHILD_SUBREAPER in
        `t`'s pid namespace, else that namespace's init (the sandbox's for the first).
        A nested namespace's init has no reaper for its children (0): they were killed
        (`_zap_pid_ns`) and are reaped with it."""
        ns = t.pidns
        init = init_of(ns)
        if t.tgid == init and ns.parent is not None:
            return 0
        p = self.procs.get(t.ppid)
        while p is not None and p.tgid != init and p.pidns is ns:
            if p.prctl_state.get(PR_SET_CHILD_SUBREAPER):
                return p.tgid
            p = self.procs.get(p.ppid)
        return init

    async def _zap_pid_ns(self, init: Task) -> None:
        """zap_pid_ns_processes: a nested pid namespace's init ended, so every other
        process of it (and of namespaces below) gets SIGKILL, no process may enter it any
        more, and the init is a zombie only once they are all gone (their zombies are its
        to reap)."""
        ns = init.pidns
        ns.dead = True
        while True:
            left = [p for p in self.procs.values() if p is not init and ns.sees(p.tgid)]
            if not left:
                return
            for p in left:
                p.killed_by = signal.SIGKILL
                for th in list(p.threads):
                    th.interrupt()
                self.end_process(p, signal.SIGKILL)
            await self.children_changed()

    def reap(self, pid: int) -> Task | None:
        """Forget zombie `pid` (its parent waited for it, or it has none to): its Task,
        for the reaper's accounting."""
        self.zombies.pop(pid, None)
        self.zombie_pgid.pop(pid, None)
        self.zombie_uid.pop(pid, None)
        return self.zombie_tasks.pop(pid, None)

    def notify_children_changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
        self.exits.notify(POLLIN | POLLRDNORM | POLLHUP)

    async def children_changed(self) -> None:
        """Wait until some process exits (wait4's sleep)."""
        await self._changed.wait()

    async def execve(self, t: Task, path: bytes, argv: list[bytes], envp: list[bytes]) -> None:
        """Replace `t`'s program. The new image is built in a fresh stub first, so on
        failure (ENOENT, EACCES, ENOEXEC …) the caller's address space is untouched. The
        program is opened before the stub is spawned (a host fork and exec, ~10 ms): most
        execve calls of a $PATH search fail there, and then cost no stub."""
        source = await RecordingSource.opening(self._source(t.fs, t.creds), path)
        try:
            stub = self._new_stub()
        except BaseException:
            with trio.CancelScope(shield=True):
                await source.release_unused()
            raise
        mm = MemoryManager(stub, self.memory,
                           randomize=not t.personality & ADDR_NO_RANDOMIZE)
        new_creds: list[Credentials] = []
        per_clear: list[int] = []

        def ids_for(f: ExecFile) -> tuple[int, int, int, int, bool]:
            """The credentials the program runs with: its set-id bits (not on a nosuid
            mount, nor under no_new_privs) and the capability rules (`caps.exec_creds`).
            Set-id bits that apply clear PER_CLEAR_ON_SETID from the personality
            (bprm_fill_uid's per_clear), randomizing the layout again."""
            setid = not f.nosuid
            nnp = bool(t.prctl_state.get(PR_SET_NO_NEW_PRIVS))
            if setid and not nnp and (f.mode & S_ISUID or (f.mode & S_ISGID
                                                           and f.mode & S_IXGRP)):
                per_clear.append(PER_CLEAR_ON_SETID)
                if t.personality & ADDR_NO_RANDOMIZE:
                    mm.pick_mmap_base(True)
            c, secure = caps.exec_creds(
                t.creds, euid=f.uid if setid and f.mode & S_ISUID else None,
                egid=f.gid if setid and f.mode & S_ISGID and f.mode & S_IXGRP else None,
                no_new_privs=nnp,
                ptrace_unsafe=t.ptrace is not None and not t.ptrace.capable)
            new_creds.append(c)
            return c.uid, c.gid, c.euid, c.egid, secure

        try:
            loaded = await load(mm, source, path, argv, envp, ids_for=ids_for)
            image = image_of(loaded, source, envp, stub)
        except BaseException:
            stub.kill()
            with trio.CancelScope(shield=True):
                await source.release_unused()
                await mm.release()
            raise
        if per_clear:
            t.personality &= ~PER_CLEAR_ON_SETID
        old_leader = t.leader
        old_stubs = list(old_leader.stubs)
        for th in list(old_leader.threads):
            if th is not t:
                th.exec_replaced = True
                old_leader.threads.discard(th)
                if th.scope is not None:
                    th.scope.cancel()
        if old_leader is not t:  # de_thread: the exec'ing thread becomes the leader
            t._ppid, t._pgid, t._sid = old_leader._ppid, old_leader._pgid, old_leader._sid
            t.rlimits, t.prctl_state = old_leader.rlimits, old_leader.prctl_state
            for attr in ("_sighand", "_job"):  # process-wide signal and job state
                if attr in old_leader.__dict__:
                    setattr(t, attr, old_leader.__dict__[attr])
            t.vfork_done, t.ended = old_leader.vfork_done, old_leader.ended
            self.tasks.pop(t.tid, None)
            t.tid = t.tgid
            self.tasks[t.tid] = t
            t.leader = t
            self.procs[t.tgid] = t
        old_mm = t.mm
        t.stub, t.mm = stub, mm
        t.image = image
        t.creds = new_creds[-1]
        t.threads, t.stubs = {t}, [stub]
        for old in sorted(old_stubs, key=lambda s: s is old_leader.stubs[0]):
            old.kill()  # the old process (every thread), leader last
        await old_mm.release()
        await self.close_files(t.tgid, t.fdtable.close_on_exec())
        self._start_regs(t, loaded)
        signals.on_exec(t)
        posix_timers.on_exec(t)
        t.vfork_done.set()

    async def _exit_cleanup(self, mm: MemoryManager | None, fdtable: FDTable | None,
                            tgid: int = 0) -> None:
        """What exit does after process `tgid`'s threads are gone: write back shared
        mappings, close every fd (so pipe readers see EOF, and its locks go)."""
        if mm is not None:
            try:
                await mm.release()
            except Exception:
                log.exception("releasing the address space")
        if fdtable is not None:
            await self.close_files(tgid, fdtable.close_all())

    async def _serve(self, t: Task) -> int:
        """The hot loop: wait for a stop, dispatch the syscall, write rax, resume.

        `pending` is the raw wait status the fast path (`hot_step`) already got, or -1 when
        the thread still runs and the task must await its next stop. After a syscall whose
        answer is a per-task value (`_PER_TASK_VALUE`), `hot_run` answers repeats of the same
        call in C with the handler's own answer, until another stop comes or the budget of
        calls between two trio checkpoints runs out: no Python runs meanwhile, so nothing
        that could change the answer does. Not with a traced (--strace) or test table whose
        entry is not the shared one, nor while any signal is queued.

        On the seccomp platform the same loop serves notified calls (`stub.in_notif`: the
        registers hold only the number, arguments and rip) and PTRACE_EVENT_SECCOMP stops
        (`SYSCALL_STATUS` is the platform's); the C round trip is `sc_step`/`sc_run`, and a
        signal for a notified call's thread is delivered at a stop its kick makes at the
        call's return (sentry/README.md, "The seccomp platform").
        """
        table = self.table
        waiter = self._waiter
        on_ptrace = self.platform == "ptrace"
        # the C round trip inlined below: ptrace's (step, run) or seccomp's (sc, sc_run)
        sc = None if on_ptrace else usernotif.sc_step
        run: Any = hot_run if on_ptrace else usernotif.sc_run
        fast_nrs = frozenset(nr for nr in _PER_TASK_VALUE
                             if table.get(nr) is TABLE.get(nr) is not None
                             and not table[nr].is_async and run is not None)
        # module globals as locals: this loop runs once per application syscall
        get, unpack, stop_status, mask64, parked = table.get, _SYSCALL_REGS, \
            t.stub.SYSCALL_STATUS, _MASK64, _Parked
        step, block_ns, hot_notif = hot_step if on_ptrace else None, BLOCK_NS, \
            usernotif.HOT_NOTIF
        io_calls, count_io = usage.IO_CALLS, usage.count_io
        # Untyped cffi objects; `run` is called only for `fast_nrs`, empty without it.
        answered: Any = hot_answered
        budget = _CHECKPOINT_EVERY
        pending = -1
        freezer = self.freezer
        while True:
            budget -= 1
            if budget <= 0:  # let other tasks run even if every call completes at once
                budget = _CHECKPOINT_EVERY
                await trio.lowlevel.checkpoint()
            # Any: on the seccomp platform a SeccompStub, whose C fields the loop passes
            stub: Any = t.stub
            if t.leader._killed_by:
                return t.leader._killed_by
            if pending != stop_status:
                try:
                    stop = await stub.wait(waiter) if pending < 0 else stub.classify(pending)
                except StubGone as e:
                    return t.killed_by or e.status
                pending = -1
                kind = stop.kind
                if kind is StopKind.SIGNAL:
                    if freezer.thawed is not None:  # held at its stop until thawed
                        await freezer.hold(t)
                    tracee = t.ptrace
                    if tracee is not None and tracee.replay >= 0:
                        # a traced notified call, made here where it has every register
                        regs = stub.regs
                        regs.orig_rax, regs.rax = tracee.replay, -errno.ENOSYS & mask64
                        tracee.replay = -1
                        pending = stop_status
                        continue
                    sig = signals.on_host_signal(t, stop.sig)  # 0: handled, resumed
                    if not sig and t.ptrace is not None and t.ptrace.work():
                        sig = await self._ptrace_stops(t)  # not resumed: the tracer's turn
                    if not sig:
                        continue
                    self.emit("fatal-signal", sig=sig, rip=stub.regs.rip, pid=t.tgid)
                    return sig
                if kind is StopKind.EVENT:
                    stub.resume()
                    continue
                if kind is StopKind.EXITED:
                    return t.killed_by or stop.status
            if freezer.thawed is not None:  # a call made just before the freeze waits
                await freezer.hold(t)
            # r11 .. orig_rax, rip, cs, eflags in one call (UserRegs' layout)
            r11, a3, a5, a4, _, rcx, a2, a1, a0, nr, rip, _, eflags = unpack(stub.regs, 48)
            if rcx != rip or r11 != eflags:  # not `syscall`: int 0x80 or sysenter
                nr = self._refuse_compat(t, nr, rip)
            tracee = t.ptrace
            if tracee is not None and tracee.run and stub.in_notif:
                # The seccomp platform's notified call has no registers: it is answered 0
                # now, its thread kicked, and the call made at that stop (above).
                tracee.replay, tracee.skip, nr = nr, True, -1
                stub.regs.rax = 0
                sigstate.kick(t)
            elif tracee is not None and tracee.run:  # PTRACE_SYSCALL/SYSEMU: the entry stop
                emulated = tracee.run == ptrace.RUN_SYSEMU  # read before the stop, as Linux
                await ptrace.syscall_entry(t, tracee)
                if t.leader._killed_by:
                    return t.leader._killed_by
                r11, a3, a5, a4, _, rcx, a2, a1, a0, nr, rip, _, eflags = unpack(stub.regs, 48)
                if nr == mask64 or emulated:  # the call is skipped: rax is the result
                    nr = -1
                    tracee.skip = True
            entry = get(nr)
            fast = -1
            try:
                if entry is None or entry.handler is None:
                    if tracee is not None and tracee.skip:
                        tracee.skip = False
                        raise ptrace.Skipped(stub.regs.rax)
                    if nr >= 0:
                        self.emit("unsupported-syscall", nr=nr, name=name_of(nr))
                    res = -errno.ENOSYS
                elif entry.is_async:
                    aw = entry.handler(t, a0, a1, a2, a3, a4, a5)
                    if nr in sigstate.INTERRUPTIBLE:  # a handled signal gives EINTR
                        aw = t.call_interruptibly(aw)
                    res = await aw
                else:
                    res = entry.handler(t, a0, a1, a2, a3, a4, a5)
                    if nr in fast_nrs and t.ptrace is None:
                        fast = res & mask64
            except SyscallError as e:
                res = -e.errno
            except ptrace.Skipped as e:
                res = e.rax
            except TaskExit as e:
                t.thread_exit = not e.group
                if t.ptrace is not None:  # PTRACE_EVENT_EXIT
                    await ptrace.exit_stop(t, e.wait_status)
                return e.wait_status
            except StubGone as e:
                return t.killed_by or e.status
            except OSError as e:
                if not e.errno:
                    return self._internal_error(entry, e)
                res = -e.errno
            except Exception as e:  # a Sentry bug: never crash, end the sandbox
                return self._internal_error(entry, e)
            if nr in io_calls:  # /proc/PID/io's accounting
                count_io(t.leader.io, nr, res)
            if res == -errno.EFAULT and rip >= VSYSCALL_PAGE:
                self._vsyscall_fault(t)
            if t.ptrace is not None:  # the syscall-exit stop, then the tracer's stops
                res = await self._ptrace_exit(t, res, stub.in_notif)  # signals too
                if t.leader._killed_by:
                    return t.leader._killed_by
            elif self.signals_queued:  # a signal to deliver on the way back to user mode
                if stub.in_notif:  # no registers here: at the kick's stop at the return
                    if signals.return_work(t):
                        sigstate.kick(t)
                else:
                    res = signals.on_return(t, res)
                fast = -1
            if t.leader._killed_by:
                return t.leader._killed_by
            if freezer.thawed is not None:  # back to user mode only once thawed
                await freezer.hold(t)
                if t.leader._killed_by:
                    return t.leader._killed_by
            stub = t.stub  # execve may have replaced it
            if step is not None:  # the fast path of PtraceStub.step, inlined
                timeout = 0 if parked.count else block_ns
                if fast < 0:
                    st = step(stub.pid, stub._regs_ptr, res & mask64, timeout)
                else:
                    st = run(stub.pid, stub._regs_ptr, fast, timeout, nr, fast, budget - 1,
                             answered)
                    budget -= answered[0]
                if st == stop_status:
                    stub._at_sysemu_entry = True
                    pending = st
                    continue
            elif sc is not None:  # the seccomp platform's (SeccompStub.step), inlined
                timeout = 0 if parked.count else block_ns
                if fast < 0:
                    st = sc(stub.pid, stub._regs_ptr, stub.lfd, stub.notif, stub.in_notif,
                            res & mask64, timeout)
                else:
                    st = run(stub.pid, stub._regs_ptr, stub.lfd, stub.notif, stub.in_notif,
                             fast, timeout, nr, fast, budget - 1, answered)
                    budget -= answered[0]
                if st == hot_notif:
                    stub.in_notif, stub._at_sysemu_entry = True, False
                    pending = stop_status
                    continue
            try:
                pending = stub.step(res, waiter) if step is None and sc is None \
                    else stub.settle(st)
            except OSError:  # the thread died under us (killed from outside)
                return t.killed_by or stub.dead_status or signal.SIGKILL

    async def _ptrace_exit(self, t: Task, res: int, in_notif: bool) -> int:
        """A traced thread's way out of a syscall: its syscall-exit stop (PTRACE_SYSCALL),
        the signal-delivery and other stops its signals make (`signals.on_return` leaves
        them for `ptrace.signal_stops`). On the seccomp platform a notified call has no
        registers to deliver a signal with: its kick makes a stop for that."""
        tracee = t.ptrace
        if tracee is not None and tracee.replay >= 0:
            return res  # not made yet (`_serve`, seccomp platform)
        if tracee is not None and tracee.run == ptrace.RUN_SYSCALL:
            res = await ptrace.syscall_exit(t, tracee, res)
        if in_notif:
            if t.ptrace is not None and (t.ptrace.work() or signals.return_work(t)):
                sigstate.kick(t)
            return res
        res = signals.on_return(t, res)
        if t.ptrace is not None and t.ptrace.work():
            res = await ptrace.signal_stops(t, t.ptrace, res)
        return res

    async def _ptrace_stops(self, t: Task) -> int:
        """At a signal stop of a traced thread that `signals.on_host_signal` left stopped:
        its stops for the tracer, then the delivery; resumes it. Returns 0, or the signal
        that ends the process."""
        tracee = t.ptrace
        assert tracee is not None
        regs = t.stub.regs
        if tracee.singlestep:  # PTRACE_SINGLESTEP's trap flag is the tracer's, not seen
            tracee.singlestep = False
            regs.eflags &= ~0x100
        rax = regs.rax
        res = await ptrace.signal_stops(t, tracee, rax - (1 << 64) if rax >= 1 << 63 else rax)
        if t.leader._killed_by:
            return t.leader._killed_by
        regs.rax = res & _MASK64
        try:
            t.stub.resume()
        except OSError:
            return t.killed_by or signal.SIGKILL
        return 0

    def _vsyscall_fault(self, t: Task) -> None:
        """A legacy vsyscall-page call (seccomp platform: the host's emulation notifies it)
        given a bad pointer: Linux's emulation returns -EFAULT and forces SIGSEGV."""
        signals.force(t, signal.SIGSEGV,
                      sigstate.siginfo(signal.SIGSEGV, sigstate.SI_KERNEL, addr=0))

    def _refuse_compat(self, t: Task, eax: int, rip: int) -> int:
        """A system call made other than by the `syscall` instruction, which always leaves
        rcx = rip and r11 = rflags: `int 0x80` (or `sysenter`) asks for the i386 table,
        with its numbers and its argument registers. It is not served (every one ENOSYS,
        reported once per number as an unsupported i386 call) rather than misread as the
        64-bit call of the same number. Returns -1, which no table entry has."""
        try:
            insn = {b"\xcd\x80": "int 0x80", b"\x0f\x34": "sysenter"}.get(
                t.stub.read(rip - 2, 2), "i386 entry")
        except OSError:
            insn = "i386 entry"
        eax &= 0xFFFFFFFF
        self.emit("unsupported-syscall", nr=eax, name=f"{insn} eax={eax}", abi="i386",
                  pid=t.tgid)
        return -1

    def _internal_error(self, entry: Entry | None, e: BaseException) -> int:
        name = entry.name if entry else "?"
        log.error("internal error in %s:\n%s", name, traceback.format_exc())
        self.emit("internal-error", name=name, error=f"{type(e).__name__}: {e}")
        return signal.SIGKILL
