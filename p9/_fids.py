"""A server connection's fid table: each fid's File and state, and C's share of the table.

Why reference counts: a Tclunk removes the fid from the table at once, but its File is
closed only after the requests already using it finish (`get` takes a reference, `unref`
drops it). Why the one way in and out (`put`, `pop`): while C's metadata loop owns fids
(p9/_cmeta.py), any change to the table first adopts them, so Python never meets a fid it
does not know and C never reads one Python changed.
"""

from __future__ import annotations

import contextvars
import errno
import logging
import os

import trio

from . import _messages as m
from ._cmeta import CMeta
from ._constants import NOFID
from ._file import File

log = logging.getLogger("p9.server")

#: True while a request runs inline in the connection's reader task (see Server(inline=)).
INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("p9_inline", default=False)


class FidState:
    """A fid's state: its File, its qid, how deep below the attach root, reference count."""

    __slots__ = (
        "file", "qid", "depth", "opened", "refs", "dead", "xattr_read", "xattr_write", "read_fd",
    )

    def __init__(self, file: File, qid: m.Qid, depth: int) -> None:
        self.file = file
        self.qid = qid
        self.depth = depth
        self.opened = False
        self.refs = 1
        self.dead = False
        self.xattr_read: bytes | None = None
        #: Txattrcreate's write buffer: name, declared size, flags, the bytes so far.
        self.xattr_write: tuple[bytes, int, int, bytearray] | None = None
        #: The File's `data_fd()` once opened, when Treads of this fid may be answered by
        #: pread from it in the reader task (see _Connection._fast_read), and Twrites by a
        #: direct File.write (_fast_write); else -1.
        self.read_fd = -1

    def quick(self) -> bool:
        """Whether the File says none of its operations can wait (`File.inline_io`)."""
        return (
            bool(getattr(self.file, "inline_io", False))
            and self.xattr_read is None
            and self.xattr_write is None
        )

    def set_read_fd(self) -> None:
        """Note the descriptor the reader task may pread Tread data from (after open)."""
        fd = self.file.data_fd() if self.quick() else None
        self.read_fd = -1 if fd is None else fd


class FidTable:
    """Fid number → `FidState` for one connection, kept in step with C's table (`cm`)."""

    def __init__(self, cm: CMeta | None) -> None:
        #: Replaced whole when the session ends (`release_all`): look it up, do not keep it.
        self.fids: dict[int, FidState] = {}
        #: C's table (p9/_cmeta.py) when the connection runs C's metadata loop.
        self.cm = cm

    def get(self, fid: int) -> FidState:
        """The fid's state with a reference taken (give it back with `unref`)."""
        f = self.fids.get(fid)
        if f is None:
            raise OSError(errno.EBADF, f"unknown fid {fid}")
        f.refs += 1
        return f

    async def unref(self, f: FidState, *, kill: bool = False) -> None:
        """Drop a reference (`kill`: the table's own, once); the last one closes the File."""
        if kill:
            if f.dead:
                return
            f.dead = True
        f.refs -= 1
        if f.refs == 0:
            try:
                if INLINE.get():
                    # Only the connection's end can cancel the reader task, and then the
                    # process of tearing down is under way; a cancel scope costs ~10 µs.
                    await f.file.close()
                else:
                    with trio.CancelScope(shield=True):
                        await f.file.close()
            except Exception:  # noqa: BLE001 - close must not take the server down
                log.exception("p9 server: File.close failed")

    def put(self, fid: int, f: FidState) -> None:
        """The one way to make `fid` name `f` (keeps C's table in step)."""
        cm = self.cm
        if cm is not None:
            if cm.owned:
                self.adopt_all()
            cm.set_fid(fid, f)
        self.fids[fid] = f

    def pop(self, fid: int) -> FidState | None:
        """The one way to free `fid` (keeps C's table in step)."""
        cm = self.cm
        if cm is not None:
            if cm.owned:
                self.adopt_all()
            cm.set_fid(fid, None)
        return self.fids.pop(fid, None)

    def add(self, fid: int, f: FidState) -> None:
        """`put`, refusing NOFID."""
        if fid == NOFID:
            raise OSError(errno.EBADF, "NOFID cannot name a file")
        self.put(fid, f)

    async def drop(self, fid: int) -> None:
        """Free `fid` if it is in use; its File closes after the requests using it."""
        f = self.pop(fid)
        if f is not None:
            await self.unref(f, kill=True)

    def check_new(self, newfid: int, fid: int | None = None) -> None:
        """Refuse `newfid` for a new file unless it is free (or is `fid` itself)."""
        if (newfid in self.fids or (self.cm is not None and self.cm.owns(newfid))) and (
                newfid != fid):
            raise OSError(errno.EBADF, f"fid {newfid} is already in use")
        if newfid == NOFID:
            raise OSError(errno.EBADF, "NOFID cannot name a file")

    async def install(self, newfid: int, fid: int, new: FidState) -> None:
        """Make `newfid` (walked from `fid`) name `new`, replacing `fid` itself if the same."""
        if newfid != fid and newfid in self.fids:
            await self.unref(new, kill=True)
            raise OSError(errno.EBADF, f"fid {newfid} is already in use")
        old = self.fids.get(newfid)
        self.add(newfid, new)
        if old is not None:
            await self.unref(old, kill=True)

    async def release_all(self) -> None:
        """Free every fid (the session ended): C's, and Python's with their Files."""
        if self.cm is not None:
            self.cm.clear()
        fids, self.fids = self.fids, {}
        for f in fids.values():
            await self.unref(f, kill=True)

    def adopt_all(self) -> None:
        """Make every fid C owns a Python fid (see p9/_cmeta.py): before Python answers
        anything, or changes the fid table, while C holds fids."""
        cm = self.cm
        if cm is None:
            return
        for fid, parent, names, fds, mode, qtype, qpath in cm.take():
            pf = self.fids.get(parent)
            try:
                if pf is None:  # cannot happen: a parent's change adopts its children first
                    for fd in fds:
                        os.close(fd)
                    raise OSError(errno.EBADF, f"fid {fid}'s parent {parent} is gone")
                new = FidState(pf.file.adopt_child(names, fds, mode), m.Qid(qtype, 0, qpath),
                               pf.depth + len(names))
            except Exception:  # noqa: BLE001 - the fid is lost, the connection goes on
                log.exception("p9 server: could not adopt fid %d from C", fid)
                continue
            self.fids[fid] = new
            cm.set_fid(fid, new)
