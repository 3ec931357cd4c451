"""sysfs: /sys as a generated filesystem. Static: the CPU topology files programs read
to size thread pools (/sys/devices/system/cpu/{online,possible,present}); more comes from
`extra` nodes and from a provider (the kernel), whose top-level entries replace the static
ones of the same name."""

from __future__ import annotations

import errno
import os
from typing import Protocol

from ..abi import SYSFS_MAGIC, StatFS
from .synthetic import DirNode, FileNode, Node, SyntheticFS


class SysProvider(Protocol):
    """What the kernel supplies to /sys."""

    def sys_entries(self) -> dict[bytes, Node]:
        """Top-level directories (devices, kernel, fs ...) generated from kernel state."""
        ...


class Sysfs(SyntheticFS):
    """/sys. Args: ncpus (default: the host's), extra (more top-level nodes)."""

    fstype = "sysfs"
    magic = SYSFS_MAGIC

    def __init__(self, *, ncpus: int | None = None, extra: dict[bytes, Node] | None = None) -> None:
        n = ncpus or os.cpu_count() or 1
        cpus = (b"0-%d\n" % (n - 1)) if n > 1 else b"0\n"
        cpu: dict[bytes, Node] = {name: FileNode(cpus, readonly_errno=errno.EACCES)  # sysfs: EACCES at open
               for name in (b"online", b"possible", b"present")}
        tree: dict[bytes, Node] = {
            b"devices": DirNode({b"system": DirNode({b"cpu": DirNode(cpu)})}),
            b"kernel": DirNode({}),
            b"fs": DirNode({}),
            b"class": DirNode({}),
            b"bus": DirNode({}),
        }
        tree.update(extra or {})
        self.static = tree
        self.provider: SysProvider | None = None
        super().__init__(DirNode(self._root_children, 0o555))

    def _root_children(self) -> dict[bytes, Node]:
        if self.provider is None:
            return self.static
        return {**self.static, **self.provider.sys_entries()}

    async def statfs(self) -> StatFS:
        return StatFS(type=SYSFS_MAGIC)
