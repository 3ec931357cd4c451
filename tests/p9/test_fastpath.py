"""The server's hot paths: Treads answered by pread from `File.data_fd` in the reader task,
spinning for the next request, and the idle watchdog; each compared with what the file
holds, or with the generic path's answer."""

from __future__ import annotations

import errno
import os
import socket
import struct
import time

import pytest
import trio

import p9
from tests.p9 import scenario
from tests.p9.hostfs import FastHostFile, HostFS
from tests.p9.test_ours import _raw, _serve_pair


class _CountingFast(FastHostFile):
    """Counts reads that reach the File (the generic path), per class."""

    generic_reads = 0
    write_types: set = set()

    async def read(self, offset: int, count: int) -> bytes:
        type(self).generic_reads += 1
        return await super().read(offset, count)

    async def write(self, offset: int, data) -> int:
        type(self).write_types.add(type(data))
        return await super().write(offset, data)


@pytest.fixture
def export(tmp_path):
    data = os.urandom(300_000)
    (tmp_path / "data").write_bytes(data)
    (tmp_path / "empty").write_bytes(b"")
    return tmp_path, data


def _fs(root) -> HostFS:
    fs = HostFS(str(root), fast=True)
    fs.file_class = _CountingFast
    _CountingFast.generic_reads = 0
    _CountingFast.write_types = set()
    return fs


async def _check_reads(c: p9.Client, data: bytes) -> None:
    root = await c.attach()
    f = await root.walk(["data"])
    await f.open(os.O_RDONLY)
    assert await f.read(0, len(data) + 5000) == data  # pipelined, split at msize
    for off, n in ((0, 1), (4095, 3), (len(data) - 10, 100), (len(data), 10), (1 << 40, 10)):
        assert await f.read(off, n) == data[off : off + n]
    await f.clunk()
    e = await root.walk(["empty"])
    await e.open(os.O_RDONLY)
    assert await e.read(0, 100) == b""
    await e.clunk()
    await root.clunk()


class CountingLib:
    """Stands in for p9._fastio's lib, counting what its C loops do: calls of the read loop
    (and the most requests one answered, and its statuses), requests the metadata loop
    answered (`meta_served`)."""

    def __init__(self, lib) -> None:
        self.lib = lib
        self.calls = 0
        self.most = 0
        self.statuses: set[int] = set()
        self.meta_served = 0

    def p9f_serve_reads(self, *args):
        self.calls += 1
        st = self.lib.p9f_serve_reads(*args)
        self.most = max(self.most, args[-1][0])  # requests answered in that one call
        self.statuses.add(st)
        return st

    def p9f_serve_meta(self, *args):
        st = self.lib.p9f_serve_meta(*args)
        self.meta_served += args[-1][0]  # requests answered in that one call
        return st

    def __getattr__(self, name):
        return getattr(self.lib, name)


@pytest.fixture(params=["c-loop", "python"])
def read_loop(request, monkeypatch):
    """Run with p9's C read loop (when built) and with the Python fast path alone."""
    import p9._cloops as cloops_mod

    if request.param == "python":
        monkeypatch.setattr(cloops_mod, "_fastio", None)
        return None
    if cloops_mod._fastio is None:
        pytest.skip("p9._fastio is not built (pip install -e . builds it)")
    lib = CountingLib(cloops_mod._fastio)
    monkeypatch.setattr(cloops_mod, "_fastio", lib)
    return lib


@pytest.mark.parametrize("transport", ["socketpair", "tcp"])
async def test_fast_reads_match_the_file(export, transport, read_loop) -> None:
    root, data = export
    server = p9.Server(_fs(root), max_msize=8192, spin_us=50)
    async with trio.open_nursery() as nursery:
        if transport == "tcp":
            listeners = await p9.listen_tcp(0, "127.0.0.1")
            await nursery.start(server.serve_listeners, listeners)
            stream = await p9.connect_tcp("127.0.0.1", listeners[0].socket.getsockname()[1])
        else:
            stream = await _serve_pair(nursery, server)
        async with p9.open_client(stream, msize=8192) as c:
            await _check_reads(c, data)
        nursery.cancel_scope.cancel()
    assert _CountingFast.generic_reads == 0  # every Tread took the fast path
    if read_loop is not None:
        assert read_loop.calls > 0  # single reads went through the C loop


