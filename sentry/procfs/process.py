"""/proc/PID and /proc/PID/task/TID: one process's (or thread's) files, from its Task, its
address space (the Sentry's VMAs), its fd table and its credentials.

Per process: cwd, root, exe, cmdline, environ (read from the process's memory, as Linux
does), comm (writable), stat, status, statm, maps, smaps, limits, auxv, mounts,
mountinfo, cgroup, io, oom_score, oom_score_adj (writable), wchan, personality,
loginuid, sessionid, ns/, fd/, fdinfo/, mem, task/. Host-fd files show the host's kind of
name (pipe:[N], /dev/pts/N), never a host path.
"""

from __future__ import annotations

import errno
import os
import struct
from typing import TYPE_CHECKING, Any

from sentry.kernel import jobctl, sigstate, usage
from sentry.kernel.ipc import ipc_of
from sentry.kernel.limits import DEFAULT_RLIMITS, RLIM_INFINITY
from sentry.kernel.pidns import ns_ids
from sentry.kernel.posix_timers import SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID, timers_of
from sentry.kernel.uts import uts_of
from sentry.mm.vma import PAGE
from vfs.fs.procfs import mountinfo_text, mounts_text, mountstats_text
from vfs.fs.synthetic import DirNode, FileNode, Node, StreamNode

from .links import NAMESPACES, Links, check_trace
from .system import cpu_list

if TYPE_CHECKING:
    from sentry.kernel.kernel import Kernel
    from sentry.kernel.pidns import PidNamespace
    from sentry.kernel.task import Task
    from sentry.mm.vma import Vma

    from .system import System

_READ_LIMIT = 1 << 20  # cmdline/environ longer than this are cut (Linux reads page by page)
_O_LARGEFILE = 0o100000
_SHM_DEV = os.makedev(0, 1)  # the device maps shows for System V segments (Linux's shm mount)
_O_CLOEXEC = 0o2000000

_LIMITS = (("Max cpu time", "seconds"), ("Max file size", "bytes"),
           ("Max data size", "bytes"), ("Max stack size", "bytes"),
           ("Max core file size", "bytes"), ("Max resident set", "bytes"),
           ("Max processes", "processes"), ("Max open files", "files"),
           ("Max locked memory", "bytes"), ("Max address space", "bytes"),
           ("Max file locks", "locks"), ("Max pending signals", "signals"),
           ("Max msgqueue size", "bytes"), ("Max nice priority", ""),
           ("Max realtime priority", ""), ("Max realtime timeout", "us"))
_SECCOMP_MODE_FILTER = 2


def _einval() -> OSError:
    return OSError(errno.EINVAL, os.strerror(errno.EINVAL))


async def _dev_ino(vd: Any) -> tuple[int, int]:
    """The device and inode stat(2) reports for a VFS file (0, 0 if it cannot say)."""
    if vd is None:
        return 0, 0
    try:
        st = await vd.mount.fs.stat(vd.dentry)
        return st.dev, st.ino
    except Exception:  # a file whose filesystem is gone: no identity to show
        return 0, 0


def _current() -> Task | None:
    from sentry.kernel.current import CURRENT_TASK

    return CURRENT_TASK.get(None)


def _ns_ino(t: Task, name: bytes, ino: int) -> int:
    """The nsfs inode of `t`'s namespace `name`: its pid, UTS, IPC and mount namespaces'
    own, the others the sandbox's one of each (Linux's initial namespaces' numbers)."""
    if name == b"pid":
        return t.pidns.ino
    if name == b"pid_for_children":
        ns = t.pidns_for_children or t.pidns
        return ns.ino if ns.init or ns.parent is None else 0  # none before its first child
    if name == b"uts":
        return uts_of(t).ino
    if name == b"ipc":
        return ipc_of(t).ino
    if name == b"mnt" and t.fs is not None and t.fs.table is not None:
        return t.fs.table.ns_ino
    return ino


