"""Shell `trap` handlers under `runpsc do`, compared with native runs: the shells install
handlers with rt_sigaction, send with kill, and reap a child killed by SIGTERM."""

import subprocess

import pytest

from tests.runtime.test_do import ROOT, runpsc
from tests.support import native_child_setup, need_binary

# The TERM trap is reset before `sleep 5 &`: a child forked while the trap is set may take
# the kill before it resets the inherited handler, so even native busybox printed status 0
# or 143 at random.
SCRIPT = ('trap "echo got" USR1; kill -USR1 $$; echo done; trap "echo term" TERM;'
          ' kill -TERM $$; echo after; trap - TERM; sleep 5 & kill $!; wait $!; echo status $?;'
          ' trap "echo bye" EXIT')


def compare(argv: list[str]) -> None:
    want = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, cwd=ROOT,
                          timeout=60, preexec_fn=native_child_setup)
    got = runpsc("do", "--", *argv, timeout=60)
    assert want.stdout, want
    assert (got.stdout, got.returncode) == (want.stdout, want.returncode), got.stderr


@pytest.mark.parametrize("shell", [["bash", "-c"], ["busybox", "sh", "-c"]],
                         ids=["bash", "busybox"])
def test_trap_matches_native(shell):
    need_binary(shell[0], "busybox-static" if shell[0] == "busybox" else "bash")
    compare([*shell, SCRIPT])


def test_bash_trap_from_the_issue():
    compare(["bash", "-c", 'trap "echo got" USR1; kill -USR1 $$; echo done'])
