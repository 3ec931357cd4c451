/* What the random-syscall fuzzer found, each call printed with its result and errno, to be
 * compared with a native run (tests/sentry/test_fuzz_found.py). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%s: %s\n", what, r < 0 ? strerror(errno) : "ok");
}

int main(int argc, char **argv) {
    /* a segment larger than any file (> LLONG_MAX): EINVAL, not a failed host ftruncate */
    show("shmget 2^63", syscall(SYS_shmget, IPC_PRIVATE, 1UL << 63, IPC_CREAT | 0600));
    show("shmget 2^64-1", syscall(SYS_shmget, IPC_PRIVATE, ~0UL, IPC_CREAT | 0600));
    /* fallocate modes beyond the supported mask (a negative one too): EOPNOTSUPP, in a
     * directory given as argv[1] (a volume under runpsc do: the gofer's Tallocate could
     * not encode them) */
    if (argc > 1 && chdir(argv[1]) == 0) {
        int fd = open("falloc", O_CREAT | O_RDWR | O_TRUNC, 0644);
        show("fallocate mode -1", syscall(SYS_fallocate, fd, -1, 0L, 1L));
        show("fallocate mode 0x100", syscall(SYS_fallocate, fd, 0x100, 0L, 1L));
        show("fallocate mode 0x80000000", syscall(SYS_fallocate, fd, 0x80000000L, 0L, 1L));
        show("fallocate offset -1", syscall(SYS_fallocate, fd, 0, -1L, 1L));
        show("fallocate length 0", syscall(SYS_fallocate, fd, 0, 0L, 0L));
        show("fallocate 1 byte", syscall(SYS_fallocate, fd, 0, 0L, 1L));
        close(fd);
        unlink("falloc");
    }
    return 0;
}
