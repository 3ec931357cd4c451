"""The kernel's side of /proc and /sys: a `vfs.fs.procfs.ProcProvider` (and
`vfs.fs.sysfs.SysProvider`) over a Kernel.

Why here: vfs must not import the Sentry, so procfs and sysfs ask a provider for
everything generated from kernel state; the Kernel's process table is the truth, and each
process's `ProcessImage` (recorded at load time and at every execve) gives exe, cmdline
and environ. Construct one per sandbox and set it as both providers::

    view = ProcView(kernel, memory=limit)
    procfs.provider = view
    sysfs.provider = view

Nothing is passed through from the host's /proc: each file is generated here (the only
host figures used are the stub threads' own CPU time and residency, see `usage`).
"""

from __future__ import annotations

import copy
import errno
from typing import TYPE_CHECKING

from sentry.kernel.ipc import IpcNamespace, ipc_of
from vfs.fs.synthetic import DirNode, FileNode, Node, Source, SymlinkNode

from .net import NetFiles
from .process import ProcessFiles
from .sysctl import Sysctl
from .sysfs import sys_tree
from .system import System

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.kernel.pidns import PidNamespace
    from sentry.kernel.task import Task


def _sysfile(content: Source) -> FileNode:
    """A system-wide /proc file: a write fails with EIO, as proc_reg_write does."""
    return FileNode(content, 0o444, readonly_errno=errno.EIO)


class ProcView:
    """/proc's and /sys's provider for one Kernel.

    Args:
        kernel: the sandbox's Kernel (its `procs` table and `vfs`).
        memory: the sandbox's memory limit in bytes, MemTotal (None: the host's memory).
    """

    def __init__(self, kernel: Kernel, *, memory: int | None = None) -> None:
        self.kernel = kernel
        self.pidns = kernel.pidns  # whose processes, by whose numbers (see `for_pidns`)
        self.system = System(kernel, memory)
        self.process = ProcessFiles(kernel, self.system)
        self.sysctl = Sysctl(kernel, self.system)
        self.net = NetFiles(kernel)

    def for_pidns(self, ns: PidNamespace) -> ProcView:
        """The provider of a proc mounted in pid namespace `ns` (Linux's proc superblock
        per namespace): only `ns`'s processes, by their numbers there."""
        view = copy.copy(self)
        view.pidns = ns
        view.process = ProcessFiles(self.kernel, self.system, ns)
        return view

    # ProcProvider ---------------------------------------------------------------------------

    def self_pid(self) -> int | None:
        """The process doing the current syscall (None outside any syscall, or outside
        this /proc's namespace)."""
        t = _current()
        return self.pidns.vpid(t.tgid) or None if t is not None else None

    def pids(self) -> list[int]:
        ns = self.pidns
        return sorted(ns.vpid(g) for g in {*self.kernel.procs, *self.kernel.zombie_tasks}
                      if ns.sees(g))

    def pid_entries(self, pid: int) -> dict[bytes, Node] | None:
        g = self.pidns.gpid(pid)
        if g is None:
            return None
        pid = g
        t = self.kernel.procs.get(pid)
        if t is None:
            th = self.kernel.tasks.get(pid)
            if th is not None and th.tgid != pid and th.tgid in self.kernel.procs:
                return self.process.thread_entries(th)
            z = self.kernel.zombie_tasks.get(pid)
            return None if z is None else self.process.zombie_entries(z)
        return self.process.entries(t)

    def extra_entries(self) -> dict[bytes, Node]:
        s = self.system
        out: dict[bytes, Node] = {
            b"meminfo": _sysfile(s.meminfo),
            b"uptime": _sysfile(s.uptime_text),
            b"loadavg": _sysfile(s.loadavg),
            b"stat": _sysfile(s.stat),
            b"vmstat": _sysfile(s.vmstat),
            b"cpuinfo": _sysfile(s.cpuinfo),
            b"version": _sysfile(s.version),
            b"cmdline": _sysfile(s.cmdline),
            b"swaps": _sysfile(b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"),
            b"partitions": _sysfile(b"major minor  #blocks  name\n\n"),
            b"diskstats": _sysfile(b""),
            b"devices": _sysfile(b"Character devices:\n  1 mem\n  4 /dev/vc/0\n  4 tty\n"
                                 b"  5 /dev/tty\n  5 /dev/console\n  5 /dev/ptmx\n"
                                 b"136 pts\n\nBlock devices:\n"),
            b"sys": self.sysctl.tree(),
            b"sysvipc": DirNode({b"shm": _sysfile(lambda: self._ipc().proc_shm(self._opener_ns())),
                                 b"sem": _sysfile(lambda: self._ipc().proc_sem()),
                                 b"msg": _sysfile(lambda: self._ipc().proc_msg(self._opener_ns()))}),
            b"net": DirNode(self.net.proc_entries()),
        }
        me = _current()
        if me is not None:
            ns = self.pidns
            out[b"thread-self"] = SymlinkNode(b"%d/task/%d" % (ns.vpid(me.tgid),
                                                               ns.vpid(me.tid)))
            out[b"mounts"] = SymlinkNode(b"self/mounts")
        return out

    def _opener_ns(self) -> PidNamespace:
        """The reader's pid namespace (sysvipc_proc_open's: not the mount's)."""
        me = _current()
        return me.pidns if me is not None else self.kernel.pidns

    def _ipc(self) -> IpcNamespace:
        """The reader's IPC namespace (the kernel's first one outside a syscall)."""
        me = _current()
        return ipc_of(me) if me is not None else self.kernel.ipc

    # SysProvider ----------------------------------------------------------------------------

    def sys_entries(self) -> dict[bytes, Node]:
        out = sys_tree(self.system)
        out[b"class"] = DirNode({b"net": self.net.sys_class_net()})
        return out


def _current() -> Task | None:
    from sentry.kernel.current import CURRENT_TASK

    return CURRENT_TASK.get(None)
