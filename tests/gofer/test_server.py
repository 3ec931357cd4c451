"""The gofer over 9P with our own client: each operation compared with Linux on the same tree,
plus the resource bounds (fid budget, idle timeout, descriptors released on disconnect)."""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path

import pytest
import trio

import p9
from gofer.host import Export
from gofer.ident import restore_ident
from gofer.serve import GoferOptions
from tests.gofer.helpers import connect, gofer_fs, open_fds


def native(fn, *a, **kw):
    """(errno, result) of a native call."""
    try:
        return 0, fn(*a, **kw)
    except OSError as e:
        return e.errno, None


async def ours(coro):
    try:
        return 0, await coro
    except OSError as e:
        return e.errno, None


@pytest.fixture
def exp(tmp_path: Path) -> Path:
    d = tmp_path / "exp"
    d.mkdir()
    (d / "file").write_bytes(b"0123456789" * 1000)
    (d / "dir").mkdir()
    (d / "dir" / "inner").write_bytes(b"inner")
    os.symlink("file", d / "link")
    return d


async def test_walk_getattr_read_like_native(exp: Path) -> None:
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery), connect(fs, nursery) as c:
        root = await c.attach(b"e")
        fs9 = p9.PathFS(root)
        for name in ("file", "dir", "link", "dir/inner"):
            st9 = (await fs9.stat(name)).attr
            st = os.lstat(exp / name)
            assert (st9.mode, st9.uid, st9.gid, st9.nlink, st9.size, st9.mtime_sec, st9.mtime_nsec) == (
                st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size, st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9,
            )
        assert await fs9.read_file("file") == (exp / "file").read_bytes()
        assert sorted(await fs9.listdir("")) == sorted(os.fsencode(n) for n in os.listdir(exp))
        assert await fs9.readlink("link") == os.fsencode(os.readlink(exp / "link"))
        for missing in ("nope", "file/x", "dir/nope"):
            e9, _ = await ours(fs9.stat(missing))
            en, _ = native(os.lstat, exp / missing)
            assert e9 == en
        await root.clunk()


async def test_aname_selection(exp: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery), connect(fs, nursery) as c:
        with pytest.raises(OSError) as ei:
            await c.attach(b"nosuch")
        assert ei.value.errno == errno.ENOENT
        # lenient: the host path (diod's anames), and "" or "/" with a single export (gVisor)
        for aname in (b"e", os.fsencode(exp), os.fsencode(exp) + b"/", b"", b"/"):
            root = await c.attach(aname)
            assert root.qid.path == os.stat(exp).st_ino
            await root.clunk()
    exports = [Export("e", str(exp)), Export("o", str(other))]
    async with gofer_fs(exports) as (fs, nursery), connect(fs, nursery) as c:
        for aname in (b"", b"/"):
            with pytest.raises(OSError):
                await c.attach(aname)  # ambiguous with two exports
        root = await c.attach(os.fsencode(other))
        assert root.qid.path == os.stat(other).st_ino
        await root.clunk()


