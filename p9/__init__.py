"""9P2000.L for runpsc: a sans-I/O codec, a trio client and server framework, and transports.

The Sentry reads every file of a sandbox through this package and the Gofer serves through
it. It imports nothing else of runpsc's. See p9/README.md for the API.
"""

from ._client import Client, open_client
from ._client_fid import Fid, Stat
from ._constants import (
    AT_REMOVEDIR,
    IOHDRSZ,
    MIN_MSIZE,
    NOFID,
    NONUNAME,
    NOTAG,
    GetattrMask,
    LockFlags,
    LockStatus,
    LockType,
    QidType,
    SetattrMask,
)
from ._dirents import ENTRY_FIXED, PackedDirents, pack_rows
from ._errors import ProtocolError
from ._file import File, Filesystem
from ._framing import FrameDecoder, decode_frame, encode_frame, encode_frame_parts
from ._messages import *  # noqa: F403 - every message class is public API
from ._messages import (
    REGISTRY,
    RESPONSE_OF,
    Attr,
    Dirent,
    FullStat,
    Message,
    Qid,
    SetAttr,
    decode_dirents,
    encode_dirents,
)
from ._path import PathFS, split
from ._server import QUICK_MESSAGES, Server
from ._transport import (
    connect_tcp,
    connect_unix,
    listen_tcp,
    listen_unix,
    socketpair,
    stream_from_fd,
)
from ._version import BASE, OURS, PLAIN, RUNPSC, Dialect, client_accept, server_choose

__all__ = [
    "ENTRY_FIXED", "PackedDirents", "pack_rows",
    "AT_REMOVEDIR", "IOHDRSZ", "MIN_MSIZE", "NOFID", "NONUNAME", "NOTAG", "GetattrMask",
    "LockFlags", "LockStatus", "LockType", "QidType", "SetattrMask", "ProtocolError",
    "FrameDecoder", "decode_frame", "encode_frame", "encode_frame_parts", "REGISTRY", "RESPONSE_OF", "Attr",
    "Dirent", "FullStat", "Message", "Qid", "SetAttr", "decode_dirents", "encode_dirents",
    "Client", "Fid", "Stat", "open_client", "PathFS", "split", "connect_tcp", "connect_unix",
    "listen_tcp", "listen_unix", "socketpair", "stream_from_fd", "BASE", "RUNPSC", "OURS", "PLAIN", "File", "Filesystem", "Server", "QUICK_MESSAGES", "Dialect", "client_accept", "server_choose",
    *(cls.__name__ for cls in REGISTRY.values()),
]
