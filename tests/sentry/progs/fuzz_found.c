/* What the random-syscall fuzzer found, each call printed with its result and errno, to be
 * compared with a native run (tests/sentry/test_fuzz_found.py). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%s: %s\n", what, r < 0 ? strerror(errno) : "ok");
}

int main(void) {
    /* a segment larger than any file (> LLONG_MAX): EINVAL, not a failed host ftruncate */
    show("shmget 2^63", syscall(SYS_shmget, IPC_PRIVATE, 1UL << 63, IPC_CREAT | 0600));
    show("shmget 2^64-1", syscall(SYS_shmget, IPC_PRIVATE, ~0UL, IPC_CREAT | 0600));
    return 0;
}
