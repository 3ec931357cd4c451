"""The Gofer: a 9P2000.L server that exports host directories without ever resolving a host
path string, confined to what it exports. The only part of runpsc that touches host files
on a sandbox's behalf. See gofer/README.md.
"""

from .host import Export, Node
from .ident import Ident, IdentityPolicy
from .openfile import OpenFile
from .procfd import ProcFD
from .serve import (
    GoferOptions,
    Listen,
    parse_export,
    parse_listen,
    prepare,
    run,
    serve,
    serve_stream,
)
from .server import GoferFile, GoferFilesystem

__all__ = [
    "Export", "Node", "OpenFile", "ProcFD", "Ident", "IdentityPolicy", "GoferOptions", "Listen",
    "parse_export", "parse_listen", "prepare", "run", "serve", "serve_stream", "GoferFile",
    "GoferFilesystem",
]
