"""Documented departures: what a kind of target cannot express, and known bugs.

Two tables, both keyed by target kind ("9p", "fuse-9p", "vfs-tmpfs", "vfs-overlay", "dir"):

- EXCEPTIONS: behaviour the target *cannot* express, with the reason (a limit of 9P2000.L,
  of FUSE, or a deliberate design choice). Shown as `xfail`; never a failure.
- KNOWN_BUGS: departures that are bugs of a runpsc package, with the owner. Shown as
  `bug`; they still count as differences for the command's exit status (a bug is not
  excused by being known), and CI checks that nothing *else* differs.

conformance/README.md lists both tables for readers; keep them in step.
"""

from __future__ import annotations

import fnmatch

_EXCHANGE = ("RENAME_EXCHANGE: Trenameat carries no flags, so an atomic exchange cannot be "
             "expressed in 9P2000.L; Linux's own v9fs answers EINVAL too")
_GROUPS = ("supplementary groups: Tattach carries one numeric uid (n_uname); the server "
           "takes the user's groups from its own user database, where the test uid has none")
_MKNOD = ("device nodes: our gofer runs confined without CAP_MKNOD, so it "
          "refuses to create them; 9P could carry the request")

_NINEP = [
    ("rename/*exchange*", _EXCHANGE),
    ("times/changes-rename-exchange", _EXCHANGE),
    ("perms/file-*-group-*", _GROUPS),
    ("perms/dir-*-group", _GROUPS),
    ("perms/chown-group-member", _GROUPS),
    ("owner/setgid-inherit-file-member", _GROUPS),
    ("fifos/char-device", _MKNOD),
]
_FUSE = [
    ("rename/*exchange*", _EXCHANGE),
    ("times/changes-rename-exchange", _EXCHANGE),
    ("fifos/char-device", _MKNOD),
]

#: target kind -> [(case-id glob, reason)]
EXCEPTIONS: dict[str, list[tuple[str, str]]] = {
    "9p": _NINEP, "fuse-9p": _FUSE, "vfs-gofer": [("fifos/char-device", _MKNOD)],
}

_VFS_ATIME = "vfs: atime is never updated by read or readdir (Linux mounts are relatime)"
_VFS_DEADDIR = "vfs: reading a removed directory returns the end, not ENOENT (IS_DEADDIR)"
_VFS = [
    ("times/changes-read", _VFS_ATIME),
    ("times/changes-readdir", _VFS_ATIME),
    ("dirs/rmdir-open-dir", _VFS_DEADDIR),
]

_GFS_SGID = ("vfs/goferfs: S_ISGID asked for by a group member is lost on a new file in a "
             "setgid directory")
_GFS_WRITE0 = "vfs/goferfs: a zero-length write changes mtime/ctime (Linux changes nothing)"
_GFS_XATTR = "vfs/goferfs: setxattr does not change ctime (the cached attributes go stale)"
_VFS_GOFER = [
    *_VFS,
    ("owner/setgid-inherit-file-member", _GFS_SGID),
    ("times/changes-write-zero", _GFS_WRITE0),
    ("times/changes-setxattr", _GFS_XATTR),
]

#: target kind -> [(case-id glob, description of the bug, owner first)]
KNOWN_BUGS: dict[str, list[tuple[str, str]]] = {
    "vfs-tmpfs": _VFS, "vfs-overlay": _VFS, "vfs-gofer": _VFS_GOFER, "vfs-overlay-gofer": _VFS,
}


def _match(table: dict[str, list[tuple[str, str]]], kind: str, case_id: str) -> str | None:
    for pattern, reason in table.get(kind, ()):
        if fnmatch.fnmatchcase(case_id, pattern):
            return reason
    return None


def known_exception(kind: str, case_id: str) -> str | None:
    """The documented reason why target kind `kind` cannot express `case_id`."""
    return _match(EXCEPTIONS, kind, case_id)


def known_bug(kind: str, case_id: str) -> str | None:
    """The known bug that makes target kind `kind` depart on `case_id`."""
    return _match(KNOWN_BUGS, kind, case_id)
