"""PID namespaces inside the sandbox (Linux's struct pid_namespace, level and upid).

The Kernel's tables (`Kernel.procs`, `tasks`, zombies, every Task's `tid`, `tgid`, `ppid`,
`pgid`, `sid`) keep one number per task: its pid in the sandbox's first namespace, the
root (`Kernel.pidns`). A task made in a nested namespace also has a number in that
namespace and in each between it and the root; what a process sees (getpid, getppid,
wait, kill's argument, siginfo's si_pid, a /proc mounted in its namespace) is translated
at the boundary with `vpid` (root number -> the viewer's) and `gpid` (back). A process
in an ancestor namespace sees the numbers of its own level; one outside a namespace is
0 to those inside (getppid of a namespace's init).
"""

from __future__ import annotations

import errno
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from sentry.errors import SyscallError

if TYPE_CHECKING:
    from .task import Task

#: A new pid namespace's pid_max: PID_MAX_LIMIT on 64-bit. Linux keeps one per namespace
#: since 6.14 (a fresh `unshare -fp` reads 4194304 whatever its parent's is), writable by
#: its root; the sandbox is pid 1 of a fresh namespace, so it starts there too.
PID_MAX_LIMIT = 4 * 1024 * 1024
#: RESERVED_PIDS: past pid_max, numbering starts again above these.
RESERVED_PIDS = 300


class PidNamespace:
    """One pid namespace. The root's numbers are the Kernel's (the identity); a child's
    are handed out from 1, the first being its init (`init`, its child reaper)."""

    def __init__(self, parent: PidNamespace | None = None) -> None:
        self.parent = parent
        self.level: int = 0 if parent is None else parent.level + 1
        #: its nsfs inode number (/proc/PID/ns/pid): Linux's initial namespace's for the
        #: first, then numbers handed out from the first namespace's counter
        self.root: PidNamespace = self if parent is None else parent.root
        self._next_ino = 4026532200
        self.ino = 4026531836 if parent is None else self.root.alloc_ino()
        self._next = 1
        #: /proc/sys/kernel/pid_max as its processes see it: numbers here stay below it
        self.pid_max = PID_MAX_LIMIT
        self.wrapped = False  # numbering started again from RESERVED_PIDS: numbers reused
        self._local: dict[int, int] = {}  # root number -> number here
        self._root: dict[int, int] = {}  # number here -> root number
        #: (the root's) every namespace below it, to forget a root number reused
        self._below: weakref.WeakSet[PidNamespace] = weakref.WeakSet()
        if parent is not None:
            self.root._below.add(self)
        self.init = 0  # the root number of the namespace's init (0 until it exists)
        #: Set when the init ended: every other process was killed and no process may
        #: enter any more (fork answers ENOMEM, as Linux's alloc_pid on a dead namespace).
        self.dead = False
        #: The proc filesystem mounted inside it (the syscall layer makes it at the first
        #: mount; every later mount shows the same one, as Linux's one superblock).
        self.proc: object | None = None
        #: (the root's) the namespace each task of a nested one was made in, by root number
        self._home: dict[int, PidNamespace] = {}

    def alloc_ino(self) -> int:
        """(the root's) A new nsfs inode number, for a namespace of any kind (Linux's one
        proc_inum allocator): pid namespaces below it, UTS, IPC and mount namespaces."""
        ino = self._next_ino
        self._next_ino += 1
        return ino

    def next_number(self, busy: Callable[[int], bool]) -> int:
        """alloc_pid's idr_alloc_cyclic: the number after the last one handed out, from
        RESERVED_PIDS again once past pid_max, skipping those `busy` says are in use (only
        after the first wrap: numbers above the counter were never handed out); EAGAIN
        when none is free, as fork's."""
        n = self._next
        for _ in range(self.pid_max):
            if n >= self.pid_max:
                n, self.wrapped = RESERVED_PIDS, True
            if not (self.wrapped and busy(n)):
                self._next = n + 1
                return n
            n += 1
        raise SyscallError(errno.EAGAIN)

    def _busy_here(self, busy: Callable[[int], bool]) -> Callable[[int], bool]:
        return lambda n: n in self._root and busy(self._root[n])

    @property
    def last(self) -> int:
        """The number handed out last (/proc/loadavg's last pid)."""
        return self._next - 1

    def reused(self, gpid: int) -> None:
        """(On the root) root number `gpid` goes to a new task: no namespace below keeps
        the old task's number for it."""
        for ns in list(self._below):
            n = ns._local.pop(gpid, None)
            if n is not None and ns._root.get(n) == gpid:
                del ns._root[n]

    def add(self, gpid: int, busy: Callable[[int], bool]) -> None:
        """Give root number `gpid` (a new task of this namespace) a number here and in
        every ancestor but the root (alloc_pid's upid per level); the first becomes init.
        `busy(root number)`: whether that task's number is still in use."""
        ns: PidNamespace | None = self
        if self.parent is not None:
            self.root._home[gpid] = self
        while ns is not None and ns.parent is not None:
            if ns.dead:
                raise SyscallError(errno.ENOMEM)
            n = ns.next_number(ns._busy_here(busy))
            old = ns._root.get(n)
            if old is not None:
                ns._local.pop(old, None)
            ns._local[gpid] = n
            ns._root[n] = gpid
            if n == 1:
                ns.init = gpid
            ns = ns.parent

    def home(self, gpid: int) -> PidNamespace:
        """The namespace task `gpid` (alive or not) was made in: the one it sees."""
        return self.root._home.get(gpid, self.root)

    def vpid(self, gpid: int) -> int:
        """Root number `gpid` as this namespace sees it: 0 if it is not in it."""
        if self.parent is None or gpid <= 0:
            return gpid
        return self._local.get(gpid, 0)

    def gpid(self, vpid: int) -> int | None:
        """Number `vpid` of this namespace as the root number, None if it names nothing."""
        if self.parent is None:
            return vpid
        return self._root.get(vpid)

    def sees(self, gpid: int) -> bool:
        """Whether task `gpid` is in this namespace or one below it."""
        return self.parent is None or gpid in self._local

    def is_ancestor_of(self, other: PidNamespace) -> bool:
        """Whether `other` is this namespace or one below it."""
        ns: PidNamespace | None = other
        while ns is not None and ns.level >= self.level:
            if ns is self:
                return True
            ns = ns.parent
        return False


def ns_ids(view: PidNamespace, own: PidNamespace, gpid: int) -> list[int]:
    """NSpid's list (status, a pidfd's fdinfo): root number `gpid`, of a task of namespace
    `own`, in `view` and then in each namespace below it down to `own`."""
    ids: list[int] = []
    ns: PidNamespace | None = own
    while ns is not None:
        ids.append(ns.vpid(gpid))
        if ns is view:
            break
        ns = ns.parent
    return ids[::-1]


def proc_of(t: Task, pid: int) -> Task | None:
    """The live process (its leader) `t` names `pid` in its pid namespace."""
    g = t.pidns.gpid(pid)
    return t.kernel.procs.get(g) if g is not None else None


def task_of(t: Task, tid: int) -> Task | None:
    """The live thread `t` names `tid` in its pid namespace."""
    g = t.pidns.gpid(tid)
    return t.kernel.tasks.get(g) if g is not None else None


def init_of(ns: PidNamespace) -> int:
    """The root number of `ns`'s init (1 for the sandbox's first namespace)."""
    return 1 if ns.parent is None else ns.init