async def test_mutations_like_native(exp: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery), connect(fs, nursery) as c:
        root = await c.attach(b"e")
        g = p9.PathFS(root)
        await g.write_file("new", b"hello", mode=0o666)
        await g.mkdir("sub", 0o777)
        await g.symlink("/abs/target", "sym")
        await g.link("new", "hard")
        await g.rename("new", "sub/moved")
        await g.mknod("fifo", stat.S_IFIFO | 0o600)
        await g.chmod("sub/moved", 0o604)
        await g.truncate("sub/moved", 2)
        await g.utime("sub/moved", (1_000_000_000_123, 2_000_000_000_456))
        await g.setxattr("hard", "user.k", b"v")
        # the same sequence natively
        mirror.mkdir()
        umask = os.umask(0)  # the client's mode is final (umask is the client's business)
        (mirror / "new").write_bytes(b"hello")
        os.chmod(mirror / "new", 0o666)
        os.mkdir(mirror / "sub", 0o777)
        os.umask(umask)
        os.symlink("/abs/target", mirror / "sym")
        os.link(mirror / "new", mirror / "hard")
        os.rename(mirror / "new", mirror / "sub" / "moved")
        os.mkfifo(mirror / "fifo", 0o600)
        os.chmod(mirror / "sub" / "moved", 0o604)
        os.truncate(mirror / "sub" / "moved", 2)
        os.utime(mirror / "sub" / "moved", ns=(1_000_000_000_123, 2_000_000_000_456))
        os.setxattr(mirror / "hard", "user.k", b"v")
        for rel in ("sub", "sym", "hard", "sub/moved", "fifo"):
            a, b = os.lstat(exp / rel), os.lstat(mirror / rel)
            assert (a.st_mode, a.st_nlink, a.st_size) == (b.st_mode, b.st_nlink, b.st_size), rel
        assert os.stat(exp / "sub/moved").st_mtime_ns == 2_000_000_000_456
        assert os.getxattr(exp / "hard", "user.k") == b"v" == await g.getxattr("hard", "user.k")
        assert (exp / "sub" / "moved").read_bytes() == b"he"
        # errors match
        cases = [
            (g.mkdir("sub"), lambda: os.mkdir(mirror / "sub")),
            (g.rmdir("sub"), lambda: os.rmdir(mirror / "sub")),
            (g.unlink("sub"), lambda: os.unlink(mirror / "sub")),
            (g.rmdir("hard"), lambda: os.rmdir(mirror / "hard")),
            (g.readlink("hard"), lambda: os.readlink(mirror / "hard")),
            (g.getxattr("hard", "user.none"), lambda: os.getxattr(mirror / "hard", "user.none")),
        ]
        for coro, nat in cases:
            e9, _ = await ours(coro)
            en, _ = native(nat)
            assert e9 == en and e9 != 0
        await g.unlink("sub/moved")
        await g.rmdir("sub")
        assert not (exp / "sub").exists()
        await root.clunk()


async def test_open_flags_and_io(exp: Path) -> None:
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery), connect(fs, nursery) as c:
        root = await c.attach(b"e")
        f = await root.walk([b"file"])
        await f.open(os.O_WRONLY | os.O_APPEND)
        await f.write(0, b"TAIL")
        await f.clunk()
        assert (exp / "file").read_bytes().endswith(b"9TAIL")
        d = await root.walk([])
        await d.create(b"excl", os.O_RDWR | os.O_EXCL, 0o600, 0)
        await d.write(0, b"x" * 300_000)
        assert await d.read(299_990, 100) == b"x" * 10
        await d.clunk()
        d = await root.walk([])
        e9, _ = await ours(d.create(b"excl", os.O_RDWR | os.O_EXCL, 0o600, 0))
        en, _ = native(os.open, exp / "excl", os.O_RDWR | os.O_CREAT | os.O_EXCL)
        assert e9 == en == errno.EEXIST
        await d.clunk()
        f = await root.walk([b"file"])
        await f.open(os.O_RDWR | os.O_TRUNC)
        await f.clunk()
        assert (exp / "file").stat().st_size == 0
        f = await root.walk([b"dir"])
        e9, _ = await ours(f.open(os.O_WRONLY))
        assert e9 == errno.EISDIR
        await f.clunk()
        await root.clunk()


async def test_locks_statfs_fsync_allocate(exp: Path) -> None:
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery), connect(fs, nursery) as c:
        root = await c.attach(b"e")
        a = await root.walk([b"file"])
        b = await root.walk([b"file"])
        await a.open(os.O_RDWR)
        await b.open(os.O_RDWR)
        assert await a.lock(p9.LockType.WRLCK, 0, 100) == p9.LockStatus.SUCCESS
        assert await b.lock(p9.LockType.WRLCK, 50, 10) == p9.LockStatus.BLOCKED
        got = await b.getlock(p9.LockType.WRLCK, 50, 10)
        assert got.lock_type == p9.LockType.WRLCK
        assert await a.lock(p9.LockType.UNLCK, 0, 100) == p9.LockStatus.SUCCESS
        assert await b.lock(p9.LockType.WRLCK, 50, 10) == p9.LockStatus.SUCCESS
        await a.fsync()
        await a.allocate(0, 0, 1 << 20)
        assert os.stat(exp / "file").st_size == 1 << 20
        sf = await root.statfs()
        sv = os.statvfs(exp)
        assert (sf.bsize, sf.blocks, sf.files, sf.namelen) == (sv.f_bsize, sv.f_blocks, sv.f_files, sv.f_namemax)
        for f in (a, b, root):
            await f.clunk()


