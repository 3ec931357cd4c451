"""No application syscall reaches the host: each gets the Sentry's answer, also right after
the Sentry injected host calls (mmap, mprotect, munmap, fork, clone) for the program — the moment where
ptrace's stop ordering makes a passthrough easy: from a SYSEMU entry stop, resuming with
PTRACE_SYSCALL first gives the exit stop of the skipped call, and injecting a call before
that stop makes the host run the application's own syscall."""

import errno
import os

from sentry.errors import SyscallError

from .platform_helpers import build_c, native, run

PROGRAM = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <asm/prctl.h>
#include <sys/wait.h>
#include <pthread.h>

static const char *secret;
static void report(const char *what, long r) {
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%s %ld\n", what, r);
    syscall(SYS_write, 1, buf, n);
}
static void probe(const char *when) {
    char name[64];
    snprintf(name, sizeof name, "%s.getpid", when);
    report(name, syscall(SYS_getpid));
    snprintf(name, sizeof name, "%s.open", when);
    report(name, syscall(SYS_openat, AT_FDCWD, secret, O_RDONLY));
    snprintf(name, sizeof name, "%s.write7", when);
    report(name, syscall(SYS_write, 7, "x", 1));
}
static void *thread_probe(void *arg) {
    probe("new_thread");
    return arg;
}
int main(int argc, char **argv) {
    secret = argv[1];
    probe("start");
    void *p = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    probe("after_mmap");
    mprotect(p, 4096, PROT_READ);
    probe("after_mprotect");
    munmap(p, 8192);
    probe("after_munmap");
    syscall(SYS_arch_prctl, ARCH_SET_GS, 0x1000);
    probe("after_arch_prctl");
    pid_t c = fork();  /* the Sentry injected a host fork: the child's first calls */
    if (c == 0) {
        probe("forked_child");
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    pthread_t th;  /* the Sentry injected a host clone: the new thread's first calls */
    pthread_create(&th, NULL, thread_probe, NULL);
    pthread_join(th, NULL);
    report("done", 0);
    return 0;
}
"""


def _parse(out: bytes) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in out.decode().splitlines())}


async def test_every_syscall_gets_the_sentry_answer(tmp_path):
    prog = build_c(tmp_path, "escape", PROGRAM, "-static", "-pthread")
    secret = tmp_path / "secret"
    secret.write_text("host only")
    os.chmod(tmp_path, 0o755)

    # Natively the program sees the host: a real pid, the file opens, fd 7 is not open.
    st, out = native([prog, str(secret)])
    host = _parse(out)
    assert st == 0 and host["start.getpid"] > 1 and host["start.open"] >= 0

    def openat(t, dirfd, path, flags, *_):
        """Test-only openat(2): this sandbox exports nothing."""
        t.read_cstring(path)
        raise SyscallError(errno.ENOENT)

    status, out, _, k = await run([prog, str(secret)], extra={"openat": openat})
    assert status == 0
    got = _parse(out)
    stages = ["start", "after_mmap", "after_mprotect", "after_munmap", "after_arch_prctl"]
    assert got["forked_child.getpid"] == 2  # the child's sandbox pid
    for stage in [*stages, "forked_child", "new_thread"]:
        if stage != "forked_child":
            assert got[f"{stage}.getpid"] == 1, stage  # the sandbox pid, never the host's
        assert got[f"{stage}.open"] == -1, stage  # ENOENT from the Sentry (libc's -1)
        assert got[f"{stage}.write7"] == -1, stage  # EBADF from the Sentry
    assert "done" in got
    assert not [e for e in k.events if e[0] == "internal-error"]
