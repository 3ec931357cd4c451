"""What the confined Sentry's seccomp allow-list costs per application syscall.

Each round runs the same loop (bench/progs/calls.c) in two fresh processes, one after the
other: a plain Sentry, and one that forked its stub zygote and put itself under the
Sentry's filter (`runtime.confine.restrict_syscalls`) first. Only the filter differs: no
other wall is put up (they need root and a booted sandbox; their cost is startup only).

Run: .venv/bin/python bench/sentry_seccomp.py [--rounds N] [--iterations N] [--platform P]
Prints the medians; not a test (figures depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import trio
from cprogs import build

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syscall_overhead import in_runpsc  # noqa: E402 - after the path is set


def one(prog: str, mode: str, n: int, filtered: bool) -> float:
    """ns per call of `mode` in a forked Sentry, filtered or not."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            zygote = None
            if filtered:
                from runtime.confine import restrict_syscalls

                zygote = restrict_syscalls()
            ns = trio.run(in_runpsc, prog, mode, n, b"x" * 4096, zygote)
            os.write(w, repr(ns).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    out = os.read(r, 100)
    os.close(r)
    _, st = os.waitpid(pid, 0)
    if st != 0 or not out:
        raise RuntimeError(f"round failed: wait status {st:#x}")
    return float(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--platform", choices=("ptrace", "seccomp"), default="ptrace")
    args = ap.parse_args()
    os.environ["RUNPSC_PLATFORM"] = args.platform
    import sentry.syscalls  # noqa: F401 - imported once, before the forks

    with tempfile.TemporaryDirectory() as tmp:
        prog = build("calls", Path(tmp), "-static")
        for mode in ("getppid", "umask", "pread4k"):
            got: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.rounds):
                for filtered in (False, True):
                    got[filtered].append(one(prog, mode, args.iterations, filtered))
            plain, filt = statistics.median(got[False]), statistics.median(got[True])
            print(f"{args.platform} {mode:8} plain {plain:8.0f} ns  filtered {filt:8.0f} ns"
                  f"  ratio {filt / plain:.3f}")


if __name__ == "__main__":
    main()
