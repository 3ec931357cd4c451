"""Per-syscall cost: native, a minimal C PTRACE_SYSEMU loop (the floor for any ptrace
platform: bench/progs/floors.c's sysemu; bench/platform_floors.py has the other
mechanisms'), and runpsc; plus `runpsc do /bin/true` wall time.

The floor and runpsc are measured in the same CPU placement, in both placements runpsc
knows (sentry/platform/affinity.py): "pinned" (the default: the Sentry's thread and its
stubs share one CPU; the floor's tracer and tracee are put on that CPU too) and "unpinned"
(RUNPSC_CPU=off: everything keeps the caller's affinity mask). On a VM, a cross-CPU wakeup
per ptrace stop costs more than the rest of the loop, so the placement matters more than
anything else here.

Calls: getppid is answered by the hot loop's C fast path for per-task values after the
first call of a run of them (see sentry/README.md); umask(022) is just as trivial but
always goes through Python's dispatch, so its row shows what every other syscall pays.

Run: .venv/bin/python bench/syscall_overhead.py [--iterations N] [--placement both]
Prints a table; not a test (figures depend on the machine and its load).
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
from typing import Any

import trio
from cprogs import build

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODES = ["getppid", "umask", "openclose", "stat", "pread4k"]  # bench/progs/calls.c
ONE_CALL = {"getppid", "umask"}  # one cheap syscall per iteration: comparable to the floor
PLACEMENTS = {"pinned": "auto", "unpinned": "off"}  # name -> RUNPSC_CPU


async def in_runpsc(prog: str, mode: str, n: int, data: bytes, zygote: Any = None) -> float:
    """Run the benchmark program in a Sentry whose root is a tmpfs holding it and a file
    (its stubs from `zygote`, a Sentry under its seccomp filter: bench/sentry_seccomp.py)."""
    import sentry.syscalls  # noqa: F401 - registers the handlers the Kernel serves
    from sentry.kernel import Kernel
    from sentry.kernel.fdtable import FDTable
    from vfs import Credentials, Tmpfs, VirtualFilesystem
    from vfs.fs.host import HostFD

    vfs = VirtualFilesystem(Tmpfs())
    ctx, creds = vfs.new_context(), Credentials.root()
    for path, content, mode_bits in ((b"/prog", open(prog, "rb").read(), 0o755),
                                     (b"/data", data, 0o644)):
        f = await vfs.open(ctx, creds, None, path, os.O_CREAT | os.O_WRONLY, mode_bits)
        await f.write(content)
        await f.dec_ref()
    r, w = os.pipe()
    fdt = FDTable()
    fdt.install(HostFD(os.open("/dev/null", os.O_RDONLY)))
    fdt.install(HostFD(w))
    fdt.install(HostFD(2))
    os.close(w)
    kernel = Kernel(vfs=vfs)
    if zygote is not None:
        kernel.stubs_from(zygote)
    status = await kernel.run([b"/prog", mode.encode(), str(n).encode(), b"/data"],
                              [], fdt, ctx, creds)
    # the Kernel closed the fd table at exit, so the pipe's write end is gone
    out = os.read(r, 100)
    os.close(r)
    if status != 0:
        raise RuntimeError(f"benchmark program failed in runpsc: status {status:#x}")
    return float(out)


def placed(placement: str) -> int | None:
    """Select `placement` for this process's Kernels; return the CPU they pin to (or None)."""
    from sentry.platform import affinity

    os.environ[affinity.ENV] = PLACEMENTS[placement]
    affinity.reset()
    return affinity.choose()


