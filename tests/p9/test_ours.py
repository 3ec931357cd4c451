"""Our client against our server (host-directory model) over real sockets."""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest
import trio

import p9

from . import scenario
from .hostfs import HostFile, HostFS


class CountingFS(HostFS):
    """HostFS that counts Files alive, to prove the server closes every one."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.alive = 0
        fs = self

        class Counted(HostFile):
            def __init__(self, *a):
                super().__init__(*a)
                fs.alive += 1

            async def close(self) -> None:
                fs.alive -= 1
                await super().close()

            async def read(self, offset, count):
                if self.path.endswith(b"/slow"):
                    await trio.sleep_forever()
                return await super().read(offset, count)

        self.cls = Counted

    async def attach(self, aname, uname, uid):
        return self.cls(self.root, self.root)


async def _serve_pair(nursery, server: p9.Server) -> trio.SocketStream:
    a, b = p9.socketpair()
    nursery.start_soon(server.serve_stream, b)
    return a


@pytest.mark.parametrize(("version", "inline"), [(p9.RUNPSC, ()), (p9.BASE, ()),
                                                 (p9.RUNPSC, p9.QUICK_MESSAGES)])
async def test_scenario_matches_native(dirs, version, inline) -> None:
    export, native = dirs
    async with trio.open_nursery() as nursery:
        stream = await _serve_pair(nursery, p9.Server(HostFS(export), inline=inline))
        async with p9.open_client(stream, msize=65536, version=version) as c:
            assert c.dialect.version == version
            root = await c.attach(export)
            diffs = await scenario.run(p9.PathFS(root), native)
            await root.clunk()
            await c.drain()
            assert c.live_fids == set()
        nursery.cancel_scope.cancel()
    assert diffs == []
    assert scenario.tree(export) == scenario.tree(native)


async def test_transports_unix_tcp4_tcp6(tmp_path, dirs) -> None:
    export, _ = dirs
    server = p9.Server(HostFS(export))
    sock_path = str(tmp_path / "9p.sock")
    async with trio.open_nursery() as nursery:
        lst = [await p9.listen_unix(sock_path)]
        lst += await p9.listen_tcp(0, "127.0.0.1")
        lst += await p9.listen_tcp(0, "::1")
        await nursery.start(server.serve_listeners, lst)
        port4 = lst[1].socket.getsockname()[1]
        port6 = lst[2].socket.getsockname()[1]
        for stream in (await p9.connect_unix(sock_path), await p9.connect_tcp("127.0.0.1", port4),
                       await p9.connect_tcp("::1", port6)):
            async with p9.open_client(stream) as c:
                root = await c.attach()
                assert await p9.PathFS(root).read_file("f") == b"hello 9p\n"
        # An inherited fd: one end of a socketpair handed over as a bare descriptor.
        s1, s2 = socket.socketpair()
        nursery.start_soon(server.serve_stream, p9.stream_from_fd(s2.detach()))
        async with p9.open_client(p9.stream_from_fd(s1.detach())) as c:
            root = await c.attach()
            assert b"many" in await p9.PathFS(root).listdir()
        nursery.cancel_scope.cancel()


async def test_concurrency_flush_and_no_leaks(tmp_path) -> None:
    (tmp_path / "slow").write_bytes(b"never read")
    (tmp_path / "data").write_bytes(os.urandom(1 << 20))
    fs = CountingFS(str(tmp_path))
    async with trio.open_nursery() as nursery:
        stream = await _serve_pair(nursery, p9.Server(fs, max_inflight=8))
        async with p9.open_client(stream, msize=16384) as c:
            root = await c.attach()
            pfs = p9.PathFS(root)
            # 50 concurrent pipelined reads of a 1 MiB file through 8 in-flight slots.
            results = {}

            async def reader(i):
                results[i] = await pfs.read_file("data")

            async with trio.open_nursery() as inner:
                for i in range(50):
                    inner.start_soon(reader, i)
            want = (tmp_path / "data").read_bytes()
            assert all(v == want for v in results.values()) and len(results) == 50
            # A request that never completes is flushed when cancelled; its fid is clunked.
            slow = await root.walk(["slow"])
            await slow.open()
            with trio.move_on_after(0.2) as scope:
                await slow.read(0, 10)
            assert scope.cancelled_caught
            await slow.clunk()
            # Cancelling walks mid-flight leaks no fid on either side.
            for delay in (0, 0.0001, 0.001):
                with trio.move_on_after(delay):
                    while True:
                        f = await root.walk(["data"])
                        await f.clunk()
            await root.clunk()
            await trio.sleep(0.05)
            await c.drain()
            assert c.live_fids == set()
            assert fs.alive == 0
            # Files still referenced at disconnect are closed by the server.
            root = await c.attach()
            await root.walk(["data"])
            await root.walk(["slow"])
            assert fs.alive == 3
        await trio.sleep(0.1)
        assert fs.alive == 0
        nursery.cancel_scope.cancel()


async def _raw(stream, tag, msg) -> tuple[int, p9.Message]:
    await stream.send_all(p9.encode_frame(tag, msg))
    return await _recv(stream)


async def _recv(stream) -> tuple[int, p9.Message]:
    dec = p9.FrameDecoder(1 << 20)
    while True:
        item = dec.next_message()
        if item is not None:
            return item
        dec.receive_data(await stream.receive_some(1 << 16))


async def _requests(stream) -> AsyncIterator[tuple[int, p9.Message]]:
    """(tag, message) of each request a scripted fake server receives, until EOF."""
    dec = p9.FrameDecoder(1 << 20)
    while data := await stream.receive_some(4096):
        dec.receive_data(data)
        while (item := dec.next_message()) is not None:
            yield item


async def test_leniencies_raw(dirs) -> None:
    export, _ = dirs
    async with trio.open_nursery() as nursery:
        async with await _serve_pair(nursery, p9.Server(HostFS(export), max_msize=8192)) as s:
            # Tversion with an ordinary tag; msize clamped to ours.
            assert await _raw(s, 5, p9.Tversion(1 << 20, b"9P2000.L")) == (5, p9.Rversion(8192, b"9P2000.L"))
            assert await _raw(s, 1, p9.Tauth(0, b"root", b"", 0)) == (1, p9.Rlerror(errno.ENOENT))
            # Empty uname + NONUNAME (gVisor) attaches as the default user.
            tag, r = await _raw(s, 1, p9.Tattach(0, p9.NOFID, b"", b"", p9.NONUNAME))
            assert isinstance(r, p9.Rattach)
            root_qid = r.qid
            # Unknown type → Rlerror EOPNOTSUPP, connection intact.
            await s.send_all(struct.pack("<IBH", 7, 250, 9))
            assert await _recv(s) == (9, p9.Rlerror(errno.EOPNOTSUPP))
            # Extension not negotiated → EOPNOTSUPP.
            assert await _raw(s, 2, p9.Tgetxattr(0, b"user.x", 0)) == (2, p9.Rlerror(errno.EOPNOTSUPP))
            # ".." at the root stays at the root; "." stays.
            tag, r = await _raw(s, 3, p9.Twalk(0, 1, (b"..", b"..", b".", b"many", b"..")))
            assert r == p9.Rwalk((root_qid, root_qid, root_qid, r.qids[3], root_qid))
            # Partial walk: qids for what exists, newfid not created.
            tag, r = await _raw(s, 3, p9.Twalk(0, 2, (b"many", b"nope")))
            assert isinstance(r, p9.Rwalk) and len(r.qids) == 1
            assert await _raw(s, 3, p9.Tclunk(2)) == (3, p9.Rlerror(errno.EBADF))
            # Walk from an open fid; read count above msize-24 is clamped.
            await _raw(s, 4, p9.Twalk(0, 3, (b"many",)))
            assert isinstance((await _raw(s, 4, p9.Tlopen(3, os.O_RDONLY)))[1], p9.Rlopen)
            tag, r = await _raw(s, 4, p9.Twalk(3, 4, (b"..",)))
            assert r == p9.Rwalk((root_qid,))
            tag, r = await _raw(s, 4, p9.Treaddir(3, 0, 1 << 20))
            assert isinstance(r, p9.Rreaddir) and 0 < len(r.data) <= 8192 - 11
            await _raw(s, 4, p9.Twalk(0, 5, (b"f",)))
            await _raw(s, 4, p9.Tlopen(5, os.O_RDWR))
            assert await _raw(s, 4, p9.Twrite(5, 0, b"z" * 8000)) == (4, p9.Rwrite(8000))
            assert await _raw(s, 4, p9.Twrite(5, 8000, b"z" * 8000)) == (4, p9.Rwrite(8000))
            tag, r = await _raw(s, 4, p9.Tread(5, 0, 1 << 20))
            assert isinstance(r, p9.Rread) and len(r.data) == 8192 - 24
            # A gVisor client offering Google.13 is answered with a level we implement.
            assert await _raw(s, p9.NOTAG, p9.Tversion(8192, b"9P2000.L.Google.13")) == (
                p9.NOTAG, p9.Rversion(8192, b"9P2000.L.Google.3"))
            # Tversion reset the session: old fids are gone.
            assert await _raw(s, 1, p9.Tclunk(0)) == (1, p9.Rlerror(errno.EBADF))
            await _raw(s, 1, p9.Tattach(0, p9.NOFID, b"", b"", p9.NONUNAME))
            tag, r = await _raw(s, 1, p9.Twalkgetattr(0, 1, (b"f",)))
            assert isinstance(r, p9.Rwalkgetattr) and r.attr.size == 16000
            assert await _raw(s, 1, p9.Tflushf(1)) == (1, p9.Rflushf())
            tag, r = await _raw(s, 1, p9.Tumkdir(0, b"ud", 0o700, 0, 0))
            assert isinstance(r, p9.Rumkdir)
            # A non-9P2000.L version is "unknown".
            assert (await _raw(s, 1, p9.Tversion(8192, b"9P2000.u")))[1].version == b"unknown"
            # A broken frame size drops the connection without a crash.
            await s.send_all(struct.pack("<IBH", 1 << 30, 100, 0))
            assert await s.receive_some(100) == b""
        nursery.cancel_scope.cancel()


async def test_extensions_end_to_end(dirs) -> None:
    export, _ = dirs
    async with trio.open_nursery() as nursery:
        stream = await _serve_pair(nursery, p9.Server(HostFS(export)))
        async with p9.open_client(stream) as c:
            assert c.dialect == p9.OURS
            root = await c.attach()
            stats = await root.multi_getattr(["many", "entry-0001-" + "x" * 40])
            assert [s.is_dir for s in stats] == [True, False]
            assert len(await root.multi_getattr(["many", "nope"])) == 1
            f, st = await root.walk_getattr(["f"])
            assert st.attr.size == 9 and not st.is_dir
            await f.open(os.O_RDWR)
            await f.allocate(0, 0, 1 << 16)
            assert (await f.getattr()).attr.size == 1 << 16
            await f.setxattr("user.q", b"1")
            assert await f.getxattr("user.q") == b"1"
            await c.rpc(p9.Tsetattrclunk(f.fid, int(p9.SetattrMask.SIZE), p9.SetAttr(size=3)))
            c.release_fid(f.fid)
            assert os.path.getsize(os.path.join(export, "f")) == 3
            # Locks through the same process never conflict (POSIX semantics).
            async with await root.walk(["f"]) as g:
                await g.open(os.O_RDWR)
                assert await g.lock(p9.LockType.WRLCK, 0, 10) == p9.LockStatus.SUCCESS
                assert (await g.getlock()).lock_type == p9.LockType.UNLCK
            await root.clunk()
            await c.drain()
            assert c.live_fids == set()
        nursery.cancel_scope.cancel()


async def test_client_fallbacks_against_a_plain_old_server(dirs) -> None:
    """A server without Trenameat/Tunlinkat: the client falls back to Trename/Tremove."""
    export, _ = dirs

    class OldFile(HostFile):
        async def walk(self, names):
            qids, new = await super().walk(names)
            return qids, (OldFile(new.root, new.path) if new is not None else None)

        async def renameat(self, *a):
            raise OSError(errno.EOPNOTSUPP, "old server")

        async def unlinkat(self, *a):
            raise OSError(errno.EOPNOTSUPP, "old server")

    class OldFS(HostFS):
        async def attach(self, aname, uname, uid):
            return OldFile(self.root, self.root)

    async with trio.open_nursery() as nursery:
        stream = await _serve_pair(nursery, p9.Server(OldFS(export)))
        async with p9.open_client(stream, version=p9.BASE) as c:
            fs = p9.PathFS(await c.attach())
            await fs.rename("f", "g")
            await fs.mkdir("d")
            with pytest.raises(IsADirectoryError):
                await fs.unlink("d")
            await fs.rmdir("d")
            await fs.unlink("g")
            assert sorted(os.listdir(export)) == ["many"]
        nursery.cancel_scope.cancel()


async def test_client_refuses_tiny_msize_and_non_9p2000l(dirs) -> None:
    async def fake_server(stream, answer):
        async with stream:
            async for tag, _ in _requests(stream):
                await stream.send_all(p9.encode_frame(tag, answer))

    for answer, code in ((p9.Rversion(1024, b"9P2000.L"), errno.EPROTO),
                         (p9.Rversion(8192, b"unknown"), errno.EPROTONOSUPPORT)):
        a, b = p9.socketpair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fake_server, b, answer)
            with pytest.raises(OSError) as info:
                async with p9.open_client(a):
                    pass
            assert info.value.errno == code
            nursery.cancel_scope.cancel()


async def test_server_survives_garbage_frames(dirs) -> None:
    """Random well-framed garbage: every frame gets a reply or is dropped, never a crash."""
    import random

    export, _ = dirs
    rng = random.Random(9)
    types = sorted(p9.REGISTRY) + [0, 1, 99, 200, 255]
    async with trio.open_nursery() as nursery:
        async with await _serve_pair(nursery, p9.Server(HostFS(export), max_msize=8192)) as s:
            assert isinstance((await _raw(s, 1, p9.Tversion(8192, b"9P2000.L")))[1], p9.Rversion)
            await _raw(s, 1, p9.Tattach(0, p9.NOFID, b"", b"", p9.NONUNAME))
            frames = []
            for i in range(300):
                mtype = rng.choice(types)
                if mtype in (100, 108):  # Tversion resets the session; Tflush is tested elsewhere
                    continue
                body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
                frames.append(struct.pack("<IBH", 7 + len(body), mtype, i) + body)
            await s.send_all(b"".join(frames))
            dec = p9.FrameDecoder(8192)
            answered = set()
            with trio.fail_after(20):
                while len(answered) < len(frames):
                    while (item := dec.next_message()) is not None:
                        answered.add(item[0])
                    if len(answered) < len(frames):
                        dec.receive_data(await s.receive_some(1 << 16))
            # Still a working server on the same connection.
            assert (await _raw(s, 7, p9.Tversion(8192, b"9P2000.L")))[1] == p9.Rversion(8192, b"9P2000.L")
        nursery.cancel_scope.cancel()


async def test_linux_style_xattr_removal(dirs) -> None:
    """Linux's v9fs removes an xattr with Txattrcreate(size 0, XATTR_REPLACE) + Tclunk."""
    export, _ = dirs
    os.setxattr(os.path.join(export, "f"), "user.gone", b"x")
    async with trio.open_nursery() as nursery:
        async with await _serve_pair(nursery, p9.Server(HostFS(export))) as s:
            await _raw(s, 1, p9.Tversion(8192, b"9P2000.L"))
            await _raw(s, 1, p9.Tattach(0, p9.NOFID, b"", b"", p9.NONUNAME))
            await _raw(s, 1, p9.Twalk(0, 1, (b"f",)))
            assert await _raw(s, 1, p9.Txattrcreate(1, b"user.gone", 0, os.XATTR_REPLACE)) == (
                1, p9.Rxattrcreate())
            assert await _raw(s, 1, p9.Tclunk(1)) == (1, p9.Rclunk())
        nursery.cancel_scope.cancel()
    assert "user.gone" not in os.listxattr(os.path.join(export, "f"))


