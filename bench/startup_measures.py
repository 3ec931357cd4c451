"""What each start-up measure of `runpsc do` gains (runtime/startup.py): `runpsc do /bin/true`
with every measure on, and with each one off in turn (RUNPSC_STARTUP_OFF), interleaved.

A measure stays only while its gain is measurable; record the table in bench/RESULTS.md.
`--tree NAME=DIR` adds another source tree (e.g. an older commit's checkout, with its
bytecode compiled and cffi extensions built or copied) run through the same interleaving,
for before/after comparisons of the whole start; `--env NAME:VAR=VALUE` a run with one more
environment variable.

Wall time follows the machine's load (other processes on the same CPUs); the CPU time of
runpsc and the children it waited for moves much less, so both are printed.

Run: .venv/bin/python bench/startup_measures.py [--runs 15] [--tree before=/tmp/old]
Prints a table; not a test (figures depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syscall_overhead import do_true_command, interleaved  # noqa: E402 (bench/, as a script)

from runtime.startup import MEASURES, OFF_ENV  # noqa: E402


def quartile(times: list[float]) -> float:
    return statistics.quantiles(times, n=4)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15, help="runs of each variant")
    ap.add_argument("--measure", action="append", choices=MEASURES,
                    help="only these measures (repeatable; default: all)")
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                    help="also run `runpsc do /bin/true` from the source tree DIR")
    ap.add_argument("--env", action="append", default=[], metavar="NAME:VAR=VALUE",
                    help="also run it with VAR=VALUE in its environment (e.g. "
                         "no-cffi:RUNPSC_NO_CFFI=1)")
    args = ap.parse_args()
    base = {k: v for k, v in os.environ.items() if k not in (OFF_ENV, "PYTHONPATH")}
    cmd = do_true_command()
    variants: dict[str, list[str]] = {"all on": cmd}
    envs: dict[str, dict[str, str]] = {"all on": base}
    for m in args.measure or MEASURES:
        variants[f"{m} off"] = cmd
        envs[f"{m} off"] = {**base, OFF_ENV: m}
    for tree in args.tree:
        name, _, path = tree.partition("=")
        variants[name] = cmd
        envs[name] = {**base, "PYTHONPATH": str(Path(path).resolve())}
    for spec in args.env:
        name, _, assignment = spec.partition(":")
        var, _, value = assignment.partition("=")
        variants[name] = cmd
        envs[name] = {**base, var: value}
    load0 = os.getloadavg()[0]
    times = interleaved(variants, args.runs, envs)
    load1 = os.getloadavg()[0]
    print(f"runpsc do /bin/true, wall ms, {args.runs} interleaved runs of each variant; "
          f"load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} CPUs")
    walls = {name: [w * 1000 for w, _ in t] for name, t in times.items()}
    cpus = {name: [c * 1000 for _, c in t] for name, t in times.items()}
    ref_wall, ref_cpu = statistics.median(walls["all on"]), statistics.median(cpus["all on"])
    ref_cpu_q = quartile(cpus["all on"])
    print(f"  {'variant':<18}{'wall median':>12}{'lower q.':>10}{'CPU median':>12}"
          f"{'lower q.':>10}{'difference: wall':>18}{'CPU':>7}{'CPU l.q.':>10}")
    for name in times:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        cpu_q = quartile(cpus[name])
        diff = (f"{wall - ref_wall:>+18.1f}{cpu - ref_cpu:>+7.1f}{cpu_q - ref_cpu_q:>+10.1f}"
                if name != "all on" else "")
        print(f"  {name:<18}{wall:>12.1f}{quartile(walls[name]):>10.1f}{cpu:>12.1f}"
              f"{cpu_q:>10.1f}{diff}")
    print("  difference: the variant's figure minus all on's; for a measure turned off, "
          "what the measure gains")

if __name__ == "__main__":
    main()
