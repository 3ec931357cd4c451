"""Per-syscall cost on each platform of the Sentry (ptrace, seccomp), measured in one run,
interleaved (each repetition runs every platform in turn, so load on the machine falls on
both alike); the best of the repetitions is printed, with native for reference.

Calls (bench/syscall_overhead.py's program): getppid (answered again in C after the
first, on both platforms), umask (Python's dispatch every time), openclose, stat and
pread4k (pread of 4 KiB). Pinned placement (RUNPSC_CPU=auto, the default). Also the floor
of each mechanism, on the same CPU: bench/progs/floors.c's minimal C PTRACE_SYSEMU loop
and its minimal C seccomp user-notification loop (synchronous wake-up), each answering
getpid.

Run: .venv/bin/python bench/platforms.py [--iterations N] [--repeat R]
Prints a table; not a test (figures depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cprogs import build  # noqa: E402
from syscall_overhead import MODES, in_runpsc, placed  # noqa: E402

PLATFORMS = ("ptrace", "seccomp")
#: Each platform's floor: bench/progs/floors.c's minimal C loop of its mechanism (seccomp:
#: with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, as the platform sets it).
FLOORS = {"ptrace": "sysemu", "seccomp": "seccomp-sync"}


def floor_run(floors: str, mech: str, n: int, cpu: int | None) -> float:
    """One run of a floor, supervisor and target on `cpu` (None: unpinned); ns per call."""
    where = str(-1 if cpu is None else cpu)
    out = subprocess.run([floors, mech, str(n), where, where], capture_output=True,
                         check=True, text=True).stdout
    return float(out.split()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n, rep = args.iterations, max(1, args.repeat)
    tmp = Path(tempfile.mkdtemp(prefix="runpsc-bench-"))
    try:
        prog = build("calls", tmp, "-static")
        data = os.urandom(4096)
        (tmp / "data").write_bytes(data)
        floors = build("floors", tmp)
        cpu = placed("pinned")
        load0 = os.getloadavg()[0]
        best: dict[tuple[str, str], float] = {}
        for _ in range(rep):
            for p, mech in FLOORS.items():
                got = floor_run(floors, mech, n, cpu)
                best[(p, "floor")] = min(best.get((p, "floor"), got), got)
        for mode in MODES:
            for _ in range(rep):
                nat = float(subprocess.run([prog, mode, str(n * 10), str(tmp / "data")],
                                           capture_output=True, check=True).stdout)
                best[("native", mode)] = min(best.get(("native", mode), nat), nat)
                for p in PLATFORMS:
                    os.environ["RUNPSC_PLATFORM"] = p
                    got = trio.run(in_runpsc, prog, mode, n, data)
                    best[(p, mode)] = min(best.get((p, mode), got), got)
        print(f"ns per call, best of {rep} runs of {n} calls (load {load0:.1f} -> "
              f"{os.getloadavg()[0]:.1f})")
        print(f"{'call':<10} {'native':>8} " + " ".join(f"{p:>8}" for p in PLATFORMS)
              + "  ptrace/seccomp")
        print(f"{'C floor':<10} {'':>8} " + " ".join(f"{best[(p, 'floor')]:>8.0f}"
                                                    for p in PLATFORMS))
        for mode in MODES:
            row = [best[(p, mode)] for p in PLATFORMS]
            print(f"{mode:<10} {best[('native', mode)]:>8.0f} "
                  + " ".join(f"{v:>8.0f}" for v in row) + f"  {row[0] / row[1]:>8.2f}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
