"""After a reconnection, what the gofer's state says of a request whose answer was lost
(p9/_recover.py `_fate`), and locks taken again (`_relock`): our client against the real
gofer through a link cut right after the gofer carried the request out (its reply lost)
or right before it reached the gofer. The tree left behind matches the same operations
done natively once."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

import p9
from gofer.host import Export
from gofer.serve import GoferOptions, serve_stream
from gofer.server import GoferFilesystem
from tests.gofer.helpers import connect, gofer_fs
from tests.p9.relay import Link

Op = Callable[[p9.Fid], Awaitable[object]]


def tree(top: Path) -> dict[str, tuple]:
    """What the operations may change: names, types, permissions, link counts, contents."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            data = Path(p).read_bytes() if stat.S_ISREG(st.st_mode) else b""
            link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else ""
            out[os.path.relpath(p, top)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                            st.st_nlink, data, link)
    return out


async def _create(d: p9.Fid, name: str, flags: int) -> bytes:
    """Create through a clone of `d`, write and read back through the created fid."""
    f = await d.walk()
    try:
        await f.create(name, flags, 0o640)
        await f.write(0, b"made")
        return await f.read(0, 10)
    finally:
        await f.clunk()


def _native_create(d: Path, name: str, flags: int) -> bytes:
    fd = os.open(d / name, flags, 0o640)
    try:
        os.pwrite(fd, b"made", 0)
        return os.pread(fd, 10, 0)
    finally:
        os.close(fd)


async def _follow(d: p9.Fid, name: str, move: Callable[[p9.Fid], Awaitable[None]]) -> bytes:
    """Hold a fid on `name`, `move` it, then read through the held fid (re-established by
    its new path)."""
    g = await d.walk([name])
    try:
        await g.open(os.O_RDONLY)
        await move(g)
        return await g.read(0, 10)
    finally:
        await g.clunk()


async def _link(d: p9.Fid, name: str, new: str) -> None:
    async with await d.walk([name]) as g:
        await d.link(g, new)


async def _remove(d: p9.Fid, name: str) -> None:
    g = await d.walk([name])
    await g.remove()


def _native_rename_follow(d: Path, old: str, new: str) -> bytes:
    fd = os.open(d / old, os.O_RDONLY)
    try:
        os.rename(d / old, d / new)
        return os.pread(fd, 10, 0)
    finally:
        os.close(fd)


#: (name, the request cut, files made first, the operation through 9P, the same natively)
CASES: list[tuple[str, type[p9.Message], dict[str, bytes | None], Op,
                  Callable[[Path], object]]] = [
    ("mkdir", p9.Tmkdir, {}, lambda d: d.mkdir("new", 0o750),
     lambda d: os.mkdir(d / "new", 0o750)),
    ("symlink", p9.Tsymlink, {}, lambda d: d.symlink("sl", "some/target"),
     lambda d: os.symlink("some/target", d / "sl")),
    ("mknod", p9.Tmknod, {}, lambda d: d.mknod("fifo", stat.S_IFIFO | 0o640),
     lambda d: os.mkfifo(d / "fifo", 0o640)),
    ("create-excl", p9.Tlcreate, {},
     lambda d: _create(d, "c", os.O_RDWR | os.O_CREAT | os.O_EXCL),
     lambda d: _native_create(d, "c", os.O_RDWR | os.O_CREAT | os.O_EXCL)),
    ("create-trunc", p9.Tlcreate, {"t": b"old content"},
     lambda d: _create(d, "t", os.O_RDWR | os.O_CREAT | os.O_TRUNC),
     lambda d: _native_create(d, "t", os.O_RDWR | os.O_CREAT | os.O_TRUNC)),
    ("unlink", p9.Tunlinkat, {"u": b"u"}, lambda d: d.unlinkat("u"),
     lambda d: os.unlink(d / "u")),
    ("rmdir", p9.Tunlinkat, {"rd": None}, lambda d: d.unlinkat("rd", p9.AT_REMOVEDIR),
     lambda d: os.rmdir(d / "rd")),
    ("renameat", p9.Trenameat, {"a": b"a data", "b": b"replaced"},
     lambda d: _follow(d, "a", lambda g: d.renameat("a", d, "b")),
     lambda d: _native_rename_follow(d, "a", "b")),
    ("rename", p9.Trename, {"r": b"r data"}, lambda d: _follow(d, "r", lambda g: g.rename(d, "r2")),
     lambda d: _native_rename_follow(d, "r", "r2")),
    ("link", p9.Tlink, {"l": b"l"}, lambda d: _link(d, "l", "l2"),
     lambda d: os.link(d / "l", d / "l2")),
    ("remove", p9.Tremove, {"x": b"x"}, lambda d: _remove(d, "x"),
     lambda d: os.unlink(d / "x")),
]


def _make(d: Path, files: dict[str, bytes | None]) -> None:
    d.mkdir()
    for name, data in files.items():
        if data is None:
            (d / name).mkdir()
        else:
            (d / name).write_bytes(data)


