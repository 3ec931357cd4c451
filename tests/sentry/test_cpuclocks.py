"""CPU-time clocks named by dynamic clock ids (pthread_getcpuclockid, clock_getcpuclockid),
compared with Linux: which ids clock_gettime and clock_getres accept and which they refuse
(another process's thread, a non-leader's tid as a process, a reaped child, an unknown
kind), resolutions, EFAULT. No timing is asserted: only that each clock runs forwards."""

from pathlib import Path

from .platform_helpers import build_c, native, run_vfs

PROGS = Path(__file__).resolve().parent / "progs"


async def test_cpu_clock_ids_match_linux(tmp_path):
    prog = build_c(tmp_path, "cpuclocks", (PROGS / "cpuclocks.c").read_text(), "-static",
                   "-w", "-pthread")
    st, out = native([prog])
    assert st == 0 and b"thread clock of a child      gettime EINVAL" in out, out  # sane oracle
    status, got, k, _ = await run_vfs(["/cpuclocks"], {"/cpuclocks": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]
