"""The benchmarks' C programs still build and do what their figures claim: every platform
floor (bench/progs/floors.c) answers each of the target's calls itself, with the value its
supervisor chose, in each CPU placement bench/platform_floors.py measures; the per-call loop
(bench/progs/calls.c) runs every mode; the unix-socket round trips
(bench/progs/unix_roundtrips.c) echo every message. No assertion on time: the figures are the
benchmark's business."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench.cprogs import build
from tests.support import missing, need_binary

MECHANISMS = ["sysemu", "seccomp", "seccomp-sync", "systrap", "systrap-spin", "sigsys",
              "trace"]
CALLS = 50


@pytest.fixture(scope="module")
def progs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_binary("gcc")
    out = tmp_path_factory.mktemp("benchprogs")
    build("floors", out)
    build("calls", out)
    build("unix_roundtrips", out, "-static")
    return out


def placements() -> list[tuple[int, int]]:
    """(supervisor CPU, target CPU): both on one CPU, on two if there are two, unpinned."""
    mask = sorted(os.sched_getaffinity(0))
    return [(mask[0], mask[0]), *([(mask[0], mask[1])] if len(mask) > 1 else []), (-1, -1)]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_floor_answers_every_call(progs: Path, mechanism: str) -> None:
    for sup, target in placements():
        p = subprocess.run([str(progs / "floors"), mechanism, str(CALLS), str(sup), str(target)],
                           capture_output=True, text=True, timeout=120)
        if p.returncode == 3:  # floors.c: this kernel lacks the mechanism
            missing(mechanism, p.stderr.strip())
        # "MECH ns answered wrong": the i-th getpid returned the supervisor's 2**40 + i
        # (no pid is that large, so a call that reached the host would count as wrong).
        name, ns, answered, wrong = p.stdout.split()
        assert (p.returncode, name, int(answered), int(wrong)) == (0, mechanism, CALLS, 0), (
            sup, target, p.stdout, p.stderr)
        assert float(ns) > 0


def test_floor_rejects_unknown_mechanism(progs: Path) -> None:
    p = subprocess.run([str(progs / "floors"), "vmexit", "1", "-1", "-1"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "unknown mechanism vmexit" in p.stderr


@pytest.mark.parametrize("mode", ["getpid", "getppid", "umask", "openclose", "stat",
                                  "pread4k", "read4k"])
def test_calls_loop_runs_each_mode(progs: Path, mode: str) -> None:
    p = subprocess.run([str(progs / "calls"), mode, "10", str(progs / "calls")],
                       capture_output=True, text=True, check=True)
    assert float(p.stdout) >= 0


def test_calls_loop_refuses_a_missing_file(progs: Path) -> None:
    p = subprocess.run([str(progs / "calls"), "stat", "10", str(progs / "missing")],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "No such file" in p.stderr


def test_unix_roundtrips_echo(progs: Path) -> None:
    out = subprocess.run([str(progs / "unix_roundtrips"), "20"], capture_output=True,
                         text=True, check=True).stdout
    rates = dict(line.split() for line in out.splitlines())
    assert sorted(rates) == ["dgram", "pipes", "stream"] and all(float(r) > 0 for r in rates.values())
