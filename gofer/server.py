"""The gofer's 9P file model: p9's `File`/`Filesystem` over gofer.host nodes.

Each fid is a `GoferFile` holding one reference to a host `Node` (an O_PATH descriptor) and,
once opened, an `OpenFile`. Requests run on the trio thread, synchronously between awaits
(local file operations do not block), after switching the thread's filesystem credentials
to the attaching user's. FIFOs, the only files whose
operations can block indefinitely, are opened O_NONBLOCK and waited on with trio.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import trio

import p9
from p9 import ENTRY_FIXED, Attr, PackedDirents, Qid, Rgetlock, Rstatfs, SetAttr, pack_rows

from .host import Export, Node, lookup_resolve
from .hosttypes import qid_type_of
from .ident import Ident, IdentityPolicy, apply_ident, cred_token, current_cred_token
from .openfile import OpenFile
from .peer import LOCAL, Peer
from .procfd import ProcFD

__all__ = ["GoferFile", "GoferFilesystem"]


_GETATTR_BASIC = 0x7FF
_GETATTR_BTIME = 0x800
_U64 = (1 << 64) - 1
_NO_ID = 0xFFFFFFFF
_FIFO_RETRY = 0.02  # seconds between attempts to open a FIFO for writing with no reader


def _s(name: bytes) -> str:
    return os.fsdecode(name)


def _qid(qtype: int, path: int) -> Qid:
    return Qid(qtype, 0, path)


def _quick_mode(mode: int) -> bool:
    """Whether no operation on a file of this type can wait (see `GoferFile.inline_io`)."""
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)


def _qid_of(export: Export, st: os.stat_result) -> Qid:
    return Qid(qid_type_of(st.st_mode), 0, export.qid_path(st))


class GoferFilesystem(p9.Filesystem):
    """The exports of one gofer process, looked up by aname.

    Args:
        exports: the exports (already opened with `Export.open`).
        policy: how attaching users map to identities.
    """

    walk_sources = True  # see GoferFile.walk_source

    def __init__(self, exports: Sequence[Export], policy: IdentityPolicy) -> None:
        self.exports = {e.name: e for e in exports}
        self.policy = policy

    @classmethod
    def open(
        cls, exports: Sequence[Export], policy: IdentityPolicy, procfd: ProcFD | None = None
    ) -> GoferFilesystem:
        """Open every export's root descriptor (before confinement) and build the filesystem."""
        procfd = procfd or ProcFD()
        for e in exports:
            e.open(procfd)
        return cls(exports, policy)

    def lookup(self, aname: str) -> Export:
        """The export an aname selects: by name; else by its host path, as diod's anames are;
        else, with a single export, an empty aname or "/" (what gVisor's client sends).

        Raises:
            OSError(ENOENT): nothing matches.
        """
        export = self.exports.get(aname)
        if export is not None:
            return export
        for e in self.exports.values():
            if aname.startswith("/") and os.path.normpath(aname) == os.path.normpath(e.path):
                return e
        if aname in ("", "/") and len(self.exports) == 1:
            return next(iter(self.exports.values()))
        raise OSError(errno.ENOENT, f"no export named {aname!r}")

    def cred_token(self) -> int:
        return current_cred_token()

    async def attach(self, aname: bytes, uname: bytes, uid: int, peer: Peer = LOCAL) -> GoferFile:
        export = self.lookup(_s(aname))
        ident = self.policy.resolve(uname=_s(uname), n_uname=uid, peer=peer)
        f = GoferFile(export.root(), ident, self.policy.switch)
        try:
            f._as()
            # The root exists and the identity may use it.
            f.inline_io = _quick_mode(os.stat(f.node.fd).st_mode)
        except BaseException:
            await f.close()
            raise
        return f


