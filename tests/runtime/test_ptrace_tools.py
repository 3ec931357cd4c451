"""ptrace inside `runpsc do` (sentry/kernel/ptrace.py), on both platforms, compared with the
native run of the same script: progs/ptrace.c (a tracer of its own children through every
kind of stop, registers, memory, events, errors and /proc/PID/status's TracerPid; its
output holds only relations, no pids or addresses), then Debian's `strace -f` of a shell
pipeline (the set of trace lines, pids and addresses masked) and `gdb -batch` running a
program that segfaults to a breakpoint (int3), on to the fault (stepping over the
breakpoint), with a backtrace at each (the signal and the backtraces' functions)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.runtime.test_do import runpsc
from tests.sentry.progs.harness import build
from tests.support import native_child_setup, need_binary, need_root

SEGV_C = rb"""#include <stdio.h>
static int crash(int *p) { return *p + 1; }
static int middle(int *p) { return crash(p) * 2; }
int main(void) { puts("before"); fflush(stdout); return middle((int *)0); }
"""


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> str:
    need_root()  # progs/ptrace.c drops to uid 65534 to be refused
    strace, gdb, gcc = need_binary("strace"), need_binary("gdb"), need_binary("gcc")
    d = tmp_path_factory.mktemp("ptrace")
    prog = build(d, "ptrace")
    (d / "segv.c").write_bytes(SEGV_C)
    subprocess.run([gcc, "-g", "-O0", "-o", str(d / "segv"), str(d / "segv.c")], check=True)
    os.chmod(d, 0o755)
    return (f"{prog}; echo \"== status $?\"; "
            # one file per process (-ff): strace's lines are never cut by another's
            f"t=$(mktemp -d); {strace} -q -ff -o $t/tr -e trace=openat,write,execve "
            f"sh -c 'echo hi | cat >/dev/null'; cat $t/tr.*; rm -r $t; "
            f"echo '== gdb'; {gdb} -nx -batch -ex 'break middle' -ex run -ex bt -ex cont -ex bt "
            f"--args {d / 'segv'} 2>&1")


def _parts(out: str) -> tuple[str, set[str], list[str]]:
    """The C program's output; strace's lines with pids, addresses and times masked; the
    signal gdb reported and the functions of its backtrace."""
    prog, rest = out.split("== status", 1)
    trace, gdb = rest.split("== gdb", 1)
    masked = {re.sub(r"0x[0-9a-f]+|(?<=si_pid=)\d+|(?<=_utime=)\d+|(?<=_stime=)\d+", "N",
                     line) for line in trace.splitlines()[1:]}
    seen = re.findall(r"^Program received signal (\w+)|^#\d+ +(?:0x\w+ in )?(\w+) \(", gdb,
                      re.M)
    return prog + rest.split("\n", 1)[0], masked, [a or b for a, b in seen]


@pytest.mark.parametrize("platform", ["ptrace", "seccomp"])
def test_ptrace_program_strace_and_gdb_match_linux(script, platform):
    want = subprocess.run(["sh", "-c", script], capture_output=True, timeout=120,
                          preexec_fn=native_child_setup, stdin=subprocess.DEVNULL)
    w_prog, w_trace, w_gdb = _parts(want.stdout.decode())
    assert "exit -1 rax=42" in w_prog and "done\n" in w_prog, want  # a sane oracle
    assert w_gdb == ["middle", "main", "SIGSEGV", "crash", "middle", "main"], want.stdout.decode()
    assert any(re.fullmatch(r'write\(1, "hi\\n", 3\) += 3', line) for line in w_trace), w_trace
    assert "+++ exited with 0 +++" in w_trace, w_trace
    got = runpsc("do", "--platform", platform, "--", "sh", "-c", script)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    g_prog, g_trace, g_gdb = _parts(got.stdout.decode())
    assert g_prog == w_prog
    assert g_trace == w_trace
    assert g_gdb == w_gdb
    assert b"runpsc:" not in got.stderr, got.stderr  # no unsupported call, no internal error
