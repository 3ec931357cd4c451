"""psutil (from PyPI, installed into a directory this test owns) inside `runpsc do`: each
value it reads from /proc and /sys has the right type and agrees with what the Sentry knows
(the --memory limit, the CPUs the sandbox may use, its start, the process's own files,
children, working directory, limits)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.runtime.test_do import runpsc
from tests.support import missing

PROGS = Path(__file__).resolve().parent / "progs"


@pytest.fixture(scope="module")
def psutil_dir(tmp_path_factory) -> Path:
    """psutil installed with pip --target into a fresh directory (never the system's)."""
    target = tmp_path_factory.mktemp("psutil")
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target),
                        "psutil"], capture_output=True, timeout=300)
    if p.returncode != 0:
        missing("psutil", "pip install psutil (needs the package registry): "
                + p.stderr.decode(errors="replace")[-300:])
    (target / "psutil_report.py").write_text((PROGS / "psutil_report.py").read_text())
    return target


def test_psutil_agrees_with_the_sentry(psutil_dir):
    start = time.time()
    got = runpsc("do", "--memory", "1G", "--tmpfs", "/tmp", "--cwd", "/usr", "--env",
                 "PROCFS_TEST=yes",
                 "--env", "PYTHONPATH=/psutil", "--volume", f"{psutil_dir}:/psutil:ro", "--",
                 "python3", "/psutil/psutil_report.py")
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    r = json.loads(got.stdout)
    assert r["cpu_count"] == len(os.sched_getaffinity(0))
    assert all(isinstance(v, float) and v >= 0 for v in r["cpu_times"].values())
    vm = r["virtual_memory"]
    assert vm["total"] == 1 << 30
    assert 0 < vm["used"] < vm["total"] and 0 < vm["available"] <= vm["total"]
    assert 0 < vm["percent"] < 100
    assert r["swap_memory"]["total"] == 0 and r["swap_memory"]["used"] == 0
    assert abs(r["boot_time"] - start) < 60
    assert "/" in r["disk_partitions"] and "/tmp" in r["disk_partitions"]
    assert r["cpu_times_children"] >= 0.25  # the waited-for spinner's
    io = r["io_counters"]
    assert io["read_count"] > 0 and io["write_count"] > 0 and io["read_chars"] > 0
    assert io["read_bytes"] == io["write_bytes"] == 0  # tmpfs and the gofer: no block I/O
    mi = r["memory_info"]
    assert 0 < mi["rss"] < mi["vms"]
    assert any(p.endswith(("libc.so.6", "[stack]")) for p in r["memory_maps"])
    assert ["/etc/hostname", r["held_fd"]] in r["open_files"]
    assert r["num_fds"] >= 4 and r["threads"] == 1
    assert r["children"] == [r["child"]] and r["child"] in r["pids"]
    assert r["cwd"] == "/usr"
    assert os.path.realpath(r["executable"]) == r["exe"]
    assert r["cmdline"][1:] == ["/psutil/psutil_report.py"]
    assert r["environ"] == "yes"
    assert r["status"] == "running"
    assert r["boot_time"] <= r["create_time"] <= time.time()
    assert r["nice"] == 0 and r["rlimit"] == r["getrlimit"]
    assert r["pids"][0] == 1