async def test_readdir_large_directory_offsets(exp: Path) -> None:
    big = exp / "big"
    big.mkdir()
    n = 5000
    for i in range(n):
        os.close(os.open(big / f"entry-{i:05d}", os.O_CREAT | os.O_WRONLY, 0o644))
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery), connect(fs, nursery, msize=8192) as c:
        root = await c.attach(b"e")
        d = await root.walk([b"big"])
        await d.open(os.O_RDONLY)
        names = []
        off = 0
        while True:
            chunk = await d.readdir(off)
            if not chunk:
                break
            names.extend(e.name for e in chunk)
            off = chunk[-1].offset
        assert len(names) == n + 2
        assert sorted(names[2:]) == sorted(os.fsencode(x) for x in os.listdir(big))
        await d.clunk()
        await root.clunk()


async def test_open_dir_attr_is_walk_open_and_listing(exp: Path) -> None:
    """Topendirattr (our dialect): one request answers what Twalk + Tlopen + Treaddirattr
    from 0 answer, and the new fid lists on from the cookie it ended at; a failed step
    (a name missing, a non-directory: Linux's errnos for open(O_DIRECTORY)) leaves no fid
    and no descriptor behind."""
    big = exp / "dir" / "big"
    big.mkdir()
    for i in range(300):
        (big / f"e{i:03d}").write_bytes(b"x" * i)
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery), \
            connect(fs, nursery, msize=8192) as c:
        assert c.dialect.opendirattr
        root = await c.attach(b"e")
        fids, fds = set(c.live_fids), open_fds()
        for names, path in (([b"missing"], "missing"), ([b"file"], "file"),
                            ([b"dir", b"missing"], "dir/missing")):
            e9, _ = await ours(root.open_dir_attr(names))
            en, _ = native(os.open, exp / path, os.O_RDONLY | os.O_DIRECTORY)
            assert e9 == en != 0, (path, e9, en)
        assert set(c.live_fids) == fids and open_fds() == fds
        d, got, eof = await root.open_dir_attr([b"dir", b"big"])
        assert not eof and got  # (8 KiB replies: the listing goes on)
        ref = await root.walk([b"dir", b"big"])
        await ref.open(os.O_RDONLY)
        want, _ = await ref.readdir_attr(0, 8192 - 29)
        assert got == want
        rows = list(got)
        while not eof:
            more, eof = await d.readdir_attr(rows[-1][0][2])
            rows.extend(more)
        names = [r[0][4] for r in rows]
        assert sorted(names[2:]) == sorted(os.fsencode(x) for x in os.listdir(big))
        with_attrs = [(name, a) for (_, _, _, _, name), a in rows[2:] if a is not None]
        assert len(with_attrs) > 250  # (an entry at a reply's end may come without)
        for name, a in with_attrs:
            st = os.lstat(big / os.fsdecode(name))
            assert a[3] == st.st_mode and a[8] == st.st_size, name
        await d.clunk()
        await ref.clunk()
        await root.clunk()


async def test_read_only_export_over_9p(exp: Path) -> None:
    before = sorted(os.listdir(exp)), (exp / "file").read_bytes()
    async with gofer_fs([Export("e", str(exp), readonly=True)]) as (fs, nursery), connect(fs, nursery) as c:
        root = await c.attach(b"e")
        g = p9.PathFS(root)
        for coro in (
            g.write_file("new", b"x"), g.mkdir("d2"), g.unlink("file"), g.rename("file", "f2"),
            g.chmod("file", 0o777), g.truncate("file", 0), g.setxattr("file", "user.a", b"1"),
            g.symlink("t", "s2"), g.link("file", "h2"), g.utime("file", None),
        ):
            e9, _ = await ours(coro)
            assert e9 == errno.EROFS
        assert await g.read_file("file") == before[1]
        await root.clunk()
    assert (sorted(os.listdir(exp)), (exp / "file").read_bytes()) == before


async def test_descriptors_released_on_disconnect(exp: Path) -> None:
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery):
        await trio.sleep(0)
        baseline = open_fds()
        async with connect(fs, nursery) as c:
            root = await c.attach(b"e")
            held = []
            for _ in range(50):
                f = await root.walk([b"dir", b"inner"])
                await f.open(os.O_RDONLY)
                held.append(f)
            d = await root.walk([b"dir"])
            await d.open(os.O_RDONLY)
            await d.readdir(0)
            assert open_fds() >= baseline + 100
            # the client goes away without clunking anything
        await trio.sleep(0.05)
        assert open_fds() == baseline


