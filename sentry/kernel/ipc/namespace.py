"""One sandbox's IPC namespace: the System V objects by id and key, their limits (what
/proc/sys/kernel shows and root may change), SEM_UNDO records by process, the text of
/proc/sysvipc, and the POSIX message queues' filesystem."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vfs.fs.mqueue import MqueueFS
from vfs.memlimit import MemoryLimit
from vfs.mount import Mount

from .msg import MsgQueue
from .perm import IdSpace
from .sem import SemSet
from .shm import Segment

if TYPE_CHECKING:
    from sentry.kernel.pidns import PidNamespace

    from ..task import Task


@dataclass
class IpcLimits:
    """Linux's defaults (include/uapi/linux/shm.h, msg.h, sem.h)."""

    shmmax: int = 18446744073692774399
    shmall: int = 18446744073692774399
    shmmni: int = 4096
    msgmax: int = 8192
    msgmnb: int = 16384
    msgmni: int = 32000
    sem: list[int] = field(default_factory=lambda: [32000, 1024000000, 500, 32000])

    @property
    def semmsl(self) -> int:
        return self.sem[0]

    @property
    def semmns(self) -> int:
        return self.sem[1]

    @property
    def semopm(self) -> int:
        return self.sem[2]

    @property
    def semmni(self) -> int:
        return self.sem[3]


class IpcNamespace:
    """An IPC namespace's System V and POSIX message queue state: the Kernel's first
    (`Kernel.ipc`), or one a process made with CLONE_NEWIPC (`Task.ipc`; `ipc_of` says
    which a task is in)."""

    def __init__(self, memory: MemoryLimit | None = None) -> None:
        self.limits = IpcLimits()
        self.ino = 4026531839  # its nsfs inode (/proc/PID/ns/ipc): the initial namespace's
        self.memory = memory  # the sandbox's memory limit, which segments are charged to
        self.shm: IdSpace[Segment] = IdSpace()
        self.sem: IdSpace[SemSet] = IdSpace()
        self.msg: IdSpace[MsgQueue] = IdSpace()
        self.shm_pages = 0  # pages of every segment (SHM_INFO's shm_tot, against shmall)
        self.sem_count = 0  # semaphores of every set (against semmns)
        self.msg_bytes = 0  # bytes queued in every queue (MSG_INFO)
        self.msg_count = 0  # messages queued in every queue (MSG_INFO)
        #: SEM_UNDO list key (Task.sem_undo_key) -> semid -> each semaphore's adjustment,
        #: applied when the list's last user exits.
        self.sem_undo: dict[int, dict[int, list[int]]] = {}
        #: POSIX message queues: the namespace's mqueue filesystem (what mq_open names and
        #: /dev/mqueue mounts) on an internal mount of its own, as Linux's ns->mq_mnt.
        self.mqueue = MqueueFS()
        self.mq_mount = Mount(self.mqueue, self.mqueue.root, 0, "mqueue")
        #: the namespaces made from this one (CLONE_NEWIPC), released with it
        self.children: list[IpcNamespace] = []

    def new(self, ino: int) -> IpcNamespace:
        """A fresh, empty namespace with the same memory limit (create_ipc_ns), its nsfs
        inode `ino`."""
        ns = IpcNamespace(self.memory)
        ns.ino = ino
        self.children.append(ns)
        return ns

    def process_exited(self, key: int, pid: int) -> None:
        """exit_sem: apply and drop the SEM_UNDO adjustments of list `key` (`pid` is the
        last to change the semaphores)."""
        for semid, adj in self.sem_undo.pop(key, {}).items():
            try:
                s = self.sem.find(semid)
            except OSError:
                continue
            s.undo_exit(adj, pid)

    def release(self) -> None:
        """The sandbox ended: free the host memory of segments nobody removed (the
        objects stay, for inspection)."""
        for seg in self.shm:
            seg.free_memory()
        for ns in self.children:
            ns.release()

    # /proc/sysvipc ----------------------------------------------------------------------------

    def proc_shm(self, pidns: PidNamespace) -> bytes:
        """/proc/sysvipc/shm, the pids in the opener's namespace `pidns`."""
        out = [b"       key      shmid perms                  size  cpid  lpid nattch   uid"
               b"   gid  cuid  cgid      atime      dtime      ctime                   rss"
               b"                  swap\n"]
        for s in self.shm:
            p = s.perm
            out.append(b"%10d %10d  %4o %21d %5d %5d  %5d %5d %5d %5d %5d %10d %10d %10d "
                       b"%21d %21d\n" % (p.key, p.id, p.mode, s.size, pidns.vpid(s.cpid), pidns.vpid(s.lpid),
                                         s.nattch, p.uid, p.gid, p.cuid, p.cgid, s.atime,
                                         s.dtime, s.ctime, s.rss(), 0))
        return b"".join(out)

    def proc_sem(self) -> bytes:
        out = [b"       key      semid perms      nsems   uid   gid  cuid  cgid      otime"
               b"      ctime\n"]
        for s in self.sem:
            p = s.perm
            out.append(b"%10d %10d  %4o %10d %5d %5d %5d %5d %10d %10d\n" % (
                p.key, p.id, p.mode, len(s.sems), p.uid, p.gid, p.cuid, p.cgid, s.otime,
                s.ctime))
        return b"".join(out)

    def proc_msg(self, pidns: PidNamespace) -> bytes:
        """/proc/sysvipc/msg, the pids in the opener's namespace `pidns`."""
        out = [b"       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid"
               b"  cuid  cgid      stime      rtime      ctime\n"]
        for q in self.msg:
            p = q.perm
            out.append(b"%10d %10d  %4o  %10d %10d %5d %5d %5d %5d %5d %5d %10d %10d %10d\n"
                       % (p.key, p.id, p.mode, q.cbytes, len(q.messages), pidns.vpid(q.lspid), pidns.vpid(q.lrpid),
                          p.uid, p.gid, p.cuid, p.cgid, q.stime, q.rtime, q.ctime))
        return b"".join(out)


def ipc_of(t: Task) -> IpcNamespace:
    """The IPC namespace `t` is in."""
    return t.ipc if t.ipc is not None else t.kernel.ipc
