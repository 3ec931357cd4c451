"""Donated descriptors (Tlopenfd, p9/README.md): the gofer gives a read-only open of a
regular file its host descriptor over a unix socket, nothing else; a client on TCP or of
the plain dialect keeps Tread; a peer that donates a bad descriptor (none, another type,
another file, a writable one) is read through 9P instead, and said so once."""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import logging
import os
import socket
from pathlib import Path

import pytest
import trio

import p9
from gofer.host import Export
from gofer.serve import GoferOptions, serve_stream
from tests.gofer.helpers import connect, gofer_fs, open_fds

CONTENT = bytes(range(256)) * 300


@pytest.fixture
def exp(tmp_path: Path) -> Path:
    d = tmp_path / "exp"
    d.mkdir()
    (d / "file").write_bytes(CONTENT)
    (d / "dir").mkdir()
    return d


async def test_read_only_open_donates_that_file(exp: Path) -> None:
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery), connect(fs, nursery) as c:
        assert c.donations
        root = await c.attach("e")
        f = await root.walk(["file"])
        qid, fd = await f.open_donated(os.O_RDONLY)
        assert fd is not None
        try:
            st, host = os.fstat(fd), os.stat(exp / "file")
            assert (st.st_dev, st.st_ino) == (host.st_dev, host.st_ino)
            assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
            assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
            assert os.pread(fd, len(CONTENT) + 10, 0) == CONTENT
            assert await f.read(100, 50) == CONTENT[100:150]  # the fid reads through 9P too
            await f.clunk()
            await c.drain()
            assert os.pread(fd, 5, 7) == CONTENT[7:12]  # the descriptor outlives the fid
        finally:
            os.close(fd)
        await root.clunk()


