"""sockfs: the internal filesystem every socket's inode lives on (what fstat shows).

One per sandbox (kept in the Kernel's socket state): each socket gets an inode of its own,
S_IFSOCK with mode 0777 and its creator's fsuid/fsgid, named "socket:[ino]" as
/proc/PID/fd shows.
"""

from __future__ import annotations

from typing import Any

from vfs.abi import S_IFSOCK, StatFS
from vfs.creds import Credentials
from vfs.dentry import Dentry, Inode
from vfs.filesystem import Filesystem, InodeCounter
from vfs.mount import Mount, VirtualDentry

SOCKFS_MAGIC = 0x534F434B


class SockFS(Filesystem):
    """The anonymous filesystem of sockets."""

    fstype = "sockfs"
    magic = SOCKFS_MAGIC

    def __init__(self) -> None:
        super().__init__()
        self._ino = InodeCounter(1)
        self.root = Dentry(self, b"socket:", None, Inode(self._ino(), 0o40700))
        self.mount = Mount(self, self.root, 0, "sockfs")

    def new_inode(self, creds: Credentials) -> VirtualDentry:
        """A fresh socket inode, owned by `creds`' filesystem ids."""
        ino = Inode(self._ino(), S_IFSOCK | 0o777, creds.fsuid, creds.fsgid)
        return VirtualDentry(self.mount, Dentry(self, b"socket:[%d]" % ino.ino, self.root, ino))

    async def statfs(self) -> StatFS:
        return StatFS(type=SOCKFS_MAGIC)


def sockfs_of(kernel: Any) -> SockFS:
    """The sandbox's sockfs, made on first use (kept in the Kernel's socket state)."""
    fs = kernel.socket_state.get("sockfs")
    if fs is None:
        fs = kernel.socket_state["sockfs"] = SockFS()
    return fs
