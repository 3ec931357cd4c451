"""File mappings' permissions across mprotect (issue 19, finding 1), compared with Linux:
progs/mprot.c tries every open mode x MAP_SHARED/MAP_PRIVATE x mmap protection x mprotect
protection on a root-owned 0644 file, as root and as an unprivileged user (it drops to uid
65534 after making the file), on each filesystem of `runpsc do`: the tmpfs /tmp, /dev/shm,
an overlay-root file copied up from the host, and a volume. A shared mapping of a file
opened read-only never becomes writable (EACCES) and so never changes the file; a writable
one, even write-only, writes through (msync). The native runs, on /dev/shm and on a disk
directory, must agree with each other and with every sandbox run."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.runtime.test_do import runpsc
from tests.sentry.progs.harness import build
from tests.support import native_child_setup, need_root

NOBODY = "65534"


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    need_root()
    d = tmp_path_factory.mktemp("progs")
    build(d, "mprot")
    os.chmod(d, 0o755)
    return d


@pytest.fixture(scope="module")
def expected(progs):
    """user -> the native output (the same on /dev/shm and on a disk directory)."""
    want = {}
    for user in ("root", NOBODY):
        outs = []
        for parent in ("/dev/shm", "/var/tmp"):
            d = tempfile.mkdtemp(prefix="runpsc-native-", dir=parent)
            try:
                p = subprocess.run([str(progs / "mprot"), d, *([user] if user != "root" else [])],
                                   capture_output=True, stdin=subprocess.DEVNULL,
                                   preexec_fn=native_child_setup)
            finally:
                shutil.rmtree(d)
            assert p.returncode == 0, p.stderr
            outs.append(p.stdout.decode())
        assert outs[0] == outs[1]
        assert "O_RDONLY shared mmap r-- mprotect rw-: Permission denied file aa" in outs[0]
        assert "O_RDWR shared mmap r-- mprotect -w-: ok wrote file XY" in outs[0] or user != "root"
        want[user] = outs[0]
    return want


@pytest.mark.parametrize("user", ["root", NOBODY])
@pytest.mark.parametrize("fs", ["tmpfs /tmp", "/dev/shm", "overlay copy-up", "volume"])
def test_mprotect_permissions_match_linux(progs, expected, tmp_path, fs, user):
    flags = [f"--volume={progs}:/progs:ro"]
    lower = None
    if fs == "tmpfs /tmp":
        target = "/tmp/m"
    elif fs == "/dev/shm":
        target = "/dev/shm/m"
    elif fs == "volume":
        vol = tmp_path / "vol"
        vol.mkdir(mode=0o755)
        os.chmod(vol, 0o755)
        flags.append(f"--volume={vol}:/vol")
        target = "/vol/m"
    else:  # a host file the program opens O_TRUNC: the overlay copies it up first
        lower = Path(tempfile.mkdtemp(prefix="runpsc-mprot-", dir="/var/tmp"))
        (lower / "mprot-file").write_bytes(b"lower")
        target = str(lower)
    try:
        got = runpsc("do", *flags, "--", "/progs/mprot", target,
                     *([user] if user != "root" else []))
        if lower is not None:
            assert (lower / "mprot-file").read_bytes() == b"lower"  # the host's copy stays
    finally:
        if lower is not None:
            shutil.rmtree(lower)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    assert got.stdout.decode() == expected[user], got.stderr.decode(errors="replace")
