/* What the random-syscall fuzzer found, each call printed with its result and errno, to be
 * compared with a native run (tests/sentry/test_fuzz_found.py). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%s: %s\n", what, r < 0 ? strerror(errno) : "ok");
}

static void on_alarm(int sig) { (void)sig; }

/* A periodic ITIMER_REAL while `call` blocks: a handled SIGALRM (no SA_RESTART) must cut
 * it short with EINTR, whenever it comes. */
static long interrupted(long (*call)(void)) {
    struct itimerval on = {{0, 50000}, {0, 50000}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &on, NULL);
    long r = call();
    int e = errno;
    setitimer(ITIMER_REAL, &off, NULL);
    errno = e;
    return r;
}

static long creat_fifo(void) { return syscall(SYS_creat, "fifo", 0644); }
static long openat2_fifo(void) {
    struct open_how how = {.flags = O_RDONLY};
    return syscall(SYS_openat2, AT_FDCWD, "fifo", &how, sizeof how);
}
static int lock_fd;
static long flock_held(void) { return flock(lock_fd, LOCK_EX); }
static long setlkw_held(void) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    return fcntl(lock_fd, F_OFD_SETLKW, &fl);
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
        /* blocking opens and lock waits cut short by a handled signal (they hung) */
        struct sigaction sa = {.sa_handler = on_alarm};
        sigaction(SIGALRM, &sa, NULL);
        mkfifo("fifo", 0644);
        show("creat of a fifo without reader, signal", interrupted(creat_fifo));
        show("openat2 of a fifo without writer, signal", interrupted(openat2_fifo));
        unlink("fifo");
        int holder = open("lockf", O_CREAT | O_RDWR, 0644);
        lock_fd = open("lockf", O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        show("flock held", flock(holder, LOCK_EX));
        show("flock LOCK_EX held elsewhere, signal", interrupted(flock_held));
        show("F_OFD_SETLK held", fcntl(holder, F_OFD_SETLK, &fl));
        show("F_OFD_SETLKW held elsewhere, signal", interrupted(setlkw_held));
        close(holder);
        close(lock_fd);
        unlink("lockf");
    }
    return 0;
}
