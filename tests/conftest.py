"""Suite-wide guards: the signal mask, processes left behind, and the optional load."""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Iterator

import pytest

from tests import leftovers
from tests.load import Load, requested


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--load", action="store_true",
                     help="run under a load generator that keeps every CPU busy "
                          "(also RUNPSC_TEST_LOAD=1); see tests/load.py")


def pytest_configure(config: pytest.Config) -> None:
    # Orphans of what a test starts come to pytest, so `_no_process_left_behind` sees them.
    leftovers.become_subreaper()


@pytest.fixture(scope="session", autouse=True)
def _load(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every CPU kept busy for the whole session when asked for (killed at its end)."""
    if not requested(request.config.getoption("--load")):
        yield
        return
    with Load():
        yield


@pytest.fixture(autouse=True)
def _no_process_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """A process a test started and left running (a native reference program, a stub, a
    server) would run on into later tests or after the suite: kill it and fail the test,
    naming it. Peers of session or module fixtures were there before the test started."""
    before = set(leftovers.children(os.getpid()))
    yield
    left = leftovers.clean_up_after(before)
    if left:
        pytest.fail(f"{request.node.nodeid} left processes behind: " + "; ".join(left),
                    pytrace=False)


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
