"""The server's file model: one `File` object per fid, implemented by a concrete server.

A concrete server (the Gofer, a test server) subclasses `File` and `Filesystem`. The server
framework (`p9.Server`: p9/_connection.py, _fids.py, _handlers.py) owns the fid table, the
protocol and its leniencies; the File owns only file semantics. Every method may raise
`OSError`; the framework turns it into an Rlerror with its errno, in one place. Defaults
answer the errno Linux gives for an operation a file does not support, so an
implementation overrides only what it supports.

Ownership: the framework calls `close()` exactly once for every File it received (from
`Filesystem.attach`, `walk`, `create`), after the last request using it has finished. Files
passed as arguments (`newdir`, `target`) are borrowed: never close or keep them.
"""

from __future__ import annotations

import abc
import errno
import os
from collections.abc import Sequence

from ._dirents import PackedDirents
from ._messages import Attr, Dirent, FullStat, Qid, Rgetlock, Rstatfs, SetAttr


def _unsupported(what: str, code: int = errno.EOPNOTSUPP) -> OSError:
    return OSError(code, f"{what}: {errno.errorcode.get(code, code)}")


class File(abc.ABC):
    """One fid's file. Methods are async and run concurrently with other fids' requests.

    Names are bytes and single components (never contain b"/"; never b"." or b"..", except
    that `walk` receives b".." below the attach root, which must not leave the export).
    """

    @abc.abstractmethod
    async def walk(self, names: Sequence[bytes]) -> tuple[list[Qid], File | None]:
        """Walk `names` from this file (a directory, unless `names` is empty).

        Returns:
            (qids, file): one qid per name walked and a new File for the last one. With an
            empty `names` return ([], a clone of self). If a name after the first fails,
            return the qids walked so far and None.

        Raises:
            OSError: the first name fails (ENOENT, ENOTDIR, EACCES, ELOOP ...).
        """

    @abc.abstractmethod
    async def getattr(self, mask: int) -> tuple[Qid, int, Attr]:
        """Return (qid, valid mask, attributes); `mask` is the GetattrMask requested."""

    async def walk_getattr(self, names: Sequence[bytes]) -> tuple[list[Qid], File | None, int, Attr]:
        """Walk then getattr of the result (Twalkgetattr); override to do both at once."""
        qids, new = await self.walk(names)
        if new is None:
            return qids, None, 0, Attr()
        try:
            _, valid, attr = await new.getattr(0x3FFF)
        except BaseException:
            await new.close()
            raise
        return qids, new, valid, attr

    async def multi_getattr(self, names: Sequence[bytes]) -> list[FullStat]:
        """Stat each successive component of `names` until one fails (Tmultigetattr).

        An empty `names` stats this file. Stops early (shorter list) at the first missing
        component; raises OSError only if nothing could be stat'ed.
        """
        if not names:
            q, valid, a = await self.getattr(0x3FFF)
            return [FullStat(q, valid, a)]
        out: list[FullStat] = []
        cur: File = self
        try:
            for name in names:
                try:
                    _, nxt = await cur.walk([name])
                except OSError:
                    if out:
                        break
                    raise
                if nxt is None:  # a one-name walk that fails raises (see `walk`)
                    raise OSError(errno.EIO, "file model walk returned no file")
                if cur is not self:
                    await cur.close()
                cur = nxt
                q, valid, a = await cur.getattr(0x3FFF)
                out.append(FullStat(q, valid, a))
        finally:
            if cur is not self:
                await cur.close()
        return out

    async def setattr(self, valid: int, attr: SetAttr) -> None:
        """Change the attributes named by `valid` (SetattrMask)."""
        raise _unsupported("setattr")

    async def open(self, flags: int) -> tuple[Qid, int]:
        """Open with Linux open flags; return (qid, iounit) (iounit 0: client's choice)."""
        raise _unsupported("open")

    async def create(
        self, name: bytes, flags: int, mode: int, gid: int, uid: int | None
    ) -> tuple[File, Qid, int]:
        """Create and open `name` in this directory; return (new open file, qid, iounit).

        `uid` is None unless the client sent Tucreate. The framework makes the fid refer to
        the returned file (and closes this one).
        """
        raise _unsupported("create")

    async def read(self, offset: int, count: int) -> bytes:
        """Read up to `count` bytes at `offset` from the open file (b"" at end of file)."""
        raise _unsupported("read", errno.EINVAL)

    def data_fd(self) -> int | None:
        """A host descriptor of this open regular file from which the framework may pread(2)
        Tread data directly, or None (the default): every Tread goes to `read`.

        Asked once, right after a successful `open` or `create`, and only for a File with a
        true `inline_io`; the descriptor must then stay open and refer to this file until
        `close`. Must not raise or wait.
        """
        return None

    def donate_fd(self) -> int | None:
        """A host descriptor of this open file that the client may read and map itself
        (Tlopenfd, our dialect, unix sockets), or None (the default): the client reads
        through Tread. Asked right after a successful `open` for a Tlopenfd; the framework
        sends a duplicate, so the descriptor stays this File's. Return one only for what
        the client may read anyway: a regular file opened read-only. Must not raise or
        wait.
        """
        return None

    def walk_source(self) -> tuple[int, int, int, int] | None:
        """(fd, cred, dev, resolve) to let the framework's C path look single names up
        beneath this directory, or None (the default): every Twalk goes to `walk`.

        fd: an O_PATH descriptor of this directory, open until `close`; names are resolved
        by openat2(2) with O_PATH|O_NOFOLLOW|O_CLOEXEC and the RESOLVE_* flags `resolve`,
        while the thread's credentials are those `Filesystem.cred_token` calls `cred` (0: any).
        dev: the device whose inode numbers are the qid paths (a file elsewhere takes
        `walk`). What C walks to becomes a File through `adopt_child` before anything
        else than its Tgetattr (without btime) and Tclunk reaches it (see p9/_cmeta.py).
        Asked whenever the fid table changes; must not raise or wait.
        """
        return None

    def adopt_child(self, names: Sequence[bytes], fds: Sequence[int], mode: int) -> File:
        """The File for `names`, which the C path walked from this directory (see
        `walk_source`): `fds` are the O_PATH descriptors of each name on the way, the last
        the file's, now the File's (closed by it, also when this raises); `mode` its st_mode
        then. The same File `walk(names)` gives."""
        for fd in fds:
            os.close(fd)
        raise _unsupported("adopt_child", errno.ENOSYS)

    async def write(self, offset: int, data: bytes | memoryview) -> int:
        """Write `data` at `offset` to the open file; return the count written.

        `data` is bytes-like: for a File with `data_fd`, a memoryview into the receive
        buffer, valid only during the call (copy what you keep).
        """
        raise _unsupported("write", errno.EINVAL)

    async def readdir(self, offset: int, count: int) -> Sequence[Dirent] | PackedDirents:
        """Entries of the open directory from cookie `offset` (0 = start).

        Each Dirent's `offset` is the cookie of the entry after it. Return at least the
        entries fitting in `count` bytes; the framework sends the ones that fit. Or return
        them already packed (`p9.pack_rows`), at most `count` bytes.
        """
        raise _unsupported("readdir", errno.ENOTDIR)

    async def readdir_attr(self, offset: int, count: int) -> tuple[bytes, int, bool]:
        """Treaddirattr (our dialect): entries from cookie `offset` with the attributes a
        Tgetattr of each would give, packed by `p9.pack_attr_rows` into at most `count`
        bytes: (data, how many, whether the directory ends there). Unsupported by default
        (EOPNOTSUPP): clients then read with Treaddir and ask per entry."""
        raise _unsupported("readdir_attr", errno.EOPNOTSUPP)

    async def mkdir(self, name: bytes, mode: int, gid: int, uid: int | None) -> Qid:
        raise _unsupported("mkdir")

    async def symlink(self, name: bytes, target: bytes, gid: int, uid: int | None) -> Qid:
        raise _unsupported("symlink")

    async def mknod(
        self, name: bytes, mode: int, major: int, minor: int, gid: int, uid: int | None
    ) -> Qid:
        raise _unsupported("mknod")

    async def link(self, target: File, name: bytes) -> None:
        """Make `name` in this directory a hard link to `target`."""
        raise _unsupported("link")

    async def rename(self, newdir: File, name: bytes) -> None:
        """Move this file to `newdir`/`name` (Trename)."""
        raise _unsupported("rename")

    async def renameat(self, oldname: bytes, newdir: File, newname: bytes) -> None:
        """Move `oldname` in this directory to `newdir`/`newname`."""
        raise _unsupported("renameat")

    async def unlinkat(self, name: bytes, flags: int) -> None:
        """Remove `name` from this directory (flags: AT_REMOVEDIR for a directory)."""
        raise _unsupported("unlinkat")

    async def remove(self) -> None:
        """Remove this file (Tremove); the framework clunks the fid afterwards, always."""
        raise _unsupported("remove")

    async def readlink(self) -> bytes:
        raise _unsupported("readlink", errno.EINVAL)

    async def statfs(self) -> Rstatfs:
        raise _unsupported("statfs", errno.ENOSYS)

    async def fsync(self, datasync: bool) -> None:
        return None

    async def lock(
        self, lock_type: int, flags: int, start: int, length: int, proc_id: int, client_id: bytes
    ) -> int:
        """Take or release a POSIX byte-range lock; return a LockStatus."""
        raise _unsupported("lock")

    async def getlock(
        self, lock_type: int, start: int, length: int, proc_id: int, client_id: bytes
    ) -> Rgetlock:
        """Test for a conflicting lock (Tgetlock); lock_type UNLCK in the answer: none."""
        raise _unsupported("getlock")

    async def getxattr(self, name: bytes, size: int) -> bytes:
        """Value of extended attribute `name` (size 0: any size; else ERANGE if larger)."""
        raise _unsupported("getxattr", errno.ENODATA)

    async def setxattr(self, name: bytes, value: bytes, flags: int) -> None:
        raise _unsupported("setxattr")

    async def listxattr(self, size: int) -> list[bytes]:
        return []

    async def removexattr(self, name: bytes) -> None:
        raise _unsupported("removexattr", errno.ENODATA)

    async def allocate(self, mode: int, offset: int, length: int) -> None:
        raise _unsupported("allocate")

    async def flush(self) -> None:
        """Tflushf: the client closed a descriptor of this file (like FUSE's flush)."""
        return None

    async def close(self) -> None:
        """Release everything this object holds. Called once; must not raise."""
        return None


class Filesystem(abc.ABC):
    """What a server exports: attach returns the root File of an export."""

    #: Whether its Files may offer `File.walk_source` (the framework then keeps a fid table
    #: in C for its metadata loop; see p9/_cmeta.py).
    walk_sources: bool = False

    def cred_token(self) -> int:
        """The token of the credentials the serving thread has now (`File.walk_source`)."""
        return 0

    def fid_room(self) -> int:
        """How many more Files the connection may hold (C stays within it)."""
        return 1 << 30

    @abc.abstractmethod
    async def attach(self, aname: bytes, uname: bytes, uid: int) -> File:
        """Return the root File for export `aname` on behalf of user `uname`/`uid`.

        The framework already mapped an empty uname or NONUNAME to the configured default.
        Raises OSError (ENOENT for an unknown aname, EACCES/EPERM for a refused user).
        """
