"""Fixtures of the conformance tests."""

from __future__ import annotations

import pytest
import trio

from conformance.runner import TargetRun, select
from conformance.suite import run_oracle


@pytest.fixture(scope="session")
def oracle() -> TargetRun:
    """The oracle's results (every case on the host kernel, in a fresh directory of
    $TMPDIR), run once and shared by every test that compares a target with it."""
    return trio.run(lambda: run_oracle(select()))
