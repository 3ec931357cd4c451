"""Fixtures for p9 tests: our server on real sockets, a host-directory file model."""

from __future__ import annotations

import os
import socket

import pytest

from . import scenario


def free_port(family: int = socket.AF_INET) -> int:
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture
def dirs(tmp_path):
    """(export, native): two directories holding the same starting tree."""
    export = tmp_path / "export"
    native = tmp_path / "native"
    export.mkdir()
    native.mkdir()
    scenario.populate(str(export))
    scenario.populate(str(native))
    os.chmod(export, 0o755)
    os.chmod(native, 0o755)
    return str(export), str(native)
