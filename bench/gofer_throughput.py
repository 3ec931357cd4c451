"""Gofer vs diod through our p9 client, same directory, same run.

Prints one table: sequential read and write of 200 MiB, create+stat+unlink of 10,000 files,
and readdir of a 100,000-entry directory, for `runpsc gofer serve` (confined when root) and
diod exporting the same directory, both over TCP on loopback.

    .venv/bin/python bench/gofer_throughput.py [--size-mib 200] [--files 10000] [--entries 100000]
                                               [--repeat 3] [--no-confine]

`bench/p9_throughput.py --ours gofer` puts the gofer in the p9 benchmark's "our server"
column too (walk+getattr rate and diod's own tools as clients).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

import p9

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def start_gofer(export: Path, port: int, *, confine: bool) -> subprocess.Popen:
    """Our server: the gofer CLI, confined unless not root."""
    args = [sys.executable, "-m", "runtime.cli", "gofer", "serve", "--export", f"bench={export}",
            "--listen", f"tcp:127.0.0.1:{port}", "--idle-timeout", "0",
            "--trust-client-identity"]  # as diod -n: the benchmark's client attaches as root
    if not confine:
        args.append("--no-confine")
    return subprocess.Popen(args, cwd=ROOT)


def start_diod(export: Path, port: int) -> subprocess.Popen:
    diod = shutil.which("diod") or "/usr/sbin/diod"
    return subprocess.Popen([diod, "-f", "-n", "-e", str(export), "-l", f"127.0.0.1:{port}"],
                            stderr=subprocess.DEVNULL)


async def timed(fn: Callable[[], Awaitable[None]]) -> float:
    t = time.perf_counter()
    await fn()
    return time.perf_counter() - t


async def run_suite(port: int, aname: bytes, size: int, nfiles: int, big: str) -> dict[str, float]:
    stream = await p9.connect_tcp("127.0.0.1", port)
    out: dict[str, float] = {}
    async with p9.open_client(stream, msize=1 << 20) as client:
        root = await client.attach(aname)
        payload = os.urandom(CHUNK)

        async def write() -> None:
            d = await root.walk([])
            await d.create(b"seq.bin", os.O_WRONLY | os.O_TRUNC, 0o644, os.getgid())
            off = 0
            while off < size:
                off += await d.write(off, payload)
            await d.clunk()

        async def read() -> None:
            f = await root.walk([b"seq.bin"])
            await f.open(os.O_RDONLY)
            off = 0
            while off < size:
                data = await f.read(off, 8 * CHUNK)
                if not data:
                    break
                off += len(data)
            assert off == size, off
            await f.clunk()

        async def metadata() -> None:
            for i in range(nfiles):
                name = b"m%06d" % i
                d = await root.walk([])
                await d.create(name, os.O_WRONLY, 0o644, os.getgid())
                await d.clunk()
                f = await root.walk([name])
                await f.getattr()
                await f.clunk()
                await root.unlinkat(name)

        async def readdir() -> None:
            d = await root.walk([big.encode()])
            await d.open(os.O_RDONLY)
            n = len(await d.readdir_all())
            await d.clunk()
            assert n >= 100, n

        out["write MiB/s"] = size / (1 << 20) / await timed(write)
        out["read MiB/s"] = size / (1 << 20) / await timed(read)
        out["create+stat+unlink /s"] = nfiles / await timed(metadata)
        out["readdir entries/s"] = None  # filled below
        t = await timed(readdir)
        out["readdir entries/s"] = (len(os.listdir(BIG_PATH)) + 2) / t
        await root.unlinkat(b"seq.bin")
        await root.clunk()
    return out


BIG_PATH = ""


def main() -> None:
    global BIG_PATH
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=200)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--no-confine", action="store_true")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per server; the best figure of each metric is kept (shared machine)")
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="gofer-bench-"))
    os.chmod(base, 0o755)
    try:
        export = base / "export"
        big = export / "big"
        big.mkdir(parents=True)
        for i in range(a.entries):
            os.close(os.open(big / f"entry-{i:06d}", os.O_CREAT | os.O_WRONLY, 0o644))
        BIG_PATH = str(big)
        results: dict[str, dict[str, float]] = {}
        for name, start, aname in (
            ("gofer (ours)", lambda p: start_gofer(export, p, confine=not a.no_confine and os.geteuid() == 0), b"bench"),
            ("diod", lambda p: start_diod(export, p), str(export).encode()),
        ):
            port = free_port()
            proc = start(port)
            try:
                wait_port(port, proc)
                runs = [trio.run(run_suite, port, aname, a.size_mib << 20, a.files, "big")
                        for _ in range(a.repeat)]
                results[name] = {k: max(r[k] for r in runs) for k in runs[0]}
            finally:
                proc.terminate()
                proc.wait()
        rows = list(next(iter(results.values())))
        cols = list(results)
        print(f"{'metric':<24}" + "".join(f"{c:>16}" for c in cols) + f"{'ours/diod':>12}")
        for r in rows:
            vals = [results[c][r] for c in cols]
            print(f"{r:<24}" + "".join(f"{v:>16.1f}" for v in vals) + f"{vals[0] / vals[1]:>12.2f}")
        print(f"(client: runpsc p9, msize 1 MiB asked, TCP loopback; {a.size_mib} MiB sequential, "
              f"{a.files} files, {a.entries} entries; best of {a.repeat}; load "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
