/* CPU-time clocks named by dynamic clock ids (pthread_getcpuclockid, clock_getcpuclockid
 * and Linux's encoding: ~pid << 3 | which, bit 2 for a thread): which ids clock_gettime and
 * clock_getres accept, which they refuse with EINVAL, and EFAULT. Prints errno names only,
 * and whether each clock runs forwards, so the output is the same natively and sandboxed. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROC_CLOCK(pid, which) ((clockid_t)((~(unsigned)(pid)) << 3) | (which))
#define THREAD_CLOCK(tid, which) (PROC_CLOCK(tid, which) | 4)

static const char *err(long r) { return r == 0 ? "ok" : strerrorname_np(errno); }

static void burn(void) {
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < 3000000; i++) x += i;
}

static void show(const char *what, clockid_t c) {
    struct timespec a = {0}, b = {0}, r = {0};
    const char *g1 = err(syscall(SYS_clock_gettime, c, &a));
    burn();
    const char *g2 = err(syscall(SYS_clock_gettime, c, &b));
    const char *gr = err(syscall(SYS_clock_getres, c, &r));
    const char *gn = err(syscall(SYS_clock_getres, c, NULL));
    const char *gf = err(syscall(SYS_clock_gettime, c, (void *)8));
    int forwards = b.tv_sec > a.tv_sec || (b.tv_sec == a.tv_sec && b.tv_nsec >= a.tv_nsec);
    printf("%-28s gettime %s/%s forwards %d getres %s %ld.%09ld null %s badptr %s\n", what,
           g1, g2, forwards, gr, (long)r.tv_sec, r.tv_nsec, gn, gf);
}

static pthread_t main_thread;
static pid_t second_tid;
static pthread_barrier_t ready, done;

static void *second(void *arg) {
    (void)arg;
    second_tid = gettid();
    /* from a non-leader thread: its own tid names no process (getres says so; gettime
     * allows the caller's own pid) */
    show("proc clock of own tid", PROC_CLOCK(gettid(), 2));
    show("thread clock of own tid", THREAD_CLOCK(gettid(), 2));
    clockid_t mc;
    printf("pthread_getcpuclockid(main) %d\n", pthread_getcpuclockid(main_thread, &mc));
    show("main thread's clock", mc);
    pthread_barrier_wait(&ready);  /* main prints only after this thread's lines */
    pthread_barrier_wait(&done);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    burn();
    show("CLOCK_PROCESS_CPUTIME_ID", CLOCK_PROCESS_CPUTIME_ID);
    show("CLOCK_THREAD_CPUTIME_ID", CLOCK_THREAD_CPUTIME_ID);
    for (int which = 0; which < 4; which++) {
        char name[64];
        snprintf(name, sizeof name, "proc clock 0 which %d", which);
        show(name, PROC_CLOCK(0, which));
        snprintf(name, sizeof name, "thread clock 0 which %d", which);
        show(name, THREAD_CLOCK(0, which));
    }
    show("proc clock of getpid", PROC_CLOCK(getpid(), 2));
    show("thread clock of gettid", THREAD_CLOCK(gettid(), 1));
    clockid_t c;
    printf("clock_getcpuclockid(0) %d\n", clock_getcpuclockid(0, &c));
    show("clock_getcpuclockid(0)", c);

    main_thread = pthread_self();
    pthread_barrier_init(&ready, NULL, 2);
    pthread_barrier_init(&done, NULL, 2);
    pthread_t th;
    pthread_create(&th, NULL, second, NULL);
    pthread_barrier_wait(&ready);
    clockid_t tc;
    printf("pthread_getcpuclockid(second) %d\n", pthread_getcpuclockid(th, &tc));
    show("second thread's clock", tc);
    show("proc clock of second's tid", PROC_CLOCK(second_tid, 2));
    pthread_barrier_wait(&done);
    pthread_join(th, NULL);

    int p[2];
    pipe(p);
    pid_t child = fork();
    if (child == 0) {
        char x;
        close(p[1]);
        read(p[0], &x, 1);
        _exit(0);
    }
    close(p[0]);
    show("proc clock of a child", PROC_CLOCK(child, 2));
    show("thread clock of a child", THREAD_CLOCK(child, 2));
    printf("clock_getcpuclockid(child) %d\n", clock_getcpuclockid(child, &c));
    close(p[1]);
    waitpid(child, NULL, 0);
    show("proc clock of a reaped child", PROC_CLOCK(child, 2));
    return 0;
}
