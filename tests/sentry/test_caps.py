"""The capability model against Linux (progs/caps.c, run as root natively and in the
sandbox with /proc, whose status shows the sets): capset's rules, privileged calls refused
once their capability leaves the effective set, the bounding and ambient sets, securebits
and keepcaps, the uid-change rules and execve's transitions."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tests.sentry.progs.harness import build, native_in_scratch
from tests.support import need_root

from .test_procfs import run_with_proc


async def test_capability_model_matches_native():
    need_root()
    # The program execs itself after dropping to uid 1000 with no capability: natively it
    # must sit where that uid may reach it (pytest's tmp_path is root's alone).
    d = Path(tempfile.mkdtemp(prefix="runpsc-caps-", dir="/dev/shm"))
    try:
        os.chmod(d, 0o755)
        prog = build(d, "caps")
        want = native_in_scratch(prog)
        status, got, k = await run_with_proc(["/d/caps", "/tmp"], {"/d/caps": prog},
                                             path="/d/caps")
    finally:
        shutil.rmtree(d)
    assert want.code == 0, want.stderr
    assert b"chown without CAP_CHOWN = -1 Operation not permitted\n" in want.stdout  # an oracle
    assert b"exec'd: uid 1000 euid 1000 eff 1 prm 1 inh 9 bnd 82001ff amb 1" in want.stdout
    assert [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.decode().splitlines() == want.stdout.decode().splitlines()
    assert status == 0


async def test_setid_exec_matches_native():
    """execve honours set-user-ID and set-group-ID bits (not under no_new_privs, not on a
    nosuid mount, set-group-ID only with group execute), with the capabilities and
    AT_SECURE Linux gives (progs/setid_exec.c)."""
    need_root()
    d = Path(tempfile.mkdtemp(prefix="runpsc-setid-", dir="/dev/shm"))
    try:
        os.chmod(d, 0o755)
        prog = build(d, "setid_exec")
        want = native_in_scratch(prog)
        status, got, k = await run_with_proc(["/d/setid_exec", "/tmp"],
                                             {"/d/setid_exec": prog}, path="/d/setid_exec")
    finally:
        shutil.rmtree(d)
    assert want.code == 0, want.stderr
    assert b"uids 1000/0/0 gids 3000/3000/3000 eff 3ff prm 3ff secure 1 personality 20000\n" \
        in want.stdout
    assert [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.decode().splitlines() == want.stdout.decode().splitlines()
    assert status == 0
