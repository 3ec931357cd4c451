/* setitimer/getitimer for ITIMER_VIRTUAL (user CPU time, SIGVTALRM) and ITIMER_PROF (user
 * and system CPU time, SIGPROF): signals arrive after burning CPU, intervals re-arm, values
 * read back stay within what was set, sleeping does not count, NULL disarms, fork does not
 * inherit, execve keeps them, default action; RLIMIT_CPU: SIGXCPU at the soft limit (which
 * Linux then raises by a second), SIGKILL at the hard one. No timing is printed, only facts that hold
 * on any machine; the output must be the same natively and in the sandbox. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t vt, prof, code_ok = 1;
static volatile unsigned long sink;

static void on_sig(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    if (si->si_code != SI_KERNEL)
        code_ok = 0;
    if (sig == SIGVTALRM)
        vt++;
    else
        prof++;
}

static int xcpu_fd = -1;

/* One byte per SIGXCPU: the soft limit it sees then (Linux raises it by a second). */
static void on_xcpu(int sig) {
    (void)sig;
    struct rlimit rl;
    getrlimit(RLIMIT_CPU, &rl);
    char d = '0' + (char)rl.rlim_cur;
    write(xcpu_fd, &d, 1);
}

static void show(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

/* Burn user CPU until *flag reaches n (or 30 s of CPU: then say so). */
static int burn_until(volatile sig_atomic_t *flag, int n) {
    while (*flag < n) {
        for (int i = 0; i < 200000; i++)
            sink += i;
        if (clock() > 30 * CLOCKS_PER_SEC)
            return 0;
    }
    return 1;
}

static long us(struct timeval tv) { return tv.tv_sec * 1000000L + tv.tv_usec; }

/* Values read back: armed, and never above what was set (plus one 10 ms tick of rounding
 * slack that Linux adds to a CPU timer when arming it). */
static void check(const char *what, int which, long set_value, long set_interval) {
    struct itimerval cur;
    getitimer(which, &cur);
    long v = us(cur.it_value);
    printf("  %s: armed %d, value within set %d, interval %ld\n", what, v > 0,
           v > 0 && v <= set_value + 10000, us(cur.it_interval) == set_interval ? set_interval
                                                                                   : -1);
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    struct itimerval it, old;
    if (argc > 1) {  /* after execve: the timer survived */
        getitimer(ITIMER_VIRTUAL, &it);
        printf("after execve: armed %d, value within set %d\n", us(it.it_value) > 0,
               us(it.it_value) <= 5000000 + 10000);
        return 0;
    }
    struct sigaction sa = {.sa_sigaction = on_sig, .sa_flags = SA_SIGINFO | SA_RESTART};
    sigaction(SIGVTALRM, &sa, 0);
    sigaction(SIGPROF, &sa, 0);

    puts("disarmed at start");
    for (int w = 0; w < 3; w++) {
        getitimer(w, &it);
        printf("  which %d: %ld %ld\n", w, us(it.it_value), us(it.it_interval));
    }
    puts("errors");
    show("  getitimer bad which", getitimer(3, &it));
    it = (struct itimerval){.it_value = {0, 1000}};
    show("  setitimer bad which", setitimer(7, &it, 0));
    it = (struct itimerval){.it_value = {0, 1000000}};
    show("  usec out of range", setitimer(ITIMER_VIRTUAL, &it, 0));
    it = (struct itimerval){.it_value = {-1, 0}};
    show("  negative seconds", setitimer(ITIMER_PROF, &it, 0));
    show("  bad pointer", setitimer(ITIMER_PROF, (void *)8, 0));

    puts("ITIMER_VIRTUAL one-shot, 50 ms of user CPU");
    it = (struct itimerval){.it_value = {0, 50000}};
    show("  setitimer", setitimer(ITIMER_VIRTUAL, &it, &old));
    printf("  old value %ld interval %ld\n", us(old.it_value), us(old.it_interval));
    check("right after", ITIMER_VIRTUAL, 50000, 0);
    int arrived = burn_until(&vt, 1);
    printf("  SIGVTALRM arrived %d (count %d)\n", arrived, vt);
    getitimer(ITIMER_VIRTUAL, &it);
    printf("  then disarmed: %ld %ld\n", us(it.it_value), us(it.it_interval));

    puts("ITIMER_PROF every 20 ms re-arms");
    it = (struct itimerval){.it_value = {0, 20000}, .it_interval = {0, 20000}};
    show("  setitimer", setitimer(ITIMER_PROF, &it, 0));
    printf("  three SIGPROF arrived %d\n", burn_until(&prof, 3));
    check("still armed", ITIMER_PROF, 20000, 20000);
    it = (struct itimerval){0};
    show("  disarm", setitimer(ITIMER_PROF, &it, &old));
    printf("  old: armed %d interval %ld\n", us(old.it_value) > 0, us(old.it_interval));
    getitimer(ITIMER_PROF, &it);
    printf("  disarmed: %ld %ld\n", us(it.it_value), us(it.it_interval));
    printf("  siginfo si_code SI_KERNEL %d\n", code_ok);

    puts("sleeping uses no CPU time");
    it = (struct itimerval){.it_value = {2, 0}};
    setitimer(ITIMER_VIRTUAL, &it, 0);
    usleep(200000);
    getitimer(ITIMER_VIRTUAL, &it);
    printf("  more than 1.5 s left %d\n", us(it.it_value) > 1500000);
    check("value", ITIMER_VIRTUAL, 2000000, 0);

    puts("a NULL new value disarms");
    show("  setitimer NULL", syscall(SYS_setitimer, ITIMER_VIRTUAL, 0, &old));
    printf("  old armed %d\n", us(old.it_value) > 0);
    getitimer(ITIMER_VIRTUAL, &it);
    printf("  now %ld\n", us(it.it_value));

    puts("fork: the child does not inherit timers");
    it = (struct itimerval){.it_value = {10, 0}};
    setitimer(ITIMER_PROF, &it, 0);
    pid_t c = fork();
    if (c == 0) {
        getitimer(ITIMER_PROF, &it);
        printf("  child sees %ld\n", us(it.it_value));
        _exit(0);
    }
    waitpid(c, 0, 0);
    check("parent still", ITIMER_PROF, 10000000, 0);
    it = (struct itimerval){0};
    setitimer(ITIMER_PROF, &it, 0);

    puts("SIGVTALRM's default action ends a process");
    c = fork();
    if (c == 0) {
        signal(SIGVTALRM, SIG_DFL);
        it = (struct itimerval){.it_value = {0, 20000}};
        setitimer(ITIMER_VIRTUAL, &it, 0);
        static volatile sig_atomic_t never;
        burn_until(&never, 1);
        _exit(3);
    }
    int st;
    waitpid(c, &st, 0);
    printf("  child killed by signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);

    puts("execve keeps the timers");
    it = (struct itimerval){.it_value = {5, 0}};
    setitimer(ITIMER_VIRTUAL, &it, 0);
    c = fork();
    if (c == 0) {
        it = (struct itimerval){.it_value = {5, 0}};
        setitimer(ITIMER_VIRTUAL, &it, 0);
        execl(argv[0], argv[0], "again", (char *)0);
        _exit(127);
    }
    waitpid(c, &st, 0);
    printf("  exec'd child status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    puts("RLIMIT_CPU: soft 1 s, hard 2 s");
    int pfd[2];
    pipe(pfd);
    c = fork();
    if (c == 0) {
        close(pfd[0]);
        xcpu_fd = pfd[1];
        struct sigaction xa = {.sa_handler = on_xcpu, .sa_flags = SA_RESTART};
        sigaction(SIGXCPU, &xa, 0);
        struct rlimit rl = {1, 2};
        show("  setrlimit", setrlimit(RLIMIT_CPU, &rl));
        static volatile sig_atomic_t never;
        burn_until(&never, 1);
        _exit(3);
    }
    close(pfd[1]);
    char seen[16];
    int n = 0;
    for (long r; (r = read(pfd[0], seen + n, sizeof seen - n)) > 0;)
        n += r;
    close(pfd[0]);
    waitpid(c, &st, 0);
    printf("  SIGXCPU %d times, soft limit then %.*s, killed by signal %d\n", n, n, seen,
           WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    puts("done");
    return 0;
}
