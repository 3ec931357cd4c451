"""pipefs against host pipes: capacity, F_SETPIPE_SZ, PIPE_BUF atomicity, EOF, EPIPE, fifos."""

from __future__ import annotations

import errno
import fcntl
import os

import pytest
import trio
import trio.testing

from vfs import Credentials, Tmpfs, VirtualFilesystem
from vfs.abi import O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, POLLHUP, POLLIN, POLLOUT, S_IFIFO
from vfs.fs import pipefs

F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032


@pytest.fixture
def env():
    v = VirtualFilesystem(Tmpfs())
    pipefs.install(v)
    return v, v.new_context(), Credentials.root()


def host_fill(w: int, chunk: int) -> int:
    total = 0
    while True:
        try:
            total += os.write(w, b"x" * chunk)
        except BlockingIOError:
            return total


async def our_fill(w, chunk: int) -> int:
    total = 0
    while True:
        try:
            total += await w.write(b"x" * chunk)
        except OSError as e:
            assert e.errno == errno.EAGAIN
            return total


@pytest.mark.parametrize("chunk", [1000, 4096, 5000, 70000])
async def test_capacity_matches_host(env, chunk: int) -> None:
    v, ctx, c = env
    r, w = os.pipe2(os.O_NONBLOCK)
    try:
        host = host_fill(w, chunk)
    finally:
        os.close(r)
        os.close(w)
    pr, pw = pipefs.new_pipe(v, c, O_NONBLOCK)
    assert await our_fill(pw, chunk) == host


@pytest.mark.parametrize("size", [1, 4096, 5000, 65536, 100000, 1048576])
async def test_setpipe_sz_matches_host(env, size: int) -> None:
    v, ctx, c = env
    r, w = os.pipe()
    try:
        host = fcntl.fcntl(w, F_SETPIPE_SZ, size)
        host_get = fcntl.fcntl(w, F_GETPIPE_SZ)
    finally:
        os.close(r)
        os.close(w)
    pr, pw = pipefs.new_pipe(v, c)
    assert pw.pipe_size(c, size) == host
    assert pr.pipe_size() == host_get


async def test_setpipe_sz_ebusy_and_eperm(env) -> None:
    v, ctx, c = env
    pr, pw = pipefs.new_pipe(v, c)
    await pw.write(b"y" * 10000)
    with pytest.raises(OSError) as e:
        pw.pipe_size(c, 4096)
    assert e.value.errno == errno.EBUSY
    with pytest.raises(OSError) as e:
        pw.pipe_size(Credentials.user(1000, 1000), 2 << 20)
    assert e.value.errno == errno.EPERM


async def test_small_writes_are_atomic(env) -> None:
    v, ctx, c = env
    pr, pw = pipefs.new_pipe(v, c, O_NONBLOCK)
    r, w = os.pipe2(os.O_NONBLOCK)
    try:
        host = [os.write(w, b"a" * (65536 - 100))]
        try:
            os.write(w, b"b" * 4096)
        except BlockingIOError:
            host.append("EAGAIN")
        host.append(os.write(w, b"c" * 50))  # merges into the last page
        for _ in range(2):
            try:
                host.append(os.write(w, b"c" * 100))
            except BlockingIOError:
                host.append("EAGAIN")
    finally:
        os.close(r)
        os.close(w)
    ours = [await pw.write(b"a" * (65536 - 100))]
    for size in (4096, 50, 100, 100):
        try:
            ours.append(await pw.write(b"b" * size))
        except OSError as e:
            assert e.errno == errno.EAGAIN
            ours.append("EAGAIN")
    assert ours == host
    assert not pw.readiness(POLLOUT)


async def test_blocking_read_eof_and_epipe(env) -> None:
    v, ctx, c = env
    signals = []
    v.sigpipe = lambda: signals.append("SIGPIPE")
    pr, pw = pipefs.new_pipe(v, c)
    got = []

    async def reader() -> None:
        got.append(await pr.read(100))
        got.append(await pr.read(100))

    async with trio.open_nursery() as n:
        n.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        await pw.write(b"hi")
        await trio.testing.wait_all_tasks_blocked()
        assert got == [b"hi"]
        await pw.dec_ref()  # last writer gone: EOF
    assert got == [b"hi", b""]
    assert pr.readiness(POLLIN) & POLLHUP
    pr2, pw2 = pipefs.new_pipe(v, c)
    await pr2.dec_ref()
    with pytest.raises(OSError) as e:
        await pw2.write(b"x")
    assert e.value.errno == errno.EPIPE and signals == ["SIGPIPE"]


async def test_blocking_writer_waits_for_reader(env) -> None:
    v, ctx, c = env
    pr, pw = pipefs.new_pipe(v, c)
    data = os.urandom(200_000)
    out = bytearray()
    async with trio.open_nursery() as n:
        async def writer() -> None:
            assert await pw.write(data) == len(data)
            await pw.dec_ref()

        n.start_soon(writer)
        while chunk := await pr.read(30000):
            out += chunk
    assert bytes(out) == data


async def test_fifo_open_rules_match_host(env, tmp_path) -> None:
    v, ctx, c = env
    host = str(tmp_path / "fifo")
    os.mkfifo(host)
    with pytest.raises(OSError) as e:
        os.open(host, os.O_WRONLY | os.O_NONBLOCK)
    host_errno = e.value.errno
    await v.mknodat(ctx, c, None, b"/fifo", S_IFIFO | 0o644)
    with pytest.raises(OSError) as e:
        await v.open(ctx, c, None, b"/fifo", O_WRONLY | O_NONBLOCK)
    assert e.value.errno == host_errno == errno.ENXIO
    hr = os.open(host, os.O_RDONLY | os.O_NONBLOCK)
    assert os.read(hr, 10) == b""  # no writer: end of file, not EAGAIN
    os.close(hr)
    r = await v.open(ctx, c, None, b"/fifo", O_RDONLY | O_NONBLOCK)
    assert await r.read(10) == b""
    assert not r.readiness(POLLIN)  # no POLLHUP before a writer came
    w = await v.open(ctx, c, None, b"/fifo", O_WRONLY | O_NONBLOCK)
    await w.write(b"through the fifo")
    assert await r.read(100) == b"through the fifo"
    assert (await w.stat()).mode == S_IFIFO | 0o644
    await w.dec_ref()
    assert r.readiness(POLLIN) & POLLHUP
    assert await r.read(10) == b""
    await r.dec_ref()


async def test_fifo_blocking_open_waits_for_partner(env) -> None:
    v, ctx, c = env
    await v.mknodat(ctx, c, None, b"/f", S_IFIFO | 0o600)
    opened = []

    async def open_reader() -> None:
        fd = await v.open(ctx, c, None, b"/f", O_RDONLY)
        opened.append(fd)

    async with trio.open_nursery() as n:
        n.start_soon(open_reader)
        await trio.testing.wait_all_tasks_blocked()
        assert opened == []
        w = await v.open(ctx, c, None, b"/f", O_WRONLY)
    assert len(opened) == 1
    rw = await v.open(ctx, c, None, b"/f", O_RDWR)  # never waits
    await w.write(b"abc")
    assert await opened[0].read(10) == b"abc"
    for fd in (w, rw, opened[0]):
        await fd.dec_ref()
