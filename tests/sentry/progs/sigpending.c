/* RLIMIT_SIGPENDING, run as an unprivileged uid of its own (so only its signals count): real-
 * time signals sigqueue'd over the limit fail with EAGAIN, as does tgkill of a real-time
 * one; kill of a real-time signal and tgkill of a standard one over it are delivered
 * without their siginfo (SI_USER from pid 0); kill of a standard signal and the kernel's
 * own (SIGCHLD) keep theirs beyond it; what is dequeued, in order, with its si_code, sender
 * and value; room again once drained; a limit of 0, where F_SETSIG's real-time signal for
 * a pipe's O_ASYNC falls back to SIGIO (a standard one goes beyond it).
 * usage: sigpending (as root). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define UID 54321

static void res(const char *what, long r) {
    if (r < 0)
        printf("%s = -1 %s\n", what, strerror(errno));
    else
        printf("%s = %ld\n", what, r);
}

static int queue(int sig, int v) {
    union sigval val = {.sival_int = v};
    return sigqueue(getpid(), sig, val);
}

static void drain(sigset_t *set) {
    struct timespec zero = {0, 0};
    siginfo_t si;
    int sig;
    while ((sig = sigtimedwait(set, &si, &zero)) > 0) {
        printf("  got %s%d code %d", sig >= SIGRTMIN ? "SIGRTMIN+" : "",
               sig >= SIGRTMIN ? sig - SIGRTMIN : sig, si.si_code);
        if (sig != SIGCHLD && (si.si_code == POLL_IN || si.si_code == POLL_OUT))
            printf(" band %#lx", si.si_band);
        else
            printf(" from %s uid %s", si.si_pid == getpid() ? "self" : si.si_pid == 0 ? "0" : "child",
                   si.si_uid == UID ? "mine" : si.si_uid == 0 ? "0" : "other");
        if (si.si_code == SI_QUEUE)
            printf(" value %d", si.si_value.sival_int);
        if (sig == SIGCHLD)
            printf(" status %d", si.si_status);
        if (sig != SIGCHLD && (si.si_code == POLL_IN || si.si_code == POLL_OUT))
            printf(" fd %s", si.si_fd > 2 ? "pipe" : "?");
        printf("\n");
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (setresgid(UID, UID, UID) || setgroups(0, NULL) || setresuid(UID, UID, UID)) {
        perror("setresuid");
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGUSR1, SIGUSR2, SIGCHLD, SIGIO, SIGRTMIN, SIGRTMIN + 1};
    for (unsigned i = 0; i < sizeof sigs / sizeof *sigs; i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    struct rlimit rl = {3, 3};
    res("setrlimit(RLIMIT_SIGPENDING, 3)", setrlimit(RLIMIT_SIGPENDING, &rl));
    for (int i = 0; i < 5; i++) {
        char what[64];
        snprintf(what, sizeof what, "sigqueue SIGRTMIN value %d", i);
        res(what, queue(SIGRTMIN, i));
    }
    res("kill SIGRTMIN+1 over the limit", kill(getpid(), SIGRTMIN + 1));
    res("tgkill SIGRTMIN+1 over the limit",
        syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGRTMIN + 1));
    res("tgkill SIGUSR1 over the limit",
        syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1));
    res("kill SIGUSR2 over the limit", kill(getpid(), SIGUSR2));
    res("sigqueue SIGUSR2 (pending already)", queue(SIGUSR2, 9));
    pid_t c = fork();
    if (c == 0)
        _exit(7);
    int st;
    res("waitpid", waitpid(c, &st, 0) == c);
    drain(&set);
    res("sigqueue SIGRTMIN after draining", queue(SIGRTMIN, 42));
    drain(&set);
    rl.rlim_cur = 0;
    res("setrlimit(RLIMIT_SIGPENDING, 0)", setrlimit(RLIMIT_SIGPENDING, &rl));
    res("sigqueue SIGRTMIN, limit 0", queue(SIGRTMIN, 1));
    res("kill SIGRTMIN, limit 0", kill(getpid(), SIGRTMIN));
    res("sigqueue SIGUSR1, limit 0", queue(SIGUSR1, 2));
    drain(&set);
    int p[2];
    pipe(p);
    fcntl(p[0], F_SETOWN, getpid());
    fcntl(p[0], F_SETFL, O_ASYNC);
    res("F_SETSIG SIGRTMIN", fcntl(p[0], F_SETSIG, SIGRTMIN));
    res("write, limit 0", write(p[1], "a", 1));
    drain(&set);
    res("F_SETSIG SIGUSR1", fcntl(p[0], F_SETSIG, SIGUSR1));
    res("write, limit 0", write(p[1], "b", 1));
    drain(&set);
    return 0;
}
