"""Signals sent to the runpsc process reach the sandboxed program (as a terminal's ^C or a
`kill` reach a native one), compared with the same program run natively; and SIGKILL of
runpsc leaves no process of the sandbox behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.leftovers import descendants
from tests.runtime.test_do import ROOT
from tests.support import native_child_setup

TRAP = ["sh", "-c", 'trap "echo caught; exit 3" TERM; echo ready; while :; do sleep 0.1; done']
PLAIN = ["sh", "-c", "echo ready; exec sleep 30"]


def _signalled(argv: list[str], sig: int) -> tuple[bytes, int]:
    """Start `argv`, wait for its "ready" line, send `sig`; return (stdout, shell status)."""
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=native_child_setup)
    try:
        first = proc.stdout.readline()
        assert first == b"ready\n", (first, proc.stderr.read() if proc.poll() is not None else b"")
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    code = proc.returncode
    return first + rest, 128 - code if code < 0 else code


@pytest.mark.parametrize(("argv", "sig"), [(TRAP, signal.SIGTERM), (PLAIN, signal.SIGINT),
                                           (PLAIN, signal.SIGTERM), (PLAIN, signal.SIGHUP)],
                         ids=["trap-TERM", "INT", "TERM", "HUP"])
def test_host_signal_reaches_the_program(argv: list[str], sig: int) -> None:
    want = _signalled(argv, sig)
    got = _signalled([sys.executable, "-m", "runtime.cli", "do", "--", *argv], sig)
    assert got == want


def test_sigkill_of_runpsc_leaves_nothing_behind() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "do", "--", *PLAIN],
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, preexec_fn=native_child_setup)
    assert proc.stdout.readline() == b"ready\n"
    family = descendants(proc.pid)
    assert family, "runpsc should have a gofer and a stub running"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while (alive := {p for p in family if os.path.exists(f"/proc/{p}")
                     and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"}):
        assert time.monotonic() < deadline, f"left behind after SIGKILL of runpsc: {alive}"
        time.sleep(0.1)
