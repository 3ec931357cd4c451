"""Whom an attach runs as, by transport, against a real `runpsc gofer serve`: a unix peer is
who SO_PEERCRED says (a non-root one only itself), a plain-TCP attach is the TCP user unless
--trust-client-identity, a non-loopback plain-TCP listener needs that stated, and a socket
inherited connected (how `runpsc do` talks to its gofers) keeps being believed."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
import trio

import p9
from tests.gofer.helpers import confine_args, gofer_process
from tests.support import need_root

NOBODY = 65534


@pytest.fixture
def exp(tmp_path: Path) -> Path:
    need_root()
    os.chmod(tmp_path, 0o755)
    d = tmp_path / "exp"
    d.mkdir(mode=0o777)
    os.chmod(d, 0o777)
    return d


@contextmanager
def as_user(uid: int, gid: int) -> Iterator[None]:
    """Run the enclosed (blocking) calls with effective uid/gid `uid`/`gid` (a socket
    connected here carries them as its SO_PEERCRED)."""
    os.setegid(gid)
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@asynccontextmanager
async def unix_client(path: Path, *, uid: int = 0, gid: int = 0) -> AsyncIterator[p9.Client]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with as_user(uid, gid):
        s.connect(str(path))
    async with p9.open_client(trio.SocketStream(trio.socket.from_stdlib_socket(s))) as c:
        yield c


async def create_as(c: p9.Client, name: str, *, uname: bytes, n_uname: int) -> None:
    root = await c.attach(b"e", uname=uname, n_uname=n_uname)
    await p9.PathFS(root).write_file(name, b"x")
    await root.clunk()


@contextmanager
def tcp_gofer(exp: Path, *args: str) -> Iterator[int]:
    """A gofer on an inherited loopback TCP listener; yields its port."""
    tcp = socket.create_server(("127.0.0.1", 0))
    os.set_inheritable(tcp.fileno(), True)
    with gofer_process(["--export", f"e={exp}", "--listen", f"fd:{tcp.fileno()}", *confine_args(), *args],
                       pass_fds=(tcp.fileno(),)):
        port = tcp.getsockname()[1]
        tcp.close()
        yield port


async def test_unix_peer_is_who_peercred_says(exp: Path) -> None:
    sockdir = Path(tempfile.mkdtemp(prefix="gofer-ident-"))  # reachable by a non-root user
    os.chmod(sockdir, 0o755)
    sock = sockdir / "g.sock"
    with gofer_process(["--export", f"e={exp}", "--listen", f"unix:{sock}", *confine_args()]):
        os.chmod(sock, 0o666)  # let a non-root user connect (identities come from the kernel)
        async with unix_client(sock, uid=NOBODY, gid=NOBODY) as c:
            with pytest.raises(OSError) as ei:  # non-root asking to be root
                await c.attach(b"e", uname=b"root", n_uname=0)
            assert ei.value.errno == errno.EPERM
            with pytest.raises(OSError) as ei:  # or anybody else
                await c.attach(b"e", uname=b"", n_uname=1234)
            assert ei.value.errno == errno.EPERM
            await create_as(c, "as-itself", uname=b"nobody", n_uname=NOBODY)
            # An anonymous attach (empty uname, NONUNAME: gVisor's client) is the peer too.
            fid = c.alloc_fid()
            await c.rpc(p9.Tattach(fid, p9.NOFID, b"", b"e", p9.NONUNAME))
            await c.rpc(p9.Tlcreate(fid, b"anonymous", os.O_WRONLY, 0o644, 0xFFFFFFFF))
            await c.rpc(p9.Tclunk(fid))
        async with unix_client(sock) as c:  # root may attach as anyone
            await create_as(c, "root-as-1234", uname=b"", n_uname=1234)
    shutil.rmtree(sockdir)
    assert os.stat(exp / "as-itself").st_uid == NOBODY
    assert os.stat(exp / "anonymous").st_uid == NOBODY
    assert os.stat(exp / "root-as-1234").st_uid == 1234


async def test_plain_tcp_attach_is_squashed_unless_trusted(exp: Path) -> None:
    with tcp_gofer(exp) as port:
        stream = await p9.connect_tcp("127.0.0.1", port)
        async with p9.open_client(stream) as c:
            await create_as(c, "tcp-root", uname=b"root", n_uname=0)
    with tcp_gofer(exp, "--tcp-user", "1234") as port:
        stream = await p9.connect_tcp("127.0.0.1", port)
        async with p9.open_client(stream) as c:
            await create_as(c, "tcp-squash-user", uname=b"root", n_uname=0)
    with tcp_gofer(exp, "--trust-client-identity") as port:
        stream = await p9.connect_tcp("127.0.0.1", port)
        async with p9.open_client(stream) as c:
            await create_as(c, "trusted-root", uname=b"root", n_uname=0)
            await create_as(c, "trusted-1234", uname=b"", n_uname=1234)
    assert os.stat(exp / "tcp-root").st_uid == NOBODY
    assert os.stat(exp / "tcp-squash-user").st_uid == 1234
    assert os.stat(exp / "trusted-root").st_uid == 0
    assert os.stat(exp / "trusted-1234").st_uid == 1234


def test_non_loopback_plain_tcp_needs_the_identity_model_stated(exp: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "runtime.cli", "gofer", "serve", "--export", f"e={exp}",
                        "--listen", "tcp:0.0.0.0:0", *confine_args()],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "--trust-client-identity" in r.stderr and "--tcp-user" in r.stderr, r.stderr
    for stated in (["--trust-client-identity"], ["--tcp-user", "nobody"]):
        with gofer_process(["--export", f"e={exp}", "--listen", "tcp:0.0.0.0:0", *confine_args(), *stated]):
            pass  # it serves


async def test_inherited_connected_socket_is_believed(exp: Path) -> None:
    """How `runpsc do` reaches its gofers (runtime/sandbox.py: a socketpair, fd:N): trusted."""
    ours, theirs = socket.socketpair()
    os.set_inheritable(theirs.fileno(), True)
    with gofer_process(["--export", f"e={exp}", "--listen", f"fd:{theirs.fileno()}", *confine_args()],
                       pass_fds=(theirs.fileno(),)):
        theirs.close()
        async with p9.open_client(trio.SocketStream(trio.socket.from_stdlib_socket(ours))) as c:
            await create_as(c, "local-1234", uname=b"", n_uname=1234)
            await create_as(c, "local-root", uname=b"root", n_uname=0)
    assert os.stat(exp / "local-1234").st_uid == 1234
    assert os.stat(exp / "local-root").st_uid == 0
