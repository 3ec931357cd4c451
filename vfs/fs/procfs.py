"""procfs: /proc as a generated filesystem, with the kernel plugged in through a provider.

The VFS does not know tasks, so everything per process (/proc/self, /proc/<pid>/...) and
everything about kernel state (meminfo, uptime, stat ...) comes from a `ProcProvider` the
kernel implements. What needs no kernel state is here now: /proc/filesystems,
/proc/mounts (from the VFS's own mount table), /proc/sys/kernel/{ostype, osrelease,
pid_max, ngroups_max, cap_last_cap, random/uuid, random/boot_id}, /proc/sys/fs/{pipe-max-size,
nr_open}, /proc/sys/vm/{overcommit_memory, mmap_min_addr}.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Protocol

from ..abi import PROC_SUPER_MAGIC, StatFS
from ..mount import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, FSContext
from .synthetic import DirNode, FileNode, Node, SymlinkNode, SyntheticFS

if TYPE_CHECKING:
    from ..virtualfs import VirtualFilesystem

FILESYSTEMS = b"".join(
    b"nodev\t%s\n" % n for n in (b"sysfs", b"tmpfs", b"proc", b"devtmpfs", b"pipefs",
                                  b"overlay", b"9p", b"devpts", b"mqueue")
)


class ProcProvider(Protocol):
    """What the kernel supplies to /proc (all optional: return empty when unknown)."""

    def self_pid(self) -> int | None:
        """The pid (in the sandbox's namespace) of the task doing the current syscall."""
        ...

    def pids(self) -> list[int]:
        """Every live thread group id."""
        ...

    def pid_entries(self, pid: int) -> dict[bytes, Node] | None:
        """The contents of /proc/<pid> (None if no such process)."""
        ...

    def extra_entries(self) -> dict[bytes, Node]:
        """More top-level files: meminfo, uptime, stat, cpuinfo, loadavg, version, sys/ ...
        (they replace the static ones of the same name)."""
        ...


def _opts(flags: int) -> bytes:
    out = [b"ro" if flags & MS_RDONLY else b"rw"]
    for bit, name in ((MS_NOSUID, b"nosuid"), (MS_NODEV, b"nodev"), (MS_NOEXEC, b"noexec")):
        if flags & bit:
            out.append(name)
    return b",".join(out)


def _mount_rows(vfs: VirtualFilesystem, ctx: FSContext | None) -> list[tuple[Any, bytes]]:
    """(mount, its mount point as ctx sees it) for every mount of the namespace."""
    ctx = ctx or vfs.new_context()
    from ..mount import VirtualDentry

    rows = []
    for m in vfs.all_mounts(ctx):
        path = b"/"
        if m.parent is not None and m.mountpoint is not None:
            path = vfs.path_of(ctx, VirtualDentry(m.parent, m.mountpoint))
        rows.append((m, path))
    return rows


def _escape(path: bytes) -> bytes:
    """Linux's mangle() of /proc/mounts: space, tab, newline and backslash as octal."""
    for c in b"\\ \t\n":
        path = path.replace(bytes([c]), b"\\%03o" % c)
    return path


def mounts_text(vfs: VirtualFilesystem, ctx: FSContext | None = None) -> bytes:
    """/proc/mounts lines for the namespace (paths seen from ctx.root)."""
    return b"".join(b"%s %s %s %s 0 0\n" % (_escape(m.source.encode()), _escape(path),
                                            m.fs.fstype.encode(), _opts(m.flags))
                    for m, path in _mount_rows(vfs, ctx))


def mountstats_text(vfs: VirtualFilesystem, ctx: FSContext | None = None) -> bytes:
    """/proc/PID/mountstats: one "device ... mounted on ... with fstype ..." line per
    mount (Linux adds statistics only for NFS, which the sandbox has not)."""
    return b"".join(b"device %s mounted on %s with fstype %s\n" % (
        _escape(m.source.encode()), _escape(path), m.fs.fstype.encode())
        for m, path in _mount_rows(vfs, ctx))


def mountinfo_text(vfs: VirtualFilesystem, ctx: FSContext | None = None) -> bytes:
    """/proc/PID/mountinfo: mount id, parent id, the filesystem's device, root, mount
    point, options, fstype and source (what findmnt, df and libmount read). The root
    mount's parent is itself (its real parent lies outside the namespace)."""
    import os

    lines = []
    for m, path in _mount_rows(vfs, ctx):
        parent = m.parent.id if m.parent is not None else m.id
        dev = m.fs.dev
        opts = _opts(m.flags)
        lines.append(b"%d %d %d:%d / %s %s - %s %s %s\n" % (
            m.id, parent, os.major(dev), os.minor(dev), _escape(path), opts,
            m.fs.fstype.encode(), _escape(m.source.encode()), opts.split(b",")[0]))
    return b"".join(lines)


class Procfs(SyntheticFS):
    """/proc. Args: vfs (for /proc/mounts), provider (the kernel; None until it exists),
    osrelease (what uname -r says)."""

    fstype = "proc"
    magic = PROC_SUPER_MAGIC

    def __init__(self, vfs: VirtualFilesystem | None = None,
                 provider: ProcProvider | None = None, *, osrelease: bytes = b"6.1.0") -> None:
        self.vfs = vfs
        self.provider = provider
        boot_id = str(uuid.uuid4()).encode() + b"\n"
        kernel = {
            b"ostype": FileNode(b"Linux\n"),
            b"osrelease": FileNode(lambda: osrelease + b"\n"),
            b"pid_max": FileNode(b"4194304\n"),
            b"ngroups_max": FileNode(b"65536\n"),
            b"cap_last_cap": FileNode(b"40\n"),
            b"random": DirNode({
                b"uuid": FileNode(lambda: str(uuid.uuid4()).encode() + b"\n"),
                b"boot_id": FileNode(boot_id),
            }),
        }
        self.static: dict[bytes, Node] = {
            b"filesystems": FileNode(FILESYSTEMS),
            b"mounts": FileNode(self._mounts),
            b"sys": DirNode({
                b"kernel": DirNode(kernel),
                b"fs": DirNode({b"pipe-max-size": FileNode(b"1048576\n"),
                                b"nr_open": FileNode(b"1048576\n")}),
                b"vm": DirNode({b"overcommit_memory": FileNode(b"0\n"),
                                b"mmap_min_addr": FileNode(b"65536\n")}),
            }),
        }
        super().__init__(DirNode(self._root_children, hidden=self._hidden_pid))

    def _mounts(self) -> bytes:
        return mounts_text(self.vfs) if self.vfs is not None else b""

    def _hidden_pid(self, name: bytes) -> Node | None:
        """/proc/TID of a thread: found by lookup, never listed."""
        p = self.provider
        if p is None or not name.isdigit():
            return None
        entries = p.pid_entries(int(name))
        return DirNode(entries) if entries is not None else None

    def _root_children(self) -> dict[bytes, Node]:
        out: dict[bytes, Node] = dict(self.static)
        p = self.provider
        if p is not None:
            for pid in p.pids():
                entries = p.pid_entries(pid)
                if entries is not None:
                    out[str(pid).encode()] = DirNode(entries)
            me = p.self_pid()
            if me is not None:
                out[b"self"] = SymlinkNode(str(me).encode())
            out.update(p.extra_entries())  # the kernel's files win over the static ones
        return out

    async def statfs(self) -> StatFS:
        return StatFS(type=PROC_SUPER_MAGIC, bsize=4096)
