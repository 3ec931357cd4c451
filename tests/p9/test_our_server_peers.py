"""Our server (host-directory model) driven by clients we did not write: diod's tools, p9fs."""

from __future__ import annotations

import os

import pytest
import trio

import p9
from tests.support import missing, need_binary, need_root

from . import peers
from .conftest import free_port
from .hostfs import HostFS

pytestmark = pytest.mark.peer


async def _start_ours(nursery, export: str) -> int:
    listeners = await p9.listen_tcp(0, "127.0.0.1")
    await nursery.start(p9.Server(HostFS(export)).serve_listeners, listeners)
    return listeners[0].socket.getsockname()[1]


async def _run(cmd: list[str]) -> bytes:
    proc = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    assert proc.returncode == 0, (cmd, proc.stderr.decode(errors="replace"))
    return proc.stdout


async def test_diodls_and_diodcat_against_ours_match_diod_and_native(dirs) -> None:
    diodls = need_binary("diodls", "diod")
    diodcat = need_binary("diodcat", "diod")
    diod_bin = need_binary("diod")
    need_root()
    export, _ = dirs
    payload = os.urandom(3 << 20)
    with open(os.path.join(export, "blob"), "wb") as fh:
        fh.write(payload)
    os.symlink("blob", os.path.join(export, "sym"))
    os.mkdir(os.path.join(export, "sub"), 0o711)
    diod_port = free_port()
    async with trio.open_nursery() as nursery:
        port = await _start_ours(nursery, export)
        ours = f"127.0.0.1:{port}"
        for d in ("", "many", "sub"):
            listing = await _run([diodls, "-s", ours, "-a", export, "-l", d])
            names = sorted(line.split()[-1] for line in listing.decode().splitlines())
            assert names == sorted([".", "..", *os.listdir(os.path.join(export, d))])
            with peers.diod(diod_bin, export, tcp_port=diod_port):
                theirs = await _run([diodls, "-s", f"127.0.0.1:{diod_port}", "-a", export, "-l", d])
            # Same lines as diod gives for the same directory, in any order; except ".." of
            # the export root, which diod takes from the host's parent and we keep inside.
            def lines(out: bytes, top: bool = d == "") -> list[str]:
                return sorted(x for x in out.decode().splitlines() if not (top and x.endswith(" ..")))

            assert lines(listing) == lines(theirs)
        assert await _run([diodcat, "-s", ours, "-a", export, "blob"]) == payload
        assert await _run([diodcat, "-s", ours, "-a", export, "-m", "8192", "f"]) == b"hello 9p\n"
        nursery.cancel_scope.cancel()


def _p9fs_session(port: int, export: str) -> dict:
    """Drive p9fs (py9p's Python 3 client, msize 8192) through a small workload."""
    import p9fs

    fs = p9fs.P9FileSystem("127.0.0.1", port, "root", version="9P2000.L", aname=export)
    out: dict = {}
    out["ls"] = sorted(os.path.basename(p.rstrip("/")) for p in fs.ls("", detail=False))
    out["many"] = len(fs.ls("many", detail=False))
    out["cat"] = fs.cat("f")
    data = bytes(range(256)) * 1000
    with fs.open("written", "wb") as fh:
        fh.write(data)
    out["roundtrip"] = fs.cat("written") == data
    info = fs.info("written")
    out["info"] = (info["type"], info["size"])
    fs.mkdir("newdir", create_parents=False)
    out["isdir"] = fs.isdir("newdir")
    fs.mv("written", "newdir/moved")
    out["moved"] = sorted(os.path.basename(p) for p in fs.ls("newdir", detail=False))
    out["exists_missing"] = fs.exists("nope")
    fs.rm("newdir/moved")
    fs.rmdir("newdir")
    out["final"] = sorted(os.path.basename(p.rstrip("/")) for p in fs.ls("", detail=False))
    return out


async def test_p9fs_against_ours_matches_native(dirs) -> None:
    try:
        import p9fs  # noqa: F401
    except ImportError:
        missing("p9fs", "pip install p9fs==0.0.4 (a dev extra of runpsc)")
    export, native = dirs
    async with trio.open_nursery() as nursery:
        port = await _start_ours(nursery, export)
        got = await trio.to_thread.run_sync(_p9fs_session, port, export)
        nursery.cancel_scope.cancel()
    assert got == {
        "ls": sorted(os.listdir(native)),
        "many": len(os.listdir(os.path.join(native, "many"))),
        "cat": open(os.path.join(native, "f"), "rb").read(),
        "roundtrip": True,
        "info": ("file", 256000),
        "isdir": True,
        "moved": ["moved"],
        "exists_missing": False,
        "final": sorted(os.listdir(native)),
    }
