"""New UTS, IPC and mount namespaces from unshare(2) and clone(2) against Linux
(progs/namespaces.c, as root, natively in an IPC namespace of its own and in the sandbox
with /proc for the mount table):
what the child sets, creates and mounts there is seen by it and not by its parent."""

from __future__ import annotations

from tests.sentry.progs.harness import build, native_in_scratch
from tests.support import need_binary, need_root

from .test_procfs import run_with_proc


async def test_new_namespaces_match_native(tmp_path):
    need_root()
    prog = build(tmp_path, "namespaces")
    # an IPC namespace of its own natively: its fixed SysV keys meet no other run's
    want = native_in_scratch(prog, prefix=(need_binary("unshare", "util-linux"), "--ipc"))
    assert want.code == 0, want.stderr
    assert b"child after: hostname changed, shm key No such file or directory, msg key seen," \
        b" tmpfs mounted, file seen\n" in want.stdout, want.stdout  # a sane oracle
    status, got, k = await run_with_proc(["/d/namespaces", "/tmp"], {"/d/namespaces": prog},
                                         path="/d/namespaces")
    assert [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.decode().splitlines() == want.stdout.decode().splitlines()
    assert status == 0
