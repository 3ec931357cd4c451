"""Behaviour cases by topic: name → list of steps in the `tests.vfs.ops` vocabulary.

Every case runs on the host (the oracle) and on each VFS target; results must be equal.
`ALL` merges the topic tables; `NEEDS` names cases a target may skip, with the reason.
"""

from __future__ import annotations

from . import (
    attrs,
    create,
    io,
    layers,
    links,
    misc,
    open_,
    perms,
    remove,
    rename,
    resolve,
    times,
    xattr,
)

TOPICS = {
    "open": open_.CASES,
    "create": create.CASES,
    "links": links.CASES,
    "remove": remove.CASES,
    "rename": rename.CASES,
    "attrs": attrs.CASES,
    "perms": perms.CASES,
    "io": io.CASES,
    "resolve": resolve.CASES,
    "xattr": xattr.CASES,
    "times": times.CASES,
    "misc": misc.CASES,
    "layers": layers.CASES,
}

ALL: dict[str, list[tuple]] = {
    f"{topic}.{name}": steps for topic, cases in TOPICS.items() for name, steps in cases.items()
}
