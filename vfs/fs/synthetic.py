"""Generated filesystems (procfs, sysfs): a tree of nodes whose contents are computed.

Why a framework: most of /proc and /sys is generated from kernel state the VFS does not
own. A node is a `FileNode` (contents from bytes or a callable, evaluated at open, like
Linux's seq_file), a `SymlinkNode` (target from bytes or a callable) or a `DirNode`
(children from a dict or a callable, evaluated at each lookup/readdir). Callables may be
plain or async. A `SymlinkNode` with a `jump` is a magic link (/proc/PID/fd/N): the path
walk goes to the file it returns, a `VirtualDentry` or, for an open file no path reaches
(a host descriptor, an anonymous inode), an `OpenedNode` standing for it. The kernel plugs in through providers that return nodes.
"""

from __future__ import annotations

import errno
import inspect
from collections.abc import Callable, Mapping
from typing import Any, cast

from ..abi import S_IFDIR, S_IFLNK, S_IFREG, Stat, dtype_of
from ..creds import Credentials
from ..dentry import Dentry, Inode
from ..errors import error
from ..file import DirectoryFD, FileDescription, RegularFD
from ..filesystem import Filesystem, InodeCounter
from ..mount import VirtualDentry

Source = bytes | Callable[[], Any]


async def _eval(src: Any) -> Any:
    if callable(src):
        src = src()
    if inspect.isawaitable(src):
        src = await src
    return src


class Node:
    """A generated file. `uid`/`gid` own it; `mode` holds the permission bits."""

    kind = 0

    def __init__(self, mode: int, uid: int = 0, gid: int = 0) -> None:
        self.mode = mode
        self.uid = uid
        self.gid = gid


class FileNode(Node):
    """A file whose contents come from `content` (bytes, or a callable returning bytes).

    Args:
        write: optional callable taking (the bytes written, the file offset) at each write
            call; it raises OSError to refuse them (garbage in a number file: EINVAL).
        readonly_errno: what a write fails with when there is no `write`. Linux differs by
            file family: EINVAL for /proc/PID files, EIO for /proc's system-wide files, and
            EACCES at open (even for root) for /proc/sys and /sys.
    """

    kind = S_IFREG

    def __init__(self, content: Source, mode: int = 0o444, *,
                 write: Callable[[bytes, int], Any] | None = None, uid: int = 0,
                 gid: int = 0, readonly_errno: int = errno.EINVAL) -> None:
        super().__init__(mode, uid, gid)
        self.content = content
        self.write = write
        self.readonly_errno = readonly_errno


class StreamNode(Node):
    """A file read and written at offsets through callables, with no contents fixed at
    open (/proc/PID/mem): `read(n, offset) -> bytes`, `write(data, offset) -> int`; they
    may raise OSError (EIO for an unmapped address). `opened()` runs at open and may
    refuse it (permission checks Linux makes at open)."""

    kind = S_IFREG

    def __init__(self, read: Callable[[int, int], Any], write: Callable[[bytes, int], Any],
                 mode: int = 0o600, *, opened: Callable[[], Any] | None = None,
                 uid: int = 0, gid: int = 0) -> None:
        super().__init__(mode, uid, gid)
        self.read = read
        self.write = write
        self.opened = opened


class SymlinkNode(Node):
    """A symlink whose text is `target`; with `jump` (a callable returning a
    `VirtualDentry` or an `OpenedNode`, or raising EACCES/ENOENT) a magic link that path
    walks follow to that file rather than to the text."""

    kind = S_IFLNK

    def __init__(self, target: Source, uid: int = 0, gid: int = 0, *,
                 jump: Callable[[], Any] | None = None) -> None:
        super().__init__(0o777, uid, gid)
        self.target = target
        self.jump = jump


class OpenedNode(Node):
    """An already open file as a magic link's target when no path reaches it: `open(flags,
    creds)` gives a new open description of the same object (or raises ENXIO, as
    anonymous inodes and sockets do), `stat()` is the open file's fstat. Opened as a
    regular file by the VFS; `mode` holds the object's permission bits; `truncate(size)`
    is what an open with O_TRUNC does to it (nothing if None: pipes, terminals)."""

    kind = S_IFREG

    def __init__(self, open: Callable[[int, Credentials], Any], stat: Callable[[], Any],
                 mode: int = 0o600, uid: int = 0, gid: int = 0, *,
                 truncate: Callable[[int], Any] | None = None) -> None:
        super().__init__(mode, uid, gid)
        self.open = open
        self.stat = stat
        self.truncate = truncate


