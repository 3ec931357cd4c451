"""sysfs: /sys as a generated filesystem. Static now: the CPU topology files programs read
to size thread pools (/sys/devices/system/cpu/{online,possible,present}); more comes from
`extra` nodes the kernel passes in."""

from __future__ import annotations

import os

from ..abi import SYSFS_MAGIC, StatFS
from .synthetic import DirNode, FileNode, Node, SyntheticFS


class Sysfs(SyntheticFS):
    """/sys. Args: ncpus (default: the host's), extra (more top-level nodes)."""

    fstype = "sysfs"
    magic = SYSFS_MAGIC

    def __init__(self, *, ncpus: int | None = None, extra: dict[bytes, Node] | None = None) -> None:
        n = ncpus or os.cpu_count() or 1
        cpus = (b"0-%d\n" % (n - 1)) if n > 1 else b"0\n"
        cpu: dict[bytes, Node] = {b"online": FileNode(cpus), b"possible": FileNode(cpus),
               b"present": FileNode(cpus)}
        tree: dict[bytes, Node] = {
            b"devices": DirNode({b"system": DirNode({b"cpu": DirNode(cpu)})}),
            b"kernel": DirNode({}),
            b"fs": DirNode({}),
            b"class": DirNode({}),
            b"bus": DirNode({}),
        }
        tree.update(extra or {})
        super().__init__(DirNode(tree, 0o555))

    async def statfs(self) -> StatFS:
        return StatFS(type=SYSFS_MAGIC)
