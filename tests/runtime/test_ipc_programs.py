"""Programs that use IPC, under `runpsc do`, compared with their native run: util-linux's
ipcmk, ipcs and ipcrm (natively in a fresh IPC namespace, `unshare --ipc`, so ids start at 0
on both sides; ipcmk picks random keys, so keys are blanked), and python's multiprocessing."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.runtime.test_do import runpsc
from tests.runtime.test_workloads import WORKDIR
from tests.support import need_binary

IPC_SCRIPT = (
    "ipcmk -M 10000 -p 0640; ipcmk -S 3; ipcmk -Q -p 0600; ipcmk -M 1;"
    " ipcs; ipcs -l; ipcs -u; ipcs -c; ipcs -m -p | cut -c1-22;"
    " ipcrm -m 0; ipcrm -s 0 -q 0; ipcs; ipcrm -a; ipcs -a; ipcrm -m 9; echo $?"
)
KEYS = r"s/0x[0-9a-f]\{8\}/KEY/g"


def _run(native: bool) -> subprocess.CompletedProcess:
    script = f"( {IPC_SCRIPT} ) 2>&1 | sed '{KEYS}'"
    if native:
        return subprocess.run([need_binary("unshare", "util-linux"), "--ipc", "bash", "-c",
                               script], capture_output=True, stdin=subprocess.DEVNULL,
                              cwd=WORKDIR, timeout=60)
    return runpsc("do", f"--cwd={WORKDIR}", "--", "bash", "-c", script)


def test_ipcmk_ipcs_ipcrm_match_linux():
    for tool in ("ipcmk", "ipcs", "ipcrm"):
        need_binary(tool, "util-linux")
    want, got = _run(True), _run(False)
    assert b"Shared memory id: 0" in want.stdout, want
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines(), \
        got.stderr.decode(errors="replace")
    assert got.returncode == want.returncode


PROGS = Path(__file__).resolve().parent / "progs"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_python_multiprocessing_matches_linux(method):
    """Pool, Queue, Lock, Value/Array, shared_memory and a ProcessPoolExecutor: their locks
    and semaphores are POSIX semaphores in /dev/shm (futexes in shared memory), their
    queues pipes. The forkserver method and Pipe(duplex=True) need AF_UNIX sockets."""
    python = "/usr/bin/python3"  # Debian's, which the sandbox sees at the same path
    if not os.access(python, os.X_OK):
        need_binary("/usr/bin/python3", "python3")
    want = subprocess.run([python, "mp_workloads.py", method], capture_output=True,
                          stdin=subprocess.DEVNULL, cwd=PROGS, timeout=120)
    assert b"locked counter 600" in want.stdout, want
    got = runpsc("do", f"--volume={PROGS}:/progs:ro", "--cwd=/progs", "--", python,
                 "mp_workloads.py", method)
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines(), \
        got.stderr.decode(errors="replace")
    assert got.returncode == want.returncode


def test_postgres_initdb_and_single_user_backend_match_linux():
    """Debian's PostgreSQL: initdb, then a standalone backend running queries, as the
    postgres user (set by a python wrapper, the same on both sides). A running server
    (pg_ctl start) also needs AF_UNIX sockets."""
    import glob
    import pwd

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        need_binary("/usr/lib/postgresql/VERSION/bin/initdb", "postgresql")
    bindir = os.path.dirname(bins[-1])
    pw = pwd.getpwnam("postgres")
    python = "/usr/bin/python3"

    def as_postgres(script: str, datadir: str) -> list[str]:
        return [python, "-c", f"import os, sys; os.setgroups([]); os.setgid({pw.pw_gid});"
                f" os.setuid({pw.pw_uid}); os.execv('/bin/sh', ['sh', *sys.argv[1:]])",
                script, datadir, bindir]

    # natively in a directory the postgres user can reach (pytest's own are root's, 0700)
    scratch = tempfile.mkdtemp(prefix="runpsc-pg-", dir="/tmp")
    try:
        os.chmod(scratch, 0o777)
        script = os.path.join(scratch, "postgres_single.sh")
        shutil.copy(PROGS / "postgres_single.sh", script)
        want = subprocess.run(as_postgres(script, os.path.join(scratch, "pgdata")), capture_output=True,
                              stdin=subprocess.DEVNULL, cwd="/tmp", timeout=300)
    finally:
        shutil.rmtree(scratch)
    assert b'answer = "42"' in want.stdout and b'sum = "500500"' in want.stdout, want
    got = runpsc("do", f"--volume={PROGS}:/progs:ro", "--cwd=/tmp", "--",
                 *as_postgres("/progs/postgres_single.sh", "/tmp/pgdata"), timeout=600)
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines(), \
        got.stderr.decode(errors="replace")
    assert got.returncode == want.returncode