def floor_run(floor_bin: str, n: int, cpu: int | None) -> float:
    """One run of the C PTRACE_SYSEMU floor (bench/progs/floors.c), its tracer and tracee
    on `cpu` (None: the caller's mask); ns per call."""
    where = str(-1 if cpu is None else cpu)
    out = subprocess.run([floor_bin, "sysemu", str(n), where, where], capture_output=True,
                         check=True, text=True).stdout
    return float(out.split()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--do-runs", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5,
                    help="runs per figure; the best is printed (ptrace figures suffer most "
                         "from other load on the machine)")
    ap.add_argument("--placement", choices=["both", *PLACEMENTS], default="both",
                    help="CPU placement(s) to measure the floor and runpsc in")
    args = ap.parse_args()
    n = args.iterations
    rep = max(1, args.repeat)
    placements = list(PLACEMENTS) if args.placement == "both" else [args.placement]
    user_env = os.environ.get("RUNPSC_CPU")
    tmp = Path(tempfile.mkdtemp(prefix="runpsc-bench-"))
    try:
        prog = build("calls", tmp, "-static")
        floor_bin = build("floors", tmp)
        shm = Path(tempfile.mkdtemp(prefix="runpsc-bench-", dir="/dev/shm"))
        data = os.urandom(4096)
        (shm / "data").write_bytes(data)
        load0 = os.getloadavg()[0]
        native = {m: min(float(subprocess.run([prog, m, str(n * 10), str(shm / "data")],
                                              capture_output=True, check=True).stdout)
                             for _ in range(rep))
                  for m in MODES}
        shutil.rmtree(shm)
        floor: dict[str, float] = {}
        sandbox: dict[str, dict[str, float]] = {}
        cpus: dict[str, int | None] = {}
        for pl in placements:
            cpus[pl] = cpu = placed(pl)
            # interleave floor and runpsc runs, so both see the same load
            fl: list[float] = []
            sb: dict[str, list[float]] = {m: [] for m in MODES}
            for _ in range(rep):
                fl.append(floor_run(floor_bin, n, cpu))
                for m in MODES:
                    sb[m].append(trio.run(in_runpsc, prog, m, n, data))
            floor[pl], sandbox[pl] = min(fl), {m: min(v) for m, v in sb.items()}
        load1 = os.getloadavg()[0]
        print(f"syscall overhead, ns per call: best of {rep} runs, {n} iterations in the "
              f"sandbox; load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} CPUs")
        for pl in placements:
            where = "caller's mask" if cpus[pl] is None else f"CPU {cpus[pl]}"
            default = ", the default" if pl == "pinned" else ""
            print(f"{pl} (RUNPSC_CPU={PLACEMENTS[pl]}{default}): the Sentry, its stubs and "
                  f"the floor on {where}")
            print(f"  {'call':<12}{'native':>8}{'C floor':>10}{'runpsc':>10}"
                  f"{'runpsc/floor':>14}{'runpsc/native':>15}")
            for m in MODES:
                one = m in ONE_CALL
                fcell = f"{floor[pl]:>10.0f}" if one else f"{'-':>10}"
                ratio = f"{sandbox[pl][m] / floor[pl]:>14.2f}" if one else f"{'-':>14}"
                print(f"  {m:<12}{native[m]:>8.0f}{fcell}{sandbox[pl][m]:>10.0f}{ratio}"
                      f"{sandbox[pl][m] / native[m]:>15.1f}")
        if user_env is None:
            os.environ.pop("RUNPSC_CPU", None)
        else:
            os.environ["RUNPSC_CPU"] = user_env
        # Interleaved with the floor every start pays before any of runpsc's own code: the
        # interpreter starting and importing click and trio (the CLI and the concurrency
        # library the whole design rests on), with the measures `runpsc do` applies to them
        # (runtime.startup). The difference is runpsc's own start-up.
        runs = interleaved({"do": do_true_command(), "floor": [sys.executable, "-c", _FLOOR]},
                           args.do_runs)
        do_ms = statistics.median(wall for wall, _ in runs["do"]) * 1000
        floor_ms = statistics.median(wall for wall, _ in runs["floor"]) * 1000
        print(f"runpsc do /bin/true: median {do_ms:.0f} ms over {args.do_runs} runs "
              f"(target < 250 ms)")
        print(f"  floor, interleaved: the interpreter importing click and trio as runpsc "
              f"does, median {floor_ms:.0f} ms; runpsc's own part (its imports, the "
              f"gofers, the Sentry running /bin/true) {do_ms - floor_ms:.0f} ms")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def do_true_command() -> list[str]:
    """`runpsc do -- /bin/true` with this virtualenv's runpsc."""
    runpsc = shutil.which("runpsc") or str(Path(sys.executable).parent / "runpsc")
    return [runpsc, "do", "--", "/bin/true"]


def time_run(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, of it and the children it waited for)
    of one run of `argv`, which must succeed. CPU time moves much less than wall time with
    the machine's load, so it shows small differences that wall time hides."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, env=env, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{argv} failed: {p.returncode} {p.stderr[-300:]!r}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, cpu


def interleaved(variants: dict[str, list[str]], runs: int,
                envs: dict[str, dict[str, str]] | None = None
                ) -> dict[str, list[tuple[float, float]]]:
    """`runs` (wall, CPU) times of each variant's command, run in turn so that all of them
    see the same load, each round starting one variant later (a b c, b c a, c a b ...) so
    that none always runs right after the same other; `envs` gives a variant its own
    environment."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(runs):
        for name in names[i % len(names):] + names[:i % len(names)]:
            times[name].append(time_run(variants[name], (envs or {}).get(name)))
    return times


#: The floor's program: what `runpsc do` does before importing anything of its own.
_FLOOR = """
import click
from runtime.startup import Startup
startup = Startup.from_env()
startup.begin()
startup.import_modules(["trio"])
"""


if __name__ == "__main__":
    main()
