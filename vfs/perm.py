"""Permission checks, the same for every filesystem (Linux's generic_permission and friends).

Why in the VFS: filesystems only store mode/uid/gid; who may do what is decided here from the
caller's Credentials, so tmpfs, goferfs and the overlay agree with each other and with Linux.
"""

from __future__ import annotations

import errno
from typing import Protocol

from .abi import MAY_EXEC, MAY_READ, MAY_WRITE, S_IFDIR, S_IFMT, S_ISVTX
from .creds import CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, Credentials
from .errors import error


class Owned(Protocol):
    """What permission checks read of a file (an `Inode` has it)."""

    mode: int
    uid: int
    gid: int


def permitted(creds: Credentials, mode: int, uid: int, gid: int, may: int) -> bool:
    """True if `creds` may access a file with `mode`/`uid`/`gid` for `may` (MAY_* bits).

    The owner class applies exclusively (an owner without the bit is refused even if
    "other" has it), then group, then other; CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
    override as in Linux (exec needs some x bit unless the file is a directory).
    """
    if creds.fsuid == uid:
        bits = mode >> 6
    elif creds.fsgid == gid or gid in creds.groups:
        bits = mode >> 3
    else:
        bits = mode
    if (bits & may & 7) == may:
        return True
    caps = creds.cap_effective
    if not caps:
        return False
    is_dir = (mode & S_IFMT) == S_IFDIR
    if caps >> CAP_DAC_OVERRIDE & 1:
        if not (may & MAY_EXEC) or is_dir or mode & 0o111:
            return True
    if caps >> CAP_DAC_READ_SEARCH & 1:
        if may == MAY_READ or (is_dir and not (may & MAY_WRITE)):
            return True
    return False


def check(creds: Credentials, inode: Owned, may: int) -> None:
    """Raise EACCES unless `creds` may access `inode` (an object with mode/uid/gid)."""
    if not permitted(creds, inode.mode, inode.uid, inode.gid, may):
        raise error(errno.EACCES)


def is_owner(creds: Credentials, inode: Owned) -> bool:
    """inode_owner_or_capable: fsuid owns it, or CAP_FOWNER."""
    return creds.fsuid == inode.uid or creds.has_cap(CAP_FOWNER)


def check_sticky(creds: Credentials, dir_inode: Owned, inode: Owned) -> None:
    """In a sticky directory only the file's owner, the dir's owner or CAP_FOWNER may remove."""
    if not dir_inode.mode & S_ISVTX:
        return
    if creds.fsuid in (inode.uid, dir_inode.uid) or creds.has_cap(CAP_FOWNER):
        return
    raise error(errno.EPERM)


MAY_RW = MAY_READ | MAY_WRITE


def mode_after_write(creds: Credentials | None, mode: int, gid: int) -> int:
    """file_remove_privs: the mode a write by `creds` leaves (set-uid dropped; set-gid
    dropped when group-executable or the writer is outside the file's group), unless the
    writer has CAP_FSETID. `creds` None means a privileged writer."""
    if not mode & 0o6000 or creds is None or creds.has_cap(CAP_FSETID):
        return mode
    mode &= ~0o4000
    if mode & 0o2000 and (mode & 0o010 or not creds.in_group(gid)):
        mode &= ~0o2000
    return mode
