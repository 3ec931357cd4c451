"""sendfile, copy_file_range and splice across the filesystems of `runpsc do` (the overlay
root, a tmpfs at /tmp (`--tmpfs /tmp`) and a gofer volume), each pair compared with a native run between two
host filesystems (progs/fscopy.c): the data arrives whole, and copy_file_range between
two filesystems is EXDEV as on Linux."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

import pytest

from tests.runtime.test_do import runpsc
from tests.sentry.progs.harness import build


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    progs = tmp_path_factory.mktemp("progs")
    build(progs, "fscopy")
    disk = tmp_path_factory.mktemp("disk")
    shm = tempfile.mkdtemp(prefix="runpsc-native-", dir="/dev/shm")
    try:
        want = subprocess.run([str(progs / "fscopy"), str(disk), shm], capture_output=True,
                              stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(shm)
    assert want.returncode == 0, want.stderr
    assert b"copy_file_range EXDEV" in want.stdout
    return progs, want.stdout


@pytest.mark.parametrize("a, b", [("/var/tmp", "/tmp"), ("/tmp", "/vol"), ("/var/tmp", "/vol")])
def test_copies_between_filesystems_match_native(expected, tmp_path, a, b):
    progs, want = expected
    got = runpsc("do", "--volume", f"{progs}:/progs:ro", "--volume", f"{tmp_path}:/vol",
                 "--tmpfs", "/tmp", "--", "/progs/fscopy", a, b)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    assert got.stdout.decode().splitlines() == want.decode().splitlines()
