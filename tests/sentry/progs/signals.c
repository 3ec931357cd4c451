/* Signal semantics the shells do not reach; the output must be the same natively and
   under the Sentry. Nothing here prints a pid or an address, only comparisons. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_sig, got_code, got_pid_ok, got_uc, alarms, spin_flag;
static volatile sig_atomic_t chld_pid_ok, chld_code, chld_status, segv_ok, on_alt;
static int pfd[2];
static sigjmp_buf jb;
static char altstack[65536];
static pid_t child_pid;

static void on_info(int sig, siginfo_t *si, void *uc) {
    got_sig = sig;
    got_code = si->si_code;
    got_pid_ok = si->si_pid == getpid();
    got_uc = uc != NULL;
}
static void on_alarm(int sig) {
    (void)sig;
    if (++alarms == 2) write(pfd[1], "x", 1);
}
static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    on_alt = (char *)&sig >= altstack && (char *)&sig < altstack + sizeof altstack;
    segv_ok = sig == SIGSEGV && si->si_addr == (void *)24;
    siglongjmp(jb, 1);
}
static void on_chld(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    chld_pid_ok = si->si_pid == child_pid;
    chld_code = si->si_code;
    chld_status = si->si_status;
}
__attribute__((target("avx"))) static void avx_clobber(void) {
    __asm__ volatile("vpcmpeqd %%ymm7, %%ymm7, %%ymm7\n\tvzeroupper" ::: "xmm7");
}
/* ymm7's upper half must survive a handler that clobbers it (the xsave area) */
__attribute__((target("avx"))) static int avx_preserved(long pid, long tid) {
    unsigned long in[4] = {1, 2, 0x3333333333333333UL, 0x4444444444444444UL}, out[4];
    __asm__ volatile("vmovdqu %[in], %%ymm7\n\t"
                     "mov $234, %%eax\n\t"
                     "syscall\n\t"
                     "vmovdqu %%ymm7, %[out]\n\t"
                     "vzeroupper"
                     : [out] "=m"(out)
                     : [in] "m"(in), "D"(pid), "S"(tid), "d"((long)SIGUSR2)
                     : "rax", "rcx", "r11", "xmm7", "memory");
    return memcmp(in, out, sizeof in) == 0;
}
static void on_usr2(int sig) {
    (void)sig;
    if (__builtin_cpu_supports("avx")) avx_clobber();
    volatile double a = 3.25, b = 7.5;
    a = a * b + 1.0;
    __asm__ volatile("pxor %%xmm7, %%xmm7\n\tpxor %%xmm0, %%xmm0" ::: "xmm7", "xmm0");
}
static void on_spin(int sig) { (void)sig; spin_flag = 1; }
static void on_count(int sig) { (void)sig; got_sig++; }

static void set(int sig, void (*h)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sa.sa_flags = flags;
    sigaction(sig, &sa, NULL);
}
static void set_info(int sig, void (*h)(int, siginfo_t *, void *), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h;
    sa.sa_flags = flags | SA_SIGINFO;
    sigaction(sig, &sa, NULL);
}
static void timer(long usec) {
    struct itimerval it = {{0, usec}, {0, usec}};
    setitimer(ITIMER_REAL, &it, NULL);
}

