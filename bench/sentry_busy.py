"""Is the Sentry busy or asleep while a workload runs? Where a sandboxed workload is slow,
this says whether the time goes to the Sentry's own CPU (then only cheaper syscalls help) or
to waiting (then waking up sooner helps).

Runs `runpsc do -- sh -c SCRIPT` and, over a window of its run, samples the scheduler's
accounting (/proc/PID/schedstat: time on a CPU, time runnable but waiting for one) of the
Sentry's thread and of every stub process below it. "asleep" is the rest of the window:
the Sentry waiting for a stub or for I/O (the stubs run meanwhile: pinned placement puts
them on the Sentry's CPU).

Run: .venv/bin/python bench/sentry_busy.py [--settle S] [--window S] WORKLOAD
with WORKLOAD one of: unix (bench/unix_socket_roundtrips.py's program), redis, iperf.
Prints one line; not a test (figures depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import network_throughput  # noqa: E402
from cprogs import build  # noqa: E402


def _schedstat(pid: int) -> tuple[int, int]:
    """(ns on a CPU, ns runnable and waiting) of `pid`'s main thread; zeros once gone."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            run, wait, _ = f.read().split()
        return int(run), int(wait)
    except (OSError, ValueError):
        return 0, 0


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def _stubs(pid: int) -> dict[int, tuple[int, int]]:
    return {k: _schedstat(k) for k in _descendants(pid)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", choices=["unix", "redis", "iperf"])
    ap.add_argument("--settle", type=float, default=3.0, help="seconds before the window")
    ap.add_argument("--window", type=float, default=4.0, help="seconds sampled")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if a.workload == "unix":
            build("unix_roundtrips", Path(tmp), "-static")
            argv = [f"--volume={tmp}:/b", "--", "/b/unix_roundtrips", "20000"]
        elif a.workload == "redis":
            argv = ["--", "sh", "-c", network_throughput.REDIS.format(requests=20000)]
        else:
            argv = ["--", "sh", "-c", network_throughput.IPERF.format(
                seconds=int(a.settle + a.window + 2))]
        p = subprocess.Popen([sys.executable, "-m", "runtime.cli", "do", *argv], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(a.settle)
            s0, k0, t0 = _schedstat(p.pid), _stubs(p.pid), time.monotonic_ns()
            time.sleep(a.window)
            s1, k1, t1 = _schedstat(p.pid), _stubs(p.pid), time.monotonic_ns()
            if p.poll() is not None:
                sys.exit("the workload ended inside the window: use a shorter --window")
        finally:
            p.wait()
    wall = t1 - t0
    run, rq = s1[0] - s0[0], s1[1] - s0[1]
    # stubs alive at both ends of the window (one that came or went would count wrongly)
    both = k0.keys() & k1.keys()
    krun = sum(k1[k][0] - k0[k][0] for k in both)
    krq = sum(k1[k][1] - k0[k][1] for k in both)
    pct = lambda ns: f"{100 * ns / wall:4.1f}%"  # noqa: E731
    print(f"{a.workload}: window {wall / 1e9:.2f} s, load {os.getloadavg()[0]:.1f}: Sentry "
          f"on a CPU {pct(run)}, runnable waiting {pct(rq)}, asleep {pct(wall - run - rq)}; "
          f"stubs on a CPU {pct(krun)}, runnable waiting {pct(krq)}")


if __name__ == "__main__":
    main()
