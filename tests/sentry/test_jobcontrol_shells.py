"""`kill -STOP` / `kill -CONT` from bash and busybox sh under `runpsc do`, compared with
native runs: a stopped job shows State T in /proc, keeps a SIGTERM pending until it is
continued, dies at once from SIGKILL, and `wait` reports each end as natively."""

import subprocess

import pytest

from tests.runtime.test_do import ROOT, runpsc
from tests.support import native_child_setup, need_binary

# Loops on /proc rather than sleeping, so nothing depends on timing.
SCRIPT = """
sleep 1 & p=$!
kill -STOP $p
until grep -q "T (stopped)" /proc/$p/status; do :; done; echo stopped
kill -CONT $p
until ! grep -q "T (stopped)" /proc/$p/status; do :; done; echo continued
wait $p; echo "exit $?"
sleep 5 & q=$!
kill -STOP $q
until grep -q "T (stopped)" /proc/$q/status; do :; done
kill -TERM $q
grep -c "T (stopped)" /proc/$q/status
kill -CONT $q; wait $q; echo "term after cont $?"
sleep 5 & r=$!
kill -STOP $r; until grep -q "T (stopped)" /proc/$r/status; do :; done
kill -KILL $r; wait $r; echo "killed $?"
"""


@pytest.mark.parametrize("shell", [["bash", "-c"], ["busybox", "sh", "-c"]],
                         ids=["bash", "busybox"])
def test_stop_and_continue_from_a_shell_match_native(shell):
    need_binary(shell[0], "busybox-static" if shell[0] == "busybox" else "bash")
    want = subprocess.run([*shell, SCRIPT], capture_output=True, stdin=subprocess.DEVNULL,
                          cwd=ROOT, timeout=60, preexec_fn=native_child_setup)
    assert want.stdout.endswith(b"killed 137\n"), want
    got = runpsc("do", "--", *shell, SCRIPT, timeout=120)
    assert (got.stdout, got.returncode) == (want.stdout, want.returncode), got.stderr
