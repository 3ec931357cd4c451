"""Application input that made the Sentry fail with an internal error and kill the program
(issue 19, finding 4), each compared with Linux (progs/inputerr.c): statfs (and `df`) on a
volume whose host filesystem id has its top bit set, lseek with a whence of 0xffffffff on
host stdio, and poll/ppoll for POLLPRI alone or select with exceptfds on stdio that is
/dev/null or a regular file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.runtime.test_do import ROOT
from tests.sentry.progs.harness import build
from tests.support import missing, native_child_setup, need_binary, need_root

#: ext4's f_fsid is the two halves of its UUID xor-ed: this one gives 0x8000000000000000.
TOP_BIT_UUID = "00000000-0000-0080-0000-000000000000"


def sandbox(progs, *args: str, volumes: tuple[str, ...] = (), stdin=subprocess.DEVNULL):
    flags = [f"--volume={progs}:/progs:ro", *(f"--volume={v}" for v in volumes)]
    return subprocess.run([sys.executable, "-m", "runtime.cli", "do", *flags, "--", *args],
                          cwd=str(ROOT), capture_output=True, stdin=stdin, timeout=120)


@pytest.fixture
def top_bit_fs(tmp_path):
    """A host ext4 filesystem (a loop-mounted image) whose f_fsid has bit 63 set."""
    need_root()
    mkfs, mount = need_binary("mkfs.ext4", "e2fsprogs"), need_binary("mount", "mount")
    img, mnt = tmp_path / "fs.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run([mkfs, "-q", "-F", "-U", TOP_BIT_UUID, str(img)], check=True,
                   capture_output=True)
    got = subprocess.run([mount, "-o", "loop", str(img), str(mnt)], capture_output=True)
    if got.returncode:
        missing("a loop mount", f"mount -o loop failed: {got.stderr.decode(errors='replace')}")
    try:
        assert os.statvfs(mnt).f_fsid >> 63, "the image's fsid lost its top bit"
        (mnt / "data").mkdir()
        yield mnt
    finally:
        subprocess.run([need_binary("umount", "mount"), str(mnt)], check=True)


def test_statfs_and_df_on_a_volume_whose_fsid_has_the_top_bit(tmp_path, top_bit_fs):
    prog = build(tmp_path, "inputerr")
    want = subprocess.run([prog, "statfs", str(top_bit_fs / "data")], capture_output=True,
                          preexec_fn=native_child_setup)
    assert b"fsid 00000000 80000000" in want.stdout, want
    got = sandbox(tmp_path, "/progs/inputerr", "statfs", "/vol",
                  volumes=(f"{top_bit_fs / 'data'}:/vol",))
    assert (got.stdout.decode(), got.returncode) == (want.stdout.decode(), 0), got.stderr
    df = sandbox(tmp_path, "df", "-P", "/vol", volumes=(f"{top_bit_fs / 'data'}:/vol",))
    assert df.returncode == 0 and df.stdout.decode().split("\n")[1].endswith(" /vol"), df


@pytest.mark.parametrize("stdin", ["/dev/null", "regular"])
def test_lseek_and_priority_polls_on_host_stdio(tmp_path, stdin):
    prog = build(tmp_path, "inputerr")
    path = os.devnull if stdin == "/dev/null" else str(tmp_path / "input")
    if stdin == "regular":
        with open(path, "wb") as f:
            f.write(b"some input\n")
    with open(path, "rb") as f:
        want = subprocess.run([prog, "stdio"], capture_output=True, stdin=f,
                              preexec_fn=native_child_setup)
    assert want.returncode == 0 and b"lseek(0, 0, 0xffffffff) -> -1 Invalid argument" \
        in want.stdout, want
    with open(path, "rb") as f:
        got = sandbox(tmp_path, "/progs/inputerr", "stdio", stdin=f)
    assert (got.stdout.decode(), got.returncode) == (want.stdout.decode(), 0), got.stderr
