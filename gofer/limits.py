"""Bounds every connection of one gofer server shares: fids, descriptors, connections, logs.

Why: per-connection bounds alone let a few connections take everything (two connections of
9,999 walks used all 20,000 descriptors, and the next client could not even be accepted),
and a peer that never finishes a frame, or opens hundreds of connections, kept other
clients out. Here:

- fids: each connection has `reserved` fids of its own (so a new client can always attach,
  walk and read); beyond that, connections draw from one shared pool
  (`total_fids - reserved * max_connections`), and never past their own `max_fids`;
- descriptors: a new fid (or open file) whose descriptor number reaches `fd_ceiling` is
  refused with EMFILE. Linux hands out the lowest free number, so a descriptor numbered N
  means N are in use: everything above the ceiling stays free for accepting connections
  and for the event loop, whatever the depth of the paths clients walk. C's metadata loop
  (p9/_cmeta.py) walks without this check, so it is given no room once the newest
  descriptor seen is within `_C_FDS` of the ceiling (walks then take the Python path);
- connections: at most `max_connections` accepted at once, and `max_per_peer` from one
  peer (a unix peer's uid, a TCP peer's address); a refused one gets an Rlerror
  (ECONNREFUSED) in answer to its Tversion and is closed;
- log records: `RateLimit` lets a few of each message through per minute (a connection
  flood logged a traceback every 0.1 s before).
"""

from __future__ import annotations

import errno
import logging
import resource
import time
from collections.abc import Callable

import trio

import p9

from .peer import Peer

__all__ = ["ServerLimits", "ConnectionBudget", "RateLimit", "limit_logs", "reject"]

log = logging.getLogger("gofer")

#: Descriptors kept above the ceiling: per accepted connection (its socket, and what C's
#: metadata loop may hold before its fids are charged), plus the process's own.
_FDS_PER_CONNECTION = 4
_FDS_SPARE = 64
#: Descriptors C's metadata loop may open before Python sees them (16 fids of 1-4 names).
_C_FDS = 64
#: How long a refused connection is kept to let the peer read its Rlerror, and how many
#: may wait so at once (beyond that they are closed at once).
_REJECT_LINGER = 2.0
_MAX_LINGERING = 16
_MAX_REFUSALS = 4


