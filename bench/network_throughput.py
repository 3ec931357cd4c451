"""Networking inside the sandbox (issue 16), each figure next to native in the same run:

- iperf3: loopback TCP throughput, client and server both inside one sandbox (`--network
  none`), against both natively in a fresh network namespace (`unshare -n`, lo up);
- redis-benchmark: GET and SET requests per second against a redis-server in the same
  place (`-n N -c 4 -P 1`).

Run: .venv/bin/python bench/network_throughput.py [--rounds N] [--seconds S] [--requests N]
     [--platform ptrace,seccomp] [--tree before=DIR]
The rounds alternate native and sandbox runs (interleaved, so the machine's load touches
both alike); each row gives the median. `--platform` makes one runpsc column per platform,
`--tree NAME=DIR` adds runpsc from another source tree (before/after of a change under the
same load), as bench/file_workloads.py's options. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from file_workloads import runners  # noqa: E402  (one way to name the runpsc columns)

IPERF = ("iperf3 -s -1 -p 5399 >/dev/null 2>&1 & "
         "until ss -tlnH | grep -q :5399; do sleep 0.05; done; "
         "iperf3 -c 127.0.0.1 -p 5399 -t {seconds} -J; wait")

REDIS = ("cd /tmp; redis-server --port 6399 --bind 127.0.0.1 --save '' --appendonly no "
         "--logfile /tmp/redis-bench.log & r=$!; "
         "until redis-cli -p 6399 ping 2>/dev/null | grep -q PONG; do sleep 0.05; done; "
         "redis-benchmark -p 6399 -n {requests} -c 4 -q -t set,get --csv; "
         "redis-cli -p 6399 shutdown nosave >/dev/null; wait $r")


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    """Run argv in a session of its own; on a timeout or failure its whole process group
    goes (a server started in the background is no leftover)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=str(ROOT), start_new_session=True, env=env)
    try:
        out, err = p.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        sys.exit(f"{argv!r} timed out")
    if p.returncode != 0:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        sys.exit(f"{argv!r} failed: {err}")
    return out


def run(prefix: list[str], env: dict[str, str] | None, script: str) -> str:
    """`script` natively (an empty prefix: in a fresh `unshare -n` with lo up) or in
    `runpsc do` (the prefix and environment `runners` gives)."""
    if not prefix:
        return _run(["unshare", "-n", "sh", "-c", f"ip link set lo up; {script}"])
    return _run([*prefix, "sh", "-c", script], env)


def iperf_gbits(out: str) -> float:
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9


def redis_ops(out: str) -> dict[str, float]:
    """redis-benchmark --csv: "test","rps",... lines."""
    got = {}
    for line in out.splitlines():
        m = re.match(r'"(SET|GET)","([\d.]+)"', line)
        if m:
            got[m.group(1)] = float(m.group(2))
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--platform", default="", metavar="LIST",
                    help="comma-separated runpsc platforms, each a column runpsc-P")
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                    help="also run runpsc from the source tree DIR")
    a = ap.parse_args()
    who = runners(a.tree, [p for p in a.platform.split(",") if p])
    rows: dict[str, dict[str, list[float]]] = {}

    def add(name: str, where: str, v: float) -> None:
        rows.setdefault(name, {w: [] for w in who})[where].append(v)

    load0 = os.getloadavg()
    for _ in range(a.rounds):
        for where, (prefix, env) in who.items():
            add("iperf3 TCP loopback (Gbit/s)", where,
                iperf_gbits(run(prefix, env, IPERF.format(seconds=a.seconds))))
            for test, ops in redis_ops(run(prefix, env,
                                           REDIS.format(requests=a.requests))).items():
                add(f"redis-benchmark {test} (requests/s)", where, ops)
    print(f"load average {load0[0]:.1f} -> {os.getloadavg()[0]:.1f}; medians of {a.rounds}")
    print(f"{'workload':36}" + "".join(f" {w:>14}" for w in who)
          + "".join(f" {w + '/nat':>14}" for w in who if w != "native"))
    for name, v in rows.items():
        med = {w: statistics.median(v[w]) for w in who}
        print(f"{name:36}" + "".join(f" {med[w]:14.3f}" for w in who)
              + "".join(f" {med[w] / med['native']:14.4f}" for w in who if w != "native"))


if __name__ == "__main__":
    main()
