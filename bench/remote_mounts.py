"""A sandbox's files over the link: local gofer vs `--mount` over TCP vs TLS (vs diod TCP).

Each variant runs `runpsc do` with the same directory mounted at /data, and a Python program
inside the sandbox times (itself, so start-up is left out) a sequential read of a file made
on the host, a sequential write + fsync of as many bytes, and create+stat+unlink of N files:

- `local`: `--volume DIR:/data` (the gofer the Sentry starts, over a socketpair; goferfs's
  shared policy, which is `cache=none`'s);
- `tcp`, `tls`: `--mount 9p:tcp:...`/`9p:tls:...` to a `runpsc gofer serve` on loopback,
  `cache=none` (same policy as local), and `tls-reval` with `cache=revalidating`;
- `diod-tcp`: `--mount 9p:tcp:...` to diod (if installed), `cache=none`.

Variants are interleaved (each round runs every variant once) so load changes hit them
alike; the table shows each variant's median.

    .venv/bin/python bench/remote_mounts.py [--size-mib 200] [--files 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gofer_throughput import free_port, start_diod, wait_port  # noqa: E402
from tests.tlscerts import make_pki  # noqa: E402

# Runs inside the sandbox: prints one JSON line of timings (seconds).
WORKLOAD = r"""
import json, os, sys, time
d, size, nfiles = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = {}
t = time.perf_counter()
with open(f"{d}/big", "rb", buffering=0) as f:
    while f.read(1 << 20):
        pass
out["read"] = time.perf_counter() - t
chunk = os.urandom(1 << 20)
t = time.perf_counter()
with open(f"{d}/written", "wb", buffering=0) as f:
    for _ in range(size >> 20):
        f.write(chunk)
    os.fsync(f.fileno())
out["write"] = time.perf_counter() - t
os.mkdir(f"{d}/many")
t = time.perf_counter()
for i in range(nfiles):
    p = f"{d}/many/f{i}"
    os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))
    os.stat(p)
    os.unlink(p)
out["meta"] = time.perf_counter() - t
os.rmdir(f"{d}/many")
os.unlink(f"{d}/written")
print(json.dumps(out))
"""


@contextlib.contextmanager
def server(cmd: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sandbox(args: list[str], size: int, nfiles: int) -> dict[str, float]:
    cmd = [sys.executable, "-m", "runtime.cli", "do", *args, "--", sys.executable, "-c",
           WORKLOAD, "/data", str(size), str(nfiles)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"{args}: {r.stderr.decode(errors='replace')[-2000:]}")
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=200)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    size = a.size_mib << 20
    top = Path(tempfile.mkdtemp(prefix="runpsc-bench-remote-"))
    try:
        os.chmod(top, 0o755)
        data = top / "data"
        data.mkdir()
        os.chmod(data, 0o777)  # mkdir's mode passes through the umask; a plain-TCP
        # gofer serves its clients as nobody (squashed), who must be able to create here
        with open(data / "big", "wb") as f:
            for _ in range(a.size_mib):
                f.write(os.urandom(1 << 20))
        pki = make_pki(str(top))
        tls = ["--tls-ca", pki.ca, "--tls-cert", pki.alice.cert, "--tls-key", pki.alice.key]
        tcp_port, tls_port, diod_port = free_port(), free_port(), free_port()
        gofer = [sys.executable, "-m", "runtime.cli", "gofer", "serve", "--export",
                 f"data={data}", "--idle-timeout", "0"]
        variants: dict[str, list[str]] = {
            "local": ["--volume", f"{data}:/data"],
            "tcp": ["--mount", f"9p:tcp:127.0.0.1:{tcp_port},aname=data,cache=none:/data"],
            "tls": ["--mount", f"9p:tls:127.0.0.1:{tls_port},aname=data,cache=none:/data", *tls],
            "tls-reval": ["--mount", f"9p:tls:127.0.0.1:{tls_port},aname=data,"
                          "cache=revalidating:/data", *tls],
        }
        with contextlib.ExitStack() as stack:
            stack.enter_context(server([*gofer, "--listen", f"tcp:127.0.0.1:{tcp_port}"],
                                       tcp_port))
            stack.enter_context(server([*gofer, "--listen", f"tls:127.0.0.1:{tls_port}",
                                        "--tls-cert", pki.server.cert, "--tls-key",
                                        pki.server.key, "--tls-client-ca", pki.ca], tls_port))
            if shutil.which("diod") or os.path.exists("/usr/sbin/diod"):
                diod = start_diod(data, diod_port)
                stack.callback(lambda: (diod.terminate(), diod.wait()))
                wait_port(diod_port, diod)
                variants["diod-tcp"] = ["--mount", f"9p:tcp:127.0.0.1:{diod_port},"
                                        f"aname={data},cache=none:/data"]
            runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
            for r in range(a.repeat):
                for name, args in variants.items():
                    runs[name].append(sandbox(args, size, a.files))
                    print(f"round {r + 1} {name}: {runs[name][-1]}", file=sys.stderr)
        print(f"{a.size_mib} MiB sequential, {a.files} x create+stat+unlink, median of "
              f"{a.repeat} interleaved rounds, load {os.getloadavg()[0]:.1f}")
        print(f"| {'variant':<10} | read MiB/s | write+fsync MiB/s | create+stat+unlink /s |")
        print("|---|---:|---:|---:|")
        for name, rs in runs.items():
            rd = statistics.median(x["read"] for x in rs)
            wr = statistics.median(x["write"] for x in rs)
            mt = statistics.median(x["meta"] for x in rs)
            print(f"| {name:<10} | {a.size_mib / rd:10.0f} | {a.size_mib / wr:17.0f} | "
                  f"{a.files / mt:21.0f} |")
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    print(f"(took {time.monotonic() - t0:.0f} s)", file=sys.stderr)