class ServerLimits:
    """The state of one server's shared bounds (one per `gofer.serve.serve` call).

    Args:
        total_fids: fids all connections together may hold (0: half the descriptors below
            the ceiling, since a fid holds one descriptor, two once opened).
        reserved: fids each connection may hold whatever the others hold.
        max_connections: connections accepted at once (0: no cap).
        max_per_peer: connections accepted at once from one peer (0: no cap).
        fd_ceiling: the lowest descriptor number a fid may not use (0: from RLIMIT_NOFILE).
    """

    def __init__(self, *, total_fids: int = 0, reserved: int = 16, max_connections: int = 128,
                 max_per_peer: int = 16, fd_ceiling: int = 0) -> None:
        if not fd_ceiling:
            nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            if nofile == resource.RLIM_INFINITY:
                nofile = 1 << 20
            fd_ceiling = max(64, nofile - _FDS_PER_CONNECTION * max_connections - _FDS_SPARE)
        self.fd_ceiling = fd_ceiling
        #: The newest descriptor a fid was given (`ConnectionBudget.check_fd`, `saw_fd`).
        self.fd_high = 0
        self.total_fids = total_fids or max(reserved, fd_ceiling // 2)
        self.reserved = reserved
        self.pool = max(0, self.total_fids - reserved * max_connections)
        self.pool_used = 0
        self.max_connections = max_connections
        self.max_per_peer = max_per_peer
        self.connections = 0
        self.by_peer: dict[tuple[str, object], int] = {}
        self.lingering = 0

    def admit(self, peer: Peer) -> str | None:
        """Count an accepted connection in; or why it is refused (nothing counted)."""
        if self.max_connections and self.connections >= self.max_connections:
            return f"{self.connections} connections already (--max-connections)"
        key = peer.key
        if key is not None and self.max_per_peer and self.by_peer.get(key, 0) >= self.max_per_peer:
            return f"{self.by_peer[key]} connections from {key[1]!r} already (--max-connections-per-peer)"
        self.connections += 1
        if key is not None:
            self.by_peer[key] = self.by_peer.get(key, 0) + 1
        return None

    def leave(self, peer: Peer) -> None:
        """Count a connection admitted by `admit` out."""
        self.connections -= 1
        key = peer.key
        if key is not None:
            left = self.by_peer[key] - 1
            if left:
                self.by_peer[key] = left
            else:
                del self.by_peer[key]


class ConnectionBudget:
    """One connection's fids against its own bound and the server's shared ones."""

    def __init__(self, shared: ServerLimits, limit: int) -> None:
        self.shared = shared
        self.limit = limit
        self.count = 0

    def room(self) -> int:
        """How many more fids C's metadata loop may make now (p9's `fid_room`): none when
        the descriptors last seen come near the ceiling, so walks take the Python path,
        which checks each descriptor (and sees how many are in use again)."""
        s = self.shared
        if s.fd_high + _C_FDS >= s.fd_ceiling:
            return 0
        return max(0, min(self.limit - self.count,
                          max(0, s.reserved - self.count) + max(0, s.pool - s.pool_used)))

    def take(self, *, force: bool = False) -> None:
        """Charge one fid (`force`: one already made, e.g. walked by C within `room()`).

        Raises:
            OSError(EMFILE): the connection's or the server's fids are all taken.
        """
        s = self.shared
        if not force and self.count >= self.limit:
            raise OSError(errno.EMFILE, f"connection holds {self.count} fids (limit {self.limit})")
        if self.count >= s.reserved:
            if not force and s.pool_used >= s.pool:
                raise OSError(errno.EMFILE, f"the gofer's {s.total_fids} fids are in use")
            s.pool_used += 1
        self.count += 1

    def saw_fd(self, fd: int) -> None:
        """Note a descriptor made without a check (C's walks, adopted later)."""
        self.shared.fd_high = fd

    def give_back(self) -> None:
        """Return one fid charged by `take`."""
        self.count -= 1
        if self.count >= self.shared.reserved:
            self.shared.pool_used -= 1

    def check_fd(self, fd: int) -> None:
        """Refuse a new descriptor at or above the ceiling (see the module docstring).

        Raises:
            OSError(EMFILE): it is; the caller closes it.
        """
        self.shared.fd_high = fd
        if fd >= self.shared.fd_ceiling:
            raise OSError(errno.EMFILE, f"the gofer's descriptors are in use (ceiling {self.shared.fd_ceiling})")


async def reject(stream: trio.abc.Stream, limits: ServerLimits, reason: str) -> None:
    """Refuse a connection clearly: every request it sends within a short linger (its
    Tversion, and a client's fallback Tversion) is answered Rlerror(ECONNREFUSED), then
    the connection closes. At most `_MAX_LINGERING` wait so at once; others close at once."""
    log.warning("gofer: refused a connection: %s", reason)
    try:
        if limits.lingering >= _MAX_LINGERING:
            return
        limits.lingering += 1
        try:
            with trio.move_on_after(_REJECT_LINGER):
                buf = b""
                for _ in range(_MAX_REFUSALS):
                    while len(buf) < 7 or len(buf) < int.from_bytes(buf[:4], "little"):
                        data = await stream.receive_some(4096)
                        if not data:
                            return
                        buf += data
                        if len(buf) > 65536:
                            return
                    size = max(7, int.from_bytes(buf[:4], "little"))
                    tag = int.from_bytes(buf[5:7], "little")
                    buf = buf[size:]
                    await stream.send_all(p9.encode_frame(tag, p9.Rlerror(errno.ECONNREFUSED)))
        finally:
            limits.lingering -= 1
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


class RateLimit(logging.Filter):
    """Let at most `burst` records of each message through per `interval` seconds; the first
    one after a quiet spell says how many were held back."""

    def __init__(self, burst: int = 5, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.interval = interval
        self.clock = clock
        self.windows: dict[tuple[str, str], list[float]] = {}  # start, passed, dropped

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        w = self.windows.get(key)
        if w is None or now - w[0] >= self.interval:
            dropped = int(w[2]) if w is not None else 0
            w = self.windows[key] = [now, 0, 0]
            if dropped:
                record.msg = f"{record.getMessage()} ({dropped} like it suppressed)"
                record.args = ()
        if w[1] >= self.burst:
            w[2] += 1
            return False
        w[1] += 1
        return True


def limit_logs(names: tuple[str, ...] = ("gofer", "p9.server", "trio")) -> RateLimit:
    """Rate-limit what the serving loggers emit (a filter on each; returned for tests)."""
    f = RateLimit()
    for name in names:
        logging.getLogger(name).addFilter(f)
    return f
