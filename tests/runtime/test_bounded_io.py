"""Big transfers are capped and bounded (issue 19, finding 3; progs/bigio.c): one read,
write, readv, writev, pread, pwrite or sendfile moves at most 0x7ffff000 bytes
(MAX_RW_COUNT) and returns that short count, as Linux; and the Sentry moves the data in
chunks (sys_file.CHUNK), so three threads each reading 3 GiB from /dev/zero at once, then
the rest, leave the Sentry's peak memory (VmHWM of the `runpsc do` process, read while the
program waits at the end) under SENTRY_PEAK_BOUND, the bound sentry/README.md states
(before the chunks: 4.2 GB)."""

from __future__ import annotations

import subprocess
import sys

from tests.runtime.test_do import ROOT
from tests.sentry.progs.harness import build
from tests.support import native_child_setup

SENTRY_PEAK_BOUND = 128 << 20


def vm_hwm(pid: int) -> int:
    """The peak resident set of process `pid`, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_big_transfers_are_capped_and_the_sentry_stays_bounded(tmp_path):
    prog = build(tmp_path, "bigio")
    want = subprocess.run([prog], capture_output=True, stdin=subprocess.DEVNULL,
                          preexec_fn=native_child_setup, timeout=900)
    assert want.returncode == 0, want.stderr
    assert want.stdout.count(b": 0x7ffff000\n") == 9, want.stdout  # a sane oracle
    p = subprocess.Popen([sys.executable, "-m", "runtime.cli", "do",
                          f"--volume={tmp_path}:/progs:ro", "--", "/progs/bigio", "wait"],
                         cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        assert p.stdout is not None and p.stdin is not None
        lines = []
        while (line := p.stdout.readline()) not in (b"", b"done\n"):
            lines.append(line)
        peak = vm_hwm(p.pid)  # the program waits for stdin: the Sentry is still there
        p.stdin.close()
        assert p.wait(timeout=900) == 0, p.stderr.read() if p.stderr else b""
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert b"".join(lines) == want.stdout
    assert peak < SENTRY_PEAK_BOUND, f"the Sentry's peak memory was {peak >> 20} MiB"
