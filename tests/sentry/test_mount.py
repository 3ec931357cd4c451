"""mount(2) and umount2(2) on the sandbox's mount table, compared with Linux
(progs/mount.c run natively as root in private mount and IPC namespaces of its own)."""

from __future__ import annotations

import os
import shutil
import tempfile

from tests.sentry.progs.harness import build, native, sentry_run
from tests.support import need_binary, need_root


async def test_mount_matches_native(tmp_path):
    need_root()
    unshare = need_binary("unshare", "util-linux")
    prog = build(tmp_path, "mount")
    scratch = tempfile.mkdtemp(prefix="runpsc-native-", dir="/dev/shm")
    os.chmod(scratch, 0o777)
    try:
        want = native([unshare, "--mount", "--ipc", "--propagation", "private", prog, scratch])
    finally:
        shutil.rmtree(scratch)
    assert want.code == 0, want.stderr
    got = await sentry_run([prog, "/tmp/w"], dirs=("/tmp", "/tmp/w"))
    assert [e for e in got.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0
