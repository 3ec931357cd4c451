/* kill(-1, sig) as pid 1 of a PID namespace sees it (issue 19, finding 6): every process
   but the caller's own and init gets the signal; ESRCH when there is nobody else; sent
   from pid 1 (even SIGKILL) it leaves pid 1 running. Run natively under
   `unshare -fp --mount-proc` and as the sandbox's first process; outputs must match. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static sigset_t usr1;

static void say(const char *what, long r) {
    printf("%s -> %ld%s%s\n", what, r, r < 0 ? " " : "", r < 0 ? strerror(errno) : "");
    fflush(stdout);
}

static int usr1_pending(void) {
    sigset_t p;
    sigpending(&p);
    return sigismember(&p, SIGUSR1);
}

/* A child that says it is ready on `ready` and then waits: for SIGUSR1 (exit 10 when it
   came from pid 1 if `from_init`, else from another process) or, with `want_usr1` 0, for
   ever (pause: only SIGKILL ends it). */
static pid_t waiter(int ready, int want_usr1, int from_init) {
    pid_t pid = fork();
    if (pid == 0) {
        (void)write(ready, "r", 1);
        if (!want_usr1)
            for (;;)
                pause();
        siginfo_t si;
        sigwaitinfo(&usr1, &si);
        _exit(si.si_code == SI_USER && (si.si_pid == 1) == from_init ? 10 : 11);
    }
    return pid;
}

static void status(const char *who, int st) {
    if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", who, WTERMSIG(st));
    else
        printf("%s: exit %d\n", who, WEXITSTATUS(st));
    fflush(stdout);
}

static void *thread_kill(void *arg) {
    (void)arg;
    say("kill(-1, SIGUSR1) from a second thread of pid 1, alone", kill(-1, SIGUSR1));
    return NULL;
}

int main(void) {
    int p[2], st;
    char c;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    setvbuf(stdout, NULL, _IONBF, 0);
    sigprocmask(SIG_BLOCK, &usr1, NULL);  /* so a SIGUSR1 sent to us stays visible */
    if (pipe(p) < 0)
        return 1;
    printf("pid %d\n", getpid());
    say("kill(-1, 0) alone", kill(-1, 0));
    say("kill(-1, SIGUSR1) alone", kill(-1, SIGUSR1));
    pthread_t th;
    pthread_create(&th, NULL, thread_kill, NULL);
    pthread_join(th, NULL);
    printf("pid 1 has SIGUSR1 pending: %d\n", usr1_pending());

    pid_t a = waiter(p[1], 1, 1);
    (void)read(p[0], &c, 1);
    say("kill(-1, SIGUSR1) from pid 1 with one child", kill(-1, SIGUSR1));
    waitpid(a, &st, 0);
    status("child", st);
    printf("pid 1 has SIGUSR1 pending: %d\n", usr1_pending());

    /* from a child: its sibling gets it, neither pid 1 nor the sender itself */
    a = waiter(p[1], 1, 0);
    (void)read(p[0], &c, 1);
    pid_t b = fork();
    if (b == 0) {
        long r = kill(-1, SIGUSR1);
        say("kill(-1, SIGUSR1) from a child", r);
        printf("sender has SIGUSR1 pending: %d\n", usr1_pending());
        _exit(0);
    }
    waitpid(b, &st, 0);
    status("sender", st);
    waitpid(a, &st, 0);
    status("sibling", st);
    printf("pid 1 has SIGUSR1 pending: %d\n", usr1_pending());

    /* SIGKILL from a child: the sibling dies, the sender and pid 1 live */
    a = waiter(p[1], 0, 0);
    (void)read(p[0], &c, 1);
    b = fork();
    if (b == 0) {
        long r = kill(-1, SIGKILL);
        say("kill(-1, SIGKILL) from a child", r);
        _exit(0);
    }
    waitpid(b, &st, 0);
    status("sender", st);
    waitpid(a, &st, 0);
    status("sibling", st);

    /* SIGKILL from pid 1: its children die, pid 1 goes on */
    a = waiter(p[1], 0, 0);
    b = waiter(p[1], 0, 0);
    (void)read(p[0], &c, 1);
    (void)read(p[0], &c, 1);
    say("kill(-1, SIGKILL) from pid 1", kill(-1, SIGKILL));
    waitpid(a, &st, 0);
    status("child", st);
    waitpid(b, &st, 0);
    status("child", st);
    say("kill(-1, SIGKILL) from pid 1 alone", kill(-1, SIGKILL));
    printf("pid 1 still runs\n");
    return 0;
}
