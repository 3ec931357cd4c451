"""Every package imports and says what it is for; the CLI answers --version and --help."""

from __future__ import annotations

import importlib
import platform
import subprocess
import sys
from importlib.metadata import version

import pytest
from click.testing import CliRunner

from runtime.cli import cli

PACKAGES = ["p9", "gofer", "vfs", "sentry", "runtime", "conformance"]


@pytest.mark.parametrize("name", PACKAGES)
def test_package_imports_with_docstring(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__ and len(module.__doc__.strip()) > 20


def test_version_from_metadata() -> None:
    """runc's shape: `NAME version X`, then `key: value` lines (commit, spec, ...)."""
    from runtime.oci.spec import OCI_VERSION

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    first, *rest = result.output.splitlines()
    assert first == f"runpsc version {version('runpsc')}"
    fields = dict(line.split(": ", 1) for line in rest)
    assert fields["commit"] == version("runpsc")
    assert fields["spec"] == OCI_VERSION
    assert fields["python"] == platform.python_version()


def test_console_script_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "Usage:" in out and "runpsc" in out