def _burst_client(sock: socket.socket, data: bytes, msize: int) -> None:
    """The client side of the burst test, on a blocking socket in a thread of its own (so
    it runs while the server's C loop holds no GIL and spins)."""
    dec = p9.FrameDecoder(msize)

    def replies(n: int) -> list:
        out: list = []
        while len(out) < n:
            while len(out) < n and (item := dec.next_message()) is not None:
                out.append(item)
            if len(out) < n:
                dec.receive_data(sock.recv(1 << 16))
        return out

    def rpc(tag: int, msg: p9.Message):
        sock.sendall(p9.encode_frame(tag, msg))
        return replies(1)[0]

    rpc(1, p9.Tversion(msize, b"9P2000.L"))
    rpc(1, p9.Tattach(0, p9.NOFID, b"", b"", p9.NONUNAME))
    for fid, flags in ((1, os.O_RDONLY), (2, os.O_RDONLY), (3, os.O_WRONLY)):
        rpc(1, p9.Twalk(0, fid, (b"data",)))
        rpc(1, p9.Tlopen(fid, flags))
    size = msize - 24
    assert rpc(10, p9.Tread(1, 0, 100)) == (10, p9.Rread(data[:100]))
    burst = [(100 + i, p9.Tread(1, (i * 7919) % len(data), size)) for i in range(80)]
    burst += [(300, p9.Tread(2, 5, 10)), (301, p9.Tread(3, 0, 10)),
              (302, p9.Tread(1, 1 << 63, 10)), (303, p9.Tread(1, 1, 2)), (304, p9.Tclunk(2))]
    sock.sendall(b"".join(p9.encode_frame(t, m) for t, m in burst))
    time.sleep(0.3)  # not reading yet: the replies fill the socket, a send comes out partial
    got = replies(len(burst))
    assert [t for t, _ in got] == [t for t, _ in burst]
    for (tag, req), (_, reply) in zip(burst, got, strict=True):
        if tag < 300 or tag in (300, 303):
            assert reply == p9.Rread(data[req.offset : req.offset + req.count]), tag
    answers = dict(got)
    assert answers[301] == p9.Rlerror(errno.EBADF)
    assert type(answers[302]) is p9.Rlerror
    assert answers[304] == p9.Rclunk()


async def test_read_loop_answers_bursts_like_the_file(export, read_loop) -> None:
    """A lone Tread, then a burst: more Treads than the C loop's budget, replies too big for
    the socket buffer, another fid, a write-only fid, an offset beyond loff_t, a Tclunk.
    Every request gets the answer the file gives, in the order sent."""
    root, data = export
    msize = 65536
    # A long spin: the C loop, having answered the lone Tread, is still receiving when the
    # burst comes, and answers what it can of it.
    server = p9.Server(_fs(root), max_msize=msize, spin_us=200_000)
    a, b = socket.socketpair()
    with a:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.serve_stream, trio.SocketStream(trio.socket.from_stdlib_socket(b)))
            with trio.fail_after(60):
                await trio.to_thread.run_sync(_burst_client, a, data, msize)
            nursery.cancel_scope.cancel()
    if read_loop is not None:
        assert read_loop.most > 1  # the C loop answered part of the burst itself
        assert read_loop.lib.P9F_PARTIAL in read_loop.statuses


