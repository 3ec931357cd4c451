"""The fid table C reads when it answers metadata requests (`p9f_serve_meta`, p9._fastio).

Why: with one request in flight (diodls, a stat per name), a Twalk, a Tgetattr and a
Tclunk per file, a Python server spends ~25 µs of interpreter per request once the client
has run between two requests (cold caches), against ~4 µs for diod, in C.
`p9f_serve_meta` answers those in C (and Twalkgetattr, where the dialect has it) when the
file model offers it what it needs:

- a *walk source*: a Python-owned directory fid whose File gives an O_PATH descriptor that
  names may be looked up beneath with openat2(2) and given RESOLVE flags, under a
  credential token (`File.walk_source`, `Filesystem.cred_token`);
- the fid C walks to (1-4 names) is then C's own (its O_PATH descriptor and those of the
  directories on the way, its qid, its names): C answers its Tgetattr (the basic fields)
  and its Tclunk.

C declines anything else and the connection's Python path answers it, with the same bytes
(tests/gofer/test_cmeta.py compares the two). Before Python handles any request while C owns
fids, or changes a fid C might read, it *adopts* them all: each becomes a File through its
parent's `File.adopt_child`, as if the Python walk had made it. So Python never meets a fid
it does not know, and C never reads a fid Python changed.

The table covers fids below `NTAB` (clients allocate the lowest free fid; a larger fid
simply takes the Python path).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ._constants import QidType

if TYPE_CHECKING:
    from ._fids import FidState

#: Fids below this are in C's table (p9f_meta.tab); C owns at most `NC` at once.
NTAB = 16384
NC = 16
_FREE, _PY, _C, _SRC = 0, 1, 2, 3
_MAX_FD = 1 << 22
_MAX_EXPORTS = 64


class CMeta:
    """One connection's `struct p9f_meta`: what C may walk from, and what it owns."""

    def __init__(self, ffi) -> None:
        self._ffi = ffi
        self.mt = ffi.new("struct p9f_meta *")
        for c in self.mt.c:
            c.fd = -1
        self._tab = self.mt.tab
        self._exports: dict[tuple[int, int], int] = {}

    @property
    def owned(self) -> int:
        """How many fids C owns now."""
        return self.mt.nc

    def owns(self, fid: int) -> bool:
        return fid < NTAB and self._tab[fid] & 3 == _C

    def set_fid(self, fid: int, f: FidState | None) -> None:
        """Record that `fid` now names `f` (None: no longer in use). Call only while C owns
        no fid (`adopt` first): C reads the entries of its fids' parents."""
        if fid >= NTAB:
            return
        if f is None:
            self._tab[fid] = _FREE
            return
        src = f.file.walk_source() if f.qid.type & QidType.DIR else None
        value = _PY
        if src is not None:
            fd, cred, dev, resolve = src
            x = self._exports.get((dev, resolve))
            if x is None and len(self._exports) < _MAX_EXPORTS:
                x = self._exports[(dev, resolve)] = len(self._exports)
                self.mt.xdev[x] = dev
                self.mt.xresolve[x] = resolve
            if x is not None and 0 <= fd < _MAX_FD and 0 <= cred < 256:
                value = _SRC | fd << 2 | cred << 24 | x << 32
        self._tab[fid] = value

    def take(self) -> list[tuple[int, int, list[bytes], list[int], int, int, int]]:
        """Hand every fid C owns to the caller: (fid, parent, names, fds, mode, qid type,
        qid path) each, with a descriptor per name walked (the directories on the way, then
        the file); their table entries become free until the caller sets them."""
        out = []
        for c in self.mt.c:
            if c.fd >= 0:
                raw = bytes(self._ffi.buffer(c.names, c.namelen))
                names, at = [], 0
                while at < len(raw):
                    names.append(raw[at + 1 : at + 1 + raw[at]])
                    at += 1 + raw[at]
                fds = [c.up[i] for i in range(c.nnames - 1)] + [c.fd]
                out.append((c.fid, c.parent, names, fds, c.mode, c.qtype, c.qpath))
                self._tab[c.fid] = _FREE
                c.fd = -1
        self.mt.nc = 0
        return out

    def clear(self) -> None:
        """Forget every fid, closing the descriptors C owns (the session ended)."""
        for item in self.take():
            for fd in item[3]:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._ffi.memmove(self._tab, bytes(8 * NTAB), 8 * NTAB)