async def test_fid_budget_per_connection(exp: Path) -> None:
    opts = GoferOptions(max_fids=10)
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery), connect(fs, nursery, options=opts) as c:
        root = await c.attach(b"e")
        held = [await root.walk([b"file"]) for _ in range(9)]
        with pytest.raises(OSError) as ei:
            await root.walk([b"file"])
        assert ei.value.errno == errno.EMFILE
        await held.pop().clunk()
        held.append(await root.walk([b"file"]))  # freed budget is reusable
        for f in held:
            await f.clunk()
        await root.clunk()


async def test_idle_connection_closed(exp: Path, autojump_clock) -> None:
    """A connection idle for the timeout is closed, its open file with it (no descriptor
    left); one used within it stays (in the clock the test drives: trio's autojump
    clock, so no real waiting)."""
    opts = GoferOptions(idle_timeout=5.0)
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery):
        baseline = open_fds()
        async with connect(fs, nursery, options=opts) as c:
            root = await c.attach(b"e")
            f = await root.walk([b"file"])
            await f.open(os.O_RDONLY)
            await trio.sleep(4)
            assert await f.read(0, 10) == (exp / "file").read_bytes()[:10]
            await trio.sleep(6)
            with pytest.raises(OSError) as info:
                await f.read(0, 10)
            assert info.value.errno == errno.EIO
        assert open_fds() <= baseline


async def test_idle_timeout_spares_a_request_in_progress(exp: Path, autojump_clock) -> None:
    """A client waiting for a long request (a read of a FIFO with no writer yet) is not
    idle: its connection outlives many idle timeouts while the gofer waits; from the
    answer on, idle time counts again and the connection is closed after the timeout
    (in the clock the test drives: trio's autojump clock)."""
    os.mkfifo(exp / "fifo")
    opts = GoferOptions(idle_timeout=5.0)
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery):
        async with connect(fs, nursery, options=opts) as c:
            root = await c.attach(b"e")
            f = await root.walk([b"fifo"])
            await f.open(os.O_RDONLY)
            got: list[bytes] = []
            async with trio.open_nursery() as n:
                async def read() -> None:
                    got.append(await f.read(0, 5))

                n.start_soon(read)
                await trio.sleep(60)  # (12 idle timeouts, the read still waiting)
                assert got == []
                fd = os.open(exp / "fifo", os.O_WRONLY | os.O_NONBLOCK)
                os.write(fd, b"hello")
                os.close(fd)
            assert got == [b"hello"]
            await trio.sleep(4)
            assert (await root.getattr()).is_dir  # (within the timeout since the answer)
            await trio.sleep(6)
            with pytest.raises(OSError):
                await root.getattr()


async def test_squash_and_identity(exp: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("identity switching needs root")
    os.chmod(exp, 0o777)
    async with gofer_fs([Export("e", str(exp))], allsquash=True) as (fs, nursery), connect(fs, nursery) as c:
        root = await c.attach(b"e", uname=b"root", n_uname=0)
        await p9.PathFS(root).write_file("squashed", b"x")
        restore_ident()  # the server ran on this thread; check natively as ourselves
        assert os.stat(exp / "squashed").st_uid == 65534
        await root.clunk()
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery), connect(fs, nursery) as c:
        root = await c.attach(b"e", uname=b"nobody", n_uname=65534)
        g = p9.PathFS(root)
        await g.write_file("mine", b"x")
        restore_ident()
        assert os.stat(exp / "mine").st_uid == 65534
        os.chmod(exp / "file", 0o600)
        e9, _ = await ours(g.read_file("file"))
        assert e9 == errno.EACCES
        await root.clunk()
        root = await c.attach(b"e", uname=b"root", n_uname=0)
        assert len(await p9.PathFS(root).read_file("file")) == 10000
        await root.clunk()


async def test_fifo_waits_and_flush_leaves_nothing(exp: Path) -> None:
    os.mkfifo(exp / "fifo")
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery):
        baseline = open_fds()
        async with connect(fs, nursery) as c:
            root = await c.attach(b"e")
            f = await root.walk([b"fifo"])
            await f.open(os.O_RDONLY)
            with trio.move_on_after(0.3) as cs:
                await f.read(0, 10)  # nobody writes: waits, then the client flushes it
            assert cs.cancelled_caught
            w = await root.walk([b"fifo"])
            await w.open(os.O_WRONLY)  # a reader exists now, so this does not wait
            assert await w.write(0, b"ping") == 4
            assert await f.read(0, 10) == b"ping"
            await w.clunk()
            assert await f.read(0, 10) == b""  # the writer hung up
            await f.clunk()
            w2 = await root.walk([b"fifo"])
            with trio.move_on_after(0.2) as cs:
                await w2.open(os.O_WRONLY)  # no reader: waits like open(2)
            assert cs.cancelled_caught
            await w2.clunk()
            await root.clunk()
        await trio.sleep(0.05)
        assert open_fds() == baseline


