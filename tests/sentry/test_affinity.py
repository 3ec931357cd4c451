"""sched_setaffinity/sched_getaffinity served by the Sentry, compared with Linux: a mask
set is the mask got back, per thread, inherited by fork and pthread_create, set on
another thread by tid; EINVAL, EFAULT and ESRCH as Linux."""

from pathlib import Path

from .platform_helpers import build_c, native, run_vfs

PROGS = Path(__file__).resolve().parent / "progs"


async def test_affinity_matches_linux(tmp_path):
    prog = build_c(tmp_path, "affinity", (PROGS / "affinity.c").read_text(), "-static", "-w",
                   "-pthread")
    st, out = native([prog])
    assert st == 0 and b"after set {first}              ok [ first ]" in out, out
    status, got, k, _ = await run_vfs(["/affinity"], {"/affinity": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]