async def test_client_reads_legacy_rerror_as_errno() -> None:
    """Some 9P2000.L servers answer with Rerror (107) carrying an Rlerror-style body."""

    async def server(stream):
        async with stream:
            async for tag, msg in _requests(stream):
                reply = (p9.Rversion(8192, b"9P2000.L") if isinstance(msg, p9.Tversion)
                         else p9.Rerror(13))
                await stream.send_all(p9.encode_frame(tag, reply))

    a, b = p9.socketpair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server, b)
        async with p9.open_client(a) as c:
            with pytest.raises(PermissionError):
                await c.attach()
            await c.drain()
            assert c.live_fids == set()
        nursery.cancel_scope.cancel()


async def test_client_survives_a_dying_or_babbling_server() -> None:
    """Replies for unknown tags are ignored; a server that hangs up fails pending calls,
    and every later one, with EIO (as Linux's v9fs answers for a lost server)."""

    async def server(stream):
        async with aclosing(_requests(stream)) as requests:
            async for tag, msg in requests:
                if isinstance(msg, p9.Tversion):
                    await stream.send_all(p9.encode_frame(tag, p9.Rversion(8192, b"9P2000.L")))
                    continue
                # A reply for a tag nobody used, garbage of a valid frame, then hang up.
                await stream.send_all(p9.encode_frame(4242, p9.Rclunk()))
                await stream.send_all(struct.pack("<IBH", 7, 250, tag))
                await stream.aclose()
                return

    a, b = p9.socketpair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server, b)
        async with p9.open_client(a) as c:
            with pytest.raises(OSError) as info:
                await c.attach()
            assert info.value.errno == errno.EIO
            with pytest.raises(OSError) as info:
                await c.attach()
            assert info.value.errno == errno.EIO
            await c.drain()
            assert c.live_fids == set()


