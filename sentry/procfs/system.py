"""/proc's system-wide files, from the sandbox's kernel: meminfo, uptime, loadavg, stat,
cpuinfo, version, cmdline, swaps, partitions, devices, diskstats.

Why our own figures: a program in the sandbox sizes itself from these (free, top, the JVM,
test suites reading MemTotal), so they describe the sandbox (its memory limit, its CPUs,
its processes, its start) rather than the host. See docs/procfs.md for each value.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sentry.kernel import usage
from sentry.kernel.limits import RELEASE, VERSION
from sentry.platform.affinity import caller_cpus

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.kernel.task import Task

USER_HZ = 100
_KB = 1024
_LOAD_PERIODS = (60.0, 300.0, 900.0)
_VMALLOC_TOTAL_KB = 34359738367
_CPUINFO_FIELDS = ("vendor_id", "cpu family", "model", "model name", "stepping", "microcode",
                   "cpu MHz", "cache size", "fpu", "fpu_exception", "cpuid level", "wp",
                   "flags", "bugs", "bogomips", "clflush size", "cache_alignment",
                   "address sizes", "power management")


def host_cpu_model() -> dict[str, str]:
    """The host CPU's identity and feature flags: the first processor's fields of the
    host's cpuinfo that describe the CPU model (no counts, ids or topology)."""
    out: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                key = key.strip()
                if key in _CPUINFO_FIELDS:
                    out[key] = value.strip()
    except OSError:
        pass
    return out


def _cpuinfo_line(key: str, value: Any) -> str:
    """Linux's layout: the key tabbed out to column 16, then ": value"."""
    pad = "\t\t" if len(key) < 8 else "\t" if len(key) < 16 else ""
    return f"{key}{pad}:{' ' if value != '' else ''}{value}\n"


