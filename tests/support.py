"""Shared test helpers: how a test asks for a peer or a privilege it cannot run without.

Under CI (CI=true) a missing peer is a failure, so a green run means everything ran; outside
CI the test is skipped with a message that says what to install.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str, hint: str) -> None:
    """Fail (under CI) or skip (elsewhere) because `what` is not available."""
    message = f"{what} is not available: {hint}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def need_binary(name: str, package: str | None = None) -> str:
    """Return the path of executable `name`, or fail/skip naming the Debian package."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
        None,
    )
    if path is None:
        missing(name, f"apt-get install {package or name} (or run scripts/setup.sh)")
    return path


def native_child_setup() -> None:
    """`preexec_fn` for a native reference run (or a runpsc run compared with one): no core
    file in the cwd if it crashes, no signal blocked whatever the test process blocks (an
    in-process Sentry blocks SIGCHLD while it serves), and no signal ignored whatever the
    suite was started with (`nohup`, a CI job started in the background: an ignored
    disposition survives exec, so a native program would ignore the SIGINT or SIGHUP a test
    sends), so both sides start alike."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for sig in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def need_root() -> None:
    """Fail/skip unless running as root."""
    if os.geteuid() != 0:
        missing("root", "run the test as root")
