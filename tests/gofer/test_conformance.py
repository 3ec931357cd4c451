"""The conformance suite (conformance/) against the confined CLI gofer through our p9 client:
every case must match the host kernel, except the few the protocol or confinement cannot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.gofer.helpers import confine_args, gofer_process
from tests.support import need_root

# Topics where the gofer itself decides behaviour (open flags, creation, links, symlinks,
# readdir, xattrs); the rest (rw, truncate, locks, unlink ... and perms, sticky, owner, names,
# which need identities) run in `runpsc conformance run`, and each operation also has a
# direct native comparison in test_server.py. Kept small for the test-time budget.
TOPICS = ["dirs", "links", "open", "readdir", "symlinks", "xattr"]

# Differences that are not the gofer's to fix, each with its reason:
EXPECTED_DIFFERENCES = {
    # the export has no `mknod` option (off by default: gofer/README.md, "Confinement")
    "fifos/char-device",
    # 9P carries a uid, not supplementary groups: the case's group membership is made up by
    # the test (setgroups), unknown to the host's group database the gofer consults
    "owner/setgid-inherit-file-member",
}


def test_conformance_against_confined_gofer(tmp_path: Path) -> None:
    need_root()
    exp = tmp_path / "exp"
    exp.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(exp, 0o755)
    sock = tmp_path / "sock"
    report = tmp_path / "report.json"
    cases = [arg for t in TOPICS for arg in ("--cases", f"{t}/*")]
    root = Path(__file__).resolve().parents[2]
    with gofer_process(["--export", f"c={exp}", "--listen", f"unix:{sock}", *confine_args()]):
        r = subprocess.run(
            [sys.executable, "-m", "runtime.cli", "conformance", "run", "--target",
             f"9p:unix:{sock},aname=c", "--json", str(report), "--report-only", *cases],
            cwd=root, capture_output=True, text=True, timeout=240,
        )
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(report.read_text())
    (target,) = data["targets"]
    differ = {
        c["id"]: c["targets"][target].get("detail", "")
        for c in data["cases"]
        if c["oracle"]["status"] == "ok"
        and c["targets"][target]["verdict"] not in ("pass", "n/a", "exception")
    }
    assert len(data["cases"]) > 200
    unexpected = {k: v for k, v in differ.items() if k not in EXPECTED_DIFFERENCES}
    assert not unexpected, unexpected
