"""Bounds shared by every connection of a real `runpsc gofer serve`, over real sockets: the
fid pool and each connection's reserve, the descriptor ceiling, connection caps, the frame
deadline, and rate-limited logging."""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import pytest
import trio

import p9
from gofer.limits import RateLimit
from tests.gofer.helpers import confine_args, gofer_process


@pytest.fixture
def exp(tmp_path: Path) -> Path:
    d = tmp_path / "exp"
    d.mkdir()
    (d / "hello").write_bytes(b"hello\n")
    return d


@contextmanager
def served(exp: Path, *args: str, prefix: tuple[str, ...] = ()) -> Iterator[Path]:
    """A gofer serving `exp` as "e" on a unix socket, with extra CLI `args`."""
    sock = exp.parent / "g.sock"
    with gofer_process(["--export", f"e={exp}", "--listen", f"unix:{sock}", *confine_args(), *args],
                       prefix=prefix):
        yield sock


@asynccontextmanager
async def client(sock: Path) -> AsyncIterator[p9.Client]:
    stream = await p9.connect_unix(str(sock))
    async with p9.open_client(stream) as c:
        yield c


async def hoard(c: p9.Client) -> list[p9.Fid]:
    """Walk to new fids until the gofer answers EMFILE; the fids held (root first)."""
    root = await c.attach(b"e", uname=b"root", n_uname=0)
    held = [root]
    while True:
        try:
            held.append(await root.walk([b"hello"]))
        except OSError as e:
            assert e.errno == errno.EMFILE, e
            return held


async def read_hello(c: p9.Client) -> bytes:
    root = await c.attach(b"e", uname=b"root", n_uname=0)
    f = await root.walk([b"hello"])
    await f.open(os.O_RDONLY)
    data = await f.read(0, 100)
    await f.clunk()
    await root.clunk()
    return data


async def test_two_hoarding_connections_leave_a_third_client_served(exp: Path) -> None:
    with served(exp, "--max-fids", "300", "--max-total-fids", "400", "--max-connections", "4") as sock:
        async with client(sock) as c1, client(sock) as c2:
            with trio.fail_after(60):
                first = await hoard(c1)
                second = await hoard(c2)
            assert len(first) == 300  # its own bound
            assert len(first) + len(second) <= 400  # the shared one
            async with client(sock) as c3:  # each connection keeps 16 fids of its own
                assert await read_hello(c3) == b"hello\n"
        async with client(sock) as c4:  # hoarded fids came back with their connections
            assert len(await hoard(c4)) == 300


async def test_descriptor_ceiling_keeps_accepting(exp: Path) -> None:
    """With few descriptors, hoarders hit the ceiling (EMFILE) while a new client is still
    accepted and answered (EMFILE, not a hang), and served once they leave."""
    with served(exp, "--max-fids", "100000", "--max-total-fids", "100000", "--max-connections", "4",
                prefix=("prlimit", "--nofile=400:400", "--")) as sock:
        async with client(sock) as c1, client(sock) as c2:
            with trio.fail_after(60):
                first = await hoard(c1)
                await hoard(c2)
            assert 100 < len(first) < 400
            async with client(sock) as c3:
                with trio.fail_after(30):
                    root = await c3.attach(b"e", uname=b"root", n_uname=0)
                    with pytest.raises(OSError) as ei:
                        await root.walk([b"hello"])
                    assert ei.value.errno == errno.EMFILE
        async with client(sock) as c4:
            assert await read_hello(c4) == b"hello\n"


async def test_connection_caps_per_peer_and_total(exp: Path) -> None:
    tcp = socket.create_server(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    os.set_inheritable(tcp.fileno(), True)
    sock = exp.parent / "g.sock"
    args = ["--export", f"e={exp}", "--listen", f"unix:{sock}", "--listen", f"fd:{tcp.fileno()}",
            "--max-connections", "3", "--max-connections-per-peer", "2", *confine_args()]
    with gofer_process(args, pass_fds=(tcp.fileno(),)):
        tcp.close()
        async with client(sock) as a, client(sock) as b:
            assert await read_hello(a) == await read_hello(b) == b"hello\n"
            with trio.fail_after(30), pytest.raises(OSError) as ei:  # a third from this uid
                async with client(sock):
                    pass
            assert ei.value.errno == errno.ECONNREFUSED
            stream = await p9.connect_tcp("127.0.0.1", port)  # another peer: admitted
            async with p9.open_client(stream) as t:
                assert await read_hello(t) == b"hello\n"
                with trio.fail_after(30), pytest.raises(OSError) as ei:  # the total cap
                    stream = await p9.connect_tcp("127.0.0.1", port)
                    async with p9.open_client(stream):
                        pass
                assert ei.value.errno == errno.ECONNREFUSED
        # The caps count connections open now: once the gofer has seen ours close (it learns
        # that after we do, so retry until then), a new one is admitted.
        with trio.fail_after(60):
            while True:
                try:
                    async with client(sock) as again:
                        assert await read_hello(again) == b"hello\n"
                    break
                except ConnectionRefusedError:
                    await trio.sleep(0.05)


def test_slow_frame_is_dropped_at_its_deadline(exp: Path) -> None:
    """One byte at a time of a frame never finished: the idle timer (an hour here) keeps
    being reset, the frame deadline closes the connection anyway."""
    with served(exp, "--frame-timeout", "0.5", "--idle-timeout", "3600") as sock:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(sock))
        s.sendall((8192).to_bytes(4, "little") + b"\x64")  # a Tversion of 8192 bytes: started
        stop = threading.Event()

        def drip() -> None:
            try:
                while not stop.wait(0.05):
                    s.send(b"x")
            except OSError:
                pass  # the gofer closed the connection

        t = threading.Thread(target=drip)
        t.start()
        try:
            s.settimeout(120)  # only a guard: the server's close ends the wait
            try:
                got = s.recv(100)
            except ConnectionResetError:  # closed with a dripped byte unread: also closed
                got = b""
            assert got == b""
        finally:
            stop.set()
            t.join()
            s.close()

        async def after() -> bytes:
            async with client(sock) as c:
                return await read_hello(c)

        assert trio.run(after) == b"hello\n"  # the server still serves


