"""The trio server framework's entry point: `Server` serves a `Filesystem` over 9P2000.L.

`Server(fs)` holds what every connection shares (the file system and the settings);
`serve_stream` serves one connection, `serve_listeners` accepts them. Each connection is a
`_Connection` (p9/_connection.py: the reader loop, request tasks, Tflush, Tversion, the hot
paths), whose fids are a `FidTable` (p9/_fids.py), whose requests are answered by
`Handlers` (p9/_handlers.py: one method per message) and whose runs of Treads and metadata
requests C may answer (p9/_cloops.py, p9/_cmeta.py). An `OSError` from the file model
becomes Rlerror(errno) in one place, `_handlers.errno_of`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

import trio

from . import _messages as m
from ._connection import _Connection
from ._constants import MIN_MSIZE
from ._file import Filesystem
from ._transport import tune_tcp

log = logging.getLogger("p9.server")

#: Metadata requests a file model usually answers at once: candidates for `Server(inline=)`.
QUICK_MESSAGES: frozenset[type[m.Message]] = frozenset({
    m.Twalk, m.Tgetattr, m.Tclunk, m.Tlopen, m.Tlopenfd, m.Tstatfs, m.Treadlink, m.Twalkgetattr,
    m.Tmultigetattr, m.Tsetattr, m.Tsetattrclunk, m.Txattrwalk, m.Tgetxattr, m.Tlistxattr,
})


class Server:
    """Serve a `Filesystem` over 9P2000.L.

    Args:
        fs: the exported file system.
        max_msize: the largest msize granted (clients asking more get this).
        max_inflight: requests run at once per connection; up to as many more wait (and
            can be flushed); reading stops beyond that.
        default_uname: user for Tattach with an empty uname and NONUNAME (gVisor's client).
        default_uid: its uid.
        inline: message types handled in the connection's reader task instead of a task of
            their own (e.g. `p9.QUICK_MESSAGES`). Saves a task spawn and a cancel scope per
            request, which matters when one request is in flight at a time; only for
            operations the file model completes without waiting long, because the
            connection reads nothing else meanwhile (a Tflush for one finds it done).
        idle_timeout: close a connection when nothing arrives for this many seconds while
            none of its requests is in the file model (None: never). Kept here rather than in a stream wrapper because a wrapped stream loses
            the non-blocking socket fast path for every send and receive.
        frame_timeout: close a connection whose started frame is not complete this many
            seconds after its first bytes came (None: never). Why besides `idle_timeout`:
            every byte resets the idle timer, so a peer sending one byte now and then would
            otherwise hold a connection (and its reader) forever.
        spin_us: after answering, poll the socket this many microseconds for the next
            request before sleeping (0: never; see `p9._sockio.Receiver`). Lowers latency
            for clients with one request in flight, at the price of that much CPU per
            wait while they keep coming; backs off by itself when they pause.
    """

    def __init__(
        self,
        fs: Filesystem,
        *,
        max_msize: int = 1 << 20,
        max_inflight: int = 64,
        default_uname: bytes = b"root",
        default_uid: int = 0,
        inline: Collection[type[m.Message]] = (),
        idle_timeout: float | None = None,
        frame_timeout: float | None = None,
        spin_us: float = 0,
    ) -> None:
        if max_msize < MIN_MSIZE:
            raise ValueError(f"max_msize {max_msize!r} is below {MIN_MSIZE}")
        self.fs = fs
        self.max_msize = max_msize
        self.max_inflight = max_inflight
        self.default_uname = default_uname
        self.default_uid = default_uid
        self.inline = frozenset(inline)
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self.spin_us = spin_us

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one connection until the peer closes it; always closes every fid.

        A broken stream ends it quietly. A fault in serving it (a bug: no client can cause
        one on purpose) is logged with its traceback and ends this connection only, not the
        caller's others.
        """
        try:
            conn = _Connection(self, stream)
            try:
                await conn.run()
            finally:
                with trio.CancelScope(shield=True):
                    await conn.release_all()
                    await trio.aclose_forcefully(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            log.debug("p9 server: connection ended: %r", e)
        except Exception:
            log.exception("p9 server: dropped a connection after an internal error")

    async def serve_listeners(
        self,
        listeners: Sequence[trio.abc.Listener[Any]],
        *,
        task_status: trio.TaskStatus[list[trio.abc.Listener[Any]]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections forever on `listeners`, each served in its own task
        (`nursery.start` returns the listeners once they accept)."""

        async def handle(stream: trio.abc.Stream) -> None:
            tune_tcp(stream)
            await self.serve_stream(stream)

        await trio.serve_listeners(handle, list(listeners), task_status=task_status)
