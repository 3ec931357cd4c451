/* Shared futexes against Linux: a waiter in one process woken through another process's
 * mapping of the same memory at another address (a tmpfs file mapped twice, a shared
 * anonymous mapping inherited over fork, a System V segment attached twice), and a
 * private wake that does not reach a shared waiter. argv[1]: a directory on a tmpfs. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long futex(int *addr, int op, int val) {
    return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

/* The child waits at `mine` (its own view), the parent wakes at `theirs`. */
static void round_trip(const char *what, int *parent_base, int *parent_view,
                       int *(*child_view)(void)) {
    *parent_view = 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int *w = child_view() + (parent_view - parent_base);
        long r = futex(w, FUTEX_WAIT, 0);  /* one sleep: 0 only if woken */
        printf("%s: child woken %ld at %s address\n", what, r,
               w == parent_view ? "the same" : "another");
        fflush(stdout);
        _exit(0);
    }
    long private_woken = 0;
    /* until the child sleeps: a shared wake reaches it, a private one never does */
    for (;;) {
        private_woken += futex(parent_view, FUTEX_WAKE_PRIVATE, 1);
        if (futex(parent_view, FUTEX_WAKE, 1) == 1)
            break;
        usleep(1000);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("%s: private wakes reached %ld, child exit %d\n", what, private_woken,
           WEXITSTATUS(st));
}

static char path[256];
static int shmid;

static int *file_again(void) {
    int fd = open(path, O_RDWR);
    return mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
}

static int *anon_inherited;
static int *anon_same(void) { return anon_inherited; }

static int *shm_again(void) { return shmat(shmid, NULL, 0); }

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IOLBF, 0);
    snprintf(path, sizeof path, "%s/futex-file", argc > 1 ? argv[1] : "/tmp");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ftruncate(fd, 4096);
    int *f = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    round_trip("tmpfs file", f, f + 7, file_again);
    anon_inherited = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    round_trip("shared anonymous", anon_inherited, anon_inherited + 3, anon_same);
    shmid = shmget(IPC_PRIVATE, 4096, 0600);
    int *s = shmat(shmid, NULL, 0);
    round_trip("sysv segment", s, s + 100, shm_again);
    shmctl(shmid, IPC_RMID, 0);
    unlink(path);
    return 0;
}