def test_rate_limited_log_filter() -> None:
    now = [0.0]
    f = RateLimit(burst=3, interval=60.0, clock=lambda: now[0])

    def rec(msg: str) -> logging.LogRecord:
        return logging.LogRecord("gofer", logging.WARNING, __file__, 1, msg, (), None)

    passed = [f.filter(rec("accept failed")) for _ in range(10)]
    assert passed == [True] * 3 + [False] * 7
    assert f.filter(rec("another message"))  # counted per message
    now[0] = 61.0
    r = rec("accept failed")
    assert f.filter(r)
    assert "7 like it suppressed" in r.getMessage()


def test_peer_that_stops_reading_is_closed_at_the_idle_timeout(exp: Path) -> None:
    """Requests pipelined by a peer that never reads the replies: the gofer's sends block
    (a reply is never cut short); the idle timeout still ends the connection."""
    (exp / "big").write_bytes(os.urandom(1 << 20))
    with served(exp, "--idle-timeout", "0.5") as sock:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(str(sock))
        frames = [p9.encode_frame(p9.NOTAG, p9.Tversion(1 << 20, b"9P2000.L")),
                  p9.encode_frame(1, p9.Tattach(0, p9.NOFID, b"root", b"e", 0)),
                  p9.encode_frame(2, p9.Twalk(0, 1, (b"big",))),
                  p9.encode_frame(3, p9.Tlopen(1, os.O_RDONLY))]
        frames += [p9.encode_frame(4 + i, p9.Tread(1, 0, 1 << 20)) for i in range(32)]
        s.sendall(b"".join(frames))
        poller = select.poll()
        poller.register(s, select.POLLRDHUP)
        try:
            # Without reading: the gofer's close is what sets POLLRDHUP (guard: 120 s).
            events = poller.poll(120_000)
            assert events and events[0][1] & (select.POLLRDHUP | select.POLLHUP)
        finally:
            s.close()


def _gofer_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_200_connections_with_their_fids_leave_no_descriptor_behind(exp: Path) -> None:
    """200 clients at once (what 200 sandboxes on one gofer hold: a connection each, with
    roots, walked and open fids) are all served, and once they leave the gofer holds the
    descriptors it held before them."""
    sock = exp.parent / "g.sock"
    (exp / "sub").mkdir()
    args = ["--export", f"e={exp}", "--listen", f"unix:{sock}", "--max-connections", "0",
            "--max-connections-per-peer", "0", *confine_args()]
    with gofer_process(args) as proc:
        baseline = _gofer_fds(proc.pid)
        async with AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(client(sock)) for _ in range(200)]

            async def use(i: int, c: p9.Client) -> None:
                root = await c.attach(b"e", uname=b"root", n_uname=0)
                f = await root.walk([b"hello"])
                await f.open(os.O_RDONLY)
                assert await f.read(0, 100) == b"hello\n"
                d = await root.walk([b"sub"])
                new = await d.walk([])
                await new.create(f"f{i}".encode(), os.O_RDWR, 0o644, 0)
                await new.write(0, b"%d" % i)  # left open, as a sandbox's files are

            with trio.fail_after(120):
                async with trio.open_nursery() as n:
                    for i, c in enumerate(clients):
                        n.start_soon(use, i, c)
            # Each connection holds its socket and at least its open file and fids' nodes.
            assert _gofer_fds(proc.pid) >= baseline + 3 * 200
        assert sorted(os.listdir(exp / "sub")) == sorted(f"f{i}" for i in range(200))
        # The gofer learns of each close after we make it: wait until it has (bounded).
        with trio.fail_after(60):
            while _gofer_fds(proc.pid) != baseline:
                await trio.sleep(0.05)
        async with client(sock) as again:
            assert await read_hello(again) == b"hello\n"