class DirNode(Node):
    """A directory whose children come from a dict or a callable returning one;
    `hidden(name)` may give a child that lookup finds but readdir does not list (Linux's
    /proc/TID of a non-leader thread)."""

    kind = S_IFDIR

    def __init__(self, children: Mapping[bytes, Node] | Callable[[], Any], mode: int = 0o555,
                 uid: int = 0, gid: int = 0, *,
                 hidden: Callable[[bytes], Node | None] | None = None) -> None:
        super().__init__(mode, uid, gid)
        self.children = children
        self.hidden = hidden


class SynthInode(Inode):
    __slots__ = ("node",)

    def __init__(self, ino: int, node: Node) -> None:
        super().__init__(ino, node.kind | node.mode, node.uid, node.gid)
        self.node = node


def _node(d: Dentry) -> Node:
    """The node behind a dentry of a SyntheticFS (all its inodes are SynthInodes;
    `Dentry.inode` is typed as the base class)."""
    return cast(SynthInode, d.inode).node


class SyntheticFS(Filesystem):
    """A read-mostly filesystem over a `DirNode` tree."""

    fstype = "synthetic"

    def __init__(self, root: DirNode) -> None:
        super().__init__()
        self._ino = InodeCounter(1)
        self.root = Dentry(self, b"/", None, SynthInode(self._ino(), root))

    async def _children(self, d: Dentry) -> dict[bytes, Node]:
        node = _node(d)
        if not isinstance(node, DirNode):
            raise error(errno.ENOTDIR)
        return await _eval(node.children)

    def _dentry(self, parent: Dentry, name: bytes, node: Node) -> Dentry:
        old = parent.children.get(name)
        if old is not None and _node(old) is node:
            return old
        if old is not None and old.mounted:
            # A dentry something is mounted on stays, now over the new node (as Linux pins
            # a mount point's dentry), or a directory made anew at each lookup (/proc/sys)
            # could not be a mount point (runc's linux.readonlyPaths bind it on itself).
            cast(SynthInode, old.inode).node = node
            return old
        d = Dentry(self, name, parent, SynthInode(self._ino(), node))
        parent.children[name] = d
        return d

    async def lookup(self, parent: Dentry, names: list[bytes]) -> list[Dentry]:
        out: list[Dentry] = []
        d = parent
        for name in names:
            kids = await self._children(d)
            node = kids.get(name)
            if node is None:
                hidden = cast(DirNode, _node(d)).hidden
                node = hidden(name) if hidden is not None else None
            if node is None:
                d.children.pop(name, None)
                break
            d = self._dentry(d, name, node)
            out.append(d)
            if not isinstance(node, DirNode):
                break
        return out

    async def jump_link(self, vd: VirtualDentry) -> VirtualDentry | None:
        node = _node(vd.dentry)
        if not isinstance(node, SymlinkNode) or node.jump is None:
            return None
        target = await _eval(node.jump)
        if isinstance(target, OpenedNode):
            # A dentry of its own, in no directory: only this walk reaches it.
            parent = vd.dentry.parent
            return VirtualDentry(vd.mount, Dentry(self, vd.dentry.name, parent,
                                                  SynthInode(self._ino(), target)))
        return cast(VirtualDentry, target)

    async def stat(self, d: Dentry) -> Stat:
        node = _node(d)
        if isinstance(node, OpenedNode):
            return cast(Stat, await _eval(node.stat))
        st = d.inode.to_stat(self.dev)
        if isinstance(node, SymlinkNode):
            st.size = len(await _eval(node.target))
        st.blksize = 1024
        return st

    async def readlink(self, d: Dentry) -> bytes:
        node = _node(d)
        if not isinstance(node, SymlinkNode):
            raise error(errno.EINVAL)
        return await _eval(node.target)

    async def setattr(self, d: Dentry, *, mode: int | None = None, uid: int | None = None,
                      gid: int | None = None, size: int | None = None,
                      **_times: Any) -> None:
        """Truncation of a writable generated file (an open with O_TRUNC, as `echo x >
        /proc/self/comm` does) is accepted and means nothing; other changes are EPERM."""
        node = _node(d)
        if isinstance(node, OpenedNode) and mode is None and uid is None and gid is None:
            if size is not None and node.truncate is not None:
                await _eval(lambda: node.truncate(size))
            return
        if mode is None and uid is None and gid is None and size is not None and (
                isinstance(node, StreamNode) or isinstance(node, FileNode) and node.write):
            return
        raise error(errno.EPERM)

    async def open(self, d: Dentry, flags: int, creds: Credentials) -> FileDescription:
        node = _node(d)
        if isinstance(node, DirNode):
            return SynthDirFD(flags, self, d)
        if isinstance(node, FileNode):
            if flags & 3 and node.write is None and node.readonly_errno == errno.EACCES:
                raise error(errno.EACCES)
            data = b"" if flags & 3 == 1 else await _eval(node.content)
            return SynthFileFD(flags, node, bytes(data))
        if isinstance(node, OpenedNode):
            fdesc = await _eval(lambda: node.open(flags, creds))
            return cast(FileDescription, fdesc)
        if isinstance(node, StreamNode):
            if node.opened is not None:
                await _eval(node.opened)
            return SynthStreamFD(flags, node)
        raise error(errno.ENXIO)


