"""The case library, one module per topic; importing this package registers every case."""

from . import (  # noqa: F401
    dirs,
    fifos,
    layers,
    links,
    locks,
    names,
    open,
    owner,
    perms,
    readdir,
    rename,
    resolve,
    rw,
    sparse,
    sticky,
    symlinks,
    times,
    truncate,
    unlink,
    xattr,
)
