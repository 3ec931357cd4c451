"""/sys from the sandbox's kernel: the CPUs it may use (devices/system/cpu, node), the
transparent huge page settings Go and the JVM read, and a read-only cgroup v2 view of the
sandbox's limits consistent with /proc/self/cgroup ("0::/")."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from vfs.fs.synthetic import DirNode, FileNode, Node, Source

from .system import cpu_list, cpu_mask

if TYPE_CHECKING:
    from .system import System


def _ro(content: Source) -> FileNode:
    """sysfs files are 0444 and refuse a write at open, even for root."""
    return FileNode(content, 0o444, readonly_errno=errno.EACCES)


def sys_tree(system: System) -> dict[bytes, Node]:
    """The top-level directories of /sys generated from `system`."""
    cpus = system.cpus
    listed = cpu_list(cpus)
    mask = cpu_mask(cpus)
    cpu: dict[bytes, Node] = {
        b"online": _ro(listed), b"possible": _ro(listed), b"present": _ro(listed),
        b"offline": _ro(b"\n"), b"kernel_max": _ro(b"8191\n"),
    }
    for c in cpus:
        one, own = b"%d\n" % c, cpu_mask([c])
        cpu[b"cpu%d" % c] = DirNode({
            b"topology": DirNode({
                b"core_id": _ro(one), b"physical_package_id": _ro(b"0\n"),
                b"die_id": _ro(b"0\n"), b"cluster_id": _ro(b"0\n"),
                b"thread_siblings": _ro(own), b"thread_siblings_list": _ro(one),
                b"core_cpus": _ro(own), b"core_cpus_list": _ro(one),
                b"core_siblings": _ro(mask), b"core_siblings_list": _ro(listed),
                b"package_cpus": _ro(mask), b"package_cpus_list": _ro(listed),
                b"die_cpus": _ro(mask), b"die_cpus_list": _ro(listed),
                b"cluster_cpus": _ro(own), b"cluster_cpus_list": _ro(one),
            }),
        })
    node = {b"online": _ro(b"0\n"), b"possible": _ro(b"0\n"), b"has_cpu": _ro(b"0\n"),
            b"has_memory": _ro(b"0\n"), b"has_normal_memory": _ro(b"0\n"),
            b"node0": DirNode({b"cpulist": _ro(listed), b"cpumap": _ro(mask),
                               b"distance": _ro(b"10\n")})}
    mem = system.memory or 0
    cgroup: dict[bytes, Node] = {
        b"cgroup.controllers": _ro(b"cpuset cpu memory pids\n"),
        b"cgroup.procs": _ro(lambda: b"".join(b"%d\n" % p for p in sorted(
            system.kernel.procs))),
        b"cgroup.type": _ro(b"domain\n"),
        b"cpu.max": _ro(b"max 100000\n"),
        b"cpuset.cpus.effective": _ro(listed),
        b"cpuset.mems.effective": _ro(b"0\n"),
        b"memory.max": _ro(b"%d\n" % mem),
        b"memory.current": _ro(lambda: b"%d\n" % (lambda u: u.anon + u.shmem)(
            system.memory_use())),
        b"memory.swap.max": _ro(b"0\n"),
        b"pids.max": _ro(b"max\n"),
        b"pids.current": _ro(lambda: b"%d\n" % len(system.kernel.tasks)),
    }
    thp = {b"enabled": _ro(b"always [madvise] never\n"),
           b"defrag": _ro(b"always defer defer+madvise [madvise] never\n"),
           b"hpage_pmd_size": _ro(b"2097152\n")}
    return {
        b"devices": DirNode({b"system": DirNode({b"cpu": DirNode(cpu),
                                                 b"node": DirNode(node)})}),
        b"kernel": DirNode({b"mm": DirNode({b"transparent_hugepage": DirNode(thp)})}),
        b"fs": DirNode({b"cgroup": DirNode(cgroup)}),
    }
