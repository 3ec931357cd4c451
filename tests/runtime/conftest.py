"""Fixtures shared by the runtime tests of remote mounts (TLS material, a served tree)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tlscerts import PKI, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """A CA with server and client certificates, made by the test (none committed)."""
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """An empty directory a gofer may export, writable by every uid (a squashed client's
    writes land as another user)."""
    os.chmod(tmp_path, 0o755)
    d = tmp_path / "served"
    d.mkdir(mode=0o777)
    return d
