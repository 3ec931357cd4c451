#!/usr/bin/env python3
"""The random-syscall fuzzer's long run: tests/sentry/progs/syscall_fuzz.c under `runpsc do`,
round after round (a new seed each), until --calls random calls were made or --rounds ran.

Each round runs the fuzzer in a fresh volume with WORKERS processes of THREADS threads and
checks what tests/sentry/test_syscall_fuzz.py checks: no internal error of the Sentry, no
STUCK call (one a signal could not interrupt), no file outside the volume, the whole
budget of calls made, the run ended (a round longer than --timeout is a hang). Prints one
line per round and a summary: calls made, calls per second, internal errors, stuck calls,
hangs, worker deaths (a random call may legitimately kill its process: it is replaced).

    .venv/bin/python bench/syscall_fuzz.py [--calls 200000] [--per-round 20000]
        [--seed 1] [--workers 3] [--threads 3] [--timeout 1800] [--keep DIR]

Rounds whose run failed keep their stdout/stderr in --keep (default: a temporary
directory, printed). Not a test: it runs for as long as asked.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.sentry.test_syscall_fuzz import host_effects, internal_errors, run_fuzzer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--per-round", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=0, help="stop after this many (0: no bound)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--keep", default="")
    args = ap.parse_args()
    keep = Path(args.keep or tempfile.mkdtemp(prefix="syscall-fuzz-"))
    keep.mkdir(parents=True, exist_ok=True)
    total = errors = stuck = hangs = deaths = failed = rounds = 0
    start = time.monotonic()
    seed = args.seed
    while total < args.calls and (not args.rounds or rounds < args.rounds):
        tmp = Path(tempfile.mkdtemp(prefix="syscall-fuzz-round-"))
        t0 = time.monotonic()
        try:
            got, fig = run_fuzzer(tmp, seed, args.per_round, args.workers, args.threads,
                                  args.timeout)
            ie = internal_errors(got.stderr)
            outside = host_effects(tmp)
            ok = (not ie and got.returncode == 0 and fig.get("calls") == args.per_round
                  and not fig.get("stuck") and not outside)
        except subprocess.TimeoutExpired as e:
            got, fig, ie, outside, ok = e, {}, [], [], False
            hangs += 1
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        rounds += 1
        total += fig.get("calls", 0)
        errors += len(ie)
        stuck += fig.get("stuck", 0)
        deaths += fig.get("deaths", 0)
        if not ok:
            failed += 1
            for name in ("stdout", "stderr"):
                (keep / f"seed{seed}.{name}").write_bytes(getattr(got, name, b"") or b"")
        print(f"seed {seed}: {fig.get('calls', 0)} calls in {time.monotonic() - t0:.0f} s, "
              f"internal errors {len(ie)}, stuck {fig.get('stuck', '?')}, worker deaths "
              f"{fig.get('deaths', '?')}, outside {outside or 'nothing'}"
              f"{'' if ok else ' FAILED (kept in ' + str(keep) + ')'}", flush=True)
        for line in ie[:5]:
            print("   ", line)
        seed += 1
    secs = time.monotonic() - start
    print(f"total: {total} calls in {rounds} rounds, {secs:.0f} s ({total / secs:.0f} calls/s); "
          f"internal errors {errors}, stuck calls {stuck}, hangs {hangs}, worker deaths "
          f"{deaths}, failed rounds {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