async def test_flush_gets_through_when_every_slot_is_busy(tmp_path) -> None:
    """With max_inflight requests blocked, later requests and their Tflush are still read."""
    (tmp_path / "slow").write_bytes(b"x")
    fs = CountingFS(str(tmp_path))
    async with trio.open_nursery() as nursery:
        stream = await _serve_pair(nursery, p9.Server(fs, max_inflight=2))
        async with p9.open_client(stream) as c:
            root = await c.attach()
            slow = await root.walk(["slow"])
            await slow.open()
            with trio.fail_after(10):  # a Tflush stuck behind the bound would take 30 s
                with trio.move_on_after(0.2):
                    async with trio.open_nursery() as readers:
                        for _ in range(3):  # two take the slots, one waits for a slot
                            readers.start_soon(slow.read, 0, 1)
                f, st = await root.walk_getattr(["slow"])
                await f.clunk()
                assert st.attr.size == 1
            await slow.clunk()
            await root.clunk()
            await c.drain()
            assert c.live_fids == set()
        nursery.cancel_scope.cancel()


#: What a client sees of a connection the server dropped.
CONNECTION_LOST = (trio.BrokenResourceError, trio.ClosedResourceError, EOFError, OSError)


def inject_statfs_fault(monkeypatch) -> None:
    """Make the server framework itself raise "injected fault" when it dispatches a Tstatfs:
    a bug in serving one connection, which no client can cause on purpose."""
    import p9._server as server_mod

    real = server_mod._Connection.dispatch

    async def faulty(self, tag, msg):
        if isinstance(msg, p9.Tstatfs):
            raise RuntimeError("injected fault")
        await real(self, tag, msg)

    monkeypatch.setattr(server_mod._Connection, "dispatch", faulty)


