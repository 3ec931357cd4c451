"""CPU seconds of fixed network work inside the sandbox (issue 16): user + system time of
`runpsc do` and of everything it waited for (gofers, stubs), start-up included, for
`iperf3 -n SIZE` over loopback and for redis-benchmark's N SET + N GET (`-c 4`), each
runpsc column (bench/file_workloads.py's `runners`: `--platform`, `--tree NAME=DIR`)
alternating, medians. CPU time moves far less with the machine's load than wall time,
so a before/after of a change on a loaded machine is read here; bench/network_throughput.py
gives the throughput next to native.

Run: .venv/bin/python bench/network_cpu.py [--rounds N] [--tree before=DIR] [--platform P,Q]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from file_workloads import run_one, runners  # noqa: E402  (one way to run and time)

WORK = {
    "iperf3 -n {size}": "iperf3 -s -1 -p 5399 >/dev/null 2>&1 & "
                        "until ss -tlnH | grep -q :5399; do sleep 0.05; done; "
                        "iperf3 -c 127.0.0.1 -p 5399 -n {size} >/dev/null; wait",
    "redis-benchmark {requests} SET + GET":
        "cd /tmp; redis-server --port 6399 --bind 127.0.0.1 --save '' --appendonly no "
        "--logfile /tmp/r.log & r=$!; "
        "until redis-cli -p 6399 ping 2>/dev/null | grep -q PONG; do sleep 0.05; done; "
        "redis-benchmark -p 6399 -n {requests} -c 4 -q -t set,get >/dev/null; "
        "redis-cli -p 6399 shutdown nosave >/dev/null; wait $r",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", default="1G", help="iperf3 -n")
    ap.add_argument("--requests", type=int, default=4000, help="redis-benchmark -n")
    ap.add_argument("--platform", default="", metavar="LIST")
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=DIR")
    a = ap.parse_args()
    who = {k: v for k, v in runners(a.tree, [p for p in a.platform.split(",") if p]).items()
           if k != "native"}
    work = {name.format(size=a.size, requests=a.requests):
            script.format(size=a.size, requests=a.requests) for name, script in WORK.items()}
    got: dict[tuple[str, str], list[tuple[float, float]]] = {}
    load0 = os.getloadavg()
    for _ in range(a.rounds):
        for name, script in work.items():
            for w, (prefix, env) in who.items():
                wall, cpu, _ = run_one(prefix, ["sh", "-c", script], env, 600)
                got.setdefault((name, w), []).append((wall, cpu))
    print(f"load average {load0[0]:.1f} -> {os.getloadavg()[0]:.1f}; medians of {a.rounds}")
    for (name, w), v in got.items():
        print(f"{name:40} {w:16} wall {statistics.median(x[0] for x in v):7.2f} s"
              f"  CPU {statistics.median(x[1] for x in v):7.2f} s")


if __name__ == "__main__":
    main()
