"""/proc/sys: the sandbox kernel's tunables, read-only except kernel/hostname and
kernel/domainname, which are the kernel's UTS names (what uname reports) and which root in
the sandbox may change, as sethostname(2) would, and the System V IPC limits
(kernel/shm*, msg*, sem: the IPC namespace's `IpcLimits`; fs/mqueue/*: its mqueue
filesystem's), which root may change as in Linux.
"""

from __future__ import annotations

import errno
import os
import uuid
from typing import TYPE_CHECKING

from sentry.kernel.ipc import ipc_of
from sentry.kernel.limits import RELEASE, VERSION
from sentry.kernel.uts import Uts, uts_of
from vfs.fs.synthetic import DirNode, FileNode, Node, Source

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.kernel.pidns import PidNamespace

    from .system import System

_UTS_LEN = 64  # __NEW_UTS_LEN
_CAP_SYS_ADMIN = 21


def _ro(content: Source) -> FileNode:
    """A read-only sysctl: 0444, and opening it for writing is EACCES, even for root."""
    return FileNode(content, 0o444, readonly_errno=errno.EACCES)


def _nums(*values: int | str) -> FileNode:
    return _ro("\t".join(map(str, values)).encode() + b"\n")


class Sysctl:
    """The /proc/sys tree of one kernel.

    Args:
        kernel: its `hostname` and `domainname` are what the two writable files change.
        system: the machine view (memory limit, for threads-max).
    """

    def __init__(self, kernel: Kernel, system: System) -> None:
        self.kernel = kernel
        self.system = system
        self.boot_id = str(uuid.uuid4()).encode() + b"\n"

    def _ns(self) -> Uts:
        """The UTS namespace of the process reading or writing (the kernel's first when
        the VFS is used from outside a syscall)."""
        from sentry.kernel.current import CURRENT_TASK

        t = CURRENT_TASK.get(None)
        return uts_of(t) if t is not None else self.kernel.uts

    def _uts(self, attr: str) -> FileNode:
        def read() -> bytes:
            return bytes(getattr(self._ns(), attr)) + b"\n"

        def write(data: bytes, offset: int) -> int:
            """proc_dostring with sysctl_writes_strict: a write at offset 0 replaces the
            name, one at the end of it appends; the name stops at a newline or NUL and
            is cut to 64 bytes. Needs CAP_SYS_ADMIN (the file's mode already keeps
            non-root out)."""
            from sentry.kernel.current import CURRENT_TASK

            t = CURRENT_TASK.get(None)
            if t is not None and t.creds is not None and not t.creds.has_cap(_CAP_SYS_ADMIN):
                raise OSError(errno.EPERM, os.strerror(errno.EPERM))
            cur = bytes(getattr(self._ns(), attr))
            if offset > len(cur):
                return len(data)
            text = data
            for stop in (b"\n", b"\0"):
                text = text.split(stop, 1)[0]
            setattr(self._ns(), attr, (cur[:offset] + text)[:_UTS_LEN])
            return len(data)

        return FileNode(read, 0o644, write=write)

    def _ipc_limit(self, attr: str, count: int = 1, top: int = (1 << 31) - 1, low: int = 0,
                   mqueue: bool = False) -> FileNode:
        """A limit of the caller's IPC namespace (proc_dointvec_minmax /
        proc_doulongvec_minmax, on the namespace the reader or writer is in, as Linux's
        ipc sysctls): `count` numbers, each in [low, top]; anything else written is
        EINVAL. An attribute of its System V `IpcLimits`, or of its mqueue filesystem."""
        def limits() -> object:
            from sentry.kernel.current import CURRENT_TASK

            t = CURRENT_TASK.get(None)
            ns = ipc_of(t) if t is not None else self.kernel.ipc
            return ns.mqueue if mqueue else ns.limits

        def read() -> bytes:
            v = getattr(limits(), attr)
            return "\t".join(map(str, v if isinstance(v, list) else [v])).encode() + b"\n"

        def write(data: bytes, offset: int) -> int:
            try:
                vals = [int(w) for w in data.split()]
            except ValueError:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL)) from None
            if offset or not vals or len(vals) > count or any(not low <= v <= top for v in vals):
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            if count == 1:
                setattr(limits(), attr, vals[0])
            else:
                cur = getattr(limits(), attr)
                cur[:len(vals)] = vals
            return len(data)

        return FileNode(read, 0o644, write=write)

    def _pid_max(self) -> FileNode:
        """kernel/pid_max of the caller's pid namespace (Linux >= 6.14: one per namespace,
        PID_MAX_LIMIT in a new one); root (CAP_SYS_ADMIN) may set it within
        [max(301, 8 * CPUs), PID_MAX_LIMIT] (EINVAL outside), and numbers handed out there
        stay below it (`PidNamespace.next_number`)."""
        from sentry.kernel.current import CURRENT_TASK
        from sentry.kernel.pidns import PID_MAX_LIMIT, RESERVED_PIDS

        def ns() -> PidNamespace:
            t = CURRENT_TASK.get(None)
            return t.pidns if t is not None else self.kernel.pidns

        def read() -> bytes:
            return b"%d\n" % ns().pid_max

        def write(data: bytes, offset: int) -> int:
            t = CURRENT_TASK.get(None)
            if t is not None and t.creds is not None and not t.creds.has_cap(_CAP_SYS_ADMIN):
                raise OSError(errno.EPERM, os.strerror(errno.EPERM))
            low = max(RESERVED_PIDS + 1, 8 * len(self.system.cpus))
            try:
                value = int(data.split()[0]) if data.split() else -1
            except ValueError:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL)) from None
            if offset or not low <= value <= PID_MAX_LIMIT:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            ns().pid_max = value
            return len(data)

        return FileNode(read, 0o644, write=write)

    def _file_nr(self) -> bytes:
        seen: set[int] = set()
        n = 0
        for t in self.kernel.procs.values():
            if t.fdtable is not None and id(t.fdtable) not in seen:
                seen.add(id(t.fdtable))
                n += len(t.fdtable)
        return b"%d\t0\t9223372036854775807\n" % n

    def tree(self) -> DirNode:
        mem = self.system.memory or 0
        kernel: dict[bytes, Node] = {
            b"hostname": self._uts("hostname"),
            b"domainname": self._uts("domainname"),
            b"ostype": _ro(b"Linux\n"),
            b"osrelease": _ro(RELEASE + b"\n"),
            b"version": _ro(VERSION + b"\n"),
            b"pid_max": self._pid_max(),
            b"threads-max": _nums(max(20, mem // (8 * 16384))),
            b"ngroups_max": _nums(65536),
            b"cap_last_cap": _nums(40),
            b"shmmax": self._ipc_limit("shmmax", top=(1 << 64) - 1),
            b"shmall": self._ipc_limit("shmall", top=(1 << 64) - 1),
            b"shmmni": self._ipc_limit("shmmni", top=1 << 15),
            b"msgmax": self._ipc_limit("msgmax"),
            b"msgmnb": self._ipc_limit("msgmnb"),
            b"msgmni": self._ipc_limit("msgmni", top=1 << 15),
            b"sem": self._ipc_limit("sem", 4),
            b"tainted": _nums(0),
            b"overflowuid": _nums(65534),
            b"overflowgid": _nums(65534),
            b"random": DirNode({
                b"boot_id": _ro(self.boot_id),
                b"uuid": _ro(lambda: str(uuid.uuid4()).encode() + b"\n"),
                b"entropy_avail": _nums(256),
                b"poolsize": _nums(256),
            }),
            b"yama": DirNode({b"ptrace_scope": _nums(1)}),
        }
        fs: dict[bytes, Node] = {
            b"file-max": _nums(9223372036854775807),
            b"file-nr": _ro(self._file_nr),
            b"nr_open": _nums(1048576),
            b"pipe-max-size": _nums(1048576),
            b"inotify": DirNode({b"max_user_watches": _nums(65536),
                                b"max_user_instances": _nums(128),
                                b"max_queued_events": _nums(16384)}),
            b"mqueue": DirNode({
                b"msg_max": self._ipc_limit("msg_max", low=1, top=65536, mqueue=True),
                b"msgsize_max": self._ipc_limit("msgsize_max", low=128, top=16 << 20, mqueue=True),
                b"queues_max": self._ipc_limit("queues_max", mqueue=True),
                b"msg_default": self._ipc_limit("msg_default", low=1, top=65536, mqueue=True),
                b"msgsize_default": self._ipc_limit("msgsize_default", low=128, top=16 << 20,
                                                    mqueue=True),
            }),
        }
        vm: dict[bytes, Node] = {
            b"overcommit_memory": _nums(2),  # strict: the memory limit is CommitLimit
            b"overcommit_ratio": _nums(100),
            b"max_map_count": _nums(65530),
            b"mmap_min_addr": _nums(65536),
            b"swappiness": _nums(60),
        }
        net: dict[bytes, Node] = {
            b"core": DirNode({b"somaxconn": _nums(4096)}),
            b"ipv4": DirNode({b"ip_local_port_range": _nums(32768, 60999)}),
        }
        return DirNode({b"kernel": DirNode(kernel), b"fs": DirNode(fs), b"vm": DirNode(vm),
                        b"net": DirNode(net)})