def _session(nursery: trio.Nursery, fs: GoferFilesystem) -> Link:
    return Link(nursery, lambda s: serve_stream(s, fs, GoferOptions(idle_timeout=None)))


async def test_lost_answers_settled_by_the_gofers_state(tmp_path: Path) -> None:
    """Each request that changes names, its reply lost after the gofer did it (answered
    as done: the created file's fid open on it, a renamed file's fids moved) or its
    connection cut before the gofer saw it (sent again): the program gets what a native
    run gets, and the tree is what doing it once makes. A request the state cannot
    settle (a mkdir where a file now is) is EIO, natively EEXIST."""
    exp, ref = tmp_path / "exp", tmp_path / "ref"
    exp.mkdir()
    ref.mkdir()
    for name, _t, files, _op, _native in CASES:
        for outcome in ("done", "not-done"):
            _make(exp / f"{name}-{outcome}", files)
            _make(ref / f"{name}-{outcome}", files)
    (exp / "clash").mkdir()
    (exp / "clash" / "e").write_bytes(b"a file")
    async with gofer_fs([Export("e", str(exp))]) as (fs, nursery):
        link = _session(nursery, fs)
        async with p9.open_client(await link.dial(), redial=link.dial, reconnect=10.0) as c:
            root = await c.attach(b"e")
            for name, msg_type, _files, op, native in CASES:
                for outcome in ("done", "not-done"):
                    async with await root.walk([f"{name}-{outcome}"]) as d:
                        (link.cut_after if outcome == "done" else link.cut_before)(msg_type)
                        got = await op(d)
                    want = native(ref / f"{name}-{outcome}")
                    if isinstance(got, bytes):  # (what was read back through the fid)
                        assert (name, got) == (name, want)
            assert c.reconnects == 2 * len(CASES)
            async with await root.walk(["clash"]) as d:
                link.cut_before(p9.Tmkdir)
                with pytest.raises(OSError) as info:
                    await d.mkdir("e")
                assert info.value.errno == errno.EIO
            with pytest.raises(FileExistsError):
                os.mkdir(exp / "clash" / "e")
            await root.clunk()
            await c.drain()
            assert c.live_fids == set()
        nursery.cancel_scope.cancel()
    (exp / "clash" / "e").unlink()
    (exp / "clash").rmdir()
    assert tree(exp) == tree(ref)


async def test_locks_taken_again_or_lost_with_eio(tmp_path: Path) -> None:
    """Byte-range locks held through a fid are taken again on the new connection (another
    client still finds them held); when another client took one while the link was down,
    the fid's in-flight and later operations fail with EIO (as Linux NFS after a failed
    reclaim), its clunk works, other fids carry on."""
    (tmp_path / "lk").write_bytes(b"0123456789" * 4)
    (tmp_path / "other").write_bytes(b"other")
    W, R, U = p9.LockType.WRLCK, p9.LockType.RDLCK, p9.LockType.UNLCK
    async with gofer_fs([Export("e", str(tmp_path))]) as (fs, nursery), \
            connect(fs, nursery) as rival_c:
        rival = await (await rival_c.attach(b"e")).walk(["lk"])
        await rival.open(os.O_RDWR)
        link = _session(nursery, fs)
        async with p9.open_client(await link.dial(), redial=link.dial, reconnect=30.0) as c:
            root = await c.attach(b"e")
            f = await root.walk(["lk"])
            await f.open(os.O_RDWR)
            assert await f.lock(W, 0, 20) == p9.LockStatus.SUCCESS
            assert await f.lock(U, 5, 5) == p9.LockStatus.SUCCESS  # (a hole in it)
            assert await f.lock(R, 30, 0) == p9.LockStatus.SUCCESS
            link.cut_after(p9.Tgetattr)
            await f.getattr()
            assert c.reconnects == 1
            for ltype, start, length, held in ((W, 0, 5, True), (W, 5, 5, False),
                                               (W, 10, 10, True), (R, 30, 5, False),
                                               (W, 30, 5, True)):
                got = await rival.getlock(ltype, start, length)
                assert (start, got.lock_type != U) == (start, held)
            other = await root.walk(["other"])
            await other.open(os.O_RDONLY)
            link.down = True
            link.cut_after(p9.Tread)
            async with trio.open_nursery() as n:
                failed: list[int] = []

                async def read() -> None:
                    try:
                        await f.read(0, 1)
                    except OSError as e:
                        failed.append(e.errno)

                n.start_soon(read)
                await link.retrying.wait()
                await link.quiet.wait()  # (the gofer dropped the old session's locks)
                assert await rival.lock(W, 12, 2) == p9.LockStatus.SUCCESS
                link.down = False
            assert failed == [errno.EIO]
            with pytest.raises(OSError) as info:
                await f.write(0, b"x")
            assert info.value.errno == errno.EIO
            await f.clunk()
            assert await other.read(0, 5) == b"other"
            await other.clunk()
            await root.clunk()
            await c.drain()
            assert c.live_fids == set()
        await rival.clunk()
        nursery.cancel_scope.cancel()