async def test_an_internal_fault_drops_only_its_connection(tmp_path, monkeypatch, caplog) -> None:
    """A bug in serving one connection ends that connection, logged with its traceback;
    the listener serves the next one."""
    (tmp_path / "f").write_bytes(b"data")
    inject_statfs_fault(monkeypatch)
    async with trio.open_nursery() as nursery:
        listeners = await p9.listen_tcp(0, "127.0.0.1")
        await nursery.start(p9.Server(HostFS(str(tmp_path))).serve_listeners, listeners)
        port = listeners[0].socket.getsockname()[1]
        with pytest.raises(CONNECTION_LOST):
            async with p9.open_client(await p9.connect_tcp("127.0.0.1", port)) as c:
                root = await c.attach(str(tmp_path))
                with trio.fail_after(5):
                    await root.statfs()
        assert "injected fault" in caplog.text
        async with p9.open_client(await p9.connect_tcp("127.0.0.1", port)) as c:
            root = await c.attach(str(tmp_path))
            assert await p9.PathFS(root).read_file("f") == b"data"
        nursery.cancel_scope.cancel()


async def test_listing_with_attributes_falls_back_where_the_model_has_none(dirs) -> None:
    """Treaddirattr is our dialect's; a file model without `readdir_attr` answers
    EOPNOTSUPP, and goferfs then lists with Treaddir and looks names up as before, with
    the same answers."""
    from vfs import Credentials, VirtualFilesystem
    from vfs.abi import O_DIRECTORY, O_RDONLY
    from vfs.fs.goferfs import GoferFS

    export, _ = dirs
    for i in range(5):
        with open(os.path.join(export, f"n{i}"), "wb") as f:
            f.write(b"x" * i)
    creds = Credentials.root()
    async with trio.open_nursery() as nursery:
        stream = await _serve_pair(nursery, p9.Server(HostFS(export)))
        async with p9.open_client(stream, msize=65536) as c:
            assert c.dialect.readdirattr
            root = await c.attach(export)
            d = await root.walk([])
            await d.open(os.O_RDONLY)
            with pytest.raises(OSError) as e:
                await d.readdir_attr(0)
            assert e.value.errno == errno.EOPNOTSUPP
            await d.clunk()
            await root.clunk()
            gfs = await GoferFS.attach(c, export.encode())
            assert gfs.listed_attrs
            v = VirtualFilesystem(gfs)
            ctx = v.new_context()
            fd = await v.open(ctx, creds, None, b"/", O_RDONLY | O_DIRECTORY)
            names = set()
            while got := await fd.getdents64(1 << 16):
                names |= {n for _, _, _, n in p9_entries(got)}
            await fd.dec_ref()
            assert not gfs.listed_attrs  # (learned once: Treaddir from now on)
            assert {b"n0", b"n4"} <= names
            assert (await v.stat(ctx, creds, None, b"/n4", 0x100)).size == 4
            await gfs.release()
            await c.drain()
        nursery.cancel_scope.cancel()