class GoferFile(p9.File):
    """One fid: a host node, its open descriptor once opened, and whom it acts for."""

    __slots__ = ("node", "of", "ident", "switch", "closed", "fifo_wait", "inline_io")

    def __init__(self, node: Node, ident: Ident, switch: bool, quick: bool = False) -> None:
        self.closed = False
        self.fifo_wait = False
        #: p9's per-request inline hint: True when no operation on this file can wait (a
        #: regular file, directory or symlink), so Tlopen/Tread/Twrite/Treaddir on it run in
        #: the connection's reader task. FIFOs and devices (reads that may block) never are.
        self.inline_io = quick
        self.node = node
        self.of: OpenFile | None = None
        self.ident = ident
        self.switch = switch

    def __repr__(self) -> str:
        return f"<GoferFile {self.node!r} open={self.of is not None}>"

    def _as(self) -> None:
        if self.switch:
            apply_ident(self.ident)

    def _child(self, node: Node) -> GoferFile:
        return GoferFile(node, self.ident, self.switch)

    def _quick_child(self, node: Node, quick: bool) -> GoferFile:
        child = self._child(node)
        child.inline_io = quick
        return child

    def _opened(self) -> OpenFile:
        if self.of is None:
            raise OSError(errno.EBADF, "fid is not open")
        return self.of

    async def _fifo_open(self, flags: int) -> OpenFile:
        """Open a FIFO without ever blocking the server: always O_NONBLOCK on the host.

        A writer with no reader yet gets ENXIO from the host; unless the client asked for
        O_NONBLOCK we retry until a reader comes (or the request is flushed), which is what a
        blocking open(2) would wait for. Reads and writes then wait with trio, so a flushed
        request leaves nothing behind (no thread, no descriptor).
        """
        while True:
            self._as()
            try:
                return self.node.open(flags | os.O_NONBLOCK)
            except OSError as e:
                if e.errno != errno.ENXIO or flags & os.O_NONBLOCK:
                    raise
            await trio.sleep(_FIFO_RETRY)

    # -- lookups and attributes ------------------------------------------------------------

    def walk_source(self) -> tuple[int, int, int, int] | None:
        """What p9's C walk needs to look names up here as `walk` does (openat2 beneath
        node.fd, under this file's identity); None when `walk` does more than that."""
        node = self.node
        resolve = lookup_resolve(node.export)
        cred = cred_token(self.ident) if self.switch else 0
        if resolve is None or cred is None or node.fd < 0:
            return None
        return node.fd, cred, node.export.root_dev, resolve

    def adopt_child(self, names: Sequence[bytes], fds: Sequence[int], mode: int) -> GoferFile:
        # What walk(names) builds from Node.walk's lookups, with C's descriptors and mode:
        # each node holds a reference to the one before it.
        node = self.node.ref()
        for name, fd in zip(names, fds, strict=True):
            node = Node(fd, node.export, node, _s(name))
        return self._adopted(node, _quick_mode(mode))

    def _adopted(self, node: Node, quick: bool) -> GoferFile:
        """The File for a fid C walked to (a budget charges it even when full: C stayed
        within the room it was given when it walked)."""
        return self._quick_child(node, quick)

    async def walk(self, names: Sequence[bytes]) -> tuple[list[Qid], GoferFile | None]:
        self._as()
        if not names:
            return [], self._quick_child(self.node.ref(), self.inline_io)
        if len(names) == 1:  # what clients send most (a lookup per name)
            node = self.node.walk(_s(names[0]))
            try:
                st = os.stat(node.fd)
            except BaseException:
                node.release()
                raise
            mode = st.st_mode
            qid = Qid(qid_type_of(mode), 0, node.export.qid_path(st))
            return [qid], self._quick_child(node, _quick_mode(mode))
        qids: list[Qid] = []
        node = self.node.ref()
        mode = 0
        try:
            for i, name in enumerate(names):
                try:
                    nxt = node.walk(_s(name))
                except OSError:
                    if i == 0:
                        raise
                    node.release()
                    return qids, None
                node.release()
                node = nxt
                st = os.stat(node.fd)
                mode = st.st_mode
                qids.append(_qid_of(node.export, st))
        except BaseException:
            node.release()
            raise
        return qids, self._quick_child(node, _quick_mode(mode))

    async def getattr(self, mask: int) -> tuple[Qid, int, Attr]:
        self._as()
        if not mask & _GETATTR_BTIME:
            # The common request (Linux and diod's tools ask for the basic fields): p9's
            # Attr straight from fstat, without host.Attr in between (a third of the cost).
            node = self.node
            st = os.stat(node.fd)
            mode = st.st_mode
            # Seconds before 1970 go as the u64 of their two's complement, as a C server
            # sends a time_t (the client reads them back signed).
            asec, ansec = divmod(st.st_atime_ns, 1_000_000_000)
            msec, mnsec = divmod(st.st_mtime_ns, 1_000_000_000)
            csec, cnsec = divmod(st.st_ctime_ns, 1_000_000_000)
            asec, msec, csec = asec & _U64, msec & _U64, csec & _U64
            return (
                Qid(qid_type_of(mode), 0, node.export.qid_path(st)),
                _GETATTR_BASIC,
                Attr(
                    mode, st.st_uid, st.st_gid, st.st_nlink, st.st_rdev, st.st_size,
                    st.st_blksize, st.st_blocks, asec, ansec, msec, mnsec, csec, cnsec,
                    0, 0, 0, 0,
                ),
            )
        a = self.node.getattr(btime=True)
        valid = _GETATTR_BASIC
        bsec = bnsec = 0
        if a.btime is not None:
            valid |= _GETATTR_BTIME
            bsec, bnsec = a.btime
        return (
            _qid(a.qid_type, a.qid_path),
            valid,
            Attr(
                a.mode, a.uid, a.gid, a.nlink, a.rdev, a.size, a.blksize, a.blocks,
                a.atime_ns // 10**9 & _U64, a.atime_ns % 10**9,
                a.mtime_ns // 10**9 & _U64, a.mtime_ns % 10**9,
                a.ctime_ns // 10**9 & _U64, a.ctime_ns % 10**9,
                bsec & _U64, bnsec, 0, 0,
            ),
        )

    async def setattr(self, valid: int, attr: SetAttr) -> None:
        self._as()
        self.node.setattr(
            valid,
            mode=attr.mode,
            uid=attr.uid,
            gid=attr.gid,
            size=attr.size,
            atime=(attr.atime_sec, attr.atime_nsec),
            mtime=(attr.mtime_sec, attr.mtime_nsec),
            size_fd=self._write_fd() if valid & p9.SetattrMask.SIZE else -1,
        )

    def _write_fd(self) -> int:
        """The fid's descriptor when it is open for writing, else -1: a size change through it
        is ftruncate(2), which needs only that descriptor (Linux's v9fs sends an ftruncate's
        Tsetattr on the open fid), not write permission on the file as it is now."""
        of = self.of
        if of is None or of.fd < 0 or self.fifo_wait:
            return -1
        return of.fd if fcntl.fcntl(of.fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY else -1

    # -- open files ------------------------------------------------------------------------

    async def open(self, flags: int) -> tuple[Qid, int]:
        self._as()
        if self.of is not None:
            raise OSError(errno.EINVAL, "fid already open")
        node = self.node
        if node.is_fifo():
            self.of = await self._fifo_open(flags)
            self.fifo_wait = not flags & os.O_NONBLOCK
        else:
            self.of = node.open(flags)
        return _qid_of(node.export, os.stat(node.fd)), 0

    async def create(
        self, name: bytes, flags: int, mode: int, gid: int, uid: int | None
    ) -> tuple[GoferFile, Qid, int]:
        with self._creating(gid):
            node, of = self.node.create(_s(name), flags, mode)
        try:
            st = self._own(node, uid, gid, os.stat(node.fd))
        except BaseException:
            of.close()
            node.release()
            raise
        child = self._quick_child(node, _quick_mode(st.st_mode))
        child.of = of
        return child, _qid_of(node.export, st), 0

    @contextmanager
    def _creating(self, gid: int) -> Iterator[None]:
        """Run a create with the credentials a local create by the caller would have: the
        attaching user's, with the request's gid (the caller's fsgid; Linux's v9fs sends the
        directory's group in a set-gid directory) as fsgid when that user may take it (a
        group it is in; any, for root). The host kernel then gives the new file the group
        Linux gives (the directory's in a set-gid directory, else that fsgid), strips
        S_ISGID where Linux does, and makes new subdirectories of a set-gid directory
        set-gid; no chown afterwards clears set-id bits. Another gid stays the attaching
        user's primary group (`_own` tries it with chown, which the host may refuse)."""
        ident = self.ident
        if (not self.switch or gid in (_NO_ID, ident.gid)
                or not (ident.uid == 0 or ident.in_group(gid))):
            self._as()
            yield
            return
        apply_ident(Ident(ident.uid, gid, tuple(sorted({ident.gid, *ident.groups}))))
        try:
            yield
        finally:
            self._as()

    def _own(self, node: Node, uid: int | None, gid: int, st: os.stat_result) -> os.stat_result:
        """Give a new file the requested owner/group when they differ and the user may.

        The kernel made the new file with the creator's credentials (`_creating`); what is
        left is a gid the creator could not take as fsgid (applied with chown, which the
        kernel refuses to a user outside the group: then the kernel's choice stands), never
        in a set-gid directory (whose group Linux gives whatever the caller's fsgid), and a
        Tu* uid. A chown clears set-id bits the create kept; they are put back, as the
        file would have them had that owner created it.
        """
        want_uid = uid if uid is not None and uid != _NO_ID and uid != st.st_uid else -1
        want_gid = gid if gid != _NO_ID and gid != st.st_gid else -1
        if want_gid != -1 and os.stat(self.node.fd).st_mode & stat.S_ISGID:
            want_gid = -1
        if want_uid == -1 and want_gid == -1:
            return st
        try:
            node.chown(want_uid, want_gid)
        except PermissionError:
            return st
        now = os.stat(node.fd)
        if now.st_mode != st.st_mode and not stat.S_ISLNK(st.st_mode):
            try:
                node.setattr(p9.SetattrMask.MODE, mode=st.st_mode)
            except PermissionError:
                return now
            now = os.stat(node.fd)
        return now

    async def read(self, offset: int, count: int) -> bytes:
        of = self._opened()
        self._as()
        if not self.fifo_wait:
            return of.read(offset, count)
        # Wait first: a FIFO with no writer yet reads as EOF at once, but a blocking read
        # after a blocking open (which waited for a writer) would wait for data or hang-up.
        while True:
            await trio.lowlevel.wait_readable(of.fd)
            try:
                return of.read(offset, count)
            except BlockingIOError:
                continue

    async def readinto(self, offset: int, buf: memoryview) -> int:
        """p9's buffer-reusing read (used for inline Treads): the bytes read into `buf`."""
        if self.fifo_wait:
            data = await self.read(offset, len(buf))
            buf[: len(data)] = data
            return len(data)
        of = self._opened()
        self._as()
        return of.readinto(offset, buf)

    def data_fd(self) -> int | None:
        """p9's Tread fast path: the open regular file's descriptor (None otherwise); it stays
        open until close()."""
        of = self.of
        if of is None or self.fifo_wait or not stat.S_ISREG(of.mode):
            return None
        return of.fd

    def donate_fd(self) -> int | None:
        """p9's Tlopenfd: the descriptor of a regular file opened read-only (the client may
        read and map it itself; it can do nothing with it that Tread could not), else
        None. Directories, writable opens and everything else stay behind 9P."""
        of = self.of
        if (of is None or self.fifo_wait or not stat.S_ISREG(of.mode)
                or fcntl.fcntl(of.fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY):
            return None
        return of.fd

    async def write(self, offset: int, data: bytes | memoryview) -> int:
        of = self._opened()
        self._as()
        if not self.fifo_wait:
            return of.write(offset, data)
        done = 0
        view = memoryview(data)
        while done < len(data):
            try:
                done += of.write(offset, view[done:])
            except BlockingIOError:
                if done:
                    return done
                await trio.lowlevel.wait_writable(of.fd)
        return done

    async def readdir(self, offset: int, count: int) -> PackedDirents:
        self._as()
        src = self._opened().entries(offset)
        if offset < len(src) and ENTRY_FIXED + len(src[offset][4]) > count:
            raise OSError(errno.EINVAL, f"readdir count {count} too small for an entry")
        # Packed straight from the snapshot's rows (no Dirent objects); at most count // 24
        # entries can fit, so the slice bounds the work by what one reply can carry.
        return pack_rows(src[offset : offset + count // ENTRY_FIXED], count)

    async def readdir_attr(self, offset: int, count: int) -> tuple[bytes, int, bool]:
        self._as()
        of = self._opened()
        src = of.entries(offset)
        rows = src[offset : offset + count // p9.ATTR_ENTRY_MIN]
        data, n = p9.pack_attr_rows(rows, count, functools.partial(self.node.entry_attrs, of.fd))
        return data, n, offset + n >= len(src)

    async def fsync(self, datasync: bool) -> None:
        self._as()
        if self.of is not None:
            self.of.fsync(datasync)

    async def allocate(self, mode: int, offset: int, length: int) -> None:
        self._as()
        self._opened().fallocate(mode, offset, length)

    async def lock(
        self, lock_type: int, flags: int, start: int, length: int, proc_id: int, client_id: bytes
    ) -> int:
        self._as()
        return self._opened().lock(lock_type, start, length)

    async def getlock(
        self, lock_type: int, start: int, length: int, proc_id: int, client_id: bytes
    ) -> Rgetlock:
        self._as()
        t, s, ln, pid = self._opened().getlock(lock_type, start, length)
        if t == p9.LockType.UNLCK:
            return Rgetlock(t, start, length, proc_id, client_id)
        return Rgetlock(t, s, ln, pid & 0xFFFFFFFF, b"")

    # -- namespace -------------------------------------------------------------------------

    async def mkdir(self, name: bytes, mode: int, gid: int, uid: int | None) -> Qid:
        with self._creating(gid):
            self.node.mkdir(_s(name), mode)
        return self._new_entry(name, uid, gid)

    async def symlink(self, name: bytes, target: bytes, gid: int, uid: int | None) -> Qid:
        with self._creating(gid):
            self.node.symlink(_s(name), _s(target))
        return self._new_entry(name, uid, gid)

    async def mknod(
        self, name: bytes, mode: int, major: int, minor: int, gid: int, uid: int | None
    ) -> Qid:
        with self._creating(gid):
            self.node.mknod(_s(name), mode, major, minor)
        return self._new_entry(name, uid, gid)

    def _new_entry(self, name: bytes, uid: int | None, gid: int) -> Qid:
        child = self.node.walk(_s(name))
        try:
            return _qid_of(child.export, self._own(child, uid, gid, os.stat(child.fd)))
        finally:
            child.release()

    async def link(self, target: p9.File, name: bytes) -> None:
        self._as()
        _node(target).link_into(self.node, _s(name))

    async def rename(self, newdir: p9.File, name: bytes) -> None:
        self._as()
        self.node.rename_self(_node(newdir), _s(name))

    async def renameat(self, oldname: bytes, newdir: p9.File, newname: bytes) -> None:
        self._as()
        self.node.rename(_s(oldname), _node(newdir), _s(newname))

    async def unlinkat(self, name: bytes, flags: int) -> None:
        self._as()
        self.node.unlink(_s(name), flags)

    async def remove(self) -> None:
        self._as()
        self.node.remove_self()

    async def readlink(self) -> bytes:
        self._as()
        return os.fsencode(self.node.readlink())

    async def statfs(self) -> Rstatfs:
        self._as()
        s = self.node.statfs()
        return Rstatfs(
            s.type & 0xFFFFFFFF, s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.fsid,
            s.namelen,
        )

    # -- xattrs ----------------------------------------------------------------------------

    async def getxattr(self, name: bytes, size: int) -> bytes:
        self._as()
        value = self.node.getxattr(_s(name))
        if size and len(value) > size:
            raise OSError(errno.ERANGE, f"xattr {name!r} is {len(value)} bytes")
        return value

    async def setxattr(self, name: bytes, value: bytes, flags: int) -> None:
        self._as()
        self.node.setxattr(_s(name), value, flags)

    async def listxattr(self, size: int) -> list[bytes]:
        self._as()
        names = [os.fsencode(n) for n in self.node.listxattr()]
        if size and sum(len(n) + 1 for n in names) > size:
            raise OSError(errno.ERANGE, "xattr list larger than the buffer")
        return names

    async def removexattr(self, name: bytes) -> None:
        self._as()
        self.node.removexattr(_s(name))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.of is not None:
            if self.fifo_wait:
                trio.lowlevel.notify_closing(self.of.fd)
            self.of.close()
            self.of = None
        self.node.release()


def _node(f: p9.File) -> Node:
    """The node of a File p9 hands back to us (a link target, a rename's directory): p9
    only passes Files of the same filesystem, so it is always a GoferFile."""
    assert isinstance(f, GoferFile)
    return f.node
