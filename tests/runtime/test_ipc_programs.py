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


def _postgres_bindir() -> str:
    import glob

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        need_binary("/usr/lib/postgresql/VERSION/bin/initdb", "postgresql")
    return os.path.dirname(bins[-1])


def _as_postgres(script: str, *args: str) -> list[str]:
    """`sh script args...` as the postgres user, set by a python wrapper (the same on both
    sides: the Sentry's setgroups/setgid/setuid, natively the kernel's)."""
    import pwd

    pw = pwd.getpwnam("postgres")
    return ["/usr/bin/python3", "-c", f"import os, sys; os.setgroups([]); os.setgid({pw.pw_gid});"
            f" os.setuid({pw.pw_uid}); os.execv('/bin/sh', ['sh', *sys.argv[1:]])",
            script, *args]


def _postgres_native(prog: str, *args: str) -> subprocess.CompletedProcess:
    """tests/runtime/progs/`prog` natively, as postgres, in a scratch directory the postgres
    user can reach (pytest's own are root's, 0700); `args` may name it as SCRATCH."""
    scratch = tempfile.mkdtemp(prefix="runpsc-pg-", dir="/tmp")
    try:
        os.chmod(scratch, 0o777)
        script = os.path.join(scratch, prog)
        shutil.copy(PROGS / prog, script)
        return subprocess.run(_as_postgres(script, *(a.replace("SCRATCH", scratch) for a in args)),
                              capture_output=True, stdin=subprocess.DEVNULL, cwd="/tmp",
                              timeout=300)
    finally:
        shutil.rmtree(scratch)


def test_postgres_initdb_and_single_user_backend_match_linux():
    """Debian's PostgreSQL: initdb, then a standalone backend running queries."""
    bindir = _postgres_bindir()
    want = _postgres_native("postgres_single.sh", "SCRATCH/pgdata", bindir)
    assert b'answer = "42"' in want.stdout and b'sum = "500500"' in want.stdout, want
    got = runpsc("do", f"--volume={PROGS}:/progs:ro", "--cwd=/tmp", "--",
                 *_as_postgres("/progs/postgres_single.sh", "/tmp/pgdata", bindir), timeout=600)
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines(), \
        got.stderr.decode(errors="replace")
    assert got.returncode == want.returncode


def _running_with(marker: str) -> list[int]:
    """Host pids of live processes whose command line holds `marker`."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker.encode() in cmdline and state != "Z":
                pids.append(int(entry))
    return pids


def test_postgres_server_pg_ctl_psql_over_unix_socket_and_tcp_match_linux():
    """A running server: `pg_ctl start` (the postmaster, its auxiliary processes and one
    backend forked per connection; SysV and POSIX shared memory, a unix socket and a TCP
    listener on 127.0.0.1), psql over both, `pg_ctl stop`."""
    want, got = _postgres_server_both("postgres_server.sh")
    assert b"127.0.0.1|t|127.0.0.1|1000|500500" in want.stdout, want
    assert b"server stopped" in want.stdout, want
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines(), \
        got.stderr.decode(errors="replace")
    assert got.returncode == want.returncode == 0


def _postgres_server_both(prog: str) -> tuple[subprocess.CompletedProcess,
                                                subprocess.CompletedProcess]:
    """A server script's native run and its run in the sandbox, which must leave no process
    of the server behind. The sandbox's network is its own (`none`: lo only), so it uses a
    fixed port; natively a free one."""
    import socket
    import uuid

    bindir = _postgres_bindir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    want = _postgres_native(prog, "SCRATCH/pgdata", bindir, port, "SCRATCH")
    datadir = f"/tmp/pgdata-{uuid.uuid4().hex}"  # names the sandbox's postgres processes
    got = runpsc("do", f"--volume={PROGS}:/progs:ro", "--cwd=/tmp", "--",
                 *_as_postgres(f"/progs/{prog}", datadir, bindir, "5432", "/tmp"),
                 timeout=900)
    assert _running_with(datadir) == []
    return want, got


def test_postgres_under_load_pgbench_parallel_workers_notify_dump_match_linux():
    """pgbench's concurrent clients, parallel query workers, LISTEN/NOTIFY, pg_dump | psql."""
    want, got = _postgres_server_both("postgres_workload.sh")
    assert b"400/400" in want.stdout and b"Workers Launched: 2" in want.stdout, want
    assert want.stdout.endswith(b"100000|100000\nstopped\n"), want
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines(), \
        got.stderr.decode(errors="replace")
    assert got.returncode == want.returncode == 0


def test_postgres_left_running_ends_with_the_sandbox():
    """`pg_ctl start` and no stop: the postmaster and its children (daemons, reparented) end
    when the sandbox's program exits; none runs on."""
    import uuid

    bindir = _postgres_bindir()
    datadir = f"/tmp/pgdata-{uuid.uuid4().hex}"
    script = ('"$2/initdb" -D "$1" -A trust --no-sync >/dev/null 2>&1 && "$2/pg_ctl" -D "$1"'
              ' -w -l "$1/log" -o "-k /tmp" start >/dev/null && echo started')
    got = runpsc("do", "--cwd=/tmp", "--", *_as_postgres("-c", script, "sh", datadir, bindir),
                 timeout=600)
    assert got.stdout == b"started\n", got.stderr.decode(errors="replace")
    assert got.returncode == 0
    assert _running_with(datadir) == []