async def test_fast_path_edges_answer_like_the_generic_path(export) -> None:
    """Clamped counts, offsets beyond loff_t, write-only fids, a session reset, and an
    xattr write turned onto an open fid: each answered as the generic path answers."""
    root, data = export
    async with trio.open_nursery() as nursery:
        async with await _serve_pair(nursery, p9.Server(_fs(root), max_msize=8192)) as s:
            assert (await _raw(s, 1, p9.Tversion(8192, b"9P2000.L")))[1] == p9.Rversion(
                8192, b"9P2000.L")
            await _raw(s, 1, p9.Tattach(0, p9.NOFID, b"", b"", p9.NONUNAME))
            await _raw(s, 1, p9.Twalk(0, 1, (b"data",)))
            await _raw(s, 1, p9.Tlopen(1, os.O_RDONLY))
            # A count above msize-24 is clamped.
            assert await _raw(s, 2, p9.Tread(1, 10, 1 << 20)) == (2, p9.Rread(data[10 : 10 + 8192 - 24]))
            # An offset that is no loff_t: the file model's error, not a crash.
            for off in (1 << 63, (1 << 64) - 1):
                tag, reply = await _raw(s, 3, p9.Tread(1, off, 10))
                assert tag == 3 and type(reply) is p9.Rlerror
            generic = _CountingFast.generic_reads  # (those two went there)
            # Two reads in one send: both answered, in order.
            await s.send_all(p9.encode_frame(4, p9.Tread(1, 0, 5)) + p9.encode_frame(5, p9.Tread(1, 5, 5)))
            dec = p9.FrameDecoder(8192)
            replies = []
            while len(replies) < 2:
                dec.receive_data(await s.receive_some(8192))
                while (item := dec.next_message()) is not None:
                    replies.append(item)
            assert replies == [(4, p9.Rread(data[:5])), (5, p9.Rread(data[5:10]))]
            assert _CountingFast.generic_reads == generic
            # A write-only fid: the host's EBADF.
            await _raw(s, 1, p9.Twalk(0, 2, (b"data",)))
            await _raw(s, 1, p9.Tlopen(2, os.O_WRONLY))
            assert await _raw(s, 6, p9.Tread(2, 0, 10)) == (6, p9.Rlerror(errno.EBADF))
            # Txattrcreate on the open fid makes it an xattr fid: reads leave the fast path.
            assert (await _raw(s, 7, p9.Txattrcreate(1, b"user.x", 1, 0)))[1] == p9.Rxattrcreate()
            await _raw(s, 8, p9.Tread(1, 0, 5))
            assert _CountingFast.generic_reads == generic + 2  # the EBADF one and this one
            # ... and its Twrite is the xattr's value, not file data.
            assert await _raw(s, 8, p9.Twrite(1, 0, b"v")) == (8, p9.Rwrite(1))
            assert await _raw(s, 8, p9.Tclunk(1)) == (8, p9.Rclunk())
            assert os.getxattr(root / "data", "user.x") == b"v"
            assert (root / "data").read_bytes() == data
            # Fast Twrites: written from the receive buffer; a read-only fid gets EBADF.
            await _raw(s, 1, p9.Twalk(0, 3, (b"data",)))
            await _raw(s, 1, p9.Tlopen(3, os.O_RDONLY))
            assert await _raw(s, 10, p9.Twrite(3, 0, b"nope")) == (10, p9.Rlerror(errno.EBADF))
            await _raw(s, 1, p9.Twalk(0, 4, (b"data",)))
            await _raw(s, 1, p9.Tlopen(4, os.O_RDWR))
            await s.send_all(b"".join(p9.encode_frame(20 + i, p9.Twrite(4, 100 * i, b"%03d" % i))
                                      for i in range(50)))
            dec = p9.FrameDecoder(8192)
            replies = []
            while len(replies) < 50:
                dec.receive_data(await s.receive_some(8192))
                while (item := dec.next_message()) is not None:
                    replies.append(item)
            assert replies == [(20 + i, p9.Rwrite(3)) for i in range(50)]
            assert _CountingFast.write_types == {memoryview}
            got = (root / "data").read_bytes()
            assert all(got[100 * i : 100 * i + 3] == b"%03d" % i for i in range(50))
            # Tversion resets the session: the old fid number names nothing any more.
            await _raw(s, 1, p9.Tversion(8192, b"9P2000.L"))
            assert await _raw(s, 9, p9.Tread(2, 0, 10)) == (9, p9.Rlerror(errno.EBADF))
            assert await _raw(s, 9, p9.Tread(4, 0, 10)) == (9, p9.Rlerror(errno.EBADF))
            assert await _raw(s, 9, p9.Twrite(4, 0, b"x")) == (9, p9.Rlerror(errno.EBADF))
        nursery.cancel_scope.cancel()