class SynthFileFD(RegularFD):
    """A generated file's contents, made at open (seq_file semantics); a writable file's
    are made again by a read at offset 0 after the first read or write of this open, as
    Linux's sysctl handlers and seq_file read the current value there (a write then a
    pread at 0 on one descriptor shows what was written)."""

    def __init__(self, flags: int, node: FileNode, data: bytes) -> None:
        super().__init__(None, flags)
        self.node = node
        self.data = data
        self.fresh = True  # `data` was made at open and nothing has been read or written

    def file_size(self) -> int:
        return len(self.data)

    async def do_pread(self, n: int, offset: int) -> bytes:
        if offset == 0 and not self.fresh and self.node.write is not None:
            self.data = bytes(await _eval(self.node.content))
        self.fresh = False
        return self.data[offset : offset + n]

    async def do_pwrite(self, data: bytes, offset: int) -> int:
        write = self.node.write
        if write is None:
            raise error(self.node.readonly_errno)
        self.fresh = False
        n = await _eval(lambda: write(bytes(data), offset))
        return len(data) if n is None else n

    async def do_truncate(self, size: int) -> None:
        return None


class SynthStreamFD(RegularFD):
    """A `StreamNode` open: every read and write goes to the node's callables."""

    def __init__(self, flags: int, node: StreamNode) -> None:
        super().__init__(None, flags)
        self.node = node

    def file_size(self) -> int:
        return 0

    async def do_pread(self, n: int, offset: int) -> bytes:
        read = self.node.read
        return await _eval(lambda: read(n, offset))

    async def do_pwrite(self, data: bytes, offset: int) -> int:
        write = self.node.write
        return await _eval(lambda: write(bytes(data), offset))

    async def do_truncate(self, size: int) -> None:
        return None


class SynthDirFD(DirectoryFD):
    """A generated directory: entries in the provider's order, cookie = index + 3; in a
    directory of numbers only (/proc/PID/fd, fdinfo, task) in increasing order, each at
    position number + 2 as Linux's /proc/PID/fd, so entries removed between two getdents
    calls (fds closed while listing them) never make the listing skip one."""

    def __init__(self, flags: int, fs: SyntheticFS, d: Dentry) -> None:
        super().__init__(None, flags)
        self.fs = fs
        self.dentry = d

    async def entries(self, cookie: int) -> list[tuple[int, int, int, bytes]]:
        d = self.dentry
        out = self.dots(d, cookie)
        kids = await self.fs._children(d)
        if kids and all(name.isdigit() for name in kids):
            # entry i sits at position n_i + 2 and its cookie is the next one's position
            nums = sorted((int(name), name) for name in kids)
            for i, (n, name) in enumerate(nums):
                if n + 2 >= cookie:
                    after = nums[i + 1][0] + 2 if i + 1 < len(nums) else n + 3
                    child = self.fs._dentry(d, name, kids[name])
                    out.append((after, child.inode.ino, dtype_of(child.inode.mode), name))
            return out
        for i, (name, node) in enumerate(kids.items()):
            pos = i + 3
            if pos > cookie:
                child = self.fs._dentry(d, name, node)
                out.append((pos, child.inode.ino, dtype_of(child.inode.mode), name))
        return out
