"""Real programs over AF_UNIX sockets in `runpsc do`, compared with the native run: a python
asyncio unix echo server and client (socket in the sandbox's tmpfs and in a gofer volume),
sockets bound in a gofer volume (sandbox-only nodes: nothing on the host),
socat over UNIX-LISTEN and over its socketpair to a child, glibc's name-service lookups
(nscd absent: no unsupported-socket event any more), and a host socket reached through a
gofer, which the sandbox never connects to (ECONNREFUSED)."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.runtime.test_do import runpsc
from tests.runtime.test_workloads import compare
from tests.support import need_binary

ECHO = '''
import asyncio, os, sys

PATH = sys.argv[1]

async def handle(reader, writer):
    while data := await reader.readline():
        writer.write(data.upper())
        await writer.drain()
    writer.close()

async def main():
    if os.path.exists(PATH):
        os.unlink(PATH)
    server = await asyncio.start_unix_server(handle, PATH)
    async with server:
        r, w = await asyncio.open_unix_connection(PATH)
        for line in (b"hello\\n", b"unix sockets\\n", b"x" * 50000 + b"\\n"):
            w.write(line)
            await w.drain()
            got = await r.readline()
            print(len(got), got[:20])
        print("peer is the path", w.get_extra_info("peername") == PATH)
        w.close()
        await w.wait_closed()
    os.unlink(PATH)
    print("done")

asyncio.run(main())
'''


def _src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "echo.py").write_text(ECHO)
    return src


@pytest.mark.parametrize("where", ["/tmp/e.sock", "/var/tmp/runpsc-echo-test.sock"],
                         ids=["tmp", "var-tmp"])
def test_asyncio_unix_echo(tmp_path: Path, where: str):
    """The socket bound in the sandbox's /tmp or /var/tmp (both the root overlay's upper
    layer over the host's directory; the host's is not touched)."""
    src = _src(tmp_path)
    compare(["bash", "-c", 'python3 "$SRC/echo.py" "$SOCK"'], volumes={str(src): "/src"},
            env={"SRC": (str(src), "/src"), "SOCK": (str(tmp_path / "e.sock"), where)})
    assert not Path(where).exists()


def test_asyncio_unix_echo_in_gofer_volume(tmp_path: Path):
    src = _src(tmp_path)
    compare(["bash", "-c", 'python3 "$SRC/echo.py" "$SRC/e.sock"'], volumes={str(src): "/src"},
            env={"SRC": (str(src), "/src")})
    assert os.listdir(src) == ["echo.py"]


@pytest.mark.parametrize("options", ["", ":rw,exclusive"], ids=["shared", "exclusive"])
def test_bound_socket_in_gofer_volume_stays_in_the_sandbox(tmp_path: Path, options: str):
    """Sockets bound in a --volume behave as on Linux (type, mode, listing, connect, rename,
    link, unlink, EADDRINUSE, ENOTEMPTY) and the host's directory never gets a node: the
    two left bound at exit are on the native side only."""
    src = tmp_path / "src"
    src.mkdir()
    prog = Path(__file__).resolve().parent / "progs" / "unix_volume.py"
    (src / "unix_volume.py").write_text(prog.read_text())
    native, vol = tmp_path / "native", tmp_path / "vol"
    native.mkdir()
    vol.mkdir()
    want = subprocess.run(["python3", str(src / "unix_volume.py"), str(native)],
                          capture_output=True, timeout=120)
    assert want.returncode == 0 and want.stdout.endswith(b"done\n"), want
    assert (native / "left.sock").is_socket() and (native / "sub" / "left.sock").is_socket()
    got = runpsc("do", f"--volume={src}:/src", f"--volume={vol}:/v{options}", "--",
                 "python3", "/src/unix_volume.py", "/v")
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr
    assert sorted(os.listdir(vol)) == ["sub"] and os.listdir(vol / "sub") == []


def test_socat_unix_listen_and_socketpair(tmp_path: Path):
    """The client retries until the listener is up (`forever`, not a retry count: a count
    is a time limit, which a loaded machine exceeds)."""
    need_binary("socat")
    script = ('socat UNIX-LISTEN:"$D/s.sock" SYSTEM:"tr a-z A-Z" & '
              'echo hello socat | socat - UNIX-CONNECT:"$D/s.sock",forever,interval=0.02; '
              'wait; echo relay done; '
              'echo through a socketpair | socat - EXEC:"rev"; '
              'rm -f "$D/s.sock"')
    compare(["bash", "-c", script], env={"D": (str(tmp_path), "/tmp")})


def test_name_service_lookups_without_nscd():
    """glibc asks nscd over a unix socket first; without nscd the connect fails (ENOENT or
    ECONNREFUSED) and it reads the files, as on a machine without nscd."""
    compare(["getent", "passwd", "root"])
    got = runpsc("do", "--cwd=/usr", "--", "ls", "-la", "/")
    assert got.returncode == 0, got.stderr
    assert b"runpsc:" not in got.stderr, got.stderr


@pytest.mark.parametrize("where", ["volume", "root"])
def test_host_socket_through_gofer_is_refused(tmp_path: Path, where: str):
    """A host socket seen through a --volume, or through the root's lower layer (the
    host's /var/tmp under the overlay): ECONNREFUSED, and the host listener sees nothing."""
    host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if where == "volume":
        path, inside, flags = tmp_path / "host.sock", "/v/host.sock", [f"--volume={tmp_path}:/v"]
    else:
        path = Path(f"/var/tmp/runpsc-host-{os.getpid()}.sock")
        inside, flags = str(path), []
        path.unlink(missing_ok=True)
    host.bind(str(path))
    host.listen(4)
    host.setblocking(False)
    try:
        code = ("import socket, errno, sys\n"
                "s = socket.socket(socket.AF_UNIX)\n"
                "print(errno.errorcode[s.connect_ex(sys.argv[1])])\n"
                "d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
                "print(errno.errorcode[d.connect_ex(sys.argv[1])])\n")
        got = runpsc("do", *flags, "--", "python3", "-c", code, inside)
        assert got.stdout == b"ECONNREFUSED\nECONNREFUSED\n", got.stderr
        try:
            host.accept()
            raise AssertionError("the sandbox reached a host socket")
        except BlockingIOError as e:
            assert e.errno == errno.EAGAIN
    finally:
        host.close()
        if where == "root":
            path.unlink(missing_ok=True)


def test_proc_net_unix_lists_the_sandboxs_sockets(tmp_path: Path):
    """/proc/net/unix shows the sandbox's own sockets with Linux's columns (each program
    picks its sockets out by inode; kernel addresses and reference counts left out)."""
    prog = Path(__file__).resolve().parent / "progs" / "procnet_unix.py"
    src = tmp_path / "src"
    src.mkdir()
    (src / "procnet_unix.py").write_text(prog.read_text())
    compare(["bash", "-c", 'python3 "$SRC/procnet_unix.py" "$D"'], volumes={str(src): "/src"},
            env={"SRC": (str(src), "/src"), "D": (str(tmp_path), "/tmp")})
