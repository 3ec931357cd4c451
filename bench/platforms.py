"""Per-syscall cost on each platform of the Sentry (ptrace, seccomp), measured in one run,
interleaved (each repetition runs every platform in turn, so load on the machine falls on
both alike); the best of the repetitions is printed, with native for reference.

Calls (bench/syscall_overhead.py's program): getppid (answered again in C after the
first, on both platforms), umask (Python's dispatch every time), openclose, stat and
read4k (pread of 4 KiB). Pinned placement (RUNPSC_CPU=auto, the default). Also the floor
of each mechanism, on the same CPU: a minimal C PTRACE_SYSEMU loop
(bench/syscall_overhead.py's) and a minimal C seccomp user-notification loop (below),
each answering getppid.

Run: .venv/bin/python bench/platforms.py [--iterations N] [--repeat R]
Prints a table; not a test (figures depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syscall_overhead import (  # noqa: E402
    FLOOR,
    MODES,
    PROGRAM,
    build,
    floor_run,
    in_runpsc,
    placed,
)

PLATFORMS = ("ptrace", "seccomp")

NOTIF_FLOOR = r"""
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
/* The minimal seccomp user-notification platform: the child's getppid calls are
   notifications, each answered with 0 (RECV, SEND); the child times its loop. */
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    int sv[2], fd;
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    pid_t c = fork();
    if (c == 0) {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {4, f};
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                     &prog);
        char cbuf[CMSG_SPACE(sizeof(int))];
        struct iovec io = {"x", 1};
        struct msghdr m = {0};
        m.msg_iov = &io; m.msg_iovlen = 1; m.msg_control = cbuf; m.msg_controllen = sizeof cbuf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_SOCKET; cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof fd);
        sendmsg(sv[1], &m, 0);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%.0f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
        fflush(stdout);
        _exit(0);
    }
    char cbuf[CMSG_SPACE(sizeof(int))], x;
    struct iovec io = {&x, 1};
    struct msghdr m = {0};
    m.msg_iov = &io; m.msg_iovlen = 1; m.msg_control = cbuf; m.msg_controllen = sizeof cbuf;
    recvmsg(sv[0], &m, 0);
    memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    for (long i = 0; i < n; i++) {
        memset(&req, 0, sizeof req);
        if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) return 1;
        memset(&resp, 0, sizeof resp);
        resp.id = req.id;
        ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
    waitpid(c, NULL, 0);
    return 0;
}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n, rep = args.iterations, max(1, args.repeat)
    tmp = Path(tempfile.mkdtemp(prefix="runpsc-bench-"))
    try:
        prog = build(tmp, "prog", PROGRAM, "-static")
        data = os.urandom(4096)
        (tmp / "data").write_bytes(data)
        floors = {"ptrace": build(tmp, "floor", FLOOR), "seccomp": build(tmp, "nfloor", NOTIF_FLOOR)}
        cpu = placed("pinned")
        load0 = os.getloadavg()[0]
        best: dict[tuple[str, str], float] = {}
        for _ in range(rep):
            for p, binary in floors.items():
                got = floor_run(binary, n, cpu)
                best[(p, "floor")] = min(best.get((p, "floor"), got), got)
        for mode in MODES:
            for _ in range(rep):
                nat = float(subprocess.run([prog, mode, str(n * 10), str(tmp / "data")],
                                           capture_output=True, check=True).stdout)
                best[("native", mode)] = min(best.get(("native", mode), nat), nat)
                for p in PLATFORMS:
                    os.environ["RUNPSC_PLATFORM"] = p
                    got = trio.run(in_runpsc, prog, mode, n, data)
                    best[(p, mode)] = min(best.get((p, mode), got), got)
        print(f"ns per call, best of {rep} runs of {n} calls (load {load0:.1f} -> "
              f"{os.getloadavg()[0]:.1f})")
        print(f"{'call':<10} {'native':>8} " + " ".join(f"{p:>8}" for p in PLATFORMS)
              + "  ptrace/seccomp")
        print(f"{'C floor':<10} {'':>8} " + " ".join(f"{best[(p, 'floor')]:>8.0f}"
                                                    for p in PLATFORMS))
        for mode in MODES:
            row = [best[(p, mode)] for p in PLATFORMS]
            print(f"{mode:<10} {best[('native', mode)]:>8.0f} "
                  + " ".join(f"{v:>8.0f}" for v in row) + f"  {row[0] / row[1]:>8.2f}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
