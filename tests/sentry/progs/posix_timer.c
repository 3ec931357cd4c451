/* POSIX timers: timer_create with SIGEV_SIGNAL (and the NULL default), SIGEV_THREAD_ID,
 * SIGEV_NONE; settime relative/absolute/periodic, gettime, getoverrun counting
 * expirations while the signal is pending, delete; CPU-time clocks; ids; errors;
 * a signal left queued by a re-arm or a delete dropped when taken; /proc/self/timers
 * (the notified pid shown as self). The same
 * output natively and in the sandbox (no times printed, only what is deterministic). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BAD ((void *)8)

static void show(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

/* raw syscalls: glibc's timer_t wrappers keep their own ids for SIGEV_THREAD */
static long tcreate(clockid_t c, struct sigevent *sev, int *id) {
    return syscall(SYS_timer_create, c, sev, id);
}
static long tset(int id, int flags, const struct itimerspec *n, struct itimerspec *o) {
    return syscall(SYS_timer_settime, id, flags, n, o);
}
static long tget(int id, struct itimerspec *c) { return syscall(SYS_timer_gettime, id, c); }
static long tover(int id) { return syscall(SYS_timer_getoverrun, id); }
static long tdel(int id) { return syscall(SYS_timer_delete, id); }

static volatile sig_atomic_t got, got_code, got_val, got_tid;
static void handler(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got = sig;
    got_code = si->si_code;
    got_val = si->si_value.sival_int;
    got_tid = si->si_timerid;
}