static void read_interrupted(int flags) {
    char c;
    alarms = 0;
    pipe(pfd);
    set(SIGALRM, on_alarm, flags);
    timer(20000);
    ssize_t n = read(pfd[0], &c, 1);
    int e = errno;
    timer(0);
    printf("read %s: n=%zd errno=%s alarms>=%d\n", flags ? "SA_RESTART" : "no SA_RESTART",
           n, n < 0 ? strerrorname_np(e) : "-", flags ? alarms >= 2 : alarms >= 1);
    close(pfd[0]);
    close(pfd[1]);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    sigset_t none;  /* whatever mask the test runner left blocked, start from nothing */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* a handler with siginfo, from kill() */
    set_info(SIGUSR1, on_info, 0);
    kill(getpid(), SIGUSR1);
    printf("siginfo: sig=%d code=%d pid_ok=%d uc=%d\n", got_sig, got_code, got_pid_ok, got_uc);
    /* blocked: pending until unblocked */
    sigset_t s, old, pend;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    got_sig = 0;
    sigprocmask(SIG_BLOCK, &s, &old);
    raise(SIGUSR1);
    sigpending(&pend);
    printf("blocked: ran=%d pending=%d\n", got_sig, sigismember(&pend, SIGUSR1));
    sigprocmask(SIG_SETMASK, &old, NULL);
    sigpending(&pend);
    printf("unblocked: ran=%d pending=%d\n", got_sig, sigismember(&pend, SIGUSR1));
    /* SA_RESETHAND, SA_NODEFER */
    got_sig = 0;
    set(SIGUSR2, on_count, SA_RESETHAND | SA_NODEFER);
    raise(SIGUSR2);
    struct sigaction q;
    sigaction(SIGUSR2, NULL, &q);
    printf("resethand: ran=%d now_default=%d\n", got_sig, q.sa_handler == SIG_DFL);
    /* sigtimedwait */
    sigprocmask(SIG_BLOCK, &s, &old);
    kill(getpid(), SIGUSR1);
    siginfo_t si;
    struct timespec ts = {1, 0}, short_ts = {0, 10000000};
    int r = sigtimedwait(&s, &si, &ts);
    printf("sigtimedwait: %d code=%d pid_ok=%d\n", r, si.si_code, si.si_pid == getpid());
    r = sigtimedwait(&s, &si, &short_ts);
    printf("sigtimedwait timeout: %d %s\n", r, strerrorname_np(errno));
    sigprocmask(SIG_SETMASK, &old, NULL);
    /* EINTR versus SA_RESTART on a pipe read interrupted by ITIMER_REAL */
    read_interrupted(0);
    read_interrupted(SA_RESTART);
    /* SIGSEGV on the alternate stack, si_addr, siglongjmp out */
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    set_info(SIGSEGV, on_segv, SA_ONSTACK);
    if (!sigsetjmp(jb, 1)) {
        volatile int *p = (int *)24;
        *p = 1;
    }
    stack_t cur;
    sigaltstack(NULL, &cur);
    printf("segv: ok=%d on_altstack=%d flags_after=%d\n", segv_ok, on_alt, cur.ss_flags);
    /* FPU state survives a handler that clobbers xmm registers */
    set(SIGUSR2, on_usr2, 0);
    unsigned long in = 0x1122334455667788UL, out = 0;
    long pid = getpid(), tid = syscall(SYS_gettid);
    __asm__ volatile("movq %[in], %%xmm7\n\t"
                     "mov $234, %%eax\n\t"
                     "syscall\n\t"
                     "movq %%xmm7, %[out]"
                     : [out] "=r"(out)
                     : [in] "r"(in), "D"(pid), "S"(tid), "d"((long)SIGUSR2)
                     : "rax", "rcx", "r11", "xmm7", "memory");
    printf("fpu: preserved=%d\n", out == in);
    printf("avx: preserved=%d\n", __builtin_cpu_supports("avx") ? avx_preserved(pid, tid) : 1);
    /* SIGCHLD with siginfo when a child exits */
    set_info(SIGCHLD, on_chld, 0);
    sigemptyset(&s);
    sigaddset(&s, SIGCHLD);
    sigprocmask(SIG_BLOCK, &s, &old);
    child_pid = fork();
    if (child_pid == 0) _exit(7);
    int st;
    waitpid(child_pid, &st, 0);
    sigpending(&pend);
    printf("sigchld pending=%d\n", sigismember(&pend, SIGCHLD));
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("sigchld: pid_ok=%d code=%d status=%d\n", chld_pid_ok, chld_code, chld_status);
    set(SIGCHLD, SIG_DFL, 0);
    /* a signal to a process busy in user code (no syscalls) */
    set(SIGUSR1, on_spin, 0);
    pid_t c = fork();
    if (c == 0) {
        while (!spin_flag) {}
        _exit(3);
    }
    usleep(20000);
    kill(c, SIGUSR1);
    waitpid(c, &st, 0);
    printf("spinning child: exited=%d code=%d\n", WIFEXITED(st), WEXITSTATUS(st));
    /* default actions: terminate, and an ignored signal */
    c = fork();
    if (c == 0) {
        signal(SIGTERM, SIG_IGN);
        raise(SIGTERM);
        pause();
        _exit(0);
    }
    usleep(20000);
    kill(c, SIGTERM);
    kill(c, SIGINT);
    waitpid(c, &st, 0);
    printf("default: signaled=%d sig=%d\n", WIFSIGNALED(st), WTERMSIG(st));
    /* pause() returns EINTR after a handler */
    set(SIGALRM, on_count, 0);
    got_sig = 0;
    alarm(1);
    r = pause();
    printf("pause: %d %s ran=%d\n", r, strerrorname_np(errno), got_sig);
    return 0;
}
