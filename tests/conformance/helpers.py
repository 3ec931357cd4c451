"""Processes the conformance tests need: our gofer and our FUSE mount, started and stopped
by pid, and where the matrices go (artifacts/, kept by CI)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from conformance.report import Matrix

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"


def runpsc(*args: str) -> list[str]:
    return [sys.executable, "-m", "runtime.cli", *args]


def wait_for(pred, what: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Poll `pred()` until true; fail early if `proc` died."""
    deadline = time.monotonic() + timeout
    while not pred():
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"{what}: process exited {proc.returncode}: {out[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready within {timeout}s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
    """Signal a process we started and reap it; its exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout:
        proc.stdout.close()
    return proc.returncode


def _connectable(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


@contextlib.contextmanager
def gofer(export: Path, sock: Path, name: str = "x") -> Iterator[subprocess.Popen]:
    """`runpsc gofer serve --export NAME=EXPORT --listen unix:SOCK`."""
    proc = subprocess.Popen(runpsc("gofer", "serve", "--export", f"{name}={export}",
                                   "--listen", f"unix:{sock}"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_for(lambda: _connectable(str(sock)), "gofer", proc)
        yield proc
    finally:
        stop(proc)


def mounted(mnt: Path) -> bool:
    real = os.path.realpath(mnt)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == real for line in f)


@contextlib.contextmanager
def fuse_mount(address: str, mnt: Path, aname: str = "x",
               options: tuple[str, ...] = ()) -> Iterator[subprocess.Popen]:
    """`runpsc mount ADDRESS MNT --aname NAME [OPTIONS]`, unmounted (SIGTERM) afterwards."""
    proc = subprocess.Popen(runpsc("mount", address, str(mnt), "--aname", aname, *options),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_for(lambda: mounted(mnt), "runpsc mount", proc)
        yield proc
    finally:
        stop(proc)
        if mounted(mnt):  # a test failure must not leave a mount behind
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False)


def save(matrix: Matrix, name: str) -> None:
    """Write the matrix to artifacts/conformance-NAME.{txt,json} and print the summary."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"conformance-{name}.txt").write_text(matrix.text())
    matrix.dump_json(str(ARTIFACTS / f"conformance-{name}.json"))
    print("\n".join(matrix.summary_lines()))
