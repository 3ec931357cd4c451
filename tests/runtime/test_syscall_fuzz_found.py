"""What the random-syscall fuzzer (tests/sentry/test_syscall_fuzz.py) found, each compared
with Linux under `runpsc do`.

- umount2(MNT_DETACH) of a volume the program's working directory and an open file are on:
  the Sentry released the volume's filesystem at once, and the next path lookup from the
  working directory spun for ever (the walk up to a dentry holding a fid never ended) or
  failed with an internal error. Linux keeps a detached filesystem alive for what still
  refers to it.
- fallocate with a mode beyond the supported mask (a negative one) on a volume's file: the
  Sentry sent it to the gofer as Tallocate, whose u32 mode could not hold it (an internal
  error); Linux answers EOPNOTSUPP first (tests/sentry/progs/fuzz_found.c, also run over
  tmpfs by tests/sentry/test_fuzz_found.py).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.runtime.test_do import runpsc
from tests.support import need_binary, need_root

PROGS = Path(__file__).resolve().parent / "progs"
SENTRY_PROGS = Path(__file__).resolve().parents[1] / "sentry" / "progs"


def _build(tmp: Path, name: str, progs: Path = PROGS) -> Path:
    gcc = need_binary("gcc")
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    out = bindir / name
    subprocess.run([gcc, "-O1", "-w", "-o", str(out), str(progs / f"{name}.c")], check=True,
                   capture_output=True)
    return out


def test_fuzz_findings_on_a_volume_match_native(tmp_path):
    prog = _build(tmp_path, "fuzz_found", SENTRY_PROGS)
    native_dir, sandbox_dir = tmp_path / "native", tmp_path / "sandbox"
    native_dir.mkdir()
    sandbox_dir.mkdir()
    want = subprocess.run([str(prog), str(native_dir)], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert want.returncode == 0, want.stderr
    assert b"fallocate mode -1: Operation not supported" in want.stdout
    got = runpsc("do", "--volume", f"{sandbox_dir}:/vol", "--volume", f"{prog.parent}:/b:ro",
                 "--", f"/b/{prog.name}", "/vol", timeout=120)
    assert b"internal error" not in got.stderr, got.stderr.decode(errors="replace")
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr.decode(errors="replace")


def test_lazy_unmount_of_the_working_directory_matches_native(tmp_path):
    need_root()
    unshare = need_binary("unshare", "util-linux")
    need_binary("mount", "mount")
    prog = _build(tmp_path, "umount_busy")
    native_dir, sandbox_dir = tmp_path / "native", tmp_path / "sandbox"
    native_dir.mkdir()
    sandbox_dir.mkdir()
    script = f"mount --make-rprivate / && mount --bind {native_dir} {native_dir} && " \
             f"exec {prog} {native_dir}"
    want = subprocess.run([unshare, "--mount", "sh", "-c", script], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert want.returncode == 0, want.stderr
    assert b"stat-dot 1" in want.stdout
    got = runpsc("do", "--volume", f"{sandbox_dir}:/vol", "--volume",
                 f"{prog.parent}:/b:ro", "--", f"/b/{prog.name}", "/vol", timeout=120)
    assert b"internal error" not in got.stderr, got.stderr.decode(errors="replace")
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr.decode(errors="replace")
    # The writes went to the volume's files, as natively to the bind-mounted directory.
    assert sorted(os.listdir(sandbox_dir)) == sorted(os.listdir(native_dir)) == ["kept"]
    assert (sandbox_dir / "kept").read_bytes() == (native_dir / "kept").read_bytes() == b"abcdef"
