"""Unix-socket round trips per second: native next to the sandbox, interleaved in one run.

A C program (bench/progs/unix_roundtrips.c) makes a socketpair (stream, then datagram), forks an echo child and times N
round trips of a 64-byte message (write, then read the echo) with CLOCK_MONOTONIC (vDSO,
no syscall); then the same over two pipes, for scale (the platform's cost without sockets). Each round runs the program natively and under `runpsc do`, alternating, so
both see the same machine load; the table gives medians and the ratio.

Run: .venv/bin/python bench/unix_socket_roundtrips.py [--iterations N] [--rounds R]
Prints a table; not a test (figures depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from cprogs import build

ROOT = Path(__file__).resolve().parent.parent



def run(argv: list[str]) -> dict[str, float]:
    out = subprocess.run(argv, capture_output=True, check=True, timeout=600).stdout.decode()
    return {name: float(v) for name, v in (line.split() for line in out.splitlines())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exe = build("unix_roundtrips", Path(tmp), "-static")
        sandbox = [sys.executable, "-m", "runtime.cli", "do", f"--volume={tmp}:/b", "--",
                   "/b/unix_roundtrips", str(args.iterations)]
        native_argv = [str(exe), str(args.iterations)]
        got: dict[str, dict[str, list[float]]] = {"native": {}, "runpsc": {}}
        for _ in range(args.rounds):
            for who, argv in (("native", native_argv), ("runpsc", sandbox)):
                for name, v in run(argv).items():
                    got[who].setdefault(name, []).append(v)
    print(f"unix-socket round trips/s, 64-byte messages, {args.iterations} per run, "
          f"median of {args.rounds} interleaved runs")
    print("| channel | native | runpsc | runpsc/native |")
    print("|---|---|---|---|")
    for name in got["native"]:
        n = statistics.median(got["native"][name])
        r = statistics.median(got["runpsc"][name])
        print(f"| {name} | {n:,.0f} | {r:,.0f} | {r / n:.3f} |")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
