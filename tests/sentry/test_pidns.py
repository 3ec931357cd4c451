"""PID namespaces inside the sandbox against Linux (progs/pidns.c, as root, natively and
in the sandbox): unshare and clone(CLONE_NEWPID), every id a process sees in its
namespace and its parent's view, a proc mounted inside, orphans going to the namespace's
init, the init's signal rule, and the end of the init ending the namespace."""

from __future__ import annotations

from tests.sentry.progs.harness import build, native_in_scratch
from tests.support import need_root

from .test_procfs import run_with_proc


async def test_pid_namespaces_match_native(tmp_path):
    need_root()
    prog = build(tmp_path, "pidns")
    want = native_in_scratch(prog, timeout=60)
    assert want.code == 0, want.stderr
    assert b"inner proc lists: 1 2\n" in want.stdout, want.stdout  # a sane oracle
    status, got, k = await run_with_proc(["/d/pidns", "/tmp"], {"/d/pidns": prog},
                                         path="/d/pidns")
    assert [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.decode().splitlines() == want.stdout.decode().splitlines()
    assert status == 0