static pid_t thread_tid;
static int thread_go[2];
static void *waiter(void *arg) {
    (void)arg;
    thread_tid = gettid();
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    write(thread_go[1], "r", 1);
    siginfo_t si;
    int sig = sigwaitinfo(&s, &si);
    printf("  thread got %d code %d value %d\n", sig, si.si_code, si.si_value.sival_int);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa = {.sa_sigaction = handler, .sa_flags = SA_SIGINFO};
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGPROF, &sa, NULL);
    int id = -1;
    show("create NULL sigevent", tcreate(CLOCK_MONOTONIC, NULL, &id));
    printf("  id %d\n", id);
    struct itimerspec its = {.it_value = {0, 1000000}};
    show("  settime 1ms", tset(id, 0, &its, NULL));
    while (!got)
        pause();
    printf("  got %d code %d value %d timerid %d\n", got, got_code, got_val, got_tid);
    struct itimerspec cur;
    tget(id, &cur);
    printf("  expired one-shot: %ld.%09ld interval %ld\n", cur.it_value.tv_sec,
           cur.it_value.tv_nsec, cur.it_interval.tv_nsec);
    printf("  overrun %ld\n", tover(id));

    /* SIGEV_SIGNAL with a value; blocked and taken with sigwaitinfo; overruns */
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN);
    sigaddset(&s, SIGUSR2);
    sigprocmask(SIG_BLOCK, &s, NULL);
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN,
                           .sigev_value.sival_int = 42};
    int p = -1;
    show("create SIGEV_SIGNAL RTMIN", tcreate(CLOCK_REALTIME, &sev, &p));
    printf("  id %d\n", p);
    struct itimerspec per = {.it_value = {0, 1000000}, .it_interval = {0, 1000000}};
    tset(p, 0, &per, NULL);
    struct timespec nap = {0, 50000000};
    nanosleep(&nap, NULL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, SIGRTMIN);
    siginfo_t si;
    int sig = sigwaitinfo(&only, &si);
    printf("  sigwaitinfo %d code %d value %d overrun>0 %d\n", sig == SIGRTMIN, si.si_code,
           si.si_value.sival_int, si.si_overrun > 0);
    long ov = tover(p);
    printf("  getoverrun equals si_overrun %d\n", ov == si.si_overrun);
    struct itimerspec old;
    struct itimerspec zero = {{0, 0}, {0, 0}};
    tset(p, 0, &zero, &old);
    printf("  old interval %ld.%09ld\n", old.it_interval.tv_sec, old.it_interval.tv_nsec);
    tget(p, &cur);
    printf("  disarmed %ld.%09ld\n", cur.it_value.tv_sec, cur.it_value.tv_nsec);
    printf("  overrun after settime %ld\n", tover(p));
    struct timespec ts0 = {0, 0};
    while (sigtimedwait(&only, &si, &ts0) > 0)
        ;
    show("  delete", tdel(p));
    show("  delete again", tdel(p));

    /* SIGEV_NONE: gettime only */
    sev.sigev_notify = SIGEV_NONE;
    int n = -1;
    show("create SIGEV_NONE", tcreate(CLOCK_BOOTTIME, &sev, &n));
    printf("  id %d\n", n);
    struct itimerspec lng = {.it_value = {100, 0}, .it_interval = {2, 5}};
    tset(n, 0, &lng, NULL);
    tget(n, &cur);
    printf("  100s: in (99,100] %d interval %ld.%09ld\n",
           cur.it_value.tv_sec == 99 || (cur.it_value.tv_sec == 100 && !cur.it_value.tv_nsec),
           cur.it_interval.tv_sec, cur.it_interval.tv_nsec);
    struct itimerspec past = {.it_value = {1, 0}};
    show("  settime absolute in the past", tset(n, TIMER_ABSTIME, &past, NULL));
    tget(n, &cur);
    printf("  expired SIGEV_NONE %ld.%09ld\n", cur.it_value.tv_sec, cur.it_value.tv_nsec);
    printf("  overrun %ld\n", tover(n));
    clock_gettime(CLOCK_BOOTTIME, &past.it_value);
    past.it_value.tv_sec -= 10;
    past.it_interval.tv_sec = 3;
    tset(n, TIMER_ABSTIME, &past, NULL);
    tget(n, &cur);
    printf("  periodic abs past: value<=3s %d interval %ld\n",
           cur.it_value.tv_sec < 3 || (cur.it_value.tv_sec == 3 && !cur.it_value.tv_nsec),
           cur.it_interval.tv_sec);
    tdel(n);

    /* SIGEV_THREAD_ID: to one thread */
    pipe(thread_go);
    pthread_t th;
    pthread_create(&th, NULL, waiter, NULL);
    char c;
    read(thread_go[0], &c, 1);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGUSR2;
    sev.sigev_value.sival_int = 7;
    sev._sigev_un._tid = thread_tid;
    int t = -1;
    show("create SIGEV_THREAD_ID", tcreate(CLOCK_MONOTONIC, &sev, &t));
    tset(t, 0, &its, NULL);
    pthread_join(th, NULL);
    tdel(t);
    sev._sigev_un._tid = 999999;
    show("  THREAD_ID of no thread", tcreate(CLOCK_MONOTONIC, &sev, &t));
    sev._sigev_un._tid = getppid();
    show("  THREAD_ID of another process", tcreate(CLOCK_MONOTONIC, &sev, &t));

    /* CPU-time clocks */
    got = 0;
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGPROF;
    int cpu = -1;
    show("create PROCESS_CPUTIME", tcreate(CLOCK_PROCESS_CPUTIME_ID, &sev, &cpu));
    struct itimerspec ten = {.it_value = {0, 10000000}};
    tset(cpu, 0, &ten, NULL);
    volatile unsigned long spin = 0;
    while (!got)
        spin++;
    printf("  cpu timer fired %d code %d\n", got, got_code);
    tdel(cpu);
    got = 0;
    show("create THREAD_CPUTIME", tcreate(CLOCK_THREAD_CPUTIME_ID, &sev, &cpu));
    tset(cpu, 0, &ten, NULL);
    while (!got)
        spin++;
    printf("  thread cpu timer fired %d\n", got);
    tdel(cpu);
    clockid_t mine;
    clock_getcpuclockid(0, &mine);
    show("create on clock_getcpuclockid(0)", tcreate(mine, &sev, &cpu));
    tdel(cpu);

    printf("== ids and errors\n");
    int a = -1, b = -1;
    tcreate(CLOCK_MONOTONIC, NULL, &a);
    tcreate(CLOCK_MONOTONIC, NULL, &b);
    printf(" next ids follow: %d\n", b == a + 1);
    tdel(a);
    tcreate(CLOCK_MONOTONIC, NULL, &a);
    printf(" a deleted id is not reused at once: %d\n", a == b + 1);
    show(" bad clock", tcreate(99, NULL, &a));
    show(" MONOTONIC_RAW", tcreate(CLOCK_MONOTONIC_RAW, NULL, &a));
    show(" REALTIME_COARSE", tcreate(CLOCK_REALTIME_COARSE, NULL, &a));
    sev.sigev_notify = 99;
    show(" bad notify", tcreate(CLOCK_MONOTONIC, &sev, &a));
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = 0;
    show(" signo 0", tcreate(CLOCK_MONOTONIC, &sev, &a));
    sev.sigev_signo = 65;
    show(" signo 65", tcreate(CLOCK_MONOTONIC, &sev, &a));
    sev.sigev_notify = SIGEV_NONE;
    show(" SIGEV_NONE signo 0", tcreate(CLOCK_MONOTONIC, &sev, &a) == 0);
    tdel(a);
    show(" bad sevp", tcreate(CLOCK_MONOTONIC, BAD, &a));
    show(" bad sevp and clock", tcreate(99, BAD, &a));
    show(" bad timerid pointer", tcreate(CLOCK_MONOTONIC, NULL, BAD));
    show(" settime bad id", tset(12345, 0, &its, NULL));
    show(" settime NULL new", tset(b, 0, NULL, NULL));
    show(" settime bad new", tset(b, 0, BAD, NULL));
    struct itimerspec badns = {.it_value = {0, 1000000000}};
    show(" settime bad nsec", tset(b, 0, &badns, NULL));
    show(" settime bad nsec and id", tset(12345, 0, &badns, NULL));
    show(" settime bad old", tset(b, 0, &zero, BAD));
    show(" gettime bad id", tget(12345, &cur));
    show(" gettime bad pointer", tget(b, BAD));
    show(" getoverrun bad id", tover(12345));
    show(" delete bad id", tdel(-1));

    /* a signal still queued when its timer is re-armed or deleted stays pending and is
       dropped when taken (Linux 6.13 on) */
    printf("== stale timer signals\n");
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGUSR1;
    const char *how[2] = {"re-armed", "deleted"};
    for (int k = 0; k < 2; k++) {
        int st_id = -1;
        tcreate(CLOCK_MONOTONIC, &sev, &st_id);
        struct itimerspec soon = {.it_value = {0, 1000}};
        tset(st_id, 0, &soon, NULL);
        sigset_t pend;
        do
            sigpending(&pend);
        while (!sigismember(&pend, SIGUSR1));
        if (k == 0) {
            struct itimerspec later = {.it_value = {100, 0}};
            tset(st_id, 0, &later, NULL);
        } else {
            tdel(st_id);
        }
        sigpending(&pend);
        printf(" %s: still pending %d", how[k], sigismember(&pend, SIGUSR1));
        struct timespec z = {0, 0};
        siginfo_t sinfo;
        errno = 0;
        int got = sigtimedwait(&usr1, &sinfo, &z);
        sigpending(&pend);
        printf(", taken %d %s, pending after %d\n", got, got < 0 ? strerror(errno) : "",
               sigismember(&pend, SIGUSR1));
        if (k == 0)
            tdel(st_id);
    }

    printf("== /proc/self/timers\n");
    sev.sigev_notify = SIGEV_NONE;
    sev.sigev_signo = SIGUSR1;
    sev.sigev_value.sival_ptr = (void *)0x1234;
    int nn = -1, tt = -1;
    tcreate(CLOCK_BOOTTIME, &sev, &nn);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev._sigev_un._tid = syscall(SYS_gettid);
    sev.sigev_signo = SIGUSR2;
    tcreate(CLOCK_MONOTONIC, &sev, &tt);
    FILE *f = fopen("/proc/self/timers", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        char how[32], who[8];
        int pid;
        if (sscanf(line, "notify: %31[^/]/%7[^.].%d", how, who, &pid) == 3)
            printf(" notify: %s/%s.%s\n", how, who, pid == getpid() ? "self" : "other");
        else
            printf(" %s", line);
    }
    if (f)
        fclose(f);
    return 0;
}
