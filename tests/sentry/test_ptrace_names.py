"""The Sentry's copy of python-ptrace's syscall names is python-ptrace's table, exactly."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_copied_names_match_python_ptrace():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_ptrace_names.py"),
                        "--check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
