"""How long a sandbox's remote mount stalls when its gofer is killed and started again.

A `runpsc gofer serve` (tcp: or tls: on loopback) serves a directory mounted in a
`runpsc do --mount ...` sandbox whose shell reads a file, says so, and waits for a line on
its stdin. Then: the gofer is killed (SIGKILL) and a new one started at once on the same
port; the line is sent; the shell reads the file again (its lookup and read wait for the
reconnection) and says so. Printed per round: the stall (kill → the shell's second
answer), the new gofer's own start-up time (spawn → listening), and the reconnection time
the sandbox logs (loss noticed → fids re-established).

    .venv/bin/python bench/reconnect.py [--kind tcp|tls] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gofer_throughput import free_port  # noqa: E402
from tests.tlscerts import make_pki  # noqa: E402

SCRIPT = "cat /data/in; echo phase1; read go; cat /data/in; echo done"


def _gofer(args: list[str]) -> tuple[subprocess.Popen, int]:
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "gofer", "serve",
                             "--ready-fd", str(w), *args], pass_fds=(w,), cwd=ROOT,
                            stderr=subprocess.DEVNULL)
    os.close(w)
    return proc, r


def _ready(fd: int) -> None:
    if os.read(fd, 1) != b"R":
        raise RuntimeError("the gofer did not start")
    os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", choices=("tcp", "tls"), default="tcp")
    ap.add_argument("--repeat", type=int, default=5)
    opts = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="reconnect-bench-"))
    served = tmp / "served"
    served.mkdir()
    (served / "in").write_bytes(b"input\n")
    (tmp / "pki").mkdir()
    pki = make_pki(str(tmp / "pki"))
    port = free_port()
    gargs = ["--export", f"data={served}", "--listen", f"{opts.kind}:127.0.0.1:{port}"]
    tls: list[str] = []
    if opts.kind == "tls":
        gargs += ["--tls-cert", pki.server.cert, "--tls-key", pki.server.key,
                  "--tls-client-ca", pki.ca]
        tls = ["--tls-ca", pki.ca, "--tls-cert", pki.alice.cert, "--tls-key", pki.alice.key]
    else:
        gargs.append("--trust-client-identity")
    stalls, starts, logged = [], [], []
    for _ in range(opts.repeat):
        gofer, fd = _gofer(gargs)
        _ready(fd)
        sb = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "do", "--mount",
             f"9p:{opts.kind}:127.0.0.1:{port},aname=data:/data", *tls, "--", "sh", "-c",
             SCRIPT], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        assert sb.stdout is not None and sb.stdin is not None
        while sb.stdout.readline() != b"phase1\n":
            pass
        t0 = time.perf_counter()
        gofer.send_signal(signal.SIGKILL)
        gofer.wait()
        gofer, fd = _gofer(gargs)
        sb.stdin.write(b"go\n")
        sb.stdin.flush()
        _ready(fd)
        starts.append(time.perf_counter() - t0)
        while sb.stdout.readline() != b"done\n":
            pass
        stalls.append(time.perf_counter() - t0)
        _, err = sb.communicate()
        m = re.search(rb"re-established after ([0-9.]+)s", err)
        if m:
            logged.append(float(m.group(1)))
        gofer.terminate()
        gofer.wait()
    print(f"{opts.kind}: {opts.repeat} rounds, medians: program stalled "
          f"{statistics.median(stalls):.2f}s after the kill; the new gofer listened after "
          f"{statistics.median(starts):.2f}s; reconnection (logged) "
          f"{statistics.median(logged) if logged else float('nan'):.2f}s")
    print("stalls:", " ".join(f"{s:.2f}" for s in stalls))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
