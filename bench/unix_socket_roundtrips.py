"""Unix-socket round trips per second: native next to the sandbox, interleaved in one run.

A C program makes a socketpair (stream, then datagram), forks an echo child and times N
round trips of a 64-byte message (write, then read the echo) with CLOCK_MONOTONIC (vDSO,
no syscall); then the same over two pipes, for scale (the platform's cost without sockets). Each round runs the program natively and under `runpsc do`, alternating, so
both see the same machine load; the table gives medians and the ratio.

Run: .venv/bin/python bench/unix_socket_roundtrips.py [--iterations N] [--rounds R]
Prints a table; not a test (figures depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    int types[2] = {SOCK_STREAM, SOCK_DGRAM};
    const char *names[2] = {"stream", "dgram"};
    for (int k = 0; k < 2; k++) {
        int sv[2];
        if (socketpair(AF_UNIX, types[k], 0, sv) < 0) return 1;
        char buf[64] = {0};
        pid_t pid = fork();
        if (pid == 0) {
            close(sv[0]);
            for (long i = 0; i < n; i++) {
                if (read(sv[1], buf, sizeof buf) != sizeof buf) _exit(2);
                if (write(sv[1], buf, sizeof buf) != sizeof buf) _exit(3);
            }
            _exit(0);
        }
        close(sv[1]);
        double t0 = now();
        for (long i = 0; i < n; i++) {
            if (write(sv[0], buf, sizeof buf) != sizeof buf) return 4;
            if (read(sv[0], buf, sizeof buf) != sizeof buf) return 5;
        }
        double t = now() - t0;
        waitpid(pid, NULL, 0);
        close(sv[0]);
        printf("%s %.0f\n", names[k], n / t);
    }
    /* the same over two pipes, for scale: what the platform costs without sockets */
    int a[2], b[2];
    if (pipe(a) < 0 || pipe(b) < 0) return 1;
    char buf[64] = {0};
    pid_t pid = fork();
    if (pid == 0) {
        for (long i = 0; i < n; i++) {
            if (read(a[0], buf, sizeof buf) != sizeof buf) _exit(2);
            if (write(b[1], buf, sizeof buf) != sizeof buf) _exit(3);
        }
        _exit(0);
    }
    double t0 = now();
    for (long i = 0; i < n; i++) {
        if (write(a[1], buf, sizeof buf) != sizeof buf) return 4;
        if (read(b[0], buf, sizeof buf) != sizeof buf) return 5;
    }
    double t = now() - t0;
    waitpid(pid, NULL, 0);
    printf("pipes %.0f\n", n / t);
    return 0;
}
"""


def run(argv: list[str]) -> dict[str, float]:
    out = subprocess.run(argv, capture_output=True, check=True, timeout=600).stdout.decode()
    return {name: float(v) for name, v in (line.split() for line in out.splitlines())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "rt"
        (Path(tmp) / "rt.c").write_text(PROGRAM)
        subprocess.run(["gcc", "-O2", "-static", "-o", str(exe), str(Path(tmp) / "rt.c")],
                       check=True)
        sandbox = [sys.executable, "-m", "runtime.cli", "do", f"--volume={tmp}:/b", "--",
                   "/b/rt", str(args.iterations)]
        native_argv = [str(exe), str(args.iterations)]
        got: dict[str, dict[str, list[float]]] = {"native": {}, "runpsc": {}}
        for _ in range(args.rounds):
            for who, argv in (("native", native_argv), ("runpsc", sandbox)):
                for name, v in run(argv).items():
                    got[who].setdefault(name, []).append(v)
    print(f"unix-socket round trips/s, 64-byte messages, {args.iterations} per run, "
          f"median of {args.rounds} interleaved runs")
    print("| channel | native | runpsc | runpsc/native |")
    print("|---|---|---|---|")
    for name in got["native"]:
        n = statistics.median(got["native"][name])
        r = statistics.median(got["runpsc"][name])
        print(f"| {name} | {n:,.0f} | {r:,.0f} | {r / n:.3f} |")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
