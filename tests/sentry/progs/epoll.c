/* epoll on pipes: level-triggered reports, ONESHOT, MOD/DEL, errors, EINTR, epoll_pwait's
 * mask, an epoll fd inside poll; the output must be the same natively and in the sandbox. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t hits;
static void on_sig(int sig) { (void)sig; hits++; }

static void show(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

static void wait_show(int ep, int max, int ms) {
    struct epoll_event ev[8];
    int n = epoll_wait(ep, ev, max, ms);
    show("  epoll_wait", n);
    for (int i = 0; i < n; i++)
        printf("    events %#x data %llu\n", ev[i].events, (unsigned long long)ev[i].data.u64);
}

static int ctl(int ep, int op, int fd, unsigned events, unsigned long long data) {
    struct epoll_event e = {.events = events, .data.u64 = data};
    return epoll_ctl(ep, op, fd, &e);
}

int main(int argc, char **argv) {
    (void)argc;
    setvbuf(stdout, 0, _IONBF, 0);
    int a[2], b[2];
    pipe(a);
    pipe(b);
    char c;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    printf("cloexec %d\n", fcntl(ep, F_GETFD));
    show("add a read", ctl(ep, EPOLL_CTL_ADD, a[0], EPOLLIN, 10));
    show("add again", ctl(ep, EPOLL_CTL_ADD, a[0], EPOLLIN, 10));
    show("add b read oneshot", ctl(ep, EPOLL_CTL_ADD, b[0], EPOLLIN | EPOLLONESHOT, 20));
    show("mod absent", ctl(ep, EPOLL_CTL_MOD, a[1], EPOLLOUT, 11));
    show("del absent", ctl(ep, EPOLL_CTL_DEL, b[1], 0, 0));
    show("add self", ctl(ep, EPOLL_CTL_ADD, ep, EPOLLIN, 0));
    show("add bad fd", ctl(ep, EPOLL_CTL_ADD, 77, EPOLLIN, 0));
    show("ctl on non-epoll", ctl(a[0], EPOLL_CTL_ADD, b[0], EPOLLIN, 0));
    show("bad op", ctl(ep, 9, a[0], EPOLLIN, 0));
    {
        int e2 = epoll_create1(0), x[2];
        pipe(x);
        show("exclusive|oneshot", ctl(e2, EPOLL_CTL_ADD, x[0], EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT, 0));
        show("exclusive|rdnorm", ctl(e2, EPOLL_CTL_ADD, x[0], EPOLLRDNORM | EPOLLEXCLUSIVE, 0));
        show("exclusive on an epoll fd", ctl(e2, EPOLL_CTL_ADD, ep, EPOLLIN | EPOLLEXCLUSIVE, 0));
        show("mod absent with exclusive", ctl(e2, EPOLL_CTL_MOD, x[1], EPOLLOUT | EPOLLEXCLUSIVE, 0));
        show("exclusive|et", ctl(e2, EPOLL_CTL_ADD, x[0], EPOLLIN | EPOLLEXCLUSIVE | EPOLLET, 0));
        show("mod an exclusive item", ctl(e2, EPOLL_CTL_MOD, x[0], EPOLLIN, 0));
        show("del an exclusive item", ctl(e2, EPOLL_CTL_DEL, x[0], 0, 0));
        close(e2); close(x[0]); close(x[1]);
    }
    int f = open(argv[0], O_RDONLY);  /* a regular file: no poll, EPERM */
    show("add regular file", ctl(ep, EPOLL_CTL_ADD, f, EPOLLIN, 0));
    show("regular file on a non-epoll fd", ctl(a[0], EPOLL_CTL_ADD, f, EPOLLIN, 0));
    show("create size 0", epoll_create(0));
    show("create1 bad flags", epoll_create1(1));
    struct epoll_event evs[2];
    show("wait maxevents 0", epoll_wait(ep, evs, 0, 0));
    show("wait on non-epoll", epoll_wait(a[0], evs, 1, 0));

    puts("nothing ready");
    wait_show(ep, 8, 0);
    wait_show(ep, 8, 20);
    write(a[1], "x", 1);
    puts("a ready (level-triggered: twice)");
    wait_show(ep, 8, -1);
    wait_show(ep, 8, 0);
    read(a[0], &c, 1);
    write(b[1], "y", 1);
    puts("b ready, oneshot: once");
    wait_show(ep, 8, -1);
    wait_show(ep, 8, 0);
    show("rearm b", ctl(ep, EPOLL_CTL_MOD, b[0], EPOLLIN, 21));
    wait_show(ep, 8, 0);
    read(b[0], &c, 1);
    show("del b", ctl(ep, EPOLL_CTL_DEL, b[0], 0, 0));

    puts("a written by another process while waiting");
    pid_t w = fork();
    if (w == 0) { usleep(30000); write(a[1], "z", 1); _exit(0); }
    wait_show(ep, 8, -1);
    waitpid(w, 0, 0);

    puts("epoll fd in poll");
    struct pollfd p = {ep, POLLIN, 0};
    show("poll epfd", poll(&p, 1, 0));
    printf("  revents %#x\n", p.revents);
    read(a[0], &c, 1);
    show("poll epfd idle", poll(&p, 1, 0));

    puts("write end: POLLOUT; modified to EPOLLIN: nothing");
    show("add a write", ctl(ep, EPOLL_CTL_ADD, a[1], EPOLLOUT, 30));
    wait_show(ep, 8, 0);
    show("mod a write to IN", ctl(ep, EPOLL_CTL_MOD, a[1], EPOLLIN, 31));
    wait_show(ep, 8, 0);

    puts("EINTR from a handler (SA_RESTART too), epoll_pwait's mask");
    struct sigaction sa = {0};
    sa.sa_handler = on_sig;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, 0);
    struct itimerval it = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, 0);
    show("epoll_wait interrupted", epoll_wait(ep, evs, 2, -1));
    sigset_t block, empty, cur;
    sigemptyset(&block); sigaddset(&block, SIGALRM); sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &block, 0);
    setitimer(ITIMER_REAL, &it, 0);
    show("epoll_pwait interrupted", epoll_pwait(ep, evs, 2, -1, &empty));
    sigprocmask(SIG_BLOCK, 0, &cur);
    printf("  hits %d blocked after %d\n", hits, sigismember(&cur, SIGALRM));
    show("epoll_pwait bad sigsetsize", syscall(SYS_epoll_pwait, ep, evs, 2, 0, &empty, 4));

    puts("epoll_pwait2: timespec timeout, temporary mask");
    struct timespec ts0 = {0, 0}, ts20 = {0, 20000000}, bad = {0, 1000000000};
    show("epoll_pwait2 nothing ready", syscall(SYS_epoll_pwait2, ep, evs, 2, &ts0, 0, 8));
    show("epoll_pwait2 20 ms", syscall(SYS_epoll_pwait2, ep, evs, 2, &ts20, 0, 8));
    show("epoll_pwait2 bad timespec", syscall(SYS_epoll_pwait2, ep, evs, 2, &bad, 0, 8));
    show("epoll_pwait2 bad sigsetsize", syscall(SYS_epoll_pwait2, ep, evs, 2, &ts0, &empty, 4));
    show("epoll_pwait2 maxevents 0", syscall(SYS_epoll_pwait2, ep, evs, 0, &ts0, 0, 8));
    setitimer(ITIMER_REAL, &it, 0);
    show("epoll_pwait2 interrupted", syscall(SYS_epoll_pwait2, ep, evs, 2, 0, &empty, 8));
    sigprocmask(SIG_BLOCK, 0, &cur);
    printf("  hits %d blocked after %d\n", hits, sigismember(&cur, SIGALRM));
    write(a[1], "w", 1);
    long n = syscall(SYS_epoll_pwait2, ep, evs, 2, 0, 0, 8);
    printf("epoll_pwait2 ready: %ld events %#x\n", n, n > 0 ? evs[0].events : 0);
    read(a[0], &c, 1);

    puts("ready-list order: the order readiness arrived in, reported items to the end");
    {
        int e2 = epoll_create1(0), x[2], y[2], z[2];
        pipe(x); pipe(y); pipe(z);
        ctl(e2, EPOLL_CTL_ADD, x[0], EPOLLIN, 1);
        ctl(e2, EPOLL_CTL_ADD, y[0], EPOLLIN, 2);
        ctl(e2, EPOLL_CTL_ADD, z[0], EPOLLIN, 3);
        write(z[1], "z", 1);
        write(x[1], "x", 1);
        write(y[1], "y", 1);
        wait_show(e2, 8, 0);
        wait_show(e2, 8, 0);
        wait_show(e2, 1, 0);
        wait_show(e2, 2, 0);
        read(z[0], &c, 1);
        wait_show(e2, 8, 0);
        write(z[1], "z", 1);
        wait_show(e2, 8, 0);
        write(x[1], "x", 1);
        wait_show(e2, 8, 0);
        show("mod y", ctl(e2, EPOLL_CTL_MOD, y[0], EPOLLIN, 4));
        wait_show(e2, 8, 0);
        close(e2); close(x[0]); close(x[1]); close(y[0]); close(y[1]); close(z[0]); close(z[1]);
    }

    puts("hang-up: the writer closes");
    close(a[1]);
    wait_show(ep, 8, 0);
    puts("closed fd leaves the interest list with its file");
    close(a[0]);
    wait_show(ep, 8, 0);
    show("close epfd", close(ep));
    show("wait closed epfd", epoll_wait(ep, evs, 1, 0));
    return 0;
}