def test_listen_specs_and_unix_socket_is_owner_only(tmp_path: Path) -> None:
    from gofer.serve import bind, parse_export, parse_listen

    old = os.umask(0)
    try:
        s = bind(parse_listen(f"unix:{tmp_path / 'g.sock'}"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "g.sock").st_mode) == 0o600
    s.close()
    t6 = bind(parse_listen("tcp:[::1]:0"))
    assert t6.family == socket.AF_INET6
    t6.close()
    assert parse_listen("tcp:127.0.0.1:564").port == 564
    for bad in ("udp:x", "tcp:host", "unix:", "fd:x", "tcp:h:p"):
        with pytest.raises(ValueError):
            parse_listen(bad)
    e = parse_export(f"n={tmp_path}:ro,submounts")
    assert (e.name, e.readonly, e.submounts, e.allow_devices) == ("n", True, True, False)
    for bad in ("noequals", f"n={tmp_path}:bogus", f"n={tmp_path / 'missing'}", f"a/b={tmp_path}"):
        with pytest.raises(ValueError):
            parse_export(bad)


def test_cli_rejects_bad_arguments_clearly(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from runtime.cli import cli

    runner = CliRunner()
    cases = [
        (["--export", "nodir", "--listen", "unix:/tmp/x"], "NAME=DIR"),
        (["--export", f"e={tmp_path / 'missing'}", "--listen", "unix:/tmp/x"], "not a directory"),
        (["--export", f"e={tmp_path}", "--listen", "bogus"], "unix:PATH"),
        (["--export", f"e={tmp_path}", "--export", f"e={tmp_path}", "--listen", "unix:/tmp/x"],
         "duplicate"),
        (["--export", f"e={tmp_path}", "--listen", "unix:/tmp/x", "--squashuser", "no-such-user-x"],
         "squash user"),
    ]
    for args, words in cases:
        r = runner.invoke(cli, ["gofer", "serve", *args])
        assert r.exit_code == 2, r.output
        assert words in r.output


async def test_misbehaving_peer_does_not_hurt_the_server(exp: Path) -> None:
    """Garbage, truncated frames and an abrupt close on one connection: the gofer answers or
    drops that connection only, serves the next one, and keeps no descriptor of it."""
    import struct

    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery):
        await trio.sleep(0)
        baseline = open_fds()
        for junk in (
            b"\x00" * 64,  # frame size 0: broken framing
            struct.pack("<IBH", 11, 200, 1) + b"\x00" * 4,  # unknown message type
            struct.pack("<IBH", 2**31, 100, 0xFFFF),  # absurd size
            struct.pack("<IBH", 19, 100, 0xFFFF) + struct.pack("<I", 8192) + b"\x08\x009P2000",
        ):
            a, b = p9.socketpair()
            done = trio.Event()

            async def serve_one(b=b, done=done) -> None:
                from gofer.serve import GoferOptions, serve_stream

                try:
                    await serve_stream(b, fs, GoferOptions())
                finally:
                    done.set()

            nursery.start_soon(serve_one)
            await a.send_all(junk)
            with trio.move_on_after(0.2):
                await a.receive_some(4096)
            await a.aclose()
            with trio.fail_after(5):
                await done.wait()
        async with connect(fs, nursery) as c:
            root = await c.attach(b"e")
            assert (await p9.PathFS(root).read_file("dir/inner")) == b"inner"
            await root.clunk()
        await trio.sleep(0.05)
        assert open_fds() == baseline


async def test_an_internal_fault_drops_only_its_connection(exp: Path, monkeypatch, caplog) -> None:
    """A bug in serving one connection (tests/p9's injected fault) ends that connection,
    logged with its traceback; the gofer serves the next one."""
    from tests.p9.test_ours import CONNECTION_LOST, inject_statfs_fault

    inject_statfs_fault(monkeypatch)
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery):
        with pytest.raises(CONNECTION_LOST):
            async with connect(fs, nursery) as c:
                root = await c.attach(b"e")
                with trio.fail_after(5):
                    await root.statfs()
        assert "injected fault" in caplog.text
        async with connect(fs, nursery) as c:
            root = await c.attach(b"e")
            assert (await p9.PathFS(root).read_file("dir/inner")) == b"inner"