async def test_each_reply_keeps_its_descriptor(exp: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Replies to opens in flight together are taken in any order (their tasks wake in
    any order): each gets the descriptor its own frame brought, not the oldest queued."""
    (exp / "other").write_bytes(b"other")
    caplog.set_level(logging.WARNING, logger="p9.client")
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery), connect(fs, nursery) as c:
        root = await c.attach("e")
        fids = [await root.walk([name]) for name in ("file", "other")]
        replies = [await c.rpc(p9.Tlopenfd(f.fid, os.O_RDONLY)) for f in fids]
        fds = [c.donated_fd(r, os.O_RDONLY) for r in reversed(replies)][::-1]
        try:
            for name, fd in zip(("file", "other"), fds, strict=True):
                assert fd is not None, name
                assert os.fstat(fd).st_ino == os.stat(exp / name).st_ino, name
        finally:
            for fd in fds:
                if fd is not None:
                    os.close(fd)
        assert c.donations
        for f in fids:
            await f.clunk()
        await root.clunk()
    assert not [r for r in caplog.records if r.name == "p9.client"]


async def test_writable_opens_and_directories_are_not_donated(exp: Path) -> None:
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery), connect(fs, nursery) as c:
        root = await c.attach("e")
        before = open_fds()
        for names, flags in ((["file"], os.O_RDWR), (["file"], os.O_WRONLY),
                             (["dir"], os.O_RDONLY | os.O_DIRECTORY), ([], os.O_RDONLY)):
            f = await root.walk(names)
            _, fd = await f.open_donated(flags)
            assert fd is None, (names, flags)
            await f.clunk()
        w = await root.walk(["file"])
        _, fd = await w.open_donated(os.O_RDWR)
        assert fd is None and await w.write(0, b"XY") == 2
        await w.clunk()
        await c.drain()
        assert (exp / "file").read_bytes()[:3] == b"XY" + CONTENT[2:3]
        assert open_fds() == before  # the gofer's duplicates are closed once sent
        assert c.donations  # declining to donate is no fault
        await root.clunk()


async def test_plain_dialect_and_tcp_keep_tread(exp: Path) -> None:
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery):
        async with connect(fs, nursery, version=p9.BASE) as c:
            assert not c.dialect.lopenfd and not c.donations
            f = await (await c.attach("e")).walk(["file"])
            _, fd = await f.open_donated(os.O_RDONLY)
            assert fd is None and await f.read(0, 4) == CONTENT[:4]
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]

        async def serve_one() -> None:
            stream = await listeners[0].accept()
            await serve_stream(stream, fs, GoferOptions())

        nursery.start_soon(serve_one)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with p9.open_client(stream) as c:
            assert c.dialect.lopenfd and not c.donations  # no descriptors over TCP
            f = await (await c.attach("e")).walk(["file"])
            _, fd = await f.open_donated(os.O_RDONLY)
            assert fd is None and await f.read(0, 4) == CONTENT[:4]
        await listeners[0].aclose()


# -- a peer that donates badly ---------------------------------------------------------------

FAULTS = ("none", "pipe", "other file", "writable")


async def _bad_peer(stream: trio.SocketStream, fault: str, paths: dict[str, Path],
                    seen: list[type]) -> None:
    """Answers just what the test sends; its Rlopenfd claims a descriptor and brings
    `fault`'s instead of the file's."""
    qid = p9.Qid(0, 0, os.stat(paths["file"]).st_ino)
    dec = p9.FrameDecoder(1 << 20)
    async with stream:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await _answer(stream, dec, fault, paths, seen, qid)


async def _answer(stream: trio.SocketStream, dec: p9.FrameDecoder, fault: str,
                  paths: dict[str, Path], seen: list[type], qid: p9.Qid) -> None:
    while data := await stream.receive_some(1 << 16):
        dec.receive_data(data)
        while (item := dec.next_message()) is not None:
            tag, msg = item
            seen.append(type(msg))
            fd = -1
            reply: p9.Message
            if isinstance(msg, p9.Tversion):
                reply = p9.Rversion(msg.msize, p9.RUNPSC)
            elif isinstance(msg, p9.Tauth):
                reply = p9.Rlerror(errno.ENOENT)
            elif isinstance(msg, p9.Tattach):
                reply = p9.Rattach(p9.Qid(p9.QidType.DIR, 0, 1))
            elif isinstance(msg, p9.Twalk):
                reply = p9.Rwalk(tuple(qid for _ in msg.wnames))
            elif isinstance(msg, p9.Tlopenfd):
                reply = p9.Rlopenfd(qid, 0, 1)
                if fault == "pipe":
                    r, w = os.pipe()
                    os.close(w)
                    fd = r
                elif fault == "other file":
                    fd = os.open(paths["other"], os.O_RDONLY)
                elif fault == "writable":
                    fd = os.open(paths["file"], os.O_RDWR)
            elif isinstance(msg, p9.Tlopen):
                reply = p9.Rlopen(qid, 0)
            elif isinstance(msg, p9.Tread):
                reply = p9.Rread(CONTENT[msg.offset : msg.offset + msg.count])
            else:
                reply = p9.Rclunk()
            frame = p9.encode_frame(tag, reply)
            if fd >= 0:
                await stream.socket.sendmsg([frame], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                       array.array("i", [fd]))])
                os.close(fd)
            else:
                await stream.send_all(frame)


@pytest.mark.parametrize("fault", FAULTS)
async def test_bad_donation_falls_back_to_9p_logged_once(
        tmp_path: Path, fault: str, caplog: pytest.LogCaptureFixture) -> None:
    paths = {"file": tmp_path / "file", "other": tmp_path / "other"}
    paths["file"].write_bytes(CONTENT)
    paths["other"].write_bytes(b"not this one")
    before = open_fds()
    a, b = p9.socketpair()
    seen: list[type] = []
    caplog.set_level(logging.WARNING, logger="p9.client")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_bad_peer, b, fault, paths, seen)
        async with p9.open_client(a) as c:
            assert c.donations
            root = await c.attach("x")
            for _ in range(3):
                f = await root.walk(["file"])
                _, fd = await f.open_donated(os.O_RDONLY)
                assert fd is None
                assert await f.read(1000, 300) == CONTENT[1000:1300]
                await f.clunk()
            assert not c.donations
    warnings = [r for r in caplog.records if r.name == "p9.client"]
    assert len(warnings) == 1 and "bad descriptor" in warnings[0].getMessage()
    assert seen.count(p9.Tlopenfd) == 1 and seen.count(p9.Tlopen) == 2  # 9P from then on
    await trio.lowlevel.checkpoint()
    assert open_fds() == before  # the bad descriptors were closed
