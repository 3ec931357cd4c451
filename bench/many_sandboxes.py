"""Many sandboxes on one gofer at once: their wall time, and the gofer's descriptors before,
at the peak and after.

One `runpsc gofer serve --listen tcp:127.0.0.1:PORT` (no connection caps) serves a
directory; N `runpsc do --mount 9p:tcp:...:/data` sandboxes are started together, each
writes its own file, reads it back and lists the directory, then waits on its stdin until
all N are at that point (so all N connections, with their fids and open files, are held
at once); the gofer's descriptor count is read then, and again once every sandbox has
exited and the gofer has closed their connections.

    .venv/bin/python bench/many_sandboxes.py [--count 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gofer_throughput import free_port  # noqa: E402

# Holds the file open (fd 3) while it waits, as a sandbox's program holds its files.
SCRIPT = ('echo "$0" > /data/f$0 && exec 3</data/f$0 && cat <&3 && ls /data > /dev/null '
          '&& echo ready && read go && echo done')


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=20)
    opts = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="many-sandboxes-", dir="/var/tmp"))
    os.chmod(tmp, 0o755)
    served = tmp / "served"
    served.mkdir(mode=0o777)
    port = free_port()
    r, w = os.pipe()
    gofer = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "gofer", "serve", "--ready-fd", str(w),
         "--export", f"data={served}", "--listen", f"tcp:127.0.0.1:{port}",
         "--trust-client-identity", "--max-connections", "0", "--max-connections-per-peer", "0"],
        pass_fds=(w,), cwd=ROOT, stderr=subprocess.DEVNULL)
    os.close(w)
    sandboxes: list[subprocess.Popen] = []
    try:
        if os.read(r, 1) != b"R":
            raise RuntimeError("the gofer did not start")
        os.read(r, 1)  # EOF: its ready descriptor closed too
        os.close(r)
        before = _fds(gofer.pid)
        t0 = time.perf_counter()
        for i in range(opts.count):
            sandboxes.append(subprocess.Popen(
                [sys.executable, "-m", "runtime.cli", "do", "--mount",
                 f"9p:tcp:127.0.0.1:{port},aname=data:/data", "--", "sh", "-c", SCRIPT, str(i)],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        for i, sb in enumerate(sandboxes):
            assert sb.stdout is not None
            got = sb.stdout.readline() + sb.stdout.readline()
            if got != f"{i}\nready\n".encode():
                raise RuntimeError(f"sandbox {i}: {got!r}")
        all_up = time.perf_counter() - t0
        peak = _fds(gofer.pid)
        for sb in sandboxes:
            out, err = sb.communicate(b"go\n")
            if out != b"done\n" or sb.returncode != 0:
                raise RuntimeError(f"a sandbox ended {sb.returncode}: {out!r} {err!r}")
        total = time.perf_counter() - t0
        deadline = time.monotonic() + 60
        while _fds(gofer.pid) != before and time.monotonic() < deadline:
            time.sleep(0.05)
        after = _fds(gofer.pid)
        print(f"{opts.count} sandboxes on one gofer: all serving after {all_up:.1f}s, all done "
              f"after {total:.1f}s; gofer descriptors {before} before, {peak} with all "
              f"connected, {after} after")
    finally:
        for sb in sandboxes:
            if sb.poll() is None:
                sb.kill()
                sb.communicate()
        gofer.terminate()
        gofer.wait()
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
