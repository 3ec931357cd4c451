/* More signal semantics, compared with Linux: a garbage rt_sigreturn frame, real-time
   signals queued with values, sigsuspend, SIGPIPE to a handler, SIGFPE with si_code,
   and glibc's set*id broadcast to every thread (a signal handled in each thread). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int rt_count, rt_sum, usr1, pipes, fpe_code;
static sigjmp_buf jb;
static volatile int stop_thread;

static void on_rt(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    rt_count++;
    rt_sum = rt_sum * 10 + si->si_value.sival_int;
}
static void on_usr1(int sig) { (void)sig; usr1++; }
static void on_pipe(int sig) { (void)sig; pipes++; }
static void on_fpe(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    fpe_code = si->si_code;
    siglongjmp(jb, 1);
}
static void *spin(void *arg) {
    (void)arg;
    while (!stop_thread) usleep(1000);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    sigset_t none, s, old;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* a garbage frame: rt_sigreturn with the stack pointing at unmapped memory */
    pid_t c = fork();
    if (c == 0) {
        __asm__ volatile("mov $0x1000, %%rsp\n\tmov $15, %%eax\n\tsyscall" ::: "memory");
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    printf("bad frame: signaled=%d sig=%d\n", WIFSIGNALED(st), WTERMSIG(st));
    /* real-time signals queue (each with its value); delivered lowest first on unblock */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN + 1, &sa, NULL);
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN + 1);
    sigprocmask(SIG_BLOCK, &s, &old);
    for (int i = 1; i <= 3; i++) sigqueue(getpid(), SIGRTMIN + 1, (union sigval){.sival_int = i});
    printf("rt queued, ran=%d\n", rt_count);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("rt: ran=%d values=%d\n", rt_count, rt_sum);
    pthread_sigqueue(pthread_self(), SIGRTMIN + 1, (union sigval){.sival_int = 4});
    printf("pthread_sigqueue: ran=%d values=%d\n", rt_count, rt_sum);
    /* sigsuspend: waits with USR1 unblocked, the old mask (USR1 blocked) comes back */
    signal(SIGUSR1, on_usr1);
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigprocmask(SIG_BLOCK, &s, &old);
    c = fork();
    if (c == 0) {
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    int r = sigsuspend(&none);
    int e = errno;
    sigset_t now;
    sigprocmask(SIG_SETMASK, NULL, &now);
    printf("sigsuspend: %d %s ran=%d usr1_blocked_again=%d\n", r, strerrorname_np(e), usr1,
           sigismember(&now, SIGUSR1));
    waitpid(c, &st, 0);
    sigprocmask(SIG_SETMASK, &old, NULL);
    /* SIGPIPE to a handler: write still fails with EPIPE */
    signal(SIGPIPE, on_pipe);
    int p[2];
    pipe(p);
    close(p[0]);
    ssize_t n = write(p[1], "x", 1);
    printf("sigpipe: n=%zd %s handler=%d\n", n, strerrorname_np(errno), pipes);
    signal(SIGPIPE, SIG_IGN);
    n = write(p[1], "x", 1);
    printf("sigpipe ignored: n=%zd %s handler=%d\n", n, strerrorname_np(errno), pipes);
    close(p[1]);
    /* SIGFPE from an integer division by zero, to a handler */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fpe;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGFPE, &sa, NULL);
    volatile int zero = 0, one = 1;
    if (!sigsetjmp(jb, 1)) one = one / zero;
    printf("sigfpe: code=%d (FPE_INTDIV=%d)\n", fpe_code, FPE_INTDIV);
    /* glibc's setxid broadcast: every thread runs a SIGSETXID handler */
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, spin, NULL);
    r = setgid(getgid());
    printf("setgid with threads: %d\n", r);
    stop_thread = 1;
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    return 0;
}
