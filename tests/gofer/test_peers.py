"""Real clients against `runpsc gofer serve` (confined when root): diod's diodls/diodcat over
TCP and unix sockets, and the p9fs PyPI client's whole API over TCP with msize 8192."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gofer.helpers import confine_args, gofer_process
from tests.support import need_binary


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, Path]]:
    """(export dir, tcp port, unix socket path) of one gofer serving export 'exp' (and 'ro')."""
    base = tmp_path_factory.mktemp("peers")
    os.chmod(base, 0o755)
    exp = base / "exp"
    exp.mkdir()
    (exp / "hello.txt").write_bytes(b"hello from the gofer\n")
    (exp / "big.bin").write_bytes(os.urandom(300_000))
    (exp / "dir").mkdir()
    (exp / "dir" / "nested").write_bytes(b"nested\n")
    os.symlink("hello.txt", exp / "link")
    tcp = socket.create_server(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    sock = base / "gofer.sock"
    args = ["--export", f"exp={exp}", "--export", f"ro={exp}:ro",
            "--listen", f"fd:{tcp.fileno()}", "--listen", f"unix:{sock}",
            # p9fs attaches as root over TCP and writes: as `diod -n` would, believe it
            # (without this every TCP attach is nobody; test_identity.py covers that).
            "--trust-client-identity"]
    args += confine_args()
    os.set_inheritable(tcp.fileno(), True)
    with gofer_process(args, pass_fds=(tcp.fileno(),)):
        tcp.close()
        yield exp, port, sock


def _diodls(server: str, aname: str, path: str) -> list[list[str]]:
    exe = need_binary("diodls", "diod")
    out = subprocess.run([exe, "-s", server, "-a", aname, "-l", path], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return [line.split() for line in out.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_diodls_lists_like_native(served, transport: str) -> None:
    exp, port, sock = served
    server = f"127.0.0.1:{port}" if transport == "tcp" else str(sock)
    for path, native in (("/", exp), ("/dir", exp / "dir")):
        rows = _diodls(server, "exp", path)
        by_name = {r[-1]: r for r in rows}
        assert set(by_name) == set(os.listdir(native)) | {".", ".."}
        for name in os.listdir(native):
            st = os.lstat(native / name)
            row = by_name[name]
            want = stat.filemode(st.st_mode)
            if stat.S_ISLNK(st.st_mode):  # diodls prints '-' for a symlink (diod's too)
                want = "-" + want[1:]
            assert row[0].rstrip(".+") == want
            assert int(row[4]) == st.st_size


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_diodcat_reads_like_native(served, transport: str) -> None:
    exp, port, sock = served
    exe = need_binary("diodcat", "diod")
    server = f"127.0.0.1:{port}" if transport == "tcp" else str(sock)
    for name in ("hello.txt", "big.bin", "dir/nested"):
        out = subprocess.run([exe, "-s", server, "-a", "exp", f"/{name}"], capture_output=True,
                             timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout == (exp / name).read_bytes()
    bad = subprocess.run([exe, "-s", server, "-a", "nosuch", "/hello.txt"], capture_output=True,
                         timeout=30)
    assert bad.returncode != 0


def test_p9fs_whole_api(served) -> None:
    p9fs = pytest.importorskip("p9fs")
    exp, port, _ = served
    fs = p9fs.P9FileSystem(host="127.0.0.1", port=port, username="root", aname="exp",
                           version="9P2000.L")
    try:
        assert fs.client.msize == 8192  # py9p's default, which p9fs uses
        names = sorted(os.path.basename(x.rstrip("/")) for x in fs.ls("", detail=False))
        assert names == sorted(os.listdir(exp))
        info = fs.info("hello.txt")
        assert info["size"] == os.stat(exp / "hello.txt").st_size
        assert info["type"] == "file" and fs.info("dir")["type"] == "directory"
        assert fs.exists("hello.txt") and not fs.exists("nope")
        assert fs.isdir("dir") and fs.isfile("hello.txt") and not fs.isfile("dir")
        assert fs.cat_file("hello.txt") == (exp / "hello.txt").read_bytes()
        assert fs.cat_file("big.bin") == (exp / "big.bin").read_bytes()
        with fs.open("written.txt", "wb") as f:
            f.write(b"written through p9fs " * 1000)
        assert (exp / "written.txt").read_bytes() == b"written through p9fs " * 1000
        with fs.open("written.txt", "rb") as f:
            f.seek(21)
            assert f.read(8) == b"written "
        fs.mkdir("made/deeper", create_parents=True)
        assert (exp / "made" / "deeper").is_dir()
        fs.makedirs("made2/x", exist_ok=True)
        assert (exp / "made2" / "x").is_dir()
        fs.cp_file("hello.txt", "copy.txt")
        assert (exp / "copy.txt").read_bytes() == (exp / "hello.txt").read_bytes()
        fs.mv("copy.txt", "moved.txt")
        assert not (exp / "copy.txt").exists() and (exp / "moved.txt").exists()
        mt = os.stat(exp / "hello.txt").st_mtime_ns
        assert tuple(fs.modified("hello.txt")) == (mt // 10**9, mt % 10**9)
        fs.rm("moved.txt")
        fs.rm("written.txt")
        fs.rmdir("made/deeper")
        fs.rm("made", recursive=True)
        fs.rm("made2", recursive=True)
        assert sorted(os.listdir(exp)) == sorted(["hello.txt", "big.bin", "dir", "link"])
        with pytest.raises(Exception):  # noqa: B017 - p9fs raises its own error types
            fs.cat_file("nope")
    finally:
        fs.client.fd.sock.close()  # py9p's close() clunks a fid it never made


def test_read_only_export_refuses_writes_from_p9fs(served) -> None:
    p9fs = pytest.importorskip("p9fs")
    exp, port, _ = served
    fs = p9fs.P9FileSystem(host="127.0.0.1", port=port, username="root", aname="ro", version="9P2000.L")
    try:
        assert fs.cat_file("hello.txt") == (exp / "hello.txt").read_bytes()
        with pytest.raises(Exception):  # noqa: B017
            with fs.open("nope.txt", "wb") as f:
                f.write(b"x")
        assert not (exp / "nope.txt").exists()
    finally:
        fs.client.fd.sock.close()  # py9p's close() clunks a fid it never made
