"""The socket layer: `Socket` (base.py), the families, and the per-sandbox registry.

Layering: `syscalls → socket → kernel`. The syscall layer (`sentry.syscalls.sys_socket`)
decodes application memory and calls a `Socket`; a family (AF_UNIX here, in `unix.py`)
implements one. Which families a sandbox has is the Kernel's state:
`kernel.socket_families` maps a family number to a factory `(task, type, protocol) ->
Socket`; `families(kernel)` fills in the Sentry's own (AF_UNIX) on first use, and whoever
configures a sandbox may `register` more (host-backed AF_INET/AF_INET6, AF_NETLINK).
Each family's own state (AF_UNIX's names) lives in `kernel.socket_state`.
"""

from __future__ import annotations

from typing import Any

from . import inet, netlink, unix
from .base import (
    AF_INET,
    AF_INET6,
    AF_NETLINK,
    AF_PACKET,
    AF_UNIX,
    Control,
    RecvResult,
    Socket,
    SocketFactory,
    Ucred,
)

#: The families every sandbox has: AF_UNIX in the Sentry; AF_INET, AF_INET6 and NETLINK_ROUTE
#: as host sockets in the sandbox's network namespace (`Kernel.network`, see
#: sentry.kernel.network); AF_PACKET refused with EPERM as without CAP_NET_RAW.
BUILTIN: dict[int, SocketFactory] = {
    AF_UNIX: unix.create,
    AF_INET: inet.INET_FACTORY,
    AF_INET6: inet.INET6_FACTORY,
    AF_NETLINK: netlink.netlink_factory,
    AF_PACKET: inet.packet_factory,
}


def families(kernel: Any) -> dict[int, SocketFactory]:
    """The sandbox's family -> factory table, with the built-in families in it."""
    table: dict[int, SocketFactory] = kernel.socket_families
    if "builtin" not in kernel.socket_state:
        kernel.socket_state["builtin"] = True
        for fam, factory in BUILTIN.items():
            table.setdefault(fam, factory)
    return table


def register(kernel: Any, family: int, factory: SocketFactory) -> None:
    """Serve socket(`family`, ...) in this sandbox with `factory`."""
    families(kernel)[family] = factory


__all__ = ["Control", "RecvResult", "Socket", "SocketFactory", "Ucred", "families", "register"]
