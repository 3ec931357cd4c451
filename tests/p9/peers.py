"""Start and stop real 9P peers (diod, nfs-ganesha) for the tests and the benchmark."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator


def wait_connectable(addr, family: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Poll until `addr` accepts a connection (the peer is ready) or the peer died."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"peer exited with {proc.returncode}: {out[-2000:]}")
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.connect(addr)
                return
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"peer did not listen on {addr!r} within {timeout}s")
        time.sleep(0.02)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a peer we started (by its pid) and reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout:
        proc.stdout.close()


@contextlib.contextmanager
def diod(diod_bin: str, export: str, *, tcp_port: int | None = None,
         unix_path: str | None = None, nwthreads: int | None = None) -> Iterator[subprocess.Popen]:
    """Run `diod -f -n -e EXPORT -c /dev/null` listening on TCP loopback or a unix socket."""
    listen = unix_path if unix_path else f"127.0.0.1:{tcp_port}"
    cmd = [diod_bin, "-f", "-n", "-l", listen, "-e", export, "-c", "/dev/null", "-L", "stderr"]
    if nwthreads:
        cmd += ["-w", str(nwthreads)]
    # diod raises its own RLIMIT_CORE (and exits if it cannot), and the core pattern is a
    # plain "core": run it in a directory of its own so a crash never leaves a 200 MB core
    # in the caller's working directory (the checkout, under pytest).
    workdir = tempfile.mkdtemp(prefix="runpsc-diod-cwd-")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        if unix_path:
            wait_connectable(unix_path, socket.AF_UNIX, proc)
        else:
            wait_connectable(("127.0.0.1", tcp_port), socket.AF_INET, proc)
        yield proc
    finally:
        stop(proc)
        if unix_path and os.path.exists(unix_path):
            os.unlink(unix_path)
        if os.listdir(workdir):
            warnings.warn(f"diod crashed (core dumped) serving {export!r}", stacklevel=1)
        shutil.rmtree(workdir, ignore_errors=True)


GANESHA_CONF = """\
NFS_CORE_PARAM {{
    Protocols = 9P;
    Bind_addr = 127.0.0.1;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
}}
NFSV4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = "{state}"; }}
NFS_KRB5 {{ Active_krb5 = false; }}
_9P {{ _9P_TCP_Port = {port}; _9P_TCP_Msize = {msize}; Nb_Worker = 4; }}
EXPORT {{
    Export_Id = 1;
    Path = "{export}";
    Pseudo = "{export}";
    Protocols = 9P;
    Access_Type = RW;
    Squash = No_Root_Squash;
    FSAL {{ Name = VFS; }}
}}
LOG {{ Default_Log_Level = EVENT; }}
"""


@contextlib.contextmanager
def ganesha(ganesha_bin: str, export: str, workdir: str, *, port: int,
            msize: int = 65536) -> Iterator[subprocess.Popen]:
    """Run nfs-ganesha in the foreground with only its 9P server (no NFS, no rpcbind).

    Ganesha's 9P listener binds the wildcard address (its Bind_addr applies to NFS only in
    4.3); this machine's network is loopback only. Its state and log stay in `workdir`.
    """
    state = os.path.join(workdir, "state")
    os.makedirs(state, exist_ok=True)
    conf = os.path.join(workdir, "ganesha.conf")
    with open(conf, "w") as fh:
        fh.write(GANESHA_CONF.format(state=state, port=port, msize=msize, export=export))
    log = os.path.join(workdir, "ganesha.log")
    cmd = [ganesha_bin, "-F", "-f", conf, "-L", log, "-p", os.path.join(workdir, "ganesha.pid"),
           "-N", "NIV_EVENT"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_connectable(("127.0.0.1", port), socket.AF_INET, proc, timeout=30)
        yield proc
    finally:
        stop(proc)
