"""/proc/PID's magic links: fd/N, cwd, root, exe and ns/*.

Why magic: on Linux these links are not paths. Opening /proc/self/fd/0 reopens the very
object fd 0 holds (the pipe of `cat /dev/stdin`, bash's `<(...)` through /dev/fd/N, a file
unlinked while open), and cwd/root lead to the directory even when no path names it. The
VFS follows a `SymlinkNode`'s `jump` instead of its text; readlink keeps Linux's text
("pipe:[N]", "/path (deleted)", "anon_inode:[...]").

Another process's links need ptrace read access (PTRACE_MODE_READ_FSCREDS), checked at
readlink and at every follow, EACCES otherwise, as proc_fd_access_allowed does.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any

from vfs.abi import O_ACCMODE, O_APPEND, O_NONBLOCK, S_IFIFO, S_IFREG, Stat
from vfs.file import FileDescription
from vfs.fs.host import HostFD
from vfs.fs.synthetic import OpenedNode, SymlinkNode

if TYPE_CHECKING:
    from sentry.kernel.kernel import Kernel
    from sentry.kernel.task import Task
    from vfs.creds import Credentials
    from vfs.mount import VirtualDentry
    from vfs.virtualfs import VirtualFilesystem

CAP_SYS_PTRACE = 19
#: The namespace inode numbers the sandbox shows (those of Linux's initial namespaces).
NAMESPACES = {b"cgroup": 4026531835, b"ipc": 4026531839, b"mnt": 4026531841,
              b"net": 4026531840, b"pid": 4026531836, b"pid_for_children": 4026531836,
              b"time": 4026531834, b"time_for_children": 4026531834, b"user": 4026531837,
              b"uts": 4026531838}
_NSFS_DEV = os.makedev(0, 4)  # nsfs's device on Linux


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _current() -> Task | None:
    from sentry.kernel.current import CURRENT_TASK

    return CURRENT_TASK.get(None)


def may_trace(t: Task) -> bool:
    """ptrace_may_access(PTRACE_MODE_*_FSCREDS) of the current task on `t`: itself, a
    caller whose fsuid/fsgid are all of `t`'s uids/gids, or one with CAP_SYS_PTRACE."""
    me = _current()
    if me is None or me.tgid == t.tgid:
        return True
    mc, tc = me.creds, t.creds
    if mc is None or tc is None or mc.has_cap(CAP_SYS_PTRACE):
        return True
    return (mc.fsuid == tc.uid == tc.euid == tc.suid
            and mc.fsgid == tc.gid == tc.egid == tc.sgid)


def check_trace(t: Task) -> None:
    """EACCES unless the current task may read `t`'s links and memory."""
    if not may_trace(t):
        raise _err(errno.EACCES)


def _enxio(flags: int, creds: Credentials) -> FileDescription:
    raise _err(errno.ENXIO)


