/* Who may signal whom (Linux's check_kill_permission): a child that dropped to uid 65534
 * signals its root parent and a root sibling (EPERM, but SIGCONT within the session),
 * another process of its own uid (allowed, also by tgkill and rt_sigqueueinfo), and a
 * process group holding only root processes (EPERM) or one of its own (allowed). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%s: %s\n", what, r == 0 ? "ok" : strerror(errno));
    fflush(stdout);
}

/* A process that waits to be killed, returned once it runs as `uid` (-1: stays root). */
static pid_t spawn(int uid, int own_group) {
    int ready[2];
    char c;
    if (pipe(ready)) _exit(2);
    pid_t p = fork();
    if (p == 0) {
        if (own_group) setpgid(0, 0);
        if (uid >= 0 && setresuid(uid, uid, uid)) _exit(3);
        signal(SIGUSR1, SIG_IGN);
        write(ready[1], "r", 1);
        for (;;) pause();
    }
    if (own_group) setpgid(p, p);
    close(ready[1]);
    if (read(ready[0], &c, 1) != 1) _exit(2);
    close(ready[0]);
    return p;
}

int main(void) {
    signal(SIGUSR1, SIG_IGN);
    pid_t parent = getpid();
    pid_t root_sib = spawn(-1, 1);      /* root, its own process group */
    pid_t user_sib = spawn(65534, 1);   /* uid 65534, its own process group */
    pid_t c = fork();
    if (c == 0) {
        if (setresuid(65534, 65534, 65534)) _exit(3);
        show("kill parent 0", kill(parent, 0));
        show("kill parent SIGUSR1", kill(parent, SIGUSR1));
        show("kill parent SIGCONT (same session)", kill(parent, SIGCONT));
        show("tgkill parent 0", syscall(SYS_tgkill, parent, parent, 0));
        show("kill root sibling SIGUSR1", kill(root_sib, SIGUSR1));
        show("kill root group SIGUSR1", kill(-root_sib, SIGUSR1));
        show("kill user sibling SIGUSR1", kill(user_sib, SIGUSR1));
        show("kill user group 0", kill(-user_sib, 0));
        show("tgkill user sibling 0", syscall(SYS_tgkill, user_sib, user_sib, 0));
        siginfo_t si;
        memset(&si, 0, sizeof si);
        si.si_code = SI_QUEUE;
        show("sigqueueinfo parent", syscall(SYS_rt_sigqueueinfo, parent, SIGUSR1, &si));
        show("sigqueueinfo user sibling", syscall(SYS_rt_sigqueueinfo, user_sib, SIGUSR1, &si));
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    kill(root_sib, SIGKILL);
    kill(user_sib, SIGKILL);
    waitpid(root_sib, NULL, 0);
    waitpid(user_sib, NULL, 0);
    printf("child status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}
