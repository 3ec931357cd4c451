"""The kernel's side of /proc: a `vfs.fs.procfs.ProcProvider` over a Kernel's processes.

Why here: vfs must not import the Sentry, so procfs asks a provider for everything per
process; the Kernel's process table is the truth, and each process's `ProcessImage`
(recorded by the kernel at load time and at every execve) gives exe, cmdline and environ
for every process, not just the first program. Construct one per sandbox and set it as
the Procfs's provider::

    procfs.provider = ProcView(kernel)

Per process: cwd, root, exe, cmdline, environ (read from the process's memory, as Linux
does), comm, status, stat, mounts, fd/. Host-fd files show the host's kind of name
(pipe:[N], /dev/pts/N), never a host path.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from vfs.fs.procfs import mounts_text
from vfs.fs.synthetic import DirNode, FileNode, Node, SymlinkNode

from . import jobctl, sigstate
from .current import CURRENT_TASK

if TYPE_CHECKING:
    from .kernel import Kernel
    from .task import Task

_READ_LIMIT = 1 << 20  # cmdline/environ longer than this are cut (Linux reads page by page)


class ProcView:
    """/proc's provider for one Kernel.

    Args:
        kernel: the sandbox's Kernel (its `procs` table and `vfs`).
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    @property
    def vfs(self) -> Any:
        return self.kernel.vfs

    # ProcProvider ---------------------------------------------------------------------------

    def self_pid(self) -> int | None:
        """The process doing the current syscall (None outside any syscall)."""
        t = _current()
        return t.tgid if t is not None else None

    def pids(self) -> list[int]:
        return sorted({*self.kernel.procs, *self.kernel.zombie_tasks})

    def extra_entries(self) -> dict[bytes, Node]:
        return {}

    def pid_entries(self, pid: int) -> dict[bytes, Node] | None:
        t = self.kernel.procs.get(pid)
        if t is None:
            z = self.kernel.zombie_tasks.get(pid)
            return None if z is None else self._zombie_entries(z)
        uid, gid = t.creds.uid, t.creds.gid
        return {
            b"cwd": SymlinkNode(lambda: self.vfs.getcwd(t.fs)),
            b"root": SymlinkNode(b"/"),
            b"exe": SymlinkNode(lambda: self._exe(t)),
            b"cmdline": FileNode(lambda: self._cmdline(t)),
            b"environ": FileNode(lambda: self._environ(t), 0o400, uid=uid, gid=gid),
            b"comm": FileNode(lambda: t.comm + b"\n", 0o644),
            b"status": FileNode(lambda: self._status(t)),
            b"stat": FileNode(lambda: self._stat(t)),
            b"mounts": FileNode(lambda: mounts_text(self.vfs, t.fs)),
            b"fd": DirNode(lambda: self._fds(t), 0o500),
        }

    def _zombie_entries(self, t: Task) -> dict[bytes, Node]:
        """A process that ended and is not yet reaped: State Z, no memory, files or exe."""
        return {
            b"cmdline": FileNode(b""),
            b"environ": FileNode(b"", 0o400),
            b"comm": FileNode(t.comm + b"\n", 0o644),
            b"status": FileNode(lambda: self._status(t)),
            b"stat": FileNode(lambda: self._stat(t)),
            b"fd": DirNode({}, 0o500),
        }

    def _ppid(self, t: Task) -> int:
        z = self.kernel.zombies.get(t.tgid) if t.tgid not in self.kernel.procs else None
        return z[0] if z is not None else t.ppid

    def _state(self, t: Task) -> str:
        if t.tgid not in self.kernel.procs:
            return "Z (zombie)"
        return jobctl.state_letter(t)

    # contents ------------------------------------------------------------------------------

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

    def _status(self, t: Task) -> bytes:
        """Linux's fields in Linux's order, those the Sentry knows: ids, state, threads,
        signal sets (pending, blocked, ignored, caught) and capabilities."""
        c, fs = t.creds, t.fs
        uids = (c.uid, c.euid, c.suid, c.fsuid) if c is not None else (0, 0, 0, 0)
        gids = (c.gid, c.egid, c.sgid, c.fsgid) if c is not None else (0, 0, 0, 0)
        groups = " ".join(str(g) for g in sorted(c.groups)) if c is not None else ""
        umask = getattr(fs, "umask", 0o022)
        fdt = t.fdtable
        fdsize = max(64, len(fdt.items()) if fdt is not None else 0)
        sh = t.leader.__dict__.get("_sighand") or sigstate.SigHand()  # read, never created
        ts = t.__dict__.get("_sig") or sigstate.ThreadSignals()
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
        caps = (c.cap_inheritable, c.cap_permitted, c.cap_effective, c.cap_bounding) \
            if c is not None else (0, 0, 0, 0)
        nnp = 1 if t.prctl_state.get(38) else 0  # PR_SET_NO_NEW_PRIVS
        return (f"Name:\t{os.fsdecode(t.comm)}\nUmask:\t{umask:04o}\n"
                f"State:\t{self._state(t)}\nTgid:\t{t.tgid}\nNgid:\t0\n"
                f"Pid:\t{t.tgid}\nPPid:\t{self._ppid(t)}\nTracerPid:\t0\n"
                f"Uid:\t{uids[0]}\t{uids[1]}\t{uids[2]}\t{uids[3]}\n"
                f"Gid:\t{gids[0]}\t{gids[1]}\t{gids[2]}\t{gids[3]}\n"
                f"FDSize:\t{fdsize}\nGroups:\t{groups}\n"
                f"Threads:\t{max(1, len(t.leader.threads))}\nSigQ:\t{queued}/63704\n"
                f"SigPnd:\t{pend:016x}\nShdPnd:\t{shpend:016x}\n"
                f"SigBlk:\t{ts.mask:016x}\nSigIgn:\t{ign:016x}\nSigCgt:\t{cgt:016x}\n"
                f"CapInh:\t{caps[0]:016x}\nCapPrm:\t{caps[1]:016x}\n"
                f"CapEff:\t{caps[2]:016x}\nCapBnd:\t{caps[3]:016x}\n"
                f"CapAmb:\t{0:016x}\nNoNewPrivs:\t{nnp}\n").encode()

    def _stat(self, t: Task) -> bytes:
        """The fields ps and pgrep read (pid, comm, state, ppid, pgrp, session, threads);
        times and memory figures are 0."""
        state = self._state(t)[0]
        nthreads = max(1, len(t.leader.threads))
        fields = [t.tgid, f"({os.fsdecode(t.comm)})", state, self._ppid(t), t.pgid, t.sid,
                  0, -1, 0, *[0] * 8, 20, 0, nthreads, *[0] * 32]  # 52 fields
        return (" ".join(map(str, fields)) + "\n").encode()

    def _fds(self, t: Task) -> dict[bytes, Node]:
        fdtable = t.fdtable
        if fdtable is None:
            return {}
        return {str(fd).encode(): SymlinkNode(self._fd_target(f, t.fs))
                for fd, f in fdtable.items()}

    def _fd_target(self, f: Any, fs: Any) -> bytes:
        vd = getattr(f, "vd", None)
        if vd is not None:
            if vd.mount.parent is None and vd.mount is not self.vfs.root_mount:
                return vd.dentry.name  # anonymous files (pipefs): "pipe:[N]"
            return self.vfs.path_of(fs, vd)
        hostfd = getattr(f, "fd", None)
        if isinstance(hostfd, int):
            try:
                target = os.readlink(f"/proc/self/fd/{hostfd}")
            except OSError:
                return b"anon_inode:[host]"
            if target.startswith(("pipe:", "socket:", "anon_inode:", "/dev/pts/", "/dev/tty",
                                  "/dev/null")):
                return target.encode()
            return b"host:[%d]" % hostfd
        return b"anon_inode:[unknown]"


def _current() -> Task | None:
    return CURRENT_TASK.get(None)
