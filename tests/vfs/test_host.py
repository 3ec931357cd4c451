"""Host-fd files: pipes and a real pty, read/written without blocking the trio loop."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import termios

import pytest
import trio
import trio.testing

from vfs.abi import O_NONBLOCK, POLLIN, POLLOUT
from vfs.fs.host import FIONREAD, TCGETS, TIOCGWINSZ, TIOCSWINSZ, HostFD


class ArrayMemory:
    """Application memory stand-in: a bytearray addressed from 0."""

    def __init__(self, size: int = 4096) -> None:
        self.buf = bytearray(size)

    def mem_read(self, addr: int, n: int) -> bytes:
        return bytes(self.buf[addr : addr + n])

    def mem_write(self, addr: int, data: bytes) -> None:
        self.buf[addr : addr + len(data)] = data


async def test_pipe_read_waits_in_trio() -> None:
    r, w = os.pipe()
    try:
        fd = HostFD(r)
        assert not fcntl.fcntl(r, fcntl.F_GETFL) & os.O_NONBLOCK
        got: list[bytes] = []

        async def reader() -> None:
            got.append(await fd.read(100))

        async with trio.open_nursery() as n:
            n.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []  # the reader waits, the loop runs
            os.write(w, b"hello")
        assert got == [b"hello"]
        # the caller's description was never made non-blocking
        assert not fcntl.fcntl(r, fcntl.F_GETFL) & os.O_NONBLOCK
        fd.set_status_flags(O_NONBLOCK)
        with pytest.raises(OSError) as e:
            await fd.read(10)
        assert e.value.errno == errno.EAGAIN
        assert fd.readiness(POLLIN) == 0
        os.write(w, b"x")
        assert await fd.wait_ready(POLLIN) & POLLIN
        await fd.dec_ref()
        os.fstat(r)  # ours was a dup: the original is still open
    finally:
        os.close(r)
        os.close(w)


async def test_pipe_write_larger_than_capacity() -> None:
    r, w = os.pipe()
    try:
        out = HostFD(w)
        data = os.urandom(300_000)
        received = bytearray()

        async def drain() -> None:
            while len(received) < len(data):
                await trio.lowlevel.wait_readable(r)
                received.extend(os.read(r, 65536))

        async with trio.open_nursery() as n:
            n.start_soon(drain)
            assert await out.write(data) == len(data)
        assert bytes(received) == data
        assert out.readiness(POLLOUT) & POLLOUT
        await out.dec_ref()
    finally:
        os.close(r)
        os.close(w)


async def test_pipe_epipe() -> None:
    r, w = os.pipe()
    os.close(r)
    try:
        out = HostFD(w)
        with pytest.raises(OSError) as e:
            await out.write(b"x")
        assert e.value.errno == errno.EPIPE
        await out.dec_ref()
    finally:
        os.close(w)


async def test_pty_ioctls_pass_through_safe_list() -> None:
    master, slave = os.openpty()
    try:
        tty = HostFD(slave)
        mem = ArrayMemory()
        assert await tty.ioctl(TCGETS, 0, mem) == 0
        iflag, oflag, cflag, lflag = struct.unpack_from("<IIII", mem.buf, 0)
        assert lflag == termios.tcgetattr(slave)[3]
        mem.mem_write(100, struct.pack("<HHHH", 33, 120, 0, 0))
        await tty.ioctl(TIOCSWINSZ, 100, mem)
        await tty.ioctl(TIOCGWINSZ, 200, mem)
        assert struct.unpack_from("<HH", mem.buf, 200) == (33, 120)
        os.write(master, b"abc\n")
        await tty.wait_ready(POLLIN)
        await tty.ioctl(FIONREAD, 300, mem)
        assert struct.unpack_from("<i", mem.buf, 300)[0] == 4
        assert await tty.read(10) == b"abc\n"
        with pytest.raises(OSError) as e:
            await tty.ioctl(0x5412, 0, mem)  # TIOCSTI: never
        assert e.value.errno == errno.ENOTTY
        await tty.dec_ref()
    finally:
        os.close(master)
        os.close(slave)


async def test_regular_file_and_not_a_tty(tmp_path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"0123456789")
    hfd = os.open(p, os.O_RDWR)
    try:
        f = HostFD(hfd)
        assert await f.pread(3, 2) == b"234"
        assert await f.read(4) == b"0123"
        assert (await f.stat()).size == 10
        with pytest.raises(OSError) as e:
            await f.ioctl(TCGETS, 0, ArrayMemory())
        assert e.value.errno == errno.ENOTTY
        await f.dec_ref()
    finally:
        os.close(hfd)
