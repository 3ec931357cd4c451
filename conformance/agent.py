"""The program a `sandbox:` target runs inside `runpsc do`: a `DirTarget` on a directory of
the sandbox, driven over stdin/stdout by `target_sandbox.py` on the host.

Why a program inside: the sandbox's behaviour is what its programs see through the
Sentry's system calls (path resolution, permission checks, the VFS and goferfs under it);
running the oracle's own target there makes every operation one such system call.

Wire (both ways): frames of a 4-byte little-endian length and a `marshal`led tuple (only
plain values: ints, bytes, strings, tuples, lists, None). Requests `(id, view, method,
args)`; replies `(id, 0, result)` or `(id, errno, message)`. The first frame the agent
sends is the target's features. `derive` answers a new view number, `aclose` closes one.

    python -m conformance.agent DIR
"""

from __future__ import annotations

import marshal
import os
import struct
import sys
from typing import Any

import trio

from .target_api import Creds, Stat, Target
from .target_dir import DirTarget

_LEN = struct.Struct("<I")
#: Marks a `Stat` result on the wire (its fields follow).
STAT_TAG = "\0stat"


def encode(value: Any) -> bytes:
    """One frame of `value`."""
    body = marshal.dumps(value)
    return _LEN.pack(len(body)) + body


def plain(value: Any) -> Any:
    """`value` with every `Stat` turned into a tagged tuple (marshal knows no classes)."""
    if isinstance(value, Stat):
        return (STAT_TAG, value.mode, value.ino, value.nlink, value.uid, value.gid,
                value.size, value.atime_ns, value.mtime_ns, value.ctime_ns, value.rdev,
                value.blocks)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


async def read_frame(stream: trio.abc.ReceiveStream, buf: bytearray) -> Any:
    """The next frame's value from `stream` (None at its end); `buf` keeps what is left."""
    while True:
        if len(buf) >= _LEN.size:
            (n,) = _LEN.unpack_from(buf)
            if len(buf) >= _LEN.size + n:
                body = bytes(buf[_LEN.size : _LEN.size + n])
                del buf[: _LEN.size + n]
                return marshal.loads(body)
        data = await stream.receive_some(1 << 16)
        if not data:
            return None
        buf += data


async def serve(path: str) -> None:
    root = DirTarget(path)
    views: dict[int, Target] = {0: root}
    out = trio.lowlevel.FdStream(os.dup(1))
    inp = trio.lowlevel.FdStream(os.dup(0))
    lock = trio.Lock()

    async def send(value: Any) -> None:
        async with lock:
            await out.send_all(encode(value))

    async def handle(rid: int, view: int, method: str, args: tuple) -> None:
        try:
            t = views[view]
            if method == "derive":
                r, c = args
                new = t.derive(root=r, creds=None if c is None else Creds(c[0], c[1],
                                                                         tuple(c[2])))
                nid = max(views, default=0) + 1
                views[nid] = new
                result: Any = nid
            elif method == "umask":
                result = t.umask(*args)
            elif method == "aclose":
                await t.aclose()
                del views[view]
                result = None
            else:
                result = plain(await getattr(t, method)(*args))
        except OSError as e:
            await send((rid, e.errno or 5, str(e)))
            return
        await send((rid, 0, result))

    await send(sorted(root.features))
    buf = bytearray()
    async with trio.open_nursery() as nursery:
        while (req := await read_frame(inp, buf)) is not None:
            nursery.start_soon(handle, *req)
    if 0 in views:  # (the host closed it otherwise)
        await root.aclose()


if __name__ == "__main__":
    trio.run(serve, sys.argv[1])
