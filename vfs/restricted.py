"""openat2's RESOLVE_* restrictions on a path walk (Linux's LOOKUP_BENEATH, LOOKUP_IN_ROOT,
LOOKUP_NO_XDEV, LOOKUP_NO_SYMLINKS, LOOKUP_NO_MAGICLINKS), as a `Walk` that refuses the
steps they forbid: EXDEV for leaving the starting directory or crossing a mount, ELOOP
for a symlink. RESOLVE_IN_ROOT resolves with the starting directory as the root, so "/",
".." and absolute symlinks stay inside it, as Linux's chroot-like scoping does.
"""

from __future__ import annotations

import errno
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .errors import error
from .mount import FSContext, VirtualDentry
from .resolve import Walk

if TYPE_CHECKING:
    from .creds import Credentials
    from .dentry import Dentry
    from .mount import Mount

RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS = 0x01, 0x02, 0x04
RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_CACHED = 0x08, 0x10, 0x20
RESOLVE_ALL = 0x3F


class RestrictedWalk(Walk):
    """A Walk under openat2's `resolve` flags, anchored at the starting directory."""

    __slots__ = ("restrict", "anchor")

    def __init__(self, mounts: dict[tuple[Mount, Dentry], Mount], ctx: FSContext,
                 creds: Credentials, restrict: int, anchor: VirtualDentry) -> None:
        if restrict & RESOLVE_IN_ROOT:
            ctx = replace(ctx, root=anchor)
        super().__init__(mounts, ctx, creds)
        self.restrict = restrict
        self.anchor = anchor

    def _is_anchor(self, vd: VirtualDentry) -> bool:
        return vd.dentry is self.anchor.dentry and vd.mount is self.anchor.mount

    def _absolute(self, frm: VirtualDentry) -> None:
        """A jump to the root: out of the anchor (BENEATH), or across mounts (NO_XDEV)."""
        if self.restrict & RESOLVE_BENEATH:
            raise error(errno.EXDEV)
        if self.restrict & RESOLVE_NO_XDEV and frm.mount is not self.ctx.root.mount:
            raise error(errno.EXDEV)

    def start(self, dirfd: Any, path: bytes) -> VirtualDentry:
        if path[:1] == b"/":
            self._absolute(self.anchor)
        return super().start(dirfd, path)

    async def parent(self, start: VirtualDentry,
                     path: bytes) -> tuple[VirtualDentry, bytes, bool]:
        if path[:1] == b"/":
            self._absolute(start)
        return await super().parent(start, path)

    def dotdot(self, cur: VirtualDentry) -> VirtualDentry:
        if self.restrict & RESOLVE_BENEATH and self._is_anchor(cur):
            raise error(errno.EXDEV)
        up = super().dotdot(cur)
        if self.restrict & RESOLVE_NO_XDEV and up.mount is not cur.mount:
            raise error(errno.EXDEV)
        return up

    def follow_mounts(self, vd: VirtualDentry) -> VirtualDentry:
        down = super().follow_mounts(vd)
        if self.restrict & RESOLVE_NO_XDEV and down.mount is not vd.mount:
            raise error(errno.EXDEV)
        return down

    async def read_link(self, vd: VirtualDentry) -> Any:
        if self.restrict & RESOLVE_NO_SYMLINKS:
            raise error(errno.ELOOP)
        target = await super().read_link(vd)
        if not isinstance(target, bytes):  # a magic link: the file itself, not a path
            if self.restrict & (RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS):
                raise error(errno.ELOOP)
            if self.restrict & (RESOLVE_BENEATH | RESOLVE_IN_ROOT | RESOLVE_NO_XDEV):
                raise error(errno.EXDEV)
        elif target[:1] == b"/":
            self._absolute(vd)
        return target
