"""goferfs's open files: a regular file's reads and writes go through the page cache
under the exclusive policy and straight to the server under the shared one; a directory's
listing is the server's Treaddir."""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any

import p9

from ...abi import DT_SOCK, DT_UNKNOWN, O_ACCMODE, O_APPEND, O_RDONLY, Stat
from ...creds import Credentials
from ...dentry import Dentry, now_ns
from ...file import DirectoryFD, RegularFD
from ...perm import mode_after_write
from .inode import inode_of
from .pages import CHUNK, READ_AHEAD, LostWrite, join_views, lost_write, write_dirty

if TYPE_CHECKING:
    from ...mount import VirtualDentry
    from .filesystem import GoferFS

#: A Treaddirattr's entries (`p9.Fid.readdir_attr`).
Listing = list[tuple[tuple[int, int, int, int, bytes], tuple[int, ...] | None]]


class GoferFileFD(RegularFD):
    """An open remote file: page-cached under the exclusive policy, direct when shared."""

    def __init__(self, flags: int, fs: GoferFS, d: Dentry, io: p9.Fid | None) -> None:
        super().__init__(None, flags)
        self.fs = fs
        self.dentry = d
        self.inode = inode_of(d)
        self._io = io  # None: opened (read-only) on first need, see GoferFS.open
        self.inode.opens += 1
        self._writes = flags & O_ACCMODE != O_RDONLY
        self.inode.writers += self._writes
        self.writer: Credentials | None = None

    def file_size(self) -> int:
        return self.inode.size

    async def file_stat(self, vd: VirtualDentry) -> Stat:
        if vd.mount.fs is not self.fs:  # opened through an overlay: its dev, its view
            return await super().file_stat(vd)
        return await self.fs.stat_open(self.dentry, self._io)

    async def io(self) -> p9.Fid:
        """The I/O fid (walked and opened now if this description was opened without)."""
        if self._io is None:
            io = await self.fs.open_io(self.dentry, O_RDONLY)
            if self._io is not None:  # another task of this description opened it first
                await io.clunk()
            else:
                self._io = io
        return self._io

    async def _fill(self, first: int, last: int, ahead: bool = True) -> None:
        """Bring pages first..last into the cache, reading each missing run (plus up to
        READ_AHEAD pages after it, for reads) with one pipelined read."""
        ino = self.inode
        cache = self.fs.pages
        server_pages = -(-ino.server_size // CHUNK)
        limit = max(last, min(first + READ_AHEAD - 1, server_pages - 1)) if ahead else last
        idx = first
        while idx <= last:
            if idx in ino.pages:
                cache.touch(ino, idx)
                idx += 1
                continue
            j = idx
            while j < limit and (j + 1) not in ino.pages:
                j += 1
            start = idx * CHUNK
            data = b""
            if start < ino.server_size:
                data = await (await self.io()).read(start, min((j + 1) * CHUNK, ino.server_size) - start)
            with memoryview(data) as view:  # (one copy per page, not two)
                for k in range(idx, j + 1):
                    if k in ino.pages:  # filled by a write while we awaited
                        continue
                    # A short page (the end of the file) reads as zeros past its end.
                    ino.pages[k] = bytearray(view[(k - idx) * CHUNK : (k - idx + 1) * CHUNK])
                    cache.touch(ino, k)
            idx = j + 1

    async def _page(self, idx: int, whole: bool = False) -> bytearray:
        """Page `idx`; `whole`: the caller overwrites all of it, so it is not read."""
        ino = self.inode
        page = ino.pages.get(idx)
        if page is None:
            if whole:
                page = ino.pages[idx] = bytearray(CHUNK)
                self.fs.pages.touch(ino, idx)
            else:
                await self._fill(idx, idx, ahead=False)
                page = ino.pages[idx]
        return page

    async def mappable_fd(self) -> int:
        """A host descriptor of this file that a private mapping may map directly (the
        donated one, asked for now if the file was opened without I/O), or -1: the
        mapping is then a copy filled with `pread`."""
        ino = self.inode
        if (ino.host_fd < 0 and self._io is None and self.fs.donations and not ino.writers
                and self.fs.fids.client.donations):  # (not after a bad donation)
            await self.io()
        fd = ino.host_readable()
        return self.fs.donated.use(ino) if fd >= 0 else -1

    async def do_pread(self, n: int, offset: int) -> bytes:
        ino = self.inode
        if (fd := ino.host_readable()) >= 0:
            self.fs.donated.use(ino)
            return os.pread(fd, n, offset)
        if not self.fs.exclusive:
            return await (await self.io()).read(offset, n)
        end = min(offset + n, ino.size)
        if offset >= end:
            return b""
        await self._fill(offset // CHUNK, (end - 1) // CHUNK)
        # Views of the pages joined once (a mapped 2 MB libc is copied once, not thrice);
        # no view is held across an await (a page may be resized meanwhile).
        parts: list[Any] = []
        pos = offset
        try:
            while pos < end:
                idx, off = divmod(pos, CHUNK)
                page = ino.pages.get(idx)
                if page is None:  # evicted meanwhile (huge read): fetch it again
                    parts = [join_views(parts)]
                    page = await self._page(idx)
                k = min(CHUNK - off, end - pos)
                got = memoryview(page)[off : off + k]
                parts.append(got)
                if len(got) < k:  # past a short page's end (the file grew by truncate)
                    parts.append(bytes(k - len(got)))
                pos += k
            return join_views(parts)
        finally:
            join_views(parts)

    async def do_pwrite(self, data: bytes, offset: int) -> int:
        ino = self.inode
        if ino.mode & 0o6000 and data:
            mode = mode_after_write(self.writer, ino.mode, ino.gid)
            if mode != ino.mode:  # file_remove_privs, on the server too (it writes as root)
                await self.fs.setattr(self.dentry, mode=mode)
        if ino.lost:
            self._report_lost()
        if not self.fs.exclusive:
            try:
                n = await (await self.io()).write(offset, data)
            except OSError as e:
                raise lost_write(ino, e) from e
            ino.size = max(ino.size, offset + n)
            ino.mtime_ns = ino.ctime_ns = now_ns()
            return n
        pos = offset
        view = memoryview(data)
        done = 0
        while done < len(view):
            idx, off = divmod(pos, CHUNK)
            k = min(CHUNK - off, len(view) - done)
            page = await self._page(idx, whole=k == CHUNK)
            if len(page) < CHUNK:  # a short page grows to a whole one before a write
                page.extend(bytes(CHUNK - len(page)))
            page[off : off + k] = view[done : done + k]
            ino.dirty.add(idx)
            done += k
            pos += k
        if pos > ino.size:
            ino.size = pos
        ino.mtime_ns = ino.ctime_ns = now_ns()
        if len(ino.dirty) * CHUNK >= self.fs.dirty_limit:
            await self._flush_dirty()  # bound memory: write back big streams as they go
        return done

    async def do_write(self, data: bytes) -> int:
        if self.flags & O_APPEND and not self.fs.exclusive:
            await self.fs.refresh(self.dentry)
        return await super().do_write(data)

    async def do_fsync(self, datasync: bool) -> None:
        await self._flush_dirty()
        try:
            await (await self.io()).fsync(datasync)
        except OSError as e:
            raise (lost_write(self.inode, e) if self._writes else e) from e

    async def _flush_dirty(self) -> None:
        if self.inode.lost and self._writes:
            self._report_lost()
        if self.inode.dirty and self.writable:
            await write_dirty(self.inode, await self.io())

    def _report_lost(self) -> None:
        """Raise the EIO of a write-back that lost this file's data with nobody waiting
        (sync(2)), once: as Linux's AS_EIO, the first write/fsync/close after it sees it."""
        self.inode.lost = False
        raise LostWrite(self.inode, OSError(errno.ESTALE, "the file's write-back failed "
                                            "earlier (sync)"))

    async def do_truncate(self, size: int) -> None:
        await self.fs.setattr(self.dentry, size=size)

    async def do_fallocate(self, mode: int, offset: int, length: int) -> None:
        """Tallocate where the server has it (EOPNOTSUPP otherwise, like v9fs)."""
        await self._flush_dirty()
        await (await self.io()).allocate(mode, offset, length)
        ino = self.inode
        for idx in range(offset // CHUNK, (offset + length - 1) // CHUNK + 1):
            ino.pages.pop(idx, None)  # punched or zeroed ranges read back from the server
        await self.fs.refresh(self.dentry)

    async def flush(self) -> None:
        await self._flush_dirty()

    async def release(self) -> None:
        self.inode.opens -= 1
        try:
            await self._flush_dirty()
        finally:
            self.inode.writers -= self._writes
            if self._io is not None:
                await self._io.clunk()


#: Where the cookies of a listing's sandbox-only entries start. A server's cookies may take
#: any 63-bit value (ext4's hash positions do), so only the ones this open directory
#: handed out for such entries are read as theirs (`GoferDirFD._synthetic_at`).
SYNTHETIC_COOKIE = 1 << 62


class GoferDirFD(DirectoryFD):
    """An open remote directory; the cookies are the server's Treaddir offsets."""

    def __init__(self, flags: int, fs: GoferFS, d: Dentry, io: p9.Fid,
                 first: tuple[int, Listing, bool] | None = None) -> None:
        super().__init__(None, flags)
        self.fs = fs
        self.dentry = d
        self.io = io
        # The listing from cookie 0 that came with the open (Topendirattr), with the
        # generation it was asked at and its eof; the first read from 0 takes it.
        self._first = first
        # The cookie after the last entry, once a listing said so (no empty read needed).
        self._end = -1
        #: cookie handed out for a sandbox-only entry -> the index of the next one
        self._synthetic_at: dict[int, int] = {}

    async def file_stat(self, vd: VirtualDentry) -> Stat:
        if vd.mount.fs is not self.fs:  # opened through an overlay: its dev, its view
            return await super().file_stat(vd)
        return await self.fs.stat_open(self.dentry, self.io)

    async def entries(self, cookie: int) -> list[tuple[int, int, int, bytes]]:
        index = self._synthetic_at.get(cookie) if self._synthetic_at else None
        if index is not None:
            return self._synthetic(index)
        if cookie and cookie == self._end:
            return self._synthetic(0)  # the last listing said the server's part ends here
        got = await self._server_entries(cookie)
        return got if got else self._synthetic(0)

    def _synthetic(self, index: int) -> list[tuple[int, int, int, bytes]]:
        """The sandbox-only sockets (`GoferFS.bind_socket`), listed after the server's
        entries with cookies of their own."""
        kids = self.fs.synthetic_children(self.dentry)
        out = []
        for i, c in enumerate(kids):
            if i >= index:
                self._synthetic_at[SYNTHETIC_COOKIE + i + 1] = i + 1
                out.append((SYNTHETIC_COOKIE + i + 1, c.inode.ino, DT_SOCK, c.name))
        return out

    async def _server_entries(self, cookie: int) -> list[tuple[int, int, int, bytes]]:
        fs = self.fs
        first, self._first = self._first, None
        if first is not None and cookie == 0 or fs.listed_attrs:
            try:
                if first is not None and cookie == 0:
                    gen, got, eof = first
                else:
                    gen = fs.generation
                    got, eof = await self.io.readdir_attr(cookie)
            except OSError as e:
                if e.errno != errno.EOPNOTSUPP:
                    raise
                fs.listed_attrs = False  # (the server's files cannot): per entry from now on
            else:
                if eof and got:
                    self._end = got[-1][0][2]
                fs.add_listed(self.dentry, cookie, gen, got)
                return [(off, qpath, dtype or DT_UNKNOWN, name)
                        for (_, qpath, off, dtype, name), _ in got]
        ents = await self.io.readdir(cookie)
        if self.fs.exclusive and not self.dentry.dead:
            self.fs.prefetch.note_listing(self.dentry, cookie, [e.name for e in ents])
        return [(e.offset, e.qid.path, e.type or DT_UNKNOWN, e.name) for e in ents]

    async def release(self) -> None:
        await self.io.clunk()
