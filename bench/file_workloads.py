"""File-heavy speed (issue 18): per-call costs and real workloads, native and under
`runpsc do` (and gVisor's `runsc do` if RUNSC=path is set), interleaved, with medians and
ratios to native measured in the same run.

Per-call rows: a C loop run in the sandbox (bench/progs/calls.c) times the call itself
(getpid; umask(022); open + close, stat of a file on the sandbox's root, i.e. the root
overlay's lower; read of 4 KiB of /dev/zero; pread of 4 KiB of that root file; a 64 KiB
anonymous mmap, a write to it and its munmap, as busybox find does per directory) and
prints ns per call. Workload rows: wall time of the whole command, run as
`/bin/sh -c` on the host's root, sandbox start included (as the `runpsc do /bin/true` row
shows it).

Every round runs each row natively, in runpsc (and runsc), in an order that rotates per
round, so all of them see the same load; the table gives medians over the rounds and the
ratio of each sandbox's median to native's. A second table gives the workloads' CPU time
(user + system of the command and of everything it waited for: runpsc's gofers and the
stubs its Sentry reaped), which moves much less with other processes' load than wall time. The load average before and after is printed:
on a shared machine compare ratios from one run, never absolute times across runs.

`--tree NAME=DIR` adds runpsc run from another source tree (e.g. an older commit's
checkout with its cffi extensions copied in) to the same interleaving, for before/after
figures of one change measured under the same load.

`--platform ptrace,seccomp` gives runpsc a column per platform (`runpsc do --platform P`);
with RUNSC, runsc has two: --platform=systrap and --platform=ptrace (one that runsc
refuses, e.g. systrap in a runsc from before mid-2023, is skipped with a line saying so).

Run: .venv/bin/python bench/file_workloads.py [--rounds 3] [--only find,stat]
     [--tree before=/tmp/old] [--platform ptrace,seccomp]
Not a test: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cprogs import build

HELLO_C = "int main(void) { return 0; }\n"

#: name -> (label, unit); per-call rows print ns per call, workloads take wall seconds.
CALLS = {
    "getpid": "getpid, µs",
    "umask": "umask(022), µs",
    "openclose": "open + close of a root file, µs",
    "stat": "stat of a root file, µs",
    "read4k": "read 4 KiB of /dev/zero, µs",
    "pread4k": "pread 4 KiB of a root file, µs",
    "mmap64k": "64 KiB anonymous mmap + write + munmap, µs",
    "tcp64": "TCP 127.0.0.1: write 64 B + read it, µs",
    "tcp128k": "TCP 127.0.0.1: write 128 KiB + read it all, µs",
    "epollctl": "epoll_ctl MOD of a TCP socket, µs",
    "epollwait": "epoll_wait(0) of one ready TCP socket, µs",
}


def workloads(work: Path, find_dir: str) -> dict[str, tuple[str, str]]:
    """name -> (label, shell command); `work` is a host directory the sandbox sees on its
    root (the root overlay's lower); `find` lists `find_dir`."""
    return {
        "find": (f"busybox find {find_dir} -xdev -name '*.so*', s",
                 f"busybox find {find_dir} -xdev -name '*.so*' >/dev/null"),
        "cp": ("cp -r /usr/share/doc /tmp/d && du -s, s",
               "d=$(mktemp -d) && cp -r /usr/share/doc $d/d && du -s $d/d >/dev/null; "
               "rm -rf $d"),
        "python": ("python3 -c 'import json, email, http.client', s",
                   "python3 -c 'import json, email, http.client'"),
        "gcc": ("gcc -O2 of a one-line program, s",
                f"d=$(mktemp -d) && gcc -O2 -o $d/h {work}/hello.c; rm -rf $d"),
        "bash": ("bash, 200 x $(echo 1), s",
                 "bash -c 'for i in $(seq 200); do x=$(echo 1); done'"),
        "true": ("runpsc do /bin/true (native: /bin/true), s", "/bin/true"),
    }


def runners(trees: list[str], platforms: list[str]
            ) -> dict[str, tuple[list[str], dict[str, str] | None]]:
    """name -> (argv prefix running a command, its environment): native; runpsc (from the
    source tree this file is in) on its default platform, or as runpsc-P on each platform
    P of `platforms` it accepts; runpsc from each `NAME=DIR` of `trees`; runsc on its
    systrap and ptrace platforms if RUNSC is set."""
    runpsc = str(Path(sys.executable).parent / "runpsc")
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    here = {**base, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out: dict[str, tuple[list[str], dict[str, str] | None]] = {"native": ([], None)}
    if not platforms:
        out["runpsc"] = ([runpsc, "do", "--"], here)
    for platform in platforms:
        prefix = platform_prefix(runpsc, platform, here)
        if prefix is not None:
            out[f"runpsc-{platform}"] = (prefix, here)
    for tree in trees:
        name, _, path = tree.partition("=")
        out[name] = ([runpsc, "do", "--"], {**base, "PYTHONPATH": str(Path(path).resolve())})
    if os.environ.get("RUNSC"):
        for platform in RUNSC_PLATFORMS:
            prefix = runsc_prefix(os.environ["RUNSC"], platform)
            if prefix is not None:
                out[f"runsc-{platform}"] = (prefix, None)
    return out


#: gVisor's platforms measured beside runpsc: its default, and the classic one.
RUNSC_PLATFORMS = ("systrap", "ptrace")


def runsc_prefix(runsc: str, platform: str) -> list[str] | None:
    """The argv prefix of `runsc do` on `platform`, or None, with a line saying why, if
    this runsc refuses it or cannot run `/bin/true` on it within a minute (a runsc older
    than systrap, mid-2023, knows only ptrace and kvm)."""
    argv = [runsc, "--rootless=false", "--network=none", f"--platform={platform}", "do"]
    try:
        p = subprocess.run([*argv, "/bin/true"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=60)
    except subprocess.TimeoutExpired:
        print(f"runsc-{platform}: skipped, `runsc do` did not finish /bin/true in 60 s")
        return None
    if p.returncode == 0:
        return argv
    why = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
    print(f"runsc-{platform}: skipped, `runsc --platform={platform} do` refused: {why}")
    return None


def platform_prefix(runpsc: str, platform: str, env: dict[str, str]) -> list[str] | None:
    """The argv prefix of `runpsc do` on `platform`, or None if this runpsc refuses it
    (`runpsc do --platform P -- /bin/true` fails), with a line saying so. A runpsc older
    than the option has one platform, ptrace: it runs without the option."""
    argv = [runpsc, "do", "--platform", platform, "--"]
    p = subprocess.run([*argv, "/bin/true"], capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL)
    if p.returncode == 0:
        return argv
    if "No such option" in p.stderr and platform == "ptrace":
        print("runpsc has no --platform option: runpsc-ptrace is runpsc on its only "
              "platform, ptrace")
        return [runpsc, "do", "--"]
    why = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
    print(f"runpsc-{platform}: skipped, `runpsc do --platform {platform}` refused: {why}")
    return None


def run_one(prefix: list[str], argv: list[str], env: dict[str, str] | None,
            timeout: float) -> tuple[float, float, bytes]:
    """Wall seconds, CPU seconds (user + system of the run and of every process it waited
    for: for runpsc its gofers and the stubs the Sentry reaped) and stdout of one run,
    which must succeed within `timeout` seconds.

    Raises:
        RuntimeError: it failed or took too long (the row's cell then says so).
    """
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        p = subprocess.run([*prefix, *argv], capture_output=True, stdin=subprocess.DEVNULL,
                           env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{[*prefix, *argv]} took over {timeout:.0f} s") from None
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{[*prefix, *argv]} failed ({p.returncode}): {p.stderr[-400:]!r}")
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    return wall, cpu, p.stdout


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=20000, help="calls per per-call run")
    ap.add_argument("--only", default="", help="comma-separated row names (default: all): "
                    + ", ".join([*CALLS, "find", "cp", "python", "gcc", "bash", "true"]))
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                    help="also run runpsc from the source tree DIR")
    ap.add_argument("--find-dir", default="/usr/lib",
                    help="the tree the find row lists (a smaller one for quick runs)")
    ap.add_argument("--platform", default="", metavar="LIST",
                    help="comma-separated runpsc platforms (e.g. ptrace,seccomp), each a "
                         "column runpsc-P (default: one runpsc column, its default "
                         "platform); one the installed runpsc refuses is skipped")
    ap.add_argument("--timeout", type=float, default=1800,
                    help="seconds one run may take (then it counts as failed)")
    args = ap.parse_args(argv)
    # On the host's root (not /tmp, which the sandbox replaces with its own tmpfs).
    work = Path(tempfile.mkdtemp(prefix="runpsc-bench-", dir="/var/tmp"))
    try:
        (work / "hello.c").write_text(HELLO_C)
        build("calls", work)
        rows: dict[str, tuple[str, list[str]]] = {}
        for name, label in CALLS.items():
            rows[name] = (label, [str(work / "calls"), name, str(args.iterations),
                                  str(work / "calls")])
        for name, (label, cmd) in workloads(work, args.find_dir).items():
            rows[name] = (label, ["/bin/sh", "-c", cmd] if name != "true" else [cmd])
        if args.only:
            keep = args.only.split(",")
            rows = {k: v for k, v in rows.items() if k in keep}
        who = runners(args.tree, [p for p in args.platform.split(",") if p])
        names = list(who)
        figures: dict[str, dict[str, list[float]]] = {r: {w: [] for w in who} for r in rows}
        cpus: dict[str, dict[str, list[float]]] = {r: {w: [] for w in who} for r in rows
                                                   if r not in CALLS}
        load0 = os.getloadavg()
        failed: set[tuple[str, str]] = set()  # (row, runner): not run again
        for i in range(args.rounds):
            for row, (_, argv) in rows.items():
                for w in names[i % len(names):] + names[:i % len(names)]:
                    if (row, w) in failed:
                        continue
                    try:
                        wall, cpu, out = run_one(who[w][0], argv, who[w][1], args.timeout)
                    except RuntimeError as e:
                        print(f"round {i + 1}: {w}, row {row}: {e}", flush=True)
                        failed.add((row, w))
                        continue
                    figures[row][w].append(float(out) / 1000 if row in CALLS else wall)
                    if row in cpus:
                        cpus[row][w].append(cpu)
            # every round's table, so a run cut short still tells something
            report(rows, names, figures, i + 1, load0)
            if cpus:  # CPU time moves much less with the machine's load than wall time
                report({r: (v[0].replace(", s", ", CPU s"), v[1]) for r, v in rows.items()
                        if r in cpus}, names, cpus, i + 1, load0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(rows: dict[str, tuple[str, list[str]]], names: list[str],
           figures: dict[str, dict[str, list[float]]], rounds: int,
           load0: tuple[float, float, float]) -> None:
    """The table of medians and ratios to native after `rounds` rounds."""
    load1 = os.getloadavg()
    print(f"file-heavy rows, medians of {rounds} interleaved rounds; load average "
          f"{load0[0]:.1f} -> {load1[0]:.1f} (15 min {load1[2]:.1f}) on "
          f"{os.cpu_count()} CPUs")
    width = {w: max(9, len(w)) for w in names}
    head = f"| {'figure':<48} |" + "".join(f" {w:>{width[w]}} |" for w in names)
    head += "".join(f" {w + '/native':>{max(14, len(w) + 7)}} |" for w in names[1:])
    print(head)
    print("|" + "---|" * (len(names) * 2))
    for row, (label, _) in rows.items():
        med = {w: statistics.median(figures[row][w]) if figures[row][w] else None
               for w in names}
        cells = "".join(f" {'failed' if med[w] is None else f'{med[w]:.3g}':>{width[w]}} |"
                        for w in names)
        for w in names[1:]:
            m, base = med[w], med["native"]
            ratio = "-" if m is None or base is None else f"{m / base:.1f}x"
            cells += f" {ratio:>{max(14, len(w) + 7)}} |"
        print(f"| {label:<48} |{cells}")
    if "getpid" in rows:
        gp = {w: statistics.median(figures["getpid"][w]) for w in names[1:]
              if figures["getpid"][w]}
        per = [f"{w} {r} {statistics.median(figures[r][w]) / gp[w]:.1f}x"
               for w in gp for r in CALLS if r in rows and r != "getpid" and figures[r][w]]
        print("per-call rows / getpid of the same sandbox: " + ", ".join(per))
    print(flush=True)


if __name__ == "__main__":
    main()
