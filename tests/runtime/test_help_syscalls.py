"""docs/syscalls.md is current, and `runpsc help syscalls` prints the same table."""

import runpy
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import sentry.syscalls  # noqa: F401
from runtime.cli import cli
from sentry.kernel.table import TABLE

ROOT = Path(__file__).resolve().parents[2]


def _gen():
    return runpy.run_path(str(ROOT / "scripts" / "gen_syscall_docs.py"))


def test_docs_syscalls_md_is_current():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_syscall_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr + " (run scripts/gen_syscall_docs.py)"


def test_docs_list_every_registered_entry():
    text = _gen()["render"]()
    for entry in TABLE.values():
        assert f"| {entry.number} | `{entry.name}` | {entry.level.value} |" in text
    assert "| 246 | `kexec_load` | unimplemented |" in text


def test_help_syscalls_prints_the_table():
    result = CliRunner().invoke(cli, ["help", "syscalls"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for entry in TABLE.values():
        if entry.level.value != "unimplemented":
            assert any(line.split()[:3] == [str(entry.number), entry.name, entry.level.value]
                       for line in lines), entry.name
    result = CliRunner().invoke(cli, ["help", "syscalls", "--level", "unimplemented"])
    assert result.exit_code == 0
    assert any(line.split()[:2] == ["246", "kexec_load"] for line in result.output.splitlines())