def p9_entries(buf: bytes) -> list[tuple[int, int, int, bytes]]:
    """(ino, off, type, name) of getdents64 records."""
    out, pos = [], 0
    while pos < len(buf):
        ino, off, reclen, typ = struct.unpack_from("<QqHB", buf, pos)
        name = buf[pos + 19:pos + reclen].split(b"\0", 1)[0]
        out.append((ino, off, typ, name))
        pos += reclen
    return out


def test_attr_entries_pack_and_decode() -> None:
    """Rreaddirattr data round-trips; an entry with no room left for its attributes goes
    without them, and one with no room at all is left for the next request."""
    attrs = (0x7FF, 0, 77, 0o100644, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0, 0, 0, 0)
    rows = [(0, 77, 1, 8, b"a"), (0, 78, 2, 8, b"bb"), (0, 79, 3, 8, b"ccc")]
    data, n = p9.pack_attr_rows(rows, 10_000, lambda name: attrs if name != b"bb" else None)
    assert n == 3
    got = p9.decode_attr_entries(data)
    assert got == [(rows[0], attrs), (rows[1], None), (rows[2], attrs)]
    full = len(p9.pack_attr_rows(rows[:1], 10_000, lambda name: attrs)[0])
    bare = len(p9.pack_attr_rows(rows[:1], 10_000, lambda name: None)[0])
    data, n = p9.pack_attr_rows(rows, full + bare + 2, lambda name: attrs)
    assert n == 2 and p9.decode_attr_entries(data) == [(rows[0], attrs), (rows[1], None)]
    with pytest.raises(p9.ProtocolError):
        p9.decode_attr_entries(data[:-3])
