"""The floors of the platform mechanisms (issue 22): what answering one syscall costs with
each candidate mechanism alone, no Sentry, no Python, so the design is chosen on what the
mechanism allows rather than on what an implementation of it achieved.

Each floor is bench/progs/floors.c: a supervisor process answers every getpid of a target
process (the i-th with a value the target checks), by

- sysemu: PTRACE_SYSEMU, a ptrace stop per syscall (the ptrace platform's loop);
- seccomp: SECCOMP_RET_USER_NOTIF + SECCOMP_IOCTL_NOTIF_RECV/SEND, the filter installed
  with SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (candidate a, the common path);
- seccomp-sync: the same with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP on the listener;
- systrap: SECCOMP_RET_TRAP, the target's own SIGSYS handler puts the call on a shared
  page and FUTEX_WAKEs the supervisor, which answers and wakes it back (candidate b);
- systrap-spin: the same, each side polling the page a while before its FUTEX_WAIT (two
  CPUs only: on one, polling only delays the side it waits for);
- sigsys: no supervisor, the SIGSYS handler answers itself: what systrap pays for the
  trap (signal delivery and rt_sigreturn) before any wake-up;
- trace: SECCOMP_RET_TRACE + PTRACE_CONT (candidate a's path for calls that change
  registers: execve, rt_sigreturn, clone, arch_prctl, signal delivery).

Placements: "one", supervisor and target on the CPU the Sentry would pin them to
(sentry/platform/affinity.py, RUNPSC_CPU=auto); "two", the supervisor there and the target
on another CPU; "free", both on the caller's mask, placed by the scheduler.

Every round runs each mechanism in each placement once, the order rotating per round, so
all see the same load; the table gives µs per call, median (min-max) over the rounds.
`--tables calls` then prints the per-call rows inside `runpsc do` on each `--platform`
(and runsc's platforms with RUNSC=path), `--tables all` the workload table too
(bench/file_workloads.py, same rounds).

Run: .venv/bin/python bench/platform_floors.py [--rounds 5] [--iterations 20000]
     [--tables none|calls|all] [--platform ptrace,seccomp] [--find-dir /usr/lib]
Not a test (tests/bench/test_progs.py checks that every floor answers correctly).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import file_workloads
from cprogs import build

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: floors.c's mechanism -> what the row is
MECHANISMS = {
    "sysemu": "PTRACE_SYSEMU (the ptrace platform)",
    "seccomp": "seccomp user notification (a)",
    "seccomp-sync": "  + SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP",
    "systrap": "SIGSYS handler + futex (b)",
    "systrap-spin": "  + polling before FUTEX_WAIT",
    "sigsys": "  its trap alone (SIGSYS, no wake-up)",
    "trace": "SECCOMP_RET_TRACE + PTRACE_CONT",
}
LOCAL = {"sigsys"}  # one process: "two" would only mean where the caller runs
POLLING = {"systrap-spin"}  # not on one CPU: it would poll where the other side must run
CALL_ROWS = "getpid,umask,stat,read4k"
WORKLOAD_ROWS = "find,cp,python,gcc,bash,true"


def placements() -> dict[str, tuple[int, int]]:
    """placement -> (supervisor CPU, target CPU); -1: the caller's mask."""
    from sentry.platform import affinity

    os.environ.setdefault(affinity.ENV, "auto")
    cpu = affinity.choose()
    mask = sorted(os.sched_getaffinity(0))
    if cpu is None:  # a one-CPU mask, or RUNPSC_CPU=off: the first CPU of the mask
        cpu = mask[0]
    out = {"one": (cpu, cpu)}
    others = [c for c in mask if c != cpu]
    if others:
        out["two"] = (cpu, others[0])
    out["free"] = (-1, -1)
    return out


UNSUPPORTED = 3  # floors.c's exit status when the kernel lacks the mechanism


class Unsupported(Exception):
    """This kernel lacks the mechanism (its row is left empty)."""


