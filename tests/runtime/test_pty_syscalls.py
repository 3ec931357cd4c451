"""A program that opens its own pseudo-terminals (progs/pty.c) in the sandbox and natively:
ptmx and pts names, the line discipline (erase, kill, werase, EOF, ICRNL, ECHOCTL, ONLCR,
raw mode and VMIN/VTIME, switching modes), termios and window-size ioctls and their errors
(EFAULT, EINVAL, ENOTTY, EIO), a session acquiring its controlling terminal, ^C/^\\ and
SIGWINCH to the foreground group, SIGTTOU/SIGTTIN for a background group, TIOCNOTTY and
TIOCSCTTY, and hang-up when the master closes. The outputs must be identical."""

from __future__ import annotations

import subprocess

from tests.runtime.test_do import runpsc
from tests.sentry.progs.harness import build
from tests.support import native_child_setup


def test_pty_program_matches_linux(tmp_path):
    prog = build(tmp_path, "pty", static=False)
    want = subprocess.run([prog], capture_output=True, stdin=subprocess.DEVNULL, timeout=60,
                          preexec_fn=native_child_setup)
    assert want.returncode == 0 and b"hung-up child: got signal 1\n" in want.stdout, want
    got = runpsc("do", "--volume", f"{tmp_path}:/progs:ro", "--", "/progs/pty")
    assert got.stdout.decode() == want.stdout.decode(), got.stderr
    assert got.returncode == 0
