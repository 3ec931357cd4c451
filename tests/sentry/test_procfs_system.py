"""/proc's system-wide files and /sys's CPU files (sentry/procfs/system.py, sysfs.py), read
by the tools that use them inside `runpsc do` and compared with their native runs: free's
total is --memory, nproc and os.cpu_count agree with the host's, cpuinfo describes the host
CPU once per CPU the sandbox may use, uptime/loadavg/stat parse and describe a sandbox that
just started, vmstat, top and lscpu run."""

from __future__ import annotations

import os
import re
import time

from tests.runtime.test_do import native, runpsc

GIB = 1 << 30


def inside(*argv: str, memory: str = "2G") -> str:
    got = runpsc("do", "--memory", memory, "--", *argv)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    return got.stdout.decode()


def sh(script: str, memory: str = "2G") -> str:
    return inside("sh", "-c", script, memory=memory)


def test_free_total_is_the_memory_limit():
    out = sh("free -b; echo; free -m")
    rows = [line.split() for line in out.splitlines() if line.startswith("Mem:")]
    total, used, free, shared, cache, avail = map(int, rows[0][1:])
    assert total == 2 * GIB
    assert rows[1][1] == "2048"
    assert 0 < used < 256 << 20 and 0 < free <= avail <= total and shared >= 0, rows
    assert used == total - avail or used == total - free - cache, rows  # procps 4 or 3
    # the native free has the same layout
    assert native("free", "-m").stdout.decode().splitlines()[0] == out.splitlines()[-3]


def test_meminfo_fields_are_linux_s():
    names = [line.split(":")[0] for line in open("/proc/meminfo")]
    got = sh("cat /proc/meminfo", memory="512M")
    ours = {line.split(":")[0]: line.split()[1] for line in got.splitlines()}
    assert ours["MemTotal"] == str(512 * 1024)
    common = ["MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapTotal",
              "AnonPages", "Mapped", "Shmem", "Committed_AS", "Hugepagesize"]
    assert all(n in ours for n in common) and all(n in names for n in common)
    # a file written to /tmp (tmpfs) is counted as Shmem
    before = int(ours["Shmem"])
    got = sh("head -c 8388608 /dev/zero > /tmp/f; grep Shmem: /proc/meminfo", memory="512M")
    assert int(got.split()[1]) >= before + 8192


def test_nproc_and_cpu_count_match_native():
    got = inside("sh", "-c", "nproc; python3 -c 'import os; print(os.cpu_count())'; "
                 "cat /sys/devices/system/cpu/online").split()
    want_nproc = native("nproc").stdout.decode().strip()
    assert got[0] == want_nproc == str(len(os.sched_getaffinity(0)))
    assert got[1] == want_nproc  # glibc's get_nprocs reads /sys/.../online
    assert got[2] in ("0", f"0-{int(want_nproc) - 1}")


def test_cpuinfo_is_the_host_cpu_once_per_cpu():
    got = inside("cat", "/proc/cpuinfo")
    host = open("/proc/cpuinfo").read()

    def field(text: str, key: str) -> list[str]:
        return [v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())
                if k.strip() == key]

    assert len(field(got, "processor")) == len(os.sched_getaffinity(0))
    for key in ("model name", "vendor_id", "flags", "cpu family", "model"):
        assert set(field(got, key)) == set(field(host, key)), key
    # Linux's layout: the key tabbed out to column 16
    assert any(line.startswith("model\t\t: ") for line in got.splitlines())


def test_uptime_loadavg_and_stat_describe_the_sandbox():
    start = time.time()
    got = sh("cat /proc/uptime; cat /proc/loadavg; cat /proc/stat; uptime")
    lines = got.splitlines()
    up, idle = map(float, lines[0].split())
    assert 0 <= up < 60 and idle >= 0
    m = re.fullmatch(r"(\d+\.\d\d) (\d+\.\d\d) (\d+\.\d\d) (\d+)/(\d+) (\d+)", lines[1])
    assert m and 1 <= int(m[4]) <= int(m[5]) and int(m[6]) >= 1, lines[1]
    stat = {line.split()[0]: line.split()[1:] for line in lines[2:-1]}
    assert len([k for k in stat if k.startswith("cpu")]) == len(os.sched_getaffinity(0)) + 1
    assert all(len(v) == 10 for k, v in stat.items() if k.startswith("cpu"))
    assert abs(int(stat["btime"][0]) - start) < 60
    assert int(stat["processes"][0]) >= 1 and int(stat["procs_running"][0]) >= 1
    assert re.search(r"up\s+0 min,.*load average: \d+\.\d\d, \d+\.\d\d, \d+\.\d\d$",
                     lines[-1]), lines[-1]


def test_version_and_cmdline_say_runpsc():
    got = sh("cat /proc/version /proc/cmdline; uname -r")
    version, cmdline, release = got.splitlines()
    assert version.startswith(f"Linux version {release} ")
    assert release in cmdline


def test_vmstat_top_and_lscpu_run():
    got = sh("vmstat 1 2")
    rows = got.splitlines()
    assert len(rows) == 4 and rows[1].split()[:4] == ["r", "b", "swpd", "free"], got
    free_kb = int(rows[3].split()[3])
    assert 0 < free_kb <= 2 * GIB // 1024
    got = sh("top -b -n1 | head -12")
    assert re.search(r"MiB Mem :\s+2048\.0 total", got), got
    tasks = int(re.search(r"Tasks:\s+(\d+) total", got)[1])
    procs = [line for line in got.splitlines()[7:] if line.strip()]
    assert tasks == len(procs) and {p.split()[-1] for p in procs} >= {"top"}, got
    got = inside("lscpu")
    want = native("lscpu").stdout.decode()

    def pick(text: str, key: str) -> str:
        line = next(line for line in text.splitlines() if line.startswith(key + ":"))
        return line.split(":", 1)[1].strip()  # the column width depends on other rows

    for key in ("CPU(s)", "Model name", "Vendor ID", "Architecture"):
        assert pick(got, key) == pick(want, key)
