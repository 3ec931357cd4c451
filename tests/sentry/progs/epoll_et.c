/* EPOLLET: one report per readiness edge (new data, space freed in a full pipe, hang-up,
 * a new signal for a signalfd), not again while the level stays; ADD and MOD of a ready
 * file give an edge; EPOLLET|EPOLLONESHOT; a blocked epoll_wait woken by another process;
 * an epoll fd inside another epoll. The output must be the same natively and in the
 * sandbox. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

static void wait_show(const char *what, int ep, int ms) {
    struct epoll_event ev[8];
    int n = epoll_wait(ep, ev, 8, ms);
    printf("  %s: %d", what, n);
    for (int i = 0; i < n; i++)
        printf(" [%#x %llu]", ev[i].events, (unsigned long long)ev[i].data.u64);
    printf("\n");
}

static int ctl(int ep, int op, int fd, unsigned events, unsigned long long data) {
    struct epoll_event e = {.events = events, .data.u64 = data};
    return epoll_ctl(ep, op, fd, &e);
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    char buf[70000];
    int p[2];
    pipe2(p, O_NONBLOCK);
    int ep = epoll_create1(0);

    puts("read end, EPOLLIN|EPOLLET");
    show("  add", ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, 1));
    wait_show("empty", ep, 0);
    write(p[1], "ab", 2);
    wait_show("after a write", ep, 0);
    wait_show("again, still readable", ep, 0);
    write(p[1], "c", 1);
    wait_show("new data is a new edge", ep, 0);
    read(p[0], buf, 1);
    wait_show("after a partial read", ep, 0);
    show("  drain", read(p[0], buf, sizeof(buf)));
    show("  drained", read(p[0], buf, sizeof(buf)));
    wait_show("drained", ep, 0);
    write(p[1], "d", 1);
    wait_show("refilled", ep, 0);
    show("  mod (still readable)", ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLET, 2));
    wait_show("after mod", ep, 0);
    wait_show("again", ep, 0);
    read(p[0], buf, sizeof(buf));

    puts("a pipe already readable when added");
    int q[2];
    pipe(q);
    write(q[1], "x", 1);
    show("  add", ctl(ep, EPOLL_CTL_ADD, q[0], EPOLLIN | EPOLLET, 3));
    wait_show("first", ep, 0);
    wait_show("second", ep, 0);

    puts("write end, EPOLLOUT|EPOLLET");
    show("  add", ctl(ep, EPOLL_CTL_ADD, p[1], EPOLLOUT | EPOLLET, 4));
    wait_show("writable at add", ep, 0);
    wait_show("again", ep, 0);
    write(p[1], "e", 1);
    read(p[0], buf, 1);
    wait_show("a read of a pipe that was not full", ep, 0);
    long total = 0, n;
    while ((n = write(p[1], buf, 4096)) > 0)
        total += n;
    printf("  filled %ld\n", total);
    wait_show("full (the read end's edge too)", ep, 0);
    read(p[0], buf, 1);
    wait_show("one byte read: still full", ep, 0);
    read(p[0], buf, 4095);
    wait_show("a page freed", ep, 0);
    wait_show("again", ep, 0);
    read(p[0], buf, sizeof(buf));
    read(p[0], buf, sizeof(buf));
    show("  del write end", ctl(ep, EPOLL_CTL_DEL, p[1], 0, 0));

    puts("EPOLLET|EPOLLONESHOT");
    show("  mod", ctl(ep, EPOLL_CTL_MOD, q[0], EPOLLIN | EPOLLET | EPOLLONESHOT, 5));
    wait_show("ready at mod", ep, 0);
    write(q[1], "y", 1);
    wait_show("disarmed", ep, 0);
    show("  rearm", ctl(ep, EPOLL_CTL_MOD, q[0], EPOLLIN | EPOLLET | EPOLLONESHOT, 6));
    wait_show("rearmed", ep, 0);
    show("  del", ctl(ep, EPOLL_CTL_DEL, q[0], 0, 0));

    puts("a blocked epoll_wait woken by a writer in another process");
    pid_t c = fork();
    if (c == 0) {
        usleep(30000);
        write(p[1], "z", 1);
        usleep(30000);
        write(p[1], "z", 1);
        _exit(0);
    }
    wait_show("first write", ep, 5000);
    wait_show("second write", ep, 5000);
    waitpid(c, 0, 0);
    read(p[0], buf, sizeof(buf));

    puts("hang-up is an edge");
    close(p[1]);
    wait_show("writer closed", ep, 0);
    wait_show("again", ep, 0);
    close(p[0]);

    puts("a signalfd: each new signal is an edge");
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigaddset(&m, SIGUSR2);
    sigprocmask(SIG_BLOCK, &m, 0);
    int sfd = signalfd(-1, &m, SFD_NONBLOCK);
    show("  add", ctl(ep, EPOLL_CTL_ADD, sfd, EPOLLIN | EPOLLET, 7));
    wait_show("nothing pending", ep, 0);
    kill(getpid(), SIGUSR1);
    wait_show("USR1", ep, 0);
    wait_show("again", ep, 0);
    kill(getpid(), SIGUSR1);
    wait_show("USR1 again while pending (not queued twice)", ep, 0);
    kill(getpid(), SIGUSR2);
    wait_show("USR2", ep, 0);
    struct signalfd_siginfo si[2];
    show("  read", read(sfd, si, sizeof(si)));
    wait_show("drained", ep, 0);
    close(sfd);

    puts("an epoll inside an epoll, edge-triggered");
    int r[2];
    pipe(r);
    int inner = epoll_create1(0), outer = epoll_create1(0);
    ctl(inner, EPOLL_CTL_ADD, r[0], EPOLLIN, 8);
    show("  add inner", ctl(outer, EPOLL_CTL_ADD, inner, EPOLLIN | EPOLLET, 9));
    wait_show("nothing", outer, 0);
    write(r[1], "a", 1);
    wait_show("inner ready", outer, 0);
    wait_show("again", outer, 0);
    wait_show("inner itself (level)", inner, 0);
    write(r[1], "b", 1);
    wait_show("more data", outer, 0);

    puts("order: the order the edges came in, level-triggered ones requeued");
    int e3 = epoll_create1(0), u[2], v[2], w[2];
    pipe(u); pipe(v); pipe(w);
    ctl(e3, EPOLL_CTL_ADD, u[0], EPOLLIN | EPOLLET, 11);
    ctl(e3, EPOLL_CTL_ADD, v[0], EPOLLIN, 12);
    ctl(e3, EPOLL_CTL_ADD, w[0], EPOLLIN | EPOLLET, 13);
    write(w[1], "w", 1);
    write(v[1], "v", 1);
    write(u[1], "u", 1);
    wait_show("w, v, u", e3, 0);
    write(w[1], "w", 1);
    wait_show("v requeued, then w's new edge", e3, 0);
    write(u[1], "u", 1);
    write(w[1], "w", 1);
    {
        struct epoll_event one[1];
        int n1 = epoll_wait(e3, one, 1, 0);
        printf("  maxevents 1: %d [%llu]\n", n1, (unsigned long long)one[0].data.u64);
    }
    wait_show("the rest", e3, 0);
    puts("done");
    return 0;
}
