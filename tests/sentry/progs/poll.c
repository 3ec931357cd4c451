/* poll, ppoll, select and pselect6 on pipes; the output must be the same natively and in
 * the sandbox (no timings are printed, only results, errnos and masks). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t hits;
static void on_sig(int sig) { (void)sig; hits++; }

static void show(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

static void arm(int ms) {
    struct itimerval it = {{0, 0}, {0, ms * 1000}};
    setitimer(ITIMER_REAL, &it, 0);
}

static int blocked(int sig) {
    sigset_t cur;
    sigprocmask(SIG_BLOCK, 0, &cur);
    return sigismember(&cur, sig);
}

/* A child that writes one byte into `fd` after a short sleep. */
static pid_t late_writer(int fd) {
    pid_t p = fork();
    if (p == 0) {
        usleep(30000);
        write(fd, "z", 1);
        _exit(0);
    }
    return p;
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    int p[2];
    pipe(p);
    struct pollfd fds[4];
    char c;

    /* poll: not ready, ready, POLLOUT, POLLNVAL, negative fd */
    fds[0] = (struct pollfd){p[0], POLLIN, 0};
    show("poll empty t=0", poll(fds, 1, 0));
    printf("  revents %#x\n", fds[0].revents);
    show("poll empty t=20", poll(fds, 1, 20));
    write(p[1], "a", 1);
    fds[1] = (struct pollfd){p[1], POLLOUT | POLLIN, 0};
    fds[2] = (struct pollfd){99, POLLIN, 0};
    fds[3] = (struct pollfd){-1, POLLIN, 0x7};
    show("poll ready", poll(fds, 4, -1));
    printf("  revents %#x %#x %#x %#x\n", fds[0].revents, fds[1].revents, fds[2].revents,
           fds[3].revents);
    read(p[0], &c, 1);

    /* poll blocks until another process writes */
    pid_t w = late_writer(p[1]);
    fds[0] = (struct pollfd){p[0], POLLIN, 0};
    show("poll waits for writer", poll(fds, 1, -1));
    printf("  revents %#x\n", fds[0].revents);
    waitpid(w, 0, 0);
    read(p[0], &c, 1);

    /* ppoll with a timespec, written back */
    struct timespec ts = {0, 20000000};
    show("ppoll timeout", ppoll(fds, 1, &ts, 0));
    printf("  left %ld %ld\n", (long)ts.tv_sec, ts.tv_nsec);
    show("ppoll bad sigsetsize", syscall(SYS_ppoll, fds, 1, 0, &ts, 4));

    /* errors */
    show("poll EFAULT", poll((struct pollfd *)8, 1, 0));
    struct rlimit rl = {64, 64};
    setrlimit(RLIMIT_NOFILE, &rl);
    show("poll nfds > NOFILE", poll(fds, 65, 0));

    /* select */
    fd_set r, wr;
    struct timeval tv = {0, 0};
    FD_ZERO(&r); FD_SET(p[0], &r);
    FD_ZERO(&wr); FD_SET(p[1], &wr);
    show("select empty t=0", select(p[1] + 1, &r, &wr, 0, &tv));
    printf("  r=%d w=%d\n", FD_ISSET(p[0], &r), FD_ISSET(p[1], &wr));
    write(p[1], "b", 1);
    FD_ZERO(&r); FD_SET(p[0], &r);
    FD_ZERO(&wr); FD_SET(p[1], &wr);
    show("select ready", select(p[1] + 1, &r, &wr, 0, 0));
    printf("  r=%d w=%d\n", FD_ISSET(p[0], &r), FD_ISSET(p[1], &wr));
    read(p[0], &c, 1);
    FD_ZERO(&r); FD_SET(p[0], &r);
    tv = (struct timeval){0, 20000};
    show("select timeout", select(p[0] + 1, &r, 0, 0, &tv));
    printf("  r=%d left %ld %ld\n", FD_ISSET(p[0], &r), (long)tv.tv_sec, (long)tv.tv_usec);
    FD_ZERO(&r); FD_SET(p[0], &r);
    w = late_writer(p[1]);
    show("select waits for writer", select(p[0] + 1, &r, 0, 0, 0));
    printf("  r=%d\n", FD_ISSET(p[0], &r));
    waitpid(w, 0, 0);
    read(p[0], &c, 1);
    FD_ZERO(&r); FD_SET(40, &r);
    show("select EBADF", select(41, &r, 0, 0, 0));
    show("select nfds<0", select(-1, 0, 0, 0, 0));
    show("select EFAULT", select(4, (fd_set *)8, 0, 0, 0));
    tv = (struct timeval){-1, 0};
    show("select bad timeout", select(1, 0, 0, 0, &tv));

    /* signals: a handler (even SA_RESTART) ends poll/select with EINTR */
    struct sigaction sa = {0};
    sa.sa_handler = on_sig;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, 0);
    arm(20);
    show("poll interrupted", poll(fds, 1, -1));
    arm(20);
    FD_ZERO(&r); FD_SET(p[0], &r);
    show("select interrupted", select(p[0] + 1, &r, 0, 0, 0));
    printf("  hits %d\n", hits);

    /* pselect6/ppoll: SIGALRM blocked, unblocked only for the wait; restored after */
    sigset_t block, empty;
    sigemptyset(&block); sigaddset(&block, SIGALRM);
    sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &block, 0);
    arm(20);
    FD_ZERO(&r); FD_SET(p[0], &r);
    show("pselect interrupted", pselect(p[0] + 1, &r, 0, 0, 0, &empty));
    printf("  hits %d blocked after %d\n", hits, blocked(SIGALRM));
    arm(20);
    show("ppoll interrupted", ppoll(fds, 1, 0, &empty));
    printf("  hits %d blocked after %d\n", hits, blocked(SIGALRM));
    /* a pending blocked signal, unblocked by the temporary mask, interrupts at once */
    raise(SIGALRM);
    show("pselect with pending", pselect(p[0] + 1, &r, 0, 0, 0, &empty));
    printf("  hits %d blocked after %d\n", hits, blocked(SIGALRM));
    /* ready fd: the result, and the temporary mask is gone again (signal stays pending) */
    write(p[1], "c", 1);
    raise(SIGALRM);
    FD_ZERO(&r); FD_SET(p[0], &r);
    show("pselect ready, signal pending", pselect(p[0] + 1, &r, 0, 0, 0, &block));
    printf("  hits %d blocked after %d\n", hits, blocked(SIGALRM));
    struct timespec zero = {0, 0};
    show("ppoll ready, empty mask", ppoll(fds, 1, &zero, &empty));
    printf("  hits %d blocked after %d revents %#x\n", hits, blocked(SIGALRM), fds[0].revents);
    read(p[0], &c, 1);
    struct { const sigset_t *ss; size_t len; } arg = {&empty, 4};
    show("pselect6 bad sigsetsize", syscall(SYS_pselect6, 1, 0, 0, 0, 0, &arg));

    /* POLLHUP: data then hang-up, then hang-up alone */
    write(p[1], "d", 1);
    close(p[1]);
    fds[0] = (struct pollfd){p[0], POLLIN, 0};
    show("poll data+hup", poll(fds, 1, -1));
    printf("  revents %#x\n", fds[0].revents);
    read(p[0], &c, 1);
    show("poll hup", poll(fds, 1, -1));
    printf("  revents %#x\n", fds[0].revents);
    FD_ZERO(&r); FD_SET(p[0], &r);
    show("select at eof", select(p[0] + 1, &r, 0, 0, 0));
    printf("  r=%d\n", FD_ISSET(p[0], &r));
    /* a write end whose reader is gone: POLLERR */
    int q[2];
    pipe(q);
    close(q[0]);
    fds[0] = (struct pollfd){q[1], POLLOUT, 0};
    show("poll no reader", poll(fds, 1, 0));
    printf("  revents %#x\n", fds[0].revents);
    return 0;
}