async def test_scenario_with_fast_paths_matches_native(dirs) -> None:
    export, native = dirs
    server = p9.Server(HostFS(export, fast=True), inline=p9.QUICK_MESSAGES, spin_us=100)
    async with trio.open_nursery() as nursery:
        stream = await _serve_pair(nursery, server)
        async with p9.open_client(stream, msize=65536) as c:
            root = await c.attach(export)
            diffs = await scenario.run(p9.PathFS(root), native)
            await root.clunk()
        nursery.cancel_scope.cancel()
    assert diffs == []
    assert scenario.tree(export) == scenario.tree(native)


async def test_idle_watchdog_closes_only_a_silent_connection(export) -> None:
    root, _ = export
    server = p9.Server(HostFS(str(root)), idle_timeout=0.5)
    async with trio.open_nursery() as nursery:
        async with p9.open_client(await _serve_pair(nursery, server)) as c:
            r = await c.attach()
            for _ in range(8):  # busy for ~1.6 s, never 0.5 s silent
                await r.getattr(p9.GetattrMask.BASIC)
                await trio.sleep(0.2)
            await trio.sleep(1.5)
            with pytest.raises(OSError):
                await r.getattr(p9.GetattrMask.BASIC)
        nursery.cancel_scope.cancel()


def test_peek_io_fed_a_byte_at_a_time() -> None:
    frames = (p9.encode_frame(3, p9.Tread(7, 1 << 40, 4096)) + p9.encode_frame(4, p9.Tclunk(7))
              + p9.encode_frame(5, p9.Twrite(8, 9, b"abc")) + p9.encode_frame(6, p9.Tread(8, 0, 1))
              + p9.encode_frame(7, p9.Twrite(8, 0, b"")))
    dec = p9.FrameDecoder(8192)
    got = []
    for b in frames:
        dec.receive_data(bytes([b]))
        while True:
            io = dec.peek_io()
            if io is not None:
                data = dec.take_io(io)
                got.append(io if data is None else (*io, bytes(data)))
                continue
            item = dec.next_message()
            if item is None:
                break
            got.append(item)
    assert got == [(116, 3, 7, 1 << 40, 4096), (4, p9.Tclunk(7)), (118, 5, 8, 9, 3, b"abc"),
                   (116, 6, 8, 0, 1), (118, 7, 8, 0, 0, b"")]
    # Frames whose size disagrees with their layout are left to next_message (which
    # reports them): a Tread with a trailing byte, a Twrite whose count lies.
    for frame, tag in ((struct.pack("<IBHIQIB", 24, 116, 9, 1, 0, 1, 0), 9),
                       (struct.pack("<IBHIQI", 25, 118, 10, 1, 0, 5) + b"ab", 10)):
        dec = p9.FrameDecoder(8192)
        dec.receive_data(frame)
        assert dec.peek_io() is None
        with pytest.raises(p9.ProtocolError) as info:
            dec.next_message()
        assert info.value.recoverable and info.value.tag == tag
    # A handed-out Twrite view is released by the next receive (the buffer can move).
    dec = p9.FrameDecoder(8192)
    dec.receive_data(p9.encode_frame(1, p9.Twrite(1, 0, b"x" * 100)))
    view = dec.take_io(dec.peek_io())
    dec.receive_data(b"more" * 1000)
    with pytest.raises(ValueError):
        bytes(view)