def cpu_list(cpus: list[int]) -> bytes:
    """Linux's cpulist format: "0-3,6\\n"."""
    ranges: list[list[int]] = []
    for c in sorted(cpus):
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return (",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges) + "\n").encode()


def cpu_mask(cpus: list[int]) -> bytes:
    """Linux's cpumask format: hex in comma-separated 32-bit groups, "3\\n" for 0-1."""
    bits = sum(1 << c for c in cpus)
    groups = []
    while True:
        groups.append(bits & 0xFFFFFFFF)
        bits >>= 32
        if not bits:
            break
    first, *rest = reversed(groups)
    return (",".join([f"{first:x}", *(f"{g:08x}" for g in rest)]) + "\n").encode()


@dataclass
class MemoryUse:
    """The sandbox's memory, in bytes: anonymous (process-private) memory, the part of it
    holding private file mappings, tmpfs data, and what writable private mappings commit."""

    anon: int = 0
    file_mapped: int = 0
    shmem: int = 0
    committed: int = 0


@dataclass
class System:
    """The sandbox as a machine: its memory limit, its CPUs, its clock, its load.

    Args:
        kernel: the sandbox's Kernel (processes, VFS, start time).
        memory: MemTotal in bytes (None: the kernel's memory limit, by default the host's
            physical memory).
    """

    kernel: Kernel
    memory: int | None = None
    cpus: list[int] = field(default_factory=lambda: sorted(caller_cpus()))
    boot_wall: float = 0.0
    _cpu_model: dict[str, str] | None = None
    _load: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    _load_at: float = 0.0

    def __post_init__(self) -> None:
        if self.memory is None:
            self.memory = self.kernel.memory.limit
        self.boot_wall = time.time() - self.uptime()

    # clocks and tasks ------------------------------------------------------------------------

    def uptime(self) -> float:
        """Seconds since the sandbox's kernel started."""
        return max(0.0, time.monotonic() - self.kernel.start_monotonic)

    def ticks(self, monotonic: float) -> int:
        """A monotonic time as clock ticks since the sandbox started (/proc/PID/stat)."""
        return max(0, int((monotonic - self.kernel.start_monotonic) * USER_HZ))

    def processes(self) -> list[Task]:
        """Every live process (its leader thread)."""
        return list(self.kernel.procs.values())

    def running(self) -> int:
        """Threads not asleep in a syscall (the reader counts: it runs)."""
        return sum(1 for t in self.kernel.tasks.values() if not t._sleeps) or 1

    def cpu_total(self) -> usage.CpuTimes:
        """CPU time of every process the sandbox ran: the live ones' and the ended ones'
        (taken as each ended), so the counters never go back."""
        ended = self.kernel.ended_usage
        total = usage.CpuTimes(ended.utime, ended.stime)
        for t in self.processes():
            c = usage.cpu_times(t.stub.pid)
            total.utime += c.utime
            total.stime += c.stime
            total.voluntary += c.voluntary
            total.involuntary += c.involuntary
        return total

    # memory ----------------------------------------------------------------------------------

    def memory_use(self) -> MemoryUse:
        """The sandbox's own accounting: each process's resident private pages (its stub),
        the private file mappings among them (filled at mmap), tmpfs file data."""
        use = MemoryUse()
        for t in self.processes():
            r = usage.resident(t.stub.pid)
            use.anon += (r.pages - r.shared) * usage.PAGE
            for v in t.mm.vmas:
                if v.file is not None and not v.shared:
                    use.file_mapped += v.end - v.start
        # strict accounting: what the address spaces and System V segments charged
        charged = self.kernel.memory.charged
        use.committed = charged["anon"] + charged["shmem"] + charged["shm"]
        use.file_mapped = min(use.file_mapped, use.anon)
        use.shmem = self.tmpfs_bytes()
        return use

    def tmpfs_bytes(self) -> int:
        """File data held by the sandbox's tmpfs mounts (the overlay's upper layer too)."""
        vfs = self.kernel.vfs
        if vfs is None:
            return 0
        seen: dict[int, int] = {}
        for m in vfs.all_mounts():
            for fs in (m.fs, getattr(m.fs, "upper", None)):
                used = getattr(fs, "used", None)
                if isinstance(used, int):
                    seen[id(fs)] = used
        return sum(seen.values())

    # files -----------------------------------------------------------------------------------

    def meminfo(self) -> bytes:
        total = self.memory or 0
        use = self.memory_use()
        free = max(0, total - use.anon - use.shmem)
        cached = use.file_mapped + use.shmem
        anon = use.anon - use.file_mapped
        kb = {
            "MemTotal": total, "MemFree": free, "MemAvailable": free, "Buffers": 0,
            "Cached": cached, "SwapCached": 0, "Active": anon + cached, "Inactive": 0,
            "Active(anon)": anon + use.shmem, "Inactive(anon)": 0,
            "Active(file)": use.file_mapped, "Inactive(file)": 0, "Unevictable": 0,
            "Mlocked": 0, "SwapTotal": 0, "SwapFree": 0, "Zswap": 0, "Zswapped": 0,
            "Dirty": 0, "Writeback": 0, "AnonPages": anon, "Mapped": use.file_mapped,
            "Shmem": use.shmem, "KReclaimable": 0, "Slab": 0, "SReclaimable": 0,
            "SUnreclaim": 0, "KernelStack": 0, "PageTables": 0, "SecPageTables": 0,
            "NFS_Unstable": 0, "Bounce": 0, "WritebackTmp": 0, "CommitLimit": total,
            "Committed_AS": use.committed, "VmallocTotal": _VMALLOC_TOTAL_KB * _KB,
            "VmallocUsed": 0, "VmallocChunk": 0, "Percpu": 0, "HardwareCorrupted": 0,
            "AnonHugePages": 0, "ShmemHugePages": 0, "ShmemPmdMapped": 0,
            "FileHugePages": 0, "FilePmdMapped": 0,
        }
        lines = [f"{k + ':':<16}{v // _KB:>8} kB\n" for k, v in kb.items()]
        lines += [f"{k + ':':<16}{v:>8}\n" for k in ("HugePages_Total", "HugePages_Free",
                                                    "HugePages_Rsvd", "HugePages_Surp")
                  for v in (0,)]
        lines += [f"{'Hugepagesize:':<16}{2048:>8} kB\n", f"{'Hugetlb:':<16}{0:>8} kB\n",
                  f"{'DirectMap4k:':<16}{total // _KB:>8} kB\n"]
        return "".join(lines).encode()

    def vmstat(self) -> bytes:
        """/proc/vmstat's counters in pages: the memory ones from the same accounting as
        meminfo; paging and swapping counters are 0 (the sandbox has no swap or disk)."""
        total = (self.memory or 0) // usage.PAGE
        use = self.memory_use()
        anon = (use.anon - use.file_mapped) // usage.PAGE
        shmem = use.shmem // usage.PAGE
        mapped = use.file_mapped // usage.PAGE
        free = max(0, total - anon - mapped - shmem)
        values = {
            "nr_free_pages": free, "nr_zone_inactive_anon": 0,
            "nr_zone_active_anon": anon + shmem, "nr_zone_inactive_file": 0,
            "nr_zone_active_file": mapped, "nr_zone_unevictable": 0,
            "nr_zone_write_pending": 0, "nr_mlock": 0, "nr_inactive_anon": 0,
            "nr_active_anon": anon + shmem, "nr_inactive_file": 0, "nr_active_file": mapped,
            "nr_unevictable": 0, "nr_slab_reclaimable": 0, "nr_slab_unreclaimable": 0,
            "nr_anon_pages": anon, "nr_mapped": mapped, "nr_file_pages": mapped + shmem,
            "nr_dirty": 0, "nr_writeback": 0, "nr_shmem": shmem, "nr_kernel_stack": 0,
            "nr_page_table_pages": 0, "nr_swapcached": 0, "pgpgin": 0, "pgpgout": 0,
            "pswpin": 0, "pswpout": 0, "pgalloc_normal": 0, "pgfree": 0, "pgfault": 0,
            "pgmajfault": 0, "pgsteal_kswapd": 0, "pgsteal_direct": 0,
            "pgscan_kswapd": 0, "pgscan_direct": 0, "oom_kill": 0,
        }
        return "".join(f"{k} {v}\n" for k, v in values.items()).encode()

    def uptime_text(self) -> bytes:
        up = self.uptime()
        busy = self.cpu_total()
        idle = max(0.0, up * len(self.cpus) - (busy.utime + busy.stime) / USER_HZ)
        return b"%.2f %.2f\n" % (up, idle)

    def loadavg(self) -> bytes:
        """The three load averages (updated at each read from the runnable threads, with
        Linux's exponential decay), running/total threads and the last pid handed out."""
        now = time.monotonic()
        running = self.running()
        if self._load_at:
            dt = now - self._load_at
            for i, period in enumerate(_LOAD_PERIODS):
                decay = math.exp(-dt / period)
                self._load[i] = self._load[i] * decay + running * (1 - decay)
        self._load_at = now
        last = self.kernel.pidns.last
        return b"%.2f %.2f %.2f %d/%d %d\n" % (*self._load, running,
                                              len(self.kernel.tasks), last)

    def stat(self) -> bytes:
        busy = self.cpu_total()
        n = len(self.cpus)
        idle = max(0, int(self.uptime() * USER_HZ) * n - busy.utime - busy.stime)

        def line(name: str, user: int, system: int, idle: int) -> str:
            return f"{name} {user} 0 {system} {idle} 0 0 0 0 0 0\n"

        lines = [line("cpu ", busy.utime, busy.stime, idle)]
        for i, cpu in enumerate(self.cpus):  # the total shared out evenly
            lines.append(line(f"cpu{cpu}", busy.utime // n + (i < busy.utime % n),
                              busy.stime // n + (i < busy.stime % n),
                              idle // n + (i < idle % n)))
        blocked = 0
        lines += ["intr 0\n", f"ctxt {busy.voluntary + busy.involuntary}\n",
                  f"btime {int(self.boot_wall)}\n",
                  f"processes {self.kernel.forks}\n",
                  f"procs_running {self.running()}\n", f"procs_blocked {blocked}\n",
                  "softirq 0 0 0 0 0 0 0 0 0 0 0\n"]
        return "".join(lines).encode()

    def cpuinfo(self) -> bytes:
        """One entry per CPU the sandbox may use, each the host CPU's model and flags."""
        if self._cpu_model is None:
            self._cpu_model = host_cpu_model()
        model = self._cpu_model
        n = len(self.cpus)
        out = []
        for cpu in self.cpus:
            entry: dict[str, Any] = {"processor": cpu}
            for key in _CPUINFO_FIELDS[:8]:
                if key in model:
                    entry[key] = model[key]
            entry.update({"physical id": 0, "siblings": n, "core id": cpu, "cpu cores": n,
                          "apicid": cpu, "initial apicid": cpu})
            for key in _CPUINFO_FIELDS[8:]:
                if key in model:
                    entry[key] = model[key]
            out.append("".join(_cpuinfo_line(k, v) for k, v in entry.items()))
        return "\n".join(out).encode() + b"\n"

    def version(self) -> bytes:
        return b"Linux version %s (runpsc@runpsc) (runpsc) %s\n" % (RELEASE, VERSION)

    def cmdline(self) -> bytes:
        return b"BOOT_IMAGE=/vmlinuz-%s ro quiet\n" % RELEASE
