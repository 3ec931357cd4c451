"""Suite-wide guards."""

from __future__ import annotations

import signal
import warnings
from collections.abc import Iterator

import pytest


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
