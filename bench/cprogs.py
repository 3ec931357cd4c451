"""The benchmarks' C programs (bench/progs/*.c, sharing bench/progs/bench.h) and how a run
builds them: one source per program, compiled into the run's own directory, so the floors,
the per-call loops and their smoke test (tests/bench) run the same code.

Imported as `cprogs` by the scripts run from bench/ and as `bench.cprogs` from the tests.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

PROGS = Path(__file__).resolve().parent / "progs"


def build(name: str, outdir: Path, *flags: str) -> str:
    """Compile bench/progs/`name`.c with -O2 (and `flags`, e.g. -static for a sandbox
    whose root holds nothing else) into `outdir`; returns the executable's path."""
    exe = outdir / name
    subprocess.run(["gcc", "-O2", "-Wall", "-I", str(PROGS), "-o", str(exe),
                    str(PROGS / f"{name}.c"), *flags], check=True)
    return str(exe)
