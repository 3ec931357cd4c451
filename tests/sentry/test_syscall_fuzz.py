"""The random-syscall fuzzer (progs/syscall_fuzz.c) under `runpsc do`, a short run with a
fixed seed: a few thousand random calls from two processes of two threads each (and their
replacements when a random call kills one), with pointers into mapped, unmapped, read-only
and stub memory. The Sentry must never fail internally (the `internal-error` event, which
`runpsc do` prints as "runpsc: internal error in ..."), never hang (the run is bounded by
its number of calls; the timeout is only a safety net, and a call that a signal cannot
interrupt is reported STUCK), and never touch the host outside the fuzzer's own fresh
volume. bench/syscall_fuzz.py is the long run."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from sentry.platform.stub import STUB_ADDR, STUB_END
from tests.runtime.test_do import runpsc
from tests.support import need_binary, need_root

PROG = Path(__file__).resolve().parent / "progs" / "syscall_fuzz.c"
SEED, CALLS, WORKERS, THREADS = 1, 5000, 2, 2
#: Names the fuzzer tries to create outside its directory (its path pool has them).
OUTSIDE = ("fuzz-outside-mark",)


def build_fuzzer(bindir: Path) -> Path:
    """The fuzzer, static, in `bindir` (mounted read-only into the sandbox)."""
    gcc = need_binary("gcc")
    bindir.mkdir(exist_ok=True)
    out = bindir / "syscall_fuzz"
    subprocess.run([gcc, "-static", "-O1", "-Wall", "-Werror", "-pthread", "-o", str(out),
                    str(PROG)], check=True, capture_output=True)
    return out


def run_fuzzer(tmp: Path, seed: int, calls: int, workers: int, threads: int,
               timeout: float) -> tuple[subprocess.CompletedProcess, dict[str, int]]:
    """Run the fuzzer in a fresh volume under tmp; its result and its report's figures."""
    prog = build_fuzzer(tmp / "bin")
    vol = tmp / "vol"
    vol.mkdir()
    got = runpsc("do", "--volume", f"{vol}:/fuzz", "--volume", f"{prog.parent}:/b:ro",
                 "--cwd", "/fuzz", "--", f"/b/{prog.name}", str(seed), str(calls),
                 str(workers), str(threads), hex(STUB_ADDR), hex(STUB_END), timeout=timeout)
    report = re.findall(rb"fuzz: calls (\d+) skipped (\d+) worker-deaths (\d+) kicks (\d+) "
                        rb"stuck (\d+)", got.stdout)
    figures = dict(zip(("calls", "skipped", "deaths", "kicks", "stuck"),
                       map(int, report[-1]), strict=True)) if report else {}
    return got, figures


def host_effects(tmp: Path) -> list[str]:
    """What the fuzzer made outside its volume: beside it, or in the host's /tmp."""
    found = sorted(set(os.listdir(tmp)) - {"bin", "vol"})
    found += [f"/tmp/{n}" for n in OUTSIDE if os.path.lexists(f"/tmp/{n}")]
    return found


def internal_errors(stderr: bytes) -> list[str]:
    return [line for line in stderr.decode(errors="replace").splitlines()
            if "internal error" in line]


def test_random_syscalls_never_break_the_sentry(tmp_path):
    need_root()
    got, figures = run_fuzzer(tmp_path, SEED, CALLS, WORKERS, THREADS, timeout=600)
    assert internal_errors(got.stderr) == []
    assert got.returncode == 0, got.stderr.decode(errors="replace")[-3000:]
    assert figures.get("calls") == CALLS, got.stdout[-2000:]
    assert figures["stuck"] == 0, got.stdout[-2000:]
    assert host_effects(tmp_path) == []
