"""Python function calls the Sentry makes per application syscall (issue 18's per-call
work): bench/progs/calls.c's loop of one call (stat, openclose, pread4k, mmap64k ...) run
in an in-process Kernel whose root is a tmpfs (bench/syscall_overhead.py's `in_runpsc`),
under cProfile, twice with different counts; the slope of cProfile's call count is the
calls per loop iteration, builtins included (a C loop call, a ctypes or cffi call count
as one each), with the functions behind it. Unlike wall time it does not move with the
machine's load, so a change's effect shows in one run of each tree. Then, without the
profiler, the Sentry thread's CPU time per iteration (time.thread_time's slope over the
same two lengths, best of --repeat): user and system time of the handler, the dispatch
and the platform's round trip, which other processes' load moves far less than wall time.

Run: .venv/bin/python bench/python_calls.py MODE [--tree DIR] [--platform seccomp]
     [--top 40]
(--tree: the source tree whose Sentry runs, e.g. an older commit's worktree with its cffi
extensions copied in; default: this one). Not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", help="a bench/progs/calls.c mode: stat, openclose, pread4k ...")
    ap.add_argument("--tree", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--platform", default="seccomp")
    ap.add_argument("--counts", default="2000,4000", help="two loop lengths")
    ap.add_argument("--top", type=int, default=40, help="functions listed")
    ap.add_argument("--repeat", type=int, default=3, help="CPU time runs (best taken)")
    args = ap.parse_args()
    tree = Path(args.tree).resolve()
    sys.path[:0] = [str(tree / "bench"), str(tree)]
    import trio
    from cprogs import build
    from syscall_overhead import in_runpsc, placed

    os.environ["RUNPSC_PLATFORM"] = args.platform
    with tempfile.TemporaryDirectory(prefix="runpsc-bench-") as tmp:
        prog = str(build("calls", Path(tmp), "-static"))
        measure(prog, args, trio, in_runpsc, placed, tree)


def measure(prog: str, args: argparse.Namespace, trio: Any, in_runpsc: Any, placed: Any,
            tree: Path) -> None:
    """The two counts and the CPU slope of `prog`'s loop (see the module docstring)."""
    data = os.urandom(4096)
    placed("pinned")
    trio.run(in_runpsc, prog, args.mode, 10, data)  # imports and first-time work
    n1, n2 = (int(x) for x in args.counts.split(","))
    per: dict[int, dict[tuple[str, int, str], int]] = {}
    for n in (n1, n2):
        pr = cProfile.Profile()
        pr.enable()
        trio.run(in_runpsc, prog, args.mode, n, data)
        pr.disable()
        per[n] = {k: v[1] for k, v in pstats.Stats(pr).stats.items()}  # type: ignore[attr-defined]
    total = (sum(per[n2].values()) - sum(per[n1].values())) / (n2 - n1)
    print(f"{args.mode} ({tree}, {args.platform}): {total:.1f} Python calls per iteration")
    slope = sorted(((c - per[n1].get(k, 0)) / (n2 - n1), k) for k, c in per[n2].items())
    for d, (file, line, fn) in [x for x in reversed(slope) if x[0] >= 0.5][:args.top]:
        print(f"{d:6.2f}  {file.replace(str(tree) + '/', '')}:{line} {fn}")
    cpu: dict[int, float] = {}
    for _ in range(max(1, args.repeat)):
        for n in (n1, n2):
            t0 = time.thread_time()
            trio.run(in_runpsc, prog, args.mode, n, data)
            cpu[n] = min(cpu.get(n, 1e9), time.thread_time() - t0)
    print(f"{args.mode}: Sentry thread CPU {(cpu[n2] - cpu[n1]) / (n2 - n1) * 1e6:.2f} µs "
          "per iteration")


if __name__ == "__main__":
    main()