class Links:
    """The magic links of the processes of one VFS.

    Args:
        kernel: the sandbox's Kernel (its VFS: paths are shown from the reader's root).
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    @property
    def vfs(self) -> VirtualFilesystem:
        vfs = self.kernel.vfs
        if vfs is None:
            raise _err(errno.ENOENT)
        return vfs

    def _path(self, t: Task, vd: VirtualDentry) -> bytes:
        """d_path of `vd` seen from the reader's root (the process's own outside syscalls)."""
        reader = _current()
        fs = reader.fs if reader is not None and reader.fs is not None else t.fs
        if fs is None:
            raise _err(errno.ENOENT)
        return self.vfs.path_of(fs, vd)

    # cwd, root, exe ----------------------------------------------------------------------

    def dir_link(self, t: Task, which: str) -> SymlinkNode:
        """cwd or root: the directory of the process's fs context."""
        def vd() -> VirtualDentry:
            check_trace(t)
            if t.fs is None:
                raise _err(errno.ENOENT)
            return getattr(t.fs, which)

        return SymlinkNode(lambda: self._path(t, vd()), jump=vd)

    def exe(self, t: Task, text: Any) -> SymlinkNode:
        """exe: the file execve opened; `text` is its name when the VFS cannot say."""
        def vd() -> VirtualDentry:
            check_trace(t)
            img = t.image
            if img is None or img.exe_vd is None:
                raise _err(errno.ENOENT)
            return img.exe_vd

        def name() -> bytes:
            check_trace(t)
            return text()

        return SymlinkNode(name, jump=vd)

    # fd/N -----------------------------------------------------------------------------------

    def fd(self, t: Task, f: Any) -> SymlinkNode:
        """fd/N for open file `f` of process `t`."""
        def name() -> bytes:
            check_trace(t)
            return self.fd_text(t, f)

        def jump() -> VirtualDentry | OpenedNode:
            check_trace(t)
            return self._fd_target(f)

        return SymlinkNode(name, jump=jump)

    def fd_text(self, t: Task, f: Any) -> bytes:
        """What readlink shows: the path, or for files no path reaches the kind of file
        ("pipe:[N]"; a host descriptor's own kind, never a host path)."""
        if isinstance(f, HostFD):
            try:
                target = os.readlink(f"/proc/self/fd/{f.fd}")
            except OSError:
                return b"anon_inode:[host]"
            if target.startswith(("pipe:", "socket:", "anon_inode:", "/dev/pts/", "/dev/tty",
                                  "/dev/null")):
                return target.encode()
            return b"host:[%d]" % f.fd
        anon = getattr(f, "anon_name", None)  # "anon_inode:[eventfd]" ...
        if anon is not None:
            return bytes(anon)
        vd = getattr(f, "vd", None)
        if vd is not None:
            if vd.mount.parent is None and not self.vfs.is_root_mount(vd.mount):
                return vd.dentry.name  # anonymous files (pipefs, memfd): "pipe:[N]"
            return self._path(t, vd)
        return b"anon_inode:[%s]" % type(f).__name__.lower().removesuffix("fd").encode()

    def _fd_target(self, f: Any) -> VirtualDentry | OpenedNode:
        """The file open() of fd/N reaches: the open file's own (mount, dentry), so any
        file the VFS can open by its dentry (regular, unlinked, directory, device, pipe) is
        reopened; a host descriptor is reopened through the host; an anonymous inode
        (epoll, signalfd) is ENXIO, as Linux's anon_inode open is."""
        if isinstance(f, HostFD):
            st = os.fstat(f.fd)  # the host's owner and mode decide the program's access
            return OpenedNode(lambda flags, creds: _reopen_host(f, flags), f.stat,
                              st.st_mode & 0o7777, st.st_uid, st.st_gid,
                              truncate=(lambda size: os.ftruncate(f.fd, size))
                              if f.is_regular else None)
        vd: VirtualDentry | None = getattr(f, "vd", None)
        if vd is not None and (vd.mount.parent is not None or self.vfs.is_root_mount(vd.mount)
                               or vd.dentry.inode.type == S_IFIFO):
            return vd
        return OpenedNode(_enxio, lambda: _anon_stat(f), 0o600)

    # ns/* ------------------------------------------------------------------------------------

    def ns(self, t: Task, name: bytes, ino: int) -> SymlinkNode:
        """ns/NAME: "mnt:[4026531841]"; opening it gives a file whose fstat shows the
        namespace's inode on nsfs (what `stat -L` and namespace comparisons read). `ino`
        0: a namespace with no process yet (pid_for_children after unshare), ENOENT."""
        kind = name.removesuffix(b"_for_children")
        st = Stat(mode=S_IFREG | 0o444, ino=ino, dev=_NSFS_DEV, nlink=1)

        def text() -> bytes:
            check_trace(t)
            if not ino:
                raise _err(errno.ENOENT)
            return b"%s:[%d]" % (kind, ino)

        def jump() -> OpenedNode:
            check_trace(t)
            if not ino:
                raise _err(errno.ENOENT)
            return OpenedNode(lambda flags, creds: FileDescription(None, flags & O_ACCMODE),
                              lambda: st, 0o444)

        return SymlinkNode(text, jump=jump)


async def _anon_stat(f: Any) -> Stat:
    try:
        return await f.stat()
    except OSError:
        return Stat(mode=0o600)


def _reopen_host(f: HostFD, flags: int) -> HostFD:
    """A new open description of what host descriptor `f` holds, through the host's own
    magic link (non-blocking, so that the Sentry never waits in open for a fifo's other
    end; the new description is ours alone, so the flag is cleared again)."""
    acc = flags & (O_ACCMODE | O_APPEND)
    try:
        host = os.open(f"/proc/self/fd/{f.fd}", acc | O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except PermissionError:
        # The confined Sentry runs under an id of its own (runtime/confine.py), so the
        # host refuses it a file only the caller may open (stdin a pipe of root's, 0600).
        # The program's own access was checked against the file's mode already; share the
        # host descriptor and keep what a new description owns (its flags, a regular
        # file's offset) here, as gVisor's host files do.
        return HostFD(f.fd, flags & (O_ACCMODE | O_APPEND | O_NONBLOCK), own_offset=True)
    try:
        os.set_blocking(host, True)
        return HostFD(host, flags & (O_ACCMODE | O_APPEND | O_NONBLOCK))
    finally:
        os.close(host)