class ProcessFiles:
    """The files of /proc/PID for one kernel.

    Args:
        kernel: the sandbox's Kernel.
        system: the machine view (clock ticks, CPUs).
        pidns: the pid namespace whose numbers the files show (the proc mount's; None:
            the sandbox's first).
    """

    def __init__(self, kernel: Kernel, system: System, pidns: PidNamespace | None = None) -> None:
        self.kernel = kernel
        self.system = system
        self.links = Links(kernel)
        self.pidns = pidns if pidns is not None else kernel.pidns

    def _v(self, gpid: int) -> int:
        """A kernel pid as this /proc shows it (0 outside its namespace)."""
        return self.pidns.vpid(gpid)

    def _ns_ids(self, t: Task, gpid: int) -> str:
        """NStgid/NSpid's list: `gpid` in this /proc's namespace, then in each one below
        it down to `t`'s own."""
        return "\t".join(str(i) for i in ns_ids(self.pidns, t.pidns, gpid))

    @property
    def vfs(self) -> Any:
        return self.kernel.vfs

    # directories -----------------------------------------------------------------------------

    def entries(self, t: Task) -> dict[bytes, Node]:
        """/proc/PID of live process `t` (its leader thread)."""
        out = self._common(t, t, thread=False)
        out[b"task"] = self._tasks(t)
        out[b"timers"] = FileNode(lambda: self._timers(t))
        return out

    def thread_entries(self, th: Task) -> dict[bytes, Node]:
        """/proc/TID of a thread that is not its process's leader: not listed in /proc,
        but reachable by its id, as on Linux (its own stat and status, its process's
        task/)."""
        out = self._common(th.leader, th, thread=True)
        out[b"task"] = self._tasks(th.leader)
        return out

    def _tasks(self, t: Task) -> DirNode:
        return DirNode(lambda: {str(self._v(th.tid)).encode(): DirNode(self._thread(th))
                                for th in sorted(t.leader.threads, key=lambda x: x.tid)})

    def _thread(self, th: Task) -> dict[bytes, Node]:
        out = self._common(th.leader, th, thread=True)
        out[b"children"] = FileNode(lambda: self._children(th))
        return out

    def _common(self, t: Task, th: Task, *, thread: bool) -> dict[bytes, Node]:
        """What /proc/PID and /proc/PID/task/TID share; `th` is the thread whose own files
        (comm, stat, status) these are."""
        creds = t.creds
        uid = creds.uid if creds is not None else 0
        gid = creds.gid if creds is not None else 0

        def ro(src: Any, mode: int = 0o444) -> FileNode:
            return FileNode(src, mode, uid=uid, gid=gid)

        return {
            b"cwd": self.links.dir_link(t, "cwd"),
            b"root": self.links.dir_link(t, "root"),
            b"exe": self.links.exe(t, lambda: self._exe(t)),
            b"cmdline": ro(lambda: self._cmdline(t)),
            b"environ": ro(lambda: self._environ(t), 0o400),
            b"comm": FileNode(lambda: th.comm + b"\n", 0o644, uid=uid, gid=gid,
                              write=lambda data, _off: self._set_comm(th, data)),
            b"status": ro(lambda: self._status(t, th, thread)),
            b"stat": ro(lambda: self._stat(t, th, thread)),
            b"statm": ro(lambda: self._statm(t)),
            b"maps": ro(lambda: self._maps(t)),
            b"smaps": ro(lambda: self._smaps(t)),
            b"limits": ro(lambda: self._limits(t)),
            b"auxv": ro(lambda: self._auxv(t), 0o400),
            b"mounts": ro(lambda: mounts_text(self.vfs, t.fs)),
            b"mountinfo": ro(lambda: mountinfo_text(self.vfs, t.fs)),
            b"mountstats": ro(lambda: mountstats_text(self.vfs, t.fs), 0o400),
            b"cgroup": ro(b"0::/\n"),
            b"io": ro(lambda: self._io(t), 0o400),
            b"oom_score": ro(b"0\n"),
            b"oom_score_adj": FileNode(lambda: b"%d\n" % t.leader.oom_score_adj, 0o644,
                                       uid=uid, gid=gid,
                                       write=lambda data, _off: self._set_oom(t, data)),
            b"wchan": ro(b"0"),
            b"personality": ro(lambda: self._personality(t), 0o400),
            b"loginuid": ro(b"4294967295"),
            b"sessionid": ro(b"4294967295"),
            b"ns": DirNode({name: self.links.ns(t, name, _ns_ino(t, name, ino))
                            for name, ino in NAMESPACES.items()}, 0o511),
            b"fd": DirNode(lambda: self._fds(t), 0o500, uid=uid, gid=gid),
            b"fdinfo": DirNode(lambda: self._fdinfo(t), 0o500, uid=uid, gid=gid),
            b"mem": StreamNode(lambda n, off: self._mem_read(t, n, off),
                               lambda data, off: self._mem_write(t, data, off),
                               opened=lambda: self._mem_open(t), uid=uid, gid=gid),
        }

    def zombie_entries(self, t: Task) -> dict[bytes, Node]:
        """A process that ended and is not yet reaped: State Z, no memory, files or exe."""
        return {
            b"cmdline": FileNode(b""),
            b"environ": FileNode(b"", 0o400),
            b"comm": FileNode(t.comm + b"\n", 0o644),
            b"status": FileNode(lambda: self._status(t, t, False)),
            b"stat": FileNode(lambda: self._stat(t, t, False)),
            b"statm": FileNode(b"0 0 0 0 0 0 0\n"),
            b"maps": FileNode(b""),
            b"fd": DirNode({}, 0o500),
        }

    # identity ----------------------------------------------------------------------------

    def _live(self, t: Task) -> bool:
        return t.tgid in self.kernel.procs

    def _ppid(self, t: Task) -> int:
        z = self.kernel.zombies.get(t.tgid) if not self._live(t) else None
        return self._v(z[0] if z is not None else t.ppid)

    def _tracer(self, t: Task) -> int:
        """TracerPid: the tracer's process id as this /proc numbers it (0 when not traced)."""
        tr = t.ptrace
        return self._v(tr.tracer.tgid) if tr is not None else 0

    def _state(self, t: Task, th: Task | None = None) -> str:
        """The process's state, or with `th` that thread's own (task/TID): S while it
        sleeps in a syscall, unless it is the reader."""
        if not self._live(t):
            return "Z (zombie)"
        tr = (th or t).ptrace
        if tr is not None and tr.stop_kind is not None:
            return "t (tracing stop)"
        state = jobctl.state_letter(t)
        if th is None or state[0] == "T":
            return state
        return "S (sleeping)" if th._sleeps and th is not _current() else "R (running)"

    def _exe(self, t: Task) -> bytes:
        img = t.image
        if img is None:
            return b""
        if img.exe_vd is not None:
            reader = _current()
            fs = reader.fs if reader is not None and reader.fs is not None else t.fs
            try:
                return self.vfs.path_of(fs, img.exe_vd)
            except Exception:  # a dentry the namespace no longer knows: the exec-time name
                pass
        return img.exe

    def _cmdline(self, t: Task) -> bytes:
        """Linux's get_mm_cmdline: the argument area of the process's memory; if its last
        byte is no longer NUL (setproctitle), up to the first NUL, into the environment."""
        img = t.image
        if img is None:
            return b""
        fallback = b"".join(a + b"\0" for a in img.argv)
        if not img.arg_end:
            return fallback
        try:
            args = t.stub.read(img.arg_start, min(img.arg_end - img.arg_start, _READ_LIMIT))
            if args and args[-1:] != b"\0":
                end = img.env_end if img.env_start == img.arg_end else img.arg_end
                whole = t.stub.read(img.arg_start, min(end - img.arg_start, _READ_LIMIT))
                nul = whole.find(b"\0")
                return whole if nul < 0 else whole[:nul + 1]  # the NUL included
            return args
        except OSError:
            return fallback

    def _environ(self, t: Task) -> bytes:
        img = t.image
        if img is None:
            return b""
        if img.env_end > img.env_start:
            try:
                return t.stub.read(img.env_start,
                                   min(img.env_end - img.env_start, _READ_LIMIT))
            except OSError:
                pass
        return b"".join(e + b"\0" for e in img.envp)

    def _set_comm(self, th: Task, data: bytes) -> None:
        """Like prctl(PR_SET_NAME): up to 15 bytes, a trailing newline dropped."""
        th.comm = data.split(b"\n", 1)[0][:15] if data != b"\n" else b""

    def _set_oom(self, t: Task, data: bytes) -> None:
        """A decimal in [-1000, 1000] (surrounding blanks allowed), else EINVAL; lowering
        it below the current value needs CAP_SYS_RESOURCE, as on Linux."""
        try:
            value = int(data.strip() or b"x", 10)
        except ValueError:
            raise _einval() from None
        if not -1000 <= value <= 1000:
            raise _einval()
        me = _current()
        c = me.creds if me is not None else None
        if value < t.leader.oom_score_adj and c is not None and not c.has_cap(24):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        t.leader.oom_score_adj = value

    def _children(self, th: Task) -> bytes:
        kids = sorted(self._v(p.tgid) for p in self.kernel.procs.values()
                      if p.ppid == th.tgid)
        return "".join(f"{k} " for k in kids).encode()

    # memory ---------------------------------------------------------------------------------

    def _vsize(self, t: Task) -> int:
        return t.mm.mapped + self._vdso(t)

    @staticmethod
    def _vdso(t: Task) -> int:
        """The vdso and vvar pages, which count in VmSize as on Linux."""
        return sum(e - s for s, e, n in t.mm.reserved if n.startswith("[v"))

    @staticmethod
    def _is_exe(t: Task, v: Vma) -> bool:
        """A mapping of the program itself: the loader maps its segments under the path
        execve was given (the interpreter's under its own)."""
        img = t.image
        return img is not None and v.file is None and v.name == img.exe

    def _segments(self, t: Task) -> dict[str, int]:
        """Bytes of the address space by kind, as status's Vm* lines count them."""
        out = {"data": 0, "stack": 0, "exe": 0, "lib": 0, "startcode": 0, "endcode": 0,
               "startstack": 0}
        for v in t.mm.vmas:
            size = v.end - v.start
            if v.growsdown or v.name == b"[stack]":
                out["stack"] += size
                out["startstack"] = v.end - PAGE
            elif v.prot & 4 and self._is_exe(t, v):
                out["exe"] += size
                out["startcode"] = out["startcode"] or v.start
                out["endcode"] = v.end
            elif v.prot & 4 and (v.file is not None or v.name.startswith(b"/")):
                out["lib"] += size
            elif v.prot & 2 and not v.shared:
                out["data"] += size
        return out

    def _cpu(self, t: Task, th: Task, thread: bool) -> usage.CpuTimes:
        """The thread's (or the whole process's) CPU time; a zombie's as it ended."""
        if self._live(t):
            return usage.cpu_times(th.stub.pid, thread=thread)
        end = t.final_usage
        return usage.CpuTimes(end.utime, end.stime) if end is not None else usage.CpuTimes()

    def _resident(self, t: Task) -> usage.Resident:
        return usage.resident(t.stub.pid) if self._live(t) else usage.Resident()

    def _rss_file(self, t: Task) -> int:
        """Resident pages of private file mappings (the loader's copies of the program and
        its interpreter, and mmap'd files): what Linux counts as RssFile, file pages in
        the page cache. Here they are copies, but a program reads them as file pages."""
        if not self._live(t):
            return 0
        pid = t.stub.pid
        return sum(usage.resident_pages(pid, v.start, v.end) for v in t.mm.vmas
                   if (v.origin is not None or v.file is not None) and not v.shared)

    def _statm(self, t: Task) -> bytes:
        seg = self._segments(t)
        r = self._resident(t)
        shared = min(r.pages, r.shared + self._rss_file(t))
        return b"%d %d %d %d 0 %d 0\n" % (self._vsize(t) // PAGE, r.pages, shared,
                                          seg["exe"] // PAGE,
                                          (seg["data"] + seg["stack"]) // PAGE)

    async def _vma_rows(self, t: Task) -> list[tuple[int, int, int, bool, int, int, int,
                                                     bytes]]:
        """(start, end, prot, shared, offset, dev, ino, name) in address order, the stub's
        own ranges hidden and [vdso]/[vvar] shown. A file's device and inode are what
        stat(2) of it says in the sandbox."""
        reader = _current()
        fs = reader.fs if reader is not None and reader.fs is not None else t.fs
        rows: list[tuple[int, int, int, bool, int, int, int, bytes]] = []
        for v in t.mm.vmas:
            dev = ino = 0
            name = v.name
            vd = getattr(v.file, "vd", None) if v.file is not None else None
            if vd is not None:
                dev, ino = await _dev_ino(vd)
                try:
                    name = self.vfs.path_of(fs, vd)
                except Exception:  # a file gone from the namespace: its last name
                    name = vd.dentry.name
            elif v.file is not None and hasattr(v.file, "maps_name"):
                ino, name = v.file.maps_name  # a System V segment: its id, /SYSV<key>
                dev = _SHM_DEV
            elif v.file is not None and v.shared:
                name = b"/dev/zero (deleted)"
            elif v.origin is not None:  # a loader's copy of the program or interpreter
                dev, ino, ovd = v.origin
                if ovd is not None:
                    try:
                        name = self.vfs.path_of(fs, ovd)
                    except Exception:  # a file gone from the namespace: the exec-time name
                        pass
            rows.append((v.start, v.end, v.prot, v.shared, v.offset, dev, ino, name))
        for s, e, n in t.mm.reserved:
            if n.startswith("[v"):
                rows.append((s, e, 5 if n == "[vdso]" else 1, False, 0, 0, 0, n.encode()))
        return sorted(rows, key=lambda r: r[0])

    @staticmethod
    def _map_line(s: int, e: int, prot: int, shared: bool, off: int, dev: int, ino: int,
                  name: bytes) -> bytes:
        perms = (b"r" if prot & 1 else b"-") + (b"w" if prot & 2 else b"-") + (
            b"x" if prot & 4 else b"-") + (b"s" if shared else b"p")
        head = b"%08x-%08x %s %08x %02x:%02x %d " % (s, e, perms, off, os.major(dev),
                                                    os.minor(dev), ino)
        return (head.ljust(73) + name if name else head) + b"\n"

    async def _maps(self, t: Task) -> bytes:
        if not self._live(t):
            return b""
        return b"".join(self._map_line(*r) for r in await self._vma_rows(t))

    async def _smaps(self, t: Task) -> bytes:
        """maps plus each mapping's figures; Rss is the residency of its pages in the
        stub; a private file mapping without write permission counts as clean file pages
        (Linux's page cache; ours are copies), other private pages as dirty anonymous
        ones, shared mappings' as shared."""
        if not self._live(t):
            return b""
        out = []
        pid = t.stub.pid
        for s, e, prot, shared, off, dev, ino, name in await self._vma_rows(t):
            size = (e - s) // 1024
            rss = usage.resident_pages(pid, s, e) * 4 if not name.startswith(b"[v") else 0
            # a private file mapping never written (no PROT_WRITE) holds clean file pages
            clean = rss if ino and not shared and not prot & 2 else 0
            anon = 0 if shared else rss - clean
            flags = ["rd" if prot & 1 else "", "wr" if prot & 2 else "",
                     "ex" if prot & 4 else "", "mr", "mw", "me", "sh" if shared else "",
                     "gd" if name == b"[stack]" else "", "ac" if not shared else ""]
            fields = [("Size", size), ("KernelPageSize", 4), ("MMUPageSize", 4),
                      ("Rss", rss), ("Pss", rss), ("Pss_Dirty", anon),
                      ("Shared_Clean", 0), ("Shared_Dirty", rss - anon - clean),
                      ("Private_Clean", clean), ("Private_Dirty", anon),
                      ("Referenced", rss),
                      ("Anonymous", anon), ("KSM", 0), ("LazyFree", 0), ("AnonHugePages", 0),
                      ("ShmemPmdMapped", 0), ("FilePmdMapped", 0), ("Shared_Hugetlb", 0),
                      ("Private_Hugetlb", 0), ("Swap", 0), ("SwapPss", 0), ("Locked", 0)]
            out.append(self._map_line(s, e, prot, shared, off, dev, ino, name))
            out += [f"{k + ':':<16}{v:>8} kB\n".encode() for k, v in fields]
            out.append(b"THPeligible:    0\n")
            out.append(("VmFlags: " + " ".join(f for f in flags if f) + " \n").encode())
        return b"".join(out)

    # status and stat ------------------------------------------------------------------------

    def _signal_sets(self, t: Task, th: Task) -> tuple[int, int, int, int, int, int]:
        """(thread pending, shared pending, blocked, ignored, caught, queued count)."""
        sh = t.leader.__dict__.get("_sighand") or sigstate.SigHand()  # read, never created
        ts = th.__dict__.get("_sig") or sigstate.ThreadSignals()
        pend = sum(sigstate.bit(s) for s in ts.pending)
        shpend = sum(sigstate.bit(s) for s in sh.pending)
        queued = sum(len(q) for q in sh.pending.values()) + sum(
            len(q) for q in ts.pending.values())
        ign = cgt = 0
        for sig, act in sh.actions.items():
            if act[0] == sigstate.SIG_IGN:
                ign |= sigstate.bit(sig)
            elif act[0] != sigstate.SIG_DFL:
                cgt |= sigstate.bit(sig)
        return pend, shpend, ts.mask, ign, cgt, queued

    def _status(self, t: Task, th: Task, thread: bool) -> bytes:
        """Every field of Linux 6.1's status, in its order; Vm* from the Sentry's VMAs,
        VmRSS/VmHWM measured from the stub, no Vm* lines for a zombie (no memory)."""
        c, fs = t.creds, t.fs
        uids = (c.uid, c.euid, c.suid, c.fsuid) if c is not None else (0, 0, 0, 0)
        gids = (c.gid, c.egid, c.sgid, c.fsgid) if c is not None else (0, 0, 0, 0)
        groups = " ".join(str(g) for g in sorted(c.groups)) if c is not None else ""
        umask = getattr(fs, "umask", 0o022)
        fdt = t.fdtable
        fdsize = 64
        while fdt is not None and fdsize < (max(fdt.fds(), default=0) + 1):
            fdsize *= 2
        pend, shpend, blocked, ign, cgt, queued = self._signal_sets(t, th)
        caps = (c.cap_inheritable, c.cap_permitted, c.cap_effective, c.cap_bounding,
                c.cap_ambient) \
            if c is not None else (0, 0, 0, 0, 0)
        nnp = 1 if t.prctl_state.get(38) else 0  # PR_SET_NO_NEW_PRIVS
        gpid = th.tid if thread else t.tgid
        pid = self._v(gpid)
        live = self._live(t)
        cpus = self.system.cpus
        mask = sum(1 << cpu for cpu in cpus)
        cpus_text = cpu_list(cpus).decode().strip()
        times = self._cpu(t, th, thread)
        lines = [
            f"Name:\t{os.fsdecode(th.comm)}", f"Umask:\t{umask:04o}",
            f"State:\t{self._state(t, th if thread else None)}", f"Tgid:\t{self._v(t.tgid)}", "Ngid:\t0", f"Pid:\t{pid}",
            f"PPid:\t{self._ppid(t)}", f"TracerPid:\t{self._tracer(th if thread else t)}",
            "Uid:\t" + "\t".join(map(str, uids)), "Gid:\t" + "\t".join(map(str, gids)),
            f"FDSize:\t{fdsize}", f"Groups:\t{groups}{' ' if groups else ''}",
            f"NStgid:\t{self._ns_ids(t, t.tgid)}", f"NSpid:\t{self._ns_ids(t, gpid)}",
            f"NSpgid:\t{self._ns_ids(t, t.pgid)}", f"NSsid:\t{self._ns_ids(t, t.sid)}",
        ]
        if live:
            seg = self._segments(t)
            r = self._resident(t)
            rss_file = self._rss_file(t)
            vsize = self._vsize(t) // 1024
            rss = r.pages * 4
            lines += [f"{k}:\t{v:>8} kB" for k, v in (
                ("VmPeak", max(vsize, (t.mm.peak + self._vdso(t)) // 1024)),
                ("VmSize", vsize), ("VmLck", t.mm.locked_bytes() // 1024), ("VmPin", 0),
                ("VmHWM", max(r.peak_kb, rss)), ("VmRSS", rss),
                ("RssAnon", max(0, r.pages - r.shared - rss_file) * 4),
                ("RssFile", min(rss_file, r.pages - r.shared) * 4),
                ("RssShmem", r.shared * 4), ("VmData", seg["data"] // 1024),
                ("VmStk", seg["stack"] // 1024), ("VmExe", seg["exe"] // 1024),
                ("VmLib", seg["lib"] // 1024), ("VmPTE", max(4, vsize // 512 * 8 // 1024)),
                ("VmSwap", 0))]
            lines += ["HugetlbPages:\t       0 kB", "CoreDumping:\t0", "THP_enabled:\t1"]
        lines += [
            f"Threads:\t{max(1, len(t.leader.threads))}", f"SigQ:\t{queued}/63704",
            f"SigPnd:\t{pend:016x}", f"ShdPnd:\t{shpend:016x}", f"SigBlk:\t{blocked:016x}",
            f"SigIgn:\t{ign:016x}", f"SigCgt:\t{cgt:016x}",
            f"CapInh:\t{caps[0]:016x}", f"CapPrm:\t{caps[1]:016x}",
            f"CapEff:\t{caps[2]:016x}", f"CapBnd:\t{caps[3]:016x}", f"CapAmb:\t{caps[4]:016x}",
            f"NoNewPrivs:\t{nnp}", f"Seccomp:\t{0}", "Seccomp_filters:\t0",
            "Speculation_Store_Bypass:\tthread vulnerable",
            "SpeculationIndirectBranch:\tconditional enabled",
            f"Cpus_allowed:\t{mask:x}", f"Cpus_allowed_list:\t{cpus_text}",
            "Mems_allowed:\t1", "Mems_allowed_list:\t0",
            f"voluntary_ctxt_switches:\t{times.voluntary}",
            f"nonvoluntary_ctxt_switches:\t{times.involuntary}",
        ]
        return ("\n".join(lines) + "\n").encode()

    def _stat(self, t: Task, th: Task, thread: bool) -> bytes:
        """All 52 fields of Linux's stat: times from the stub's accounting, start time in
        ticks since the sandbox started, sizes from the Sentry's VMAs."""
        state = self._state(t, th if thread else None)[0]
        live = self._live(t)
        nthreads = max(1, len(t.leader.threads))
        times = self._cpu(t, th, thread)
        pend, shpend, blocked, ign, cgt, _ = self._signal_sets(t, th)
        vsize = rss = 0
        seg = {"startcode": 0, "endcode": 0, "startstack": 0}
        brk_start = 0
        img = t.image
        if live:
            vsize = self._vsize(t)
            rss = self._resident(t).pages
            seg.update(self._segments(t))
            brk_start = t.mm.brk_start
        arg = (img.arg_start, img.arg_end, img.env_start, img.env_end) \
            if img is not None and live else (0, 0, 0, 0)
        code = t.exit_status if t.exit_status is not None and not live else 0
        start = self.system.ticks(getattr(th, "start_time", self.kernel.start_monotonic))
        pid = self._v(th.tid if thread else t.tgid)
        tty = self.kernel.tty.ctty(t)  # tty_nr and tpgid: pts N is major 136
        tty_nr = 136 << 8 | (tty.index & 0xFF) | (tty.index & ~0xFF) << 12 if tty else 0
        tpgid = self._v(tty.pgrp) or -1 if tty else -1
        fields = [pid, f"({os.fsdecode(th.comm)})", state, self._ppid(t), self._v(t.pgid),
                  self._v(t.sid),
                  tty_nr, tpgid, 0x400000, 0, 0, 0, 0, times.utime, times.stime,
                  t.leader.child_usage.utime, t.leader.child_usage.stime, 20, 0,
                  nthreads, 0, start, vsize, rss, RLIM_INFINITY, seg["startcode"],
                  seg["endcode"], seg["startstack"], 0, 0, pend | shpend, blocked, ign, cgt,
                  0, 0, 0, 17, min(self.system.cpus, default=0), 0, 0, 0, 0, 0,
                  0, 0, brk_start, *arg, code]
        assert len(fields) == 52
        return (" ".join(map(str, fields)) + "\n").encode()

    # limits, auxv, io -----------------------------------------------------------------------

    def _personality(self, t: Task) -> bytes:
        """proc_pid_personality: the persona, to a caller that may ptrace-attach."""
        check_trace(t)
        return b"%08x\n" % t.personality

    def _timers(self, t: Task) -> bytes:
        """/proc/PID/timers (show_timer): the process's POSIX timers, newest first: id,
        signal and sigev_value, how it notifies whom (in this /proc's numbers), clock."""
        out = []
        for tm in reversed(list(timers_of(t).timers.values())):
            how = {SIGEV_NONE: b"none", SIGEV_THREAD: b"thread"}.get(
                tm.notify & ~SIGEV_THREAD_ID, b"signal")
            out.append(b"ID: %d\nsignal: %d/%016x\nnotify: %s/%s.%d\nClockID: %d\n" % (
                tm.id, tm.signo, tm.value & 0xFFFFFFFFFFFFFFFF, how,
                b"tid" if tm.notify == SIGEV_THREAD_ID else b"pid",
                self._v(tm.target.tid), tm.timer.clockid))
        return b"".join(out)

    def _limits(self, t: Task) -> bytes:
        def show(v: int) -> str:
            return "unlimited" if v == RLIM_INFINITY else str(v)

        lines = [f"{'Limit':<26}{'Soft Limit':<21}{'Hard Limit':<21}{'Units':<10}\n"]
        for res, (name, unit) in enumerate(_LIMITS):
            soft, hard = t.rlimits.get(res, DEFAULT_RLIMITS[res])
            if res == 7 and t.fdtable is not None and hasattr(t.fdtable, "limit"):
                soft = t.fdtable.limit
            lines.append(f"{name:<26}{show(soft):<21}{show(hard):<21}{unit:<10}\n")
        return "".join(lines).encode()

    def _auxv(self, t: Task) -> bytes:
        img = t.image
        pairs = getattr(img, "auxv", None) or {}
        return b"".join(struct.pack("<QQ", k, v) for k, v in pairs.items()) + bytes(16)

    @staticmethod
    def _io(t: Task) -> bytes:
        """The process's read/write accounting (its reaped children's included, as Linux
        adds them at wait); read_bytes/write_bytes count block-device I/O, which the
        sandbox's files (tmpfs, gofer, pipes) never cause, so they are 0 as for tmpfs."""
        io = t.leader.io
        return (b"rchar: %d\nwchar: %d\nsyscr: %d\nsyscw: %d\nread_bytes: 0\n"
                b"write_bytes: 0\ncancelled_write_bytes: 0\n"
                % (io.rchar, io.wchar, io.syscr, io.syscw))

    # mem -------------------------------------------------------------------------------------

    @staticmethod
    def _mem_open(t: Task) -> None:
        """Linux's PTRACE_MODE_ATTACH_FSCREDS check at open."""
        check_trace(t)

    def _mem_read(self, t: Task, n: int, offset: int) -> bytes:
        if not self._live(t):
            return b""
        n = min(n, 1 << 20)
        mm = t.mm
        if n <= 0 or offset < 0 or not (mm.is_mapped(offset, 1) or mm.host_area(offset)):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        out = b""
        while len(out) < n:  # up to the first unmapped page, as access_remote_vm stops
            addr = offset + len(out)
            if not (mm.is_mapped(addr, 1) or mm.host_area(addr)):
                break
            chunk = min(n - len(out), PAGE - addr % PAGE)
            try:
                out += t.stub.read(addr, chunk)
            except OSError:
                break
        if not out:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return out

    def _mem_write(self, t: Task, data: bytes, offset: int) -> int:
        if not self._live(t) or offset < 0 or not t.mm.is_mapped(offset, max(1, len(data))):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        try:
            t.stub.write_force(offset, data)  # FOLL_FORCE: read-only pages too, like Linux
        except OSError:
            raise OSError(errno.EIO, os.strerror(errno.EIO)) from None
        return len(data)

    # files -----------------------------------------------------------------------------------

    def _fds(self, t: Task) -> dict[bytes, Node]:
        fdtable = t.fdtable
        if fdtable is None:
            return {}
        return {str(fd).encode(): self.links.fd(t, f) for fd, f in fdtable.items()}

    def _fdinfo(self, t: Task) -> dict[bytes, Node]:
        fdtable = t.fdtable
        if fdtable is None:
            return {}
        out: dict[bytes, Node] = {}
        for fd, f in fdtable.items():
            flags = getattr(f, "flags", 0) | _O_LARGEFILE | (
                _O_CLOEXEC if fdtable.get_cloexec(fd) else 0)
            vd = getattr(f, "vd", None)
            mnt = vd.mount.id if vd is not None else 0
            ino = vd.dentry.inode.ino if vd is not None else 0
            text = b"pos:\t%d\nflags:\t0%o\nmnt_id:\t%d\nino:\t%d\n" % (
                getattr(f, "offset", 0), flags, mnt, ino)
            extra = getattr(f, "fdinfo", None)  # eventfd, timerfd, inotify, pidfd lines
            if extra is not None:
                text += extra(self.pidns)
            out[str(fd).encode()] = FileNode(text)
        return out
