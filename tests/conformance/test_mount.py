"""`runpsc mount`: a FUSE mount of our gofer that unmounts cleanly on SIGINT/SIGTERM and
answers EIO (never hangs) when the server goes away."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests.conformance.helpers import fuse_mount, gofer, mounted, runpsc, stop
from tests.support import missing, need_root


@pytest.fixture
def fuse_ok() -> None:
    need_root()
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        missing("FUSE", "apt-get install fuse3 (and a kernel with /dev/fuse)")


def _export(tmp_path):
    os.chmod(tmp_path, 0o755)
    d = tmp_path / "export"
    d.mkdir(mode=0o755)
    (d / "hello").write_bytes(b"hello over 9p\n")
    (d / "sub").mkdir()
    return d


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_files_through_the_mount_and_clean_unmount(tmp_path, fuse_ok, sig) -> None:
    export = _export(tmp_path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with gofer(export, tmp_path / "g.sock"):
        with fuse_mount(f"unix:{tmp_path / 'g.sock'}", mnt) as proc:
            assert (mnt / "hello").read_bytes() == b"hello over 9p\n"
            (mnt / "sub" / "new").write_bytes(b"written through FUSE")
            os.rename(mnt / "sub" / "new", mnt / "moved")
            assert sorted(os.listdir(mnt)) == ["hello", "moved", "sub"]
            assert (export / "moved").read_bytes() == b"written through FUSE"
            st = os.stat(mnt / "hello")
            assert st.st_size == 14 and st.st_nlink == 1
            assert stop(proc, sig) == 0
            assert not mounted(mnt)
    assert os.listdir(mnt) == []  # the plain directory again


def test_lost_server_gives_eio_not_a_hang(tmp_path, fuse_ok) -> None:
    """A server that does not come back within --reconnect: EIO (here after a second)."""
    export = _export(tmp_path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with gofer(export, tmp_path / "g.sock") as g, \
            fuse_mount(f"unix:{tmp_path / 'g.sock'}", mnt, options=("--reconnect", "1")) as proc:
        assert (mnt / "hello").read_bytes() == b"hello over 9p\n"
        stop(g, signal.SIGKILL)
        # A child does the I/O, so a hang would show as a timeout, not a stuck test. Names
        # never looked up before, so no kernel cache can answer for the server.
        probe = ("import os, sys\n"
                 "for op in (lambda: os.stat(sys.argv[1] + '/never-looked-up'),\n"
                 "           lambda: os.listdir(sys.argv[1] + '/sub'),\n"
                 "           lambda: open(sys.argv[1] + '/new', 'w')):\n"
                 "    try:\n"
                 "        op()\n"
                 "    except OSError as e:\n"
                 "        print(e.errno)\n"
                 "    else:\n"
                 "        print('ok')\n")
        out = subprocess.run([sys.executable, "-c", probe, str(mnt)], capture_output=True,
                             text=True, timeout=60)
        assert out.stdout.split() == [str(errno.EIO)] * 3, out
        assert proc.poll() is None  # the mount itself survives and can be unmounted
        assert stop(proc) == 0
        assert not mounted(mnt)


def test_bad_address_is_a_clear_error(tmp_path, fuse_ok) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.run(runpsc("mount", "bogus:thing", str(mnt)), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0 and "bad 9P address 'bogus:thing'" in p.stderr
    p = subprocess.run(runpsc("mount", f"unix:{tmp_path / 'nobody.sock'}", str(mnt)),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "mount unix:" in p.stderr
    assert not mounted(mnt)
