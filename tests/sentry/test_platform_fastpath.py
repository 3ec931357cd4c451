"""The hot loop's C fast path for per-task values (getpid, getppid, gettid, get*id,
getpgrp): repeats are answered in C with the Sentry's own answer, and the answers follow
every change (fork, reparenting, set*id, setpgid, a new thread) as on Linux; signals still
get through; never under --strace."""

import io

import pytest

import sentry.kernel.kernel as kernel_mod
import sentry.syscalls  # noqa: F401 - registers the handlers the Kernel serves
from sentry.kernel import Kernel
from sentry.kernel.fdtable import FDTable
from sentry.loader import HostFiles
from sentry.platform import usernotif
from sentry.strace import Strace, traced_table
from tests.support import need_root

from .platform_helpers import Captured, build_c, capture_table, native, run_vfs

PROGRAM = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 300
static long call(long nr) { return syscall(nr); }
/* The same call N times in a row (runs the C fast path): 1 if every answer is `want`. */
static int steady(long nr, long want) {
    for (int i = 0; i < N; i++) if (call(nr) != want) return 0;
    return 1;
}
static void *thread_main(void *arg) {
    long tid = call(SYS_gettid);
    printf("thread: tid differs from pid %d, steady %d, pid steady %d\n",
           tid != call(SYS_getpid), steady(SYS_gettid, tid),
           steady(SYS_getpid, *(long *)arg));
    fflush(stdout);
    return NULL;
}
static volatile sig_atomic_t got;
static void on_usr1(int sig) { got = sig; }

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    long top = call(SYS_getpid);
    prctl(PR_SET_CHILD_SUBREAPER, 1);  /* natively, orphans come to us as in the sandbox */
    printf("steady pid %d ppid %d tid %d pgrp %d\n", steady(SYS_getpid, top),
           steady(SYS_getppid, call(SYS_getppid)), steady(SYS_gettid, top),
           steady(SYS_getpgrp, call(SYS_getpgrp)));

    /* fork: the child's answers are its own from its first call on */
    pid_t c = fork();
    if (c == 0) {
        long me = call(SYS_getpid);
        printf("child: pid is fork's %d, steady %d, ppid is parent %d, steady %d\n",
               me == (long)getpid(), steady(SYS_getpid, me),
               call(SYS_getppid) == top, steady(SYS_getppid, top));
        setpgid(0, 0);
        printf("child: pgrp after setpgid is pid %d, steady %d\n",
               call(SYS_getpgrp) == me, steady(SYS_getpgrp, me));
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    printf("parent: pid still steady %d\n", steady(SYS_getpid, top));

    /* reparenting: a grandchild spins on getppid until its parent is gone */
    c = fork();
    if (c == 0) {
        long mid = call(SYS_getpid);
        pid_t g = fork();
        if (g == 0) {
            long spins = 0;
            while (call(SYS_getppid) == mid) spins++;
            printf("grandchild: reparented to top %d, steady %d\n",
                   call(SYS_getppid) == top, steady(SYS_getppid, top));
            _exit(0);
        }
        usleep(20000);
        _exit(0);
    }
    waitpid(c, &st, 0);
    while (wait(&st) > 0) {}

    /* a signal sent while the target spins on getppid gets delivered */
    signal(SIGUSR1, on_usr1);
    c = fork();
    if (c == 0) {
        usleep(10000);
        kill(top, SIGUSR1);
        _exit(0);
    }
    long spins = 0;
    while (!got) { call(SYS_getppid); spins++; }
    printf("signal while spinning on getppid: %d\n", got);
    waitpid(c, &st, 0);

    /* a new thread */
    pthread_t th;
    pthread_create(&th, NULL, thread_main, &top);
    pthread_join(th, NULL);

    /* credentials: the answers change with set*id */
    if (argc > 1) {
        printf("ids %ld %ld %ld %ld\n", call(SYS_getuid), call(SYS_geteuid),
               call(SYS_getgid), call(SYS_getegid));
        if (setresgid(1000, 1001, 1002) || setresuid(2000, 2001, 2002)) perror("set*id");
        printf("after set*id: uid %ld steady %d euid %ld steady %d gid %ld steady %d "
               "egid %ld steady %d\n",
               call(SYS_getuid), steady(SYS_getuid, 2000), call(SYS_geteuid),
               steady(SYS_geteuid, 2001), call(SYS_getgid), steady(SYS_getgid, 1000),
               call(SYS_getegid), steady(SYS_getegid, 1001));
    }
    return 0;
}
"""


@pytest.fixture
def answered_in_c(monkeypatch):
    """Count the calls the C fast path answers (the real hot_run, or the seccomp
    platform's sc_run, counted)."""
    if kernel_mod.hot_run is None:
        pytest.skip("the cffi hot loop is not built")
    count = {"calls": 0, "answered": 0}

    def counting(real):
        def counted(*args):
            st = real(*args)
            count["calls"] += 1
            count["answered"] += kernel_mod.hot_answered[0]
            return st
        return counted

    monkeypatch.setattr(kernel_mod, "hot_run", counting(kernel_mod.hot_run))
    if usernotif.sc_run is not None:
        monkeypatch.setattr(usernotif, "sc_run", counting(usernotif.sc_run))
    return count


async def test_per_task_values_follow_every_change_as_on_linux(tmp_path, answered_in_c):
    prog = build_c(tmp_path, "ids", PROGRAM, "-static", "-pthread")
    want_status, want = native([prog])
    status, out, k, _ = await run_vfs(["/ids"], {"/ids": prog})
    assert (status, out.decode()) == (want_status, want.decode())
    assert "steady 0" not in out.decode() and "is parent 1" in out.decode()
    assert answered_in_c["answered"] > 1000  # the repeats were answered in C
    assert not [e for e in k.events if e[0] != "unsupported-syscall"]


async def test_credentials_follow_setid_as_on_linux(tmp_path, answered_in_c):
    need_root()  # natively, set*id to other ids needs root, as the sandbox's creds are
    prog = build_c(tmp_path, "ids", PROGRAM, "-static", "-pthread")
    want_status, want = native([prog, "creds"])
    status, out, _, _ = await run_vfs(["/ids", "creds"], {"/ids": prog})
    assert (status, out.decode()) == (want_status, want.decode())
    assert "after set*id: uid 2000 steady 1" in out.decode()


GETPPID_LOOP = r"""
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    for (int i = 0; i < 200; i++) syscall(SYS_getppid);
    return 0;
}
"""


async def test_never_under_strace(tmp_path, answered_in_c):
    """A traced table's entries are not the shared ones: every call reaches Python (and
    strace's output)."""
    prog = build_c(tmp_path, "loop", GETPPID_LOOP, "-static")
    lines: list[str] = []
    table = traced_table(capture_table(Captured()), Strace(lines.append, show_pid=False))
    k = Kernel(exec_source=HostFiles(), table=table, stderr=io.StringIO())
    status = await k.run([prog.encode()], [], FDTable())
    assert status == 0
    assert sum(line.startswith("getppid()") for line in lines) == 200
    assert answered_in_c["calls"] == 0
