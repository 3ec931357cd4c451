/* sched_setaffinity/sched_getaffinity: a mask set is the mask got back (by the thread, not
 * its process: another thread keeps its own), what fork and pthread_create inherit, the
 * mask of another thread set by its tid, and the errors: an empty mask or one naming no
 * CPU of ours (EINVAL), a short get buffer (EINVAL), bad pointers (EFAULT), no such task
 * (ESRCH). Masks print as the CPUs' positions among the allowed ones, so the output is the
 * same on any host. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static cpu_set_t all;
static int first, last;

static const char *err(long r) { return r >= 0 ? "ok" : strerrorname_np(errno); }

static void show(const char *what, pid_t who) {
    cpu_set_t s;
    CPU_ZERO(&s);
    long r = syscall(SYS_sched_getaffinity, who, sizeof s, &s);
    printf("%-30s %s", what, err(r));
    if (r > 0) {
        printf(" [");
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &s))
                printf(" %s", c == first ? "first" : c == last ? "last" : "other");
        printf(" ]");
    }
    printf("\n");
}

static long set(pid_t who, int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    if (cpu >= 0)
        CPU_SET(cpu, &s);
    return syscall(SYS_sched_setaffinity, who, sizeof s, &s);
}

static pid_t other_tid;
static pthread_barrier_t b1, b2, b3;

static void *thread(void *arg) {
    (void)arg;
    other_tid = gettid();
    show("new thread inherits", 0);
    pthread_barrier_wait(&b1);  /* main sets this thread's mask by tid */
    pthread_barrier_wait(&b2);
    show("thread after set by tid", 0);
    pthread_barrier_wait(&b3);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    sched_getaffinity(0, sizeof all, &all);
    first = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all)) {
            if (first < 0)
                first = c;
            last = c;
        }
    printf("cpus allowed: %d\n", CPU_COUNT(&all));
    show("at start", 0);
    show("by own pid", getpid());
    printf("%-30s %s\n", "set {first}", err(set(0, first)));
    show("after set {first}", 0);
    printf("%-30s %s\n", "set {}", err(set(0, -1)));
    printf("%-30s %s\n", "set {1000}", err(set(0, 1000)));
    show("after refused sets", 0);
    char big[256] = {0};
    big[0] = 1 << (first % 8);
    big[255] = 0xff; /* CPUs beyond the host's are ignored */
    printf("%-30s %s\n", "set 256 bytes", err(syscall(SYS_sched_setaffinity, 0, 256, big)));
    show("after 256 bytes", 0);
    printf("%-30s %s\n", "set 4 bytes", err(syscall(SYS_sched_setaffinity, 0, 4, big)));
    printf("%-30s %s\n", "set bad pointer", err(syscall(SYS_sched_setaffinity, 0, 128, (void *)8)));
    printf("%-30s %s\n", "get 4 bytes", err(syscall(SYS_sched_getaffinity, 0, 4, big)));
    printf("%-30s %s\n", "get bad pointer", err(syscall(SYS_sched_getaffinity, 0, 128, (void *)8)));
    printf("%-30s %s\n", "set no such pid", err(set(999999, first)));
    printf("%-30s %s\n", "set pid -1", err(set(-1, first)));
    printf("%-30s %s\n", "get pid -1", err(syscall(SYS_sched_getaffinity, -1, 128, big)));
    printf("%-30s %s\n", "get no such pid", err(syscall(SYS_sched_getaffinity, 999999, 128, big)));

    pid_t child = fork();
    if (child == 0) {
        show("forked child inherits", 0);
        _exit(0);
    }
    waitpid(child, NULL, 0);

    pthread_barrier_init(&b1, NULL, 2);
    pthread_barrier_init(&b2, NULL, 2);
    pthread_barrier_init(&b3, NULL, 2);
    pthread_t th;
    pthread_create(&th, NULL, thread, NULL);
    pthread_barrier_wait(&b1);
    printf("%-30s %s\n", "set thread {last} by tid", err(set(other_tid, last)));
    show("thread's mask by tid", other_tid);
    show("main keeps its own", 0);
    pthread_barrier_wait(&b2);
    pthread_barrier_wait(&b3);
    pthread_join(th, NULL);
    sched_setaffinity(0, sizeof all, &all);
    show("restored", 0);
    return 0;
}
