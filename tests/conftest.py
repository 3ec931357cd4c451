"""Suite-wide guards: the signal mask; and the optional load."""

from __future__ import annotations

import signal
import warnings
from collections.abc import Iterator

import pytest

from tests.load import Load, requested


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--load", action="store_true",
                     help="run under a load generator that keeps every CPU busy "
                          "(also RUNPSC_TEST_LOAD=1); see tests/load.py")


@pytest.fixture(scope="session", autouse=True)
def _load(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every CPU kept busy for the whole session when asked for (killed at its end)."""
    if not requested(request.config.getoption("--load")):
        yield
        return
    with Load():
        yield


@pytest.fixture(autouse=True)
def _signal_mask_restored(request: pytest.FixtureRequest) -> Iterator[None]:
    """Native reference runs inherit the test process's signal mask, and an in-process
    Sentry blocks SIGCHLD while it serves: a mask left behind by one test would make a
    later test's native `wait` hang. Put it back, and say which test left it."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    yield
    after = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    if after != before:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        warnings.warn(f"{request.node.nodeid} left signals blocked: {sorted(after - before)}",
                      stacklevel=1)
