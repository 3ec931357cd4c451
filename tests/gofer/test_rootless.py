"""`runpsc gofer serve` run by an unprivileged user: confined inside a user namespace of its
own, serving a directory that user owns to a client of that user, reading and writing as
the user would natively."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

import p9
from tests.gofer.helpers import AS_NOBODY, NOBODY, gofer_process, need_rootless


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory tree owned by the unprivileged user (outside root's private tmp)."""
    need_rootless()
    d = Path(tempfile.mkdtemp(prefix="gofer-rootless-"))
    os.chmod(d, 0o755)
    (d / "exp").mkdir()
    (d / "exp" / "mine").write_bytes(b"nobody's data\n")
    (d / "exp" / "private").write_bytes(b"secret")
    os.chmod(d / "exp" / "private", 0o000)  # its owner, without DAC override, cannot read it
    (d / "exp" / "roots").write_bytes(b"root's, readable\n")  # owned by root: not mapped
    for p in (d, d / "exp", d / "exp" / "mine", d / "exp" / "private"):
        os.chown(p, NOBODY, NOBODY)
    yield d
    shutil.rmtree(d)


async def connect_as_nobody(sock: Path) -> trio.SocketStream:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        s.connect(str(sock))  # the socket file is its owner's only (mode 0600)
    finally:
        os.seteuid(0)
        os.setegid(0)
    return trio.SocketStream(trio.socket.from_stdlib_socket(s))


def status_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


async def test_unprivileged_gofer_serves_its_users_directory(base: Path) -> None:
    exp, sock = base / "exp", base / "g.sock"
    with gofer_process(["--export", f"e={exp}", "--listen", f"unix:{sock}"], prefix=AS_NOBODY) as proc:
        st = status_of(proc.pid)
        assert st["Uid"].split()[0] == str(NOBODY)
        assert int(st["CapEff"], 16) == 0 and int(st["CapBnd"], 16) == 0
        assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2"
        assert os.readlink(f"/proc/{proc.pid}/ns/user") != os.readlink("/proc/self/ns/user")
        assert os.readlink(f"/proc/{proc.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        async with p9.open_client(await connect_as_nobody(sock)) as c:
            root = await c.attach(b"e", uname=b"nobody", n_uname=NOBODY)
            fs = p9.PathFS(root)
            assert await fs.read_file("mine") == b"nobody's data\n"
            await fs.write_file("written", b"through the gofer\n")
            assert await fs.read_file("roots") == b"root's, readable\n"
            with pytest.raises(OSError) as ei:
                await fs.read_file("private")
            assert ei.value.errno == errno.EACCES  # as natively for its owner
            assert (await fs.stat("mine")).attr.uid == NOBODY  # mapped to itself
            # Owners outside the namespace's map read as the overflow id.
            assert (await fs.stat("roots")).attr.uid == NOBODY
            mine = await root.walk([b"mine"])
            with pytest.raises(OSError) as ei:  # giving a file away: EPERM, as natively
                await mine.setattr(uid=0)
            assert ei.value.errno == errno.EPERM
            await mine.clunk()
            await root.clunk()
    assert (exp / "written").read_bytes() == b"through the gofer\n"
    assert os.stat(exp / "written").st_uid == NOBODY
