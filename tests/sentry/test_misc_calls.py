"""The scheduler, I/O priority, mlock, NUMA policy, membarrier, setfsuid/setfsgid, the UTS
names, restart_syscall and the calls refused by design, compared with Linux
(progs/misc_calls.c): the native run is in a UTS namespace of its own (so sethostname does
not touch the host's name) and drops to an unprivileged user for the EPERM cases."""

from __future__ import annotations

from tests.sentry.progs.harness import build, native, sentry_run
from tests.support import need_binary, need_root


async def test_misc_calls_match_native(tmp_path):
    need_root()
    unshare = need_binary("unshare", "util-linux")
    prog = build(tmp_path, "misc_calls")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    want = native([unshare, "--uts", prog, str(scratch)])
    assert want.code == 0, want.stderr
    got = await sentry_run([prog, "/tmp/w"], dirs=("/tmp", "/tmp/w"))
    assert [e for e in got.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0
