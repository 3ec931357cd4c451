"""/proc/net and /sys/class/net: the sandbox's own sockets and interfaces, never the host's.

unix is generated from the socket layer's state in the Kernel (`sentry.socket.unix`), so
`ss -x` and `netstat -x` list the unix sockets the sandbox made.

The sandbox's TCP and UDP sockets are host sockets in its network namespace (see
sentry.kernel.network), so the host kernel's tables are the truth: tcp, tcp6, udp and
udp6 are the namespace's /proc/net files keeping only the lines of sockets this sandbox
holds (the Network's books, by host inode), with the inode and uid the sandbox shows
(its sockfs inode, as /proc/PID/fd's "socket:[N]" links say, so `ss -p` and `netstat -p`
find the owner). dev and route are the namespace's own (in ``host`` mode, the host's).
/sys/class/net lists the namespace's interfaces with the attributes programs read.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sentry.socket.unix import proc_net_unix
from vfs.fs.synthetic import DirNode, FileNode, Node

if TYPE_CHECKING:
    from sentry.kernel import Kernel


def _proc(content: Callable[[], bytes]) -> FileNode:
    return FileNode(content, 0o444, readonly_errno=errno.EIO)


def _sys(content: Callable[[], bytes] | bytes) -> FileNode:
    return FileNode(content, 0o444, readonly_errno=errno.EACCES)


class NetFiles:
    """Generates /proc/net/* and /sys/class/net for one Kernel."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def _own_sockets(self, name: str) -> bytes:
        """The namespace's /proc/net/NAME, keeping the sandbox's sockets' lines only."""
        net = self.kernel.network
        lines = net.read_proc(name).splitlines(keepends=False)
        if not lines:
            return b""
        out = [lines[0]]
        for line in lines[1:]:
            f = line.split()
            if len(f) < 10:
                continue
            owner: Any = net.sockets.get(int(f[9]))
            if owner is None:
                continue
            inode = getattr(getattr(owner.vd, "dentry", None), "inode", None)
            ino = inode.ino if inode is not None else 0
            uid = inode.uid if inode is not None else 0
            rest = b" ".join(f[10:])
            out.append(b"%4d: %s %s %s %s %s %s %5d %8s %d %s" % (
                len(out) - 1, f[1], f[2], f[3], f[4], f[5], f[6], uid, f[8], ino, rest))
        return b"\n".join(out) + b"\n"

    def proc_entries(self) -> dict[bytes, Node]:
        """/proc/net's files."""
        net = lambda name: (lambda: self.kernel.network.read_proc(name))  # noqa: E731
        own = lambda name: (lambda: self._own_sockets(name))  # noqa: E731
        return {
            b"tcp": _proc(own("tcp")), b"tcp6": _proc(own("tcp6")),
            b"udp": _proc(own("udp")), b"udp6": _proc(own("udp6")),
            b"dev": _proc(net("dev")), b"route": _proc(net("route")),
            b"if_inet6": _proc(net("if_inet6")), b"ipv6_route": _proc(net("ipv6_route")),
            b"unix": _proc(lambda: proc_net_unix(self.kernel)),
        }

    def sys_class_net(self) -> DirNode:
        """/sys/class/net: one directory per interface of the namespace."""
        def children() -> dict[bytes, Node]:
            out: dict[bytes, Node] = {}
            for index, name in self.kernel.network.interfaces():
                out[name.encode()] = DirNode(self._iface(index, name))
            return out

        return DirNode(children)

    def _iface(self, index: int, name: str) -> dict[bytes, Node]:
        net = self.kernel.network

        def attr(what: str) -> Callable[[], bytes]:
            return lambda: net.interface_attr(name, what)

        return {
            b"ifindex": _sys(b"%d\n" % index),
            b"mtu": _sys(attr("mtu")),
            b"address": _sys(attr("address")),
            b"operstate": _sys(attr("operstate")),
            b"flags": _sys(attr("flags")),
            b"type": _sys(attr("type")),
        }