def floor(exe: str, mechanism: str, n: int, where: tuple[int, int]) -> float:
    """ns per call of one run of `mechanism`'s floor with N calls; raises if the target
    did not get every answer right."""
    p = subprocess.run([exe, mechanism, str(n), *map(str, where)], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL)
    if p.returncode == UNSUPPORTED:
        raise Unsupported(p.stderr.strip())
    fields = p.stdout.split()
    if p.returncode != 0 or len(fields) != 4:
        raise RuntimeError(f"floor {mechanism} {where} failed ({p.returncode}): "
                           f"{p.stdout.strip()} {p.stderr.strip()[-300:]}")
    return float(fields[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=20000, help="calls per run")
    ap.add_argument("--only", default="", help="comma-separated mechanisms (default: all): "
                    + ", ".join(MECHANISMS))
    ap.add_argument("--tables", choices=["none", "calls", "all"], default="none",
                    help="then the per-call rows in the sandbox (calls), and the workload "
                         "rows (all), on each --platform")
    ap.add_argument("--platform", default="ptrace,seccomp", metavar="LIST",
                    help="runpsc platforms for --tables")
    ap.add_argument("--find-dir", default="/usr/lib", help="for --tables all")
    args = ap.parse_args()
    mechs = args.only.split(",") if args.only else list(MECHANISMS)
    where = placements()
    runs = [(m, pl) for m in mechs for pl in where
            if not (pl == "one" and m in POLLING) and not (pl == "two" and m in LOCAL)]
    tmp = Path(tempfile.mkdtemp(prefix="runpsc-floors-"))
    try:
        exe = build("floors", tmp)
        got: dict[tuple[str, str], list[float]] = {r: [] for r in runs}
        load0 = os.getloadavg()
        lacking: set[str] = set()
        for i in range(args.rounds):
            for r in runs[i % len(runs):] + runs[:i % len(runs)]:
                if r[0] in lacking:
                    continue
                try:
                    got[r].append(floor(exe, r[0], args.iterations, where[r[1]]) / 1000)
                except Unsupported as e:
                    print(f"{r[0]}: {e}; left out")
                    lacking.add(r[0])
        report(mechs, where, got, args, load0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.tables != "none":
        rows = CALL_ROWS if args.tables == "calls" else f"{CALL_ROWS},{WORKLOAD_ROWS}"
        file_workloads.main(["--rounds", str(args.rounds), "--iterations",
                             str(args.iterations), "--only", rows, "--platform",
                             args.platform, "--find-dir", args.find_dir])


def report(mechs: list[str], where: dict[str, tuple[int, int]],
           got: dict[tuple[str, str], list[float]], args: argparse.Namespace,
           load0: tuple[float, float, float]) -> None:
    """The floors table: µs per call, median (min-max), and the median over sysemu's."""
    load1 = os.getloadavg()
    cpus = {pl: "caller's mask" if s < 0 else f"supervisor CPU {s}, target CPU {t}"
            for pl, (s, t) in where.items()}
    print(f"platform floors, µs per getpid answered, median (min-max) of {args.rounds} "
          f"interleaved rounds of {args.iterations} calls; load average {load0[0]:.1f} -> "
          f"{load1[0]:.1f} (15 min {load1[2]:.1f}) on {os.cpu_count()} CPUs; "
          + "; ".join(f"{pl}: {c}" for pl, c in cpus.items()))
    print(f"| {'mechanism':<40} |" + "".join(f" {pl:>22} |" for pl in where)
          + "".join(f" {pl + '/sysemu':>12} |" for pl in where))
    print("|" + "---|" * (1 + 2 * len(where)))
    for m in mechs:
        cells, ratios = "", ""
        for pl in where:
            v = got.get((m, pl))
            base = got.get(("sysemu", pl))
            if not v:
                cells += f" {'-':>22} |"
                ratios += f" {'-':>12} |"
                continue
            med = statistics.median(v)
            cells += f" {f'{med:.2f} ({min(v):.2f}-{max(v):.2f})':>22} |"
            ratios += f" {med / statistics.median(base):>11.2f}x |" if base else f" {'-':>12} |"
        print(f"| {MECHANISMS[m]:<40} |{cells}{ratios}")
    print(flush=True)


if __name__ == "__main__":
    main()
