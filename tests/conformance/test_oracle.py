"""The case library against the host kernel: every case passes natively, on ext4 ($TMPDIR)
and tmpfs (/dev/shm) alike, and the comparison machinery notices a departure."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conformance.report import Matrix
from conformance.runner import run_target, select
from conformance.suite import run_matrix
from conformance.target_api import RENAME_NOREPLACE
from conformance.target_dir import DirTarget
from tests.support import need_root


async def test_every_case_passes_natively_and_tmpfs_matches(oracle) -> None:
    """The oracle (the session's, on $TMPDIR) and /dev/shm."""
    need_root()  # unprivileged cases switch fsuid; ownership cases chown
    m = await run_matrix(["dir:/dev/shm"], oracle=oracle)
    assert len(m.cases) >= 300
    assert m.bad_cases() == []
    assert m.counts(0)["pass"] == len(m.cases), m.text(only_differences=True)
    assert not m.failed()


class _NoReplaceIgnored(DirTarget):
    """Fault injection: a filesystem that ignores RENAME_NOREPLACE (a realistic bug)."""

    def derive(self, *, root=None, creds=None):  # type: ignore[override]
        d = super().derive(root=root, creds=creds)
        d.__class__ = _NoReplaceIgnored
        return d

    async def rename(self, old: bytes, new: bytes, flags: int = 0) -> None:
        await super().rename(old, new, flags & ~RENAME_NOREPLACE)


async def test_matrix_reports_first_difference(tmp_path) -> None:
    need_root()
    cases = select(["rename/file-over-*"])
    os.chmod(tmp_path, 0o755)
    (tmp_path / "o").mkdir()
    (tmp_path / "b").mkdir()
    oracle = await run_target(DirTarget(tmp_path / "o"), "oracle", cases)
    buggy = await run_target(_NoReplaceIgnored(tmp_path / "b"), "buggy", cases)
    m = Matrix.build(cases, oracle, [buggy])
    row = dict(zip([c.id for c in cases], [m.verdicts[c.id][0] for c in cases], strict=True))
    assert row["rename/file-over-file-noreplace"].mark == "FAIL"
    assert "-> EEXIST" in row["rename/file-over-file-noreplace"].detail
    assert row["rename/file-over-file-plain"].mark == "pass"
    assert row["rename/file-over-missing-noreplace"].mark == "pass"
    assert m.failed()
    text = m.text()
    assert "[1] buggy:" in text and " differ," in text
    assert os.listdir(tmp_path / "o") == [] and os.listdir(tmp_path / "b") == []


def test_cli_matrix_json_and_exit_status(tmp_path) -> None:
    need_root()
    out = tmp_path / "m.json"
    cmd = [sys.executable, "-m", "runtime.cli", "conformance", "run", "--target",
           "dir:/dev/shm", "--cases", "rw/", "--json", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "[1] dir:/dev/shm:" in p.stdout and "0 differ" in p.stdout
    data = json.loads(out.read_text())
    assert data["targets"] == ["dir:/dev/shm"]
    assert all(c["targets"]["dir:/dev/shm"]["verdict"] == "pass" for c in data["cases"])
    bad = subprocess.run([sys.executable, "-m", "runtime.cli", "conformance", "run",
                          "--target", "nfs:whatever"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode != 0 and "unknown target scheme 'nfs'" in bad.stderr