def _tcp_notsent_lowats() -> list[int]:
    """TCP_NOTSENT_LOWAT of every connected TCP socket of this process."""
    out = []
    for name in os.listdir("/proc/self/fd"):
        try:
            s = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        with s:
            if s.family == socket.AF_INET and s.type == socket.SOCK_STREAM:
                try:
                    s.getpeername()
                except OSError:
                    continue  # a listener
                out.append(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT))
    return out


async def test_tcp_streams_keep_linux_send_buffering(export) -> None:
    """trio gives its TCP streams a 16 KiB TCP_NOTSENT_LOWAT; both ends of a 9P connection
    drop it (p9._transport.tune_tcp), or a 1 MiB reply drains to 16 KiB between refills."""
    root, _ = export
    server = p9.Server(_fs(root), max_msize=1 << 20)
    async with trio.open_nursery() as nursery:
        listeners = await p9.listen_tcp(0, "127.0.0.1")
        await nursery.start(server.serve_listeners, listeners)
        stream = await p9.connect_tcp("127.0.0.1", listeners[0].socket.getsockname()[1])
        async with p9.open_client(stream, msize=1 << 20):
            assert _tcp_notsent_lowats() == [-1, -1]  # the client's end and the server's
        nursery.cancel_scope.cancel()


async def test_metadata_short_path_answers_like_the_generic_path(export) -> None:
    """Tgetattr, Tclunk and one-name Twalk on a server that takes them inline (the short
    path of `next_meta`) get the replies a server without it sends, errors included."""
    root, _ = export
    (root / "dir").mkdir()
    os.symlink("data", root / "link")
    script = [
        p9.Tattach(0, p9.NOFID, b"", b"", p9.NONUNAME),
        p9.Twalk(0, 1, (b"data",)), p9.Tgetattr(1, p9.GetattrMask.BASIC),
        p9.Tgetattr(1, p9.GetattrMask.ALL), p9.Twalk(0, 1, (b"dir",)),  # newfid in use
        p9.Twalk(0, 2, (b"missing",)), p9.Twalk(9, 2, (b"data",)),  # ENOENT, unknown fid
        p9.Twalk(0, 2, (b"..",)), p9.Tgetattr(2, p9.GetattrMask.BASIC),  # .. at the root
        p9.Twalk(0, 3, (b".",)), p9.Twalk(0, 4, (b"link",)), p9.Tgetattr(4, 0),
        p9.Twalk(4, 5, (b"x",)),  # through a symlink
        p9.Twalk(1, 1, (b"dir",)),  # walk from a file: its own fid number kept
        p9.Twalk(0, 6, (b"dir",)), p9.Twalk(6, 6, (b"..",)), p9.Tgetattr(6, 0),  # replaced
        p9.Twalk(0, 7, (b"a/b",)), p9.Twalk(0, 7, (b"",)),  # not one component
        p9.Tclunk(1), p9.Tclunk(1), p9.Tgetattr(1, 0), p9.Tclunk(42),
        p9.Twalk(0, p9.NOFID, (b"data",)),
        p9.Tclunk(2), p9.Tclunk(3), p9.Tclunk(4), p9.Tclunk(6), p9.Tclunk(0),
    ]
    replies = {}
    for inline in (p9.QUICK_MESSAGES, ()):
        server = p9.Server(HostFS(str(root), fast=True), inline=inline)
        got = []
        async with trio.open_nursery() as nursery:
            async with await _serve_pair(nursery, server) as s:
                await _raw(s, 1, p9.Tversion(8192, b"9P2000.L"))
                for tag, msg in enumerate(script):
                    got.append(await _raw(s, tag, msg))
            nursery.cancel_scope.cancel()
        replies[bool(inline)] = got
    assert replies[True] == replies[False]
    errors = [r for _, r in replies[True] if isinstance(r, p9.Rlerror)]
    assert len(errors) >= 9  # the script's error cases did fail
