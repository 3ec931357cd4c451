"""Documented departures: what a kind of target cannot express, and known bugs.

Two tables, both keyed by target kind ("9p", "fuse-9p", "dir", "vfs-" and the `vfs:` kind,
"sandbox-" and the `sandbox:` kind):

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
_MKNOD = ("device nodes: a gofer refuses to create them unless its export has the `mknod` "
          "option (off by default); 9P carries the request")

_NO_SEEK_HOLE = ("SEEK_DATA/SEEK_HOLE: 9P2000.L cannot ask a server where the holes are, so "
                 "the whole file is data, as with Linux's v9fs")
_NO_TMPFILE = "O_TMPFILE: 9P2000.L has no nameless create (EOPNOTSUPP, as with Linux's v9fs)"

_EXCHANGES = [
    ("rename/*exchange*", _EXCHANGE),
    ("times/changes-rename-exchange", _EXCHANGE),
    ("rename/rename-flags", _EXCHANGE),
    ("layers/exchange-lower", _EXCHANGE),
]
_NINEP = [
    *_EXCHANGES,
    ("perms/file-*-group-*", _GROUPS),
    ("perms/dir-*-group", _GROUPS),
    ("perms/chown-group-member", _GROUPS),
    ("perms/ownership-rules", _GROUPS),
    ("owner/setgid-inherit-file-member", _GROUPS),
    ("fifos/char-device", _MKNOD),
    ("sparse/sparse-seek-data-hole", _NO_SEEK_HOLE),
]
_FUSE = [
    *_EXCHANGES,
    ("fifos/char-device", _MKNOD),
    ("sparse/sparse-seek-data-hole", _NO_SEEK_HOLE),
    ("open/tmpfile", _NO_TMPFILE),
]

_COPYUP_LINKS = ("copy-up breaks a hard link made in the lower layer, as Linux's overlayfs "
                 "without index=on does")
#: goferfs over 9P2000.L, whichever server
_GOFERFS = [
    ("sparse/sparse-seek-data-hole", _NO_SEEK_HOLE),
    ("open/tmpfile", _NO_TMPFILE),
]
_PLAIN_FALLOCATE = "fallocate: plain 9P2000.L has no Tallocate (EOPNOTSUPP)"
_PLAIN_EMPTY_XATTR = ("an empty xattr value: plain 9P2000.L removes on a Txattrcreate of size 0 "
                      "(diod, QEMU and Linux's v9fs read it so)")

#: target kind -> [(case-id glob, reason)]
EXCEPTIONS: dict[str, list[tuple[str, str]]] = {
    "9p": _NINEP, "fuse-9p": _FUSE,
    "vfs-gofer": _GOFERFS,
    "vfs-gofer-shared": _GOFERFS,
    "vfs-9p": [*_GOFERFS, ("sparse/fallocate", _PLAIN_FALLOCATE),
               ("xattr/user-xattrs", _PLAIN_EMPTY_XATTR),
               ("xattr/value-empty", _PLAIN_EMPTY_XATTR)],
    "vfs-overlay-copyup": [("layers/lower-hardlinks", _COPYUP_LINKS)],
    "vfs-overlay-gofer-copyup": [("layers/lower-hardlinks", _COPYUP_LINKS)],
    # a sandbox's volumes and remote mounts are goferfs on a gofer whose export has no
    # `mknod` option (runpsc do's volume gofers, a `runpsc gofer serve` by default)
    "sandbox-volume": [*_GOFERFS, ("fifos/char-device", _MKNOD)],
    "sandbox-9p": [*_GOFERFS, ("fifos/char-device", _MKNOD)],
}

#: target kind -> [(case-id glob, description of the bug, owner first)]
KNOWN_BUGS: dict[str, list[tuple[str, str]]] = {
    "fuse-9p": [
        ("sparse/fallocate", "runtime/fusefs: fallocate is not implemented (EOPNOTSUPP)"),
        ("perms/write-drops-setid", "runtime/fusefs: a write by a user outside the file's "
                                    "group keeps S_ISGID (Linux drops it even without group "
                                    "execute)"),
    ],
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
