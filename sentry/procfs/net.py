"""/proc/net: the sandbox's own sockets, never the host's.

Each file is generated from the socket layer's state in the Kernel (`sentry.socket`), so
tools such as `ss -x` and `netstat -x` list what the sandbox made.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from sentry.socket.unix import proc_net_unix
from vfs.fs.synthetic import DirNode, FileNode, Node

if TYPE_CHECKING:
    from sentry.kernel import Kernel


def net_tree(kernel: Kernel) -> DirNode:
    """The /proc/net directory."""
    entries: dict[bytes, Node] = {
        b"unix": FileNode(lambda: proc_net_unix(kernel), 0o444, readonly_errno=errno.EIO),
    }
    return DirNode(entries)
