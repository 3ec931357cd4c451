/* O_ASYNC on files other than pipes and sockets: inotify (POLL_IN per queued event, none
 * for a merged one), a pty's both ends (POLL_IN when input is readable: a whole line in
 * canonical mode, each chunk in raw mode; the owner defaults to the caller when O_ASYNC is
 * set without one; POLL_OUT once when an end whose write fell short, while it had O_ASYNC,
 * can be written again: n_tty's TTY_DO_WRITE_WAKEUP), and POSIX message queues (no fasync
 * in Linux: never a signal). Signals are F_SETSIG's real-time one (or plain SIGIO),
 * blocked and taken with sigtimedwait (a pty's input is delivered asynchronously by
 * Linux: every wait has a timeout). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int SIG;

/* Wait up to ms for the signal: its si_code, si_band and whether si_fd is `fd`. */
static void expect(const char *what, int fd, int ms) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIG);
    sigaddset(&s, SIGIO);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    siginfo_t si;
    int got = sigtimedwait(&s, &si, &ts);
    if (got < 0)
        printf("%s: none (%s)\n", what, strerrorname_np(errno));
    else
        printf("%s: %s code %d band %#lx fd %s\n", what, got == SIG ? "rt" : "SIGIO",
               si.si_code, (long)si.si_band, si.si_fd == fd ? "ok" : "other");
}

static void drain(int ms) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIG);
    sigaddset(&s, SIGIO);
    struct timespec ts = {0, ms * 1000000L};
    while (sigtimedwait(&s, NULL, &ts) > 0)
        ;
}

static void async_on(int fd, int own) {
    if (own)
        fcntl(fd, F_SETOWN, getpid());
    fcntl(fd, F_SETSIG, SIG);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
}

/* Write to nonblocking `fd` until it refuses (EAGAIN); the bytes taken. */
static long fill(int fd) {
    char buf[512];
    memset(buf, 'z', sizeof buf);
    long n = 0;
    ssize_t k;
    while ((k = write(fd, buf, sizeof buf)) > 0)
        n += k;
    if (k < 0 && errno != EAGAIN)
        printf("fill: %s\n", strerrorname_np(errno));
    return n;
}

/* Read nonblocking `fd` until it is empty; the bytes read. */
static long empty(int fd) {
    char buf[4096];
    long n = 0;
    ssize_t k;
    while ((k = read(fd, buf, sizeof buf)) > 0)
        n += k;
    return n;
}

/* POLL_OUT: a pty's end writable again after a write fell short (each direction). Linux
 * sends it from the read that made room (pty_unthrottle's tty_wakeup), so waiting for none
 * takes a short timeout. */
static void pty_writable_again(void) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
    grantpt(m);
    unlockpt(m);
    int r = open(ptsname(m), O_RDWR | O_NOCTTY | O_NONBLOCK);
    struct termios t;
    tcgetattr(r, &t);
    cfmakeraw(&t);
    tcsetattr(r, TCSANOW, &t);
    char buf[64];
    /* No POLL_OUT for a write that took everything, nor for one that fell short while
     * the end had no O_ASYNC file (nothing armed when it is set later). */
    async_on(r, 1);
    write(r, "abc", 3);
    printf("master read %zd\n", read(m, buf, sizeof buf));
    fcntl(r, F_SETFL, fcntl(r, F_GETFL) & ~O_ASYNC);
    long n = fill(r);
    fcntl(r, F_SETFL, fcntl(r, F_GETFL) | O_ASYNC);
    printf("master read all: %d\n", n > 0 && empty(m) == n);
    expect("replica wrote all; fell short before O_ASYNC", r, 100);
    n = fill(r);
    printf("master read all: %d\n", n > 0 && empty(m) == n);
    expect("replica writable again", r, 1000);
    fcntl(r, F_SETFL, fcntl(r, F_GETFL) & ~O_ASYNC);
    /* The master's writes, with plain SIGIO (no F_SETSIG). */
    fcntl(m, F_SETOWN, getpid());
    fcntl(m, F_SETFL, fcntl(m, F_GETFL) | O_ASYNC);
    n = fill(m);
    printf("replica read some: %d\n", n > 0 && empty(r) > 0);
    expect("master writable again", m, 1000);
    expect("each end once", m, 100);
    close(r);
    close(m);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    SIG = SIGRTMIN + 1;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIG);
    sigaddset(&s, SIGIO);
    sigprocmask(SIG_BLOCK, &s, NULL);

    /* inotify */
    char dir[] = "/tmp/fasyncXXXXXX";
    mkdtemp(dir);
    int in = inotify_init1(IN_NONBLOCK);
    async_on(in, 1);
    inotify_add_watch(in, dir, IN_CREATE | IN_MODIFY);
    char path[64];
    snprintf(path, sizeof path, "%s/f", dir);
    int f = open(path, O_CREAT | O_WRONLY, 0600);
    expect("inotify create", in, 1000);
    write(f, "a", 1);
    write(f, "b", 1); /* the same event again: merged, no second signal */
    expect("inotify modify", in, 1000);
    expect("inotify merged", in, 0);
    close(f);
    unlink(path);
    rmdir(dir); /* the watch ends: IN_IGNORED is queued too */
    expect("inotify watch gone", in, 1000);
    close(in);

    /* a pty */
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    grantpt(m);
    unlockpt(m);
    int r = open(ptsname(m), O_RDWR | O_NOCTTY);
    struct termios t;
    tcgetattr(r, &t);
    t.c_lflag &= ~ECHO;
    tcsetattr(r, TCSANOW, &t);
    async_on(r, 0);
    printf("replica owner is me: %d\n", fcntl(r, F_GETOWN) == getpid());
    write(m, "ab", 2);
    expect("canonical partial line", r, 300);
    write(m, "\n", 1);
    expect("canonical line", r, 1000);
    char buf[64];
    printf("read %zd\n", read(r, buf, sizeof buf));
    cfmakeraw(&t);
    tcsetattr(r, TCSANOW, &t);
    drain(100);
    write(m, "x", 1);
    expect("raw byte", r, 1000);
    drain(100);
    read(r, buf, sizeof buf);
    async_on(m, 1);
    write(r, "out", 3);
    expect("master input", m, 1000);
    drain(100);
    printf("master read %zd\n", read(m, buf, sizeof buf));
    fcntl(r, F_SETFL, fcntl(r, F_GETFL) & ~O_ASYNC);
    write(m, "y", 1);
    expect("async off", r, 300);
    close(r);
    close(m);
    pty_writable_again();

    /* a message queue: O_ASYNC is kept, nothing is sent */
    struct mq_attr a = {.mq_maxmsg = 4, .mq_msgsize = 16};
    mqd_t q = mq_open("/fasync-test", O_CREAT | O_RDWR, 0600, &a);
    if (q == (mqd_t)-1) {
        printf("mq_open %s\n", strerrorname_np(errno));
        return 0;
    }
    async_on(q, 1);
    printf("mq O_ASYNC kept: %d\n", !!(fcntl(q, F_GETFL) & O_ASYNC));
    mq_send(q, "m", 1, 0);
    expect("mqueue send", q, 300);
    mq_close(q);
    mq_unlink("/fasync-test");
    return 0;
}
