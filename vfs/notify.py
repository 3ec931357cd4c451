"""Change notification: where the VFS says what changed, for inotify.

The VFS reports each change it makes (Linux's fsnotify hooks) to one `Notifier` per
VirtualFilesystem, which passes it to `hook(inode, mask, name, cookie)` if a kernel set
one: an event on a file goes to the file's inode (name b"") and to its directory's (with
the file's name, after the directory's, as Linux's fsnotify_parent); an event about a
directory entry (create, delete, move) goes to the directory's inode with the name. What
the hook does with it (watches, queues) is the kernel's business. Only changes made
through this VFS are seen: a host file changed behind a gofer tells nobody.

A file removed while it is still open (by a file the VFS opened) is gone for its
watchers (IN_DELETE_SELF) only at its last close, as Linux sends it when the last
reference to the dentry goes.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dentry import Dentry, Inode

# Linux's inotify event bits (the same as fsnotify's FS_* bits).
IN_ACCESS, IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x1, 0x2, 0x4, 0x8
IN_CLOSE_NOWRITE, IN_OPEN, IN_MOVED_FROM, IN_MOVED_TO = 0x10, 0x20, 0x40, 0x80
IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_MOVE_SELF = 0x100, 0x200, 0x400, 0x800
IN_UNMOUNT, IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR = 0x2000, 0x4000, 0x8000, 0x40000000
IN_ALL_EVENTS = 0xFFF

Hook = Callable[["Inode", int, bytes, int], None]


class Notifier:
    """The VFS's end of change notification: `hook` (None: nobody listens)."""

    __slots__ = ("hook", "_cookie", "_opens", "_doomed")

    def __init__(self) -> None:
        self.hook: Hook | None = None
        self._cookie = 0
        #: How many open files (opened by the VFS) each inode has.
        self._opens: weakref.WeakKeyDictionary[Inode, int] = weakref.WeakKeyDictionary()
        #: Removed inodes whose IN_DELETE_SELF waits for their last close.
        self._doomed: weakref.WeakSet[Inode] = weakref.WeakSet()

    def opened(self, ino: Inode) -> None:
        """The VFS opened a file of `ino` (it will report its last close to `closed`)."""
        self._opens[ino] = self._opens.get(ino, 0) + 1

    def closed(self, d: Dentry, mask: int) -> None:
        """The last close (IN_CLOSE_WRITE or IN_CLOSE_NOWRITE) of a file the VFS opened
        at `d`; the inode's last one sends a removed inode's IN_DELETE_SELF."""
        self.file(d, mask)
        ino = d.inode
        n = self._opens.get(ino, 1) - 1
        if n > 0:
            self._opens[ino] = n
            return
        self._opens.pop(ino, None)
        if ino in self._doomed:
            self._doomed.discard(ino)
            self.inode(ino, IN_DELETE_SELF)

    def gone(self, ino: Inode) -> None:
        """`ino` lost its last link (or was a directory removed): IN_DELETE_SELF now,
        or at its last close if a file of it is open."""
        if self._opens.get(ino):
            self._doomed.add(ino)
        else:
            self.inode(ino, IN_DELETE_SELF)

    def file(self, d: Dentry, mask: int) -> None:
        """`mask` happened to the file at `d` (open, access, modify, attrib, close):
        its directory hears it with the name, then the file itself."""
        hook = self.hook
        if hook is None:
            return
        ino = d.inode
        if ino.is_dir:
            mask |= IN_ISDIR
        if not d.is_root:
            hook(d.parent.inode, mask, d.name, 0)
        hook(ino, mask, b"", 0)

    def inode(self, ino: Inode, mask: int) -> None:
        """`mask` happened to `ino` alone (IN_DELETE_SELF, IN_MOVE_SELF, a link count
        change's IN_ATTRIB): no directory hears it."""
        if self.hook is not None:
            self.hook(ino, mask, b"", 0)

    def entry(self, parent: Dentry, name: bytes, mask: int, is_dir: bool,
              cookie: int = 0) -> None:
        """`mask` (IN_CREATE, IN_DELETE, IN_MOVED_FROM/TO) happened to the entry `name`
        of the directory `parent`."""
        if self.hook is not None:
            self.hook(parent.inode, mask | (IN_ISDIR if is_dir else 0), name, cookie)

    def cookie(self) -> int:
        """A new cookie tying an IN_MOVED_FROM to its IN_MOVED_TO."""
        self._cookie = (self._cookie + 1) & 0xFFFFFFFF
        return self._cookie

    def removed(self, d: Dentry) -> None:
        """The entry `d` was unlinked or rmdir'd (before its directory hears IN_DELETE):
        a file's link count changed (IN_ATTRIB), and a file left without links or a
        removed directory is `gone` (IN_DELETE_SELF, which ends its watches)."""
        ino = d.inode
        if not ino.is_dir:
            self.inode(ino, IN_ATTRIB)
        if ino.nlink <= 0 or ino.is_dir:
            self.gone(ino)
