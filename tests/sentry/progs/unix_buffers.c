/* AF_UNIX buffers and readiness: bounded send buffers (EAGAIN when full, a blocked writer
 * woken by the reader), SO_SNDBUF/SO_RCVBUF doubling, datagram queue limits, listen
 * backlogs, poll and epoll (level and edge), FIONREAD/SIOCOUTQ, SO_* queries, SO_RCVTIMEO,
 * ECONNRESET, EINTR and SA_RESTART, SIGPIPE and MSG_NOSIGNAL. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define ERR(x) do { errno = 0; long r_ = (long)(x); printf("%-50s -> %ld %s\n", #x, r_, r_ < 0 ? strerrorname_np(errno) : ""); } while (0)

static int getint(int s, int opt) {
    int v = -1; socklen_t l = sizeof v;
    if (getsockopt(s, SOL_SOCKET, opt, &v, &l) < 0) return -errno;
    return v;
}

static short pollev(int fd) {
    struct pollfd p = {fd, POLLIN | POLLOUT | POLLRDHUP, 0};
    poll(&p, 1, 0);
    return p.revents;
}

static void bufsizes(void) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("default sndbuf %d rcvbuf %d\n", getint(s, SO_SNDBUF), getint(s, SO_RCVBUF));
    int v = 10000; setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    v = 1; setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    printf("after set sndbuf %d rcvbuf %d\n", getint(s, SO_SNDBUF), getint(s, SO_RCVBUF));
    v = 1; setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    printf("min sndbuf %d\n", getint(s, SO_SNDBUF));
    ERR(setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, 2));
    ERR(setsockopt(s, SOL_SOCKET, 12345, &v, sizeof v));
    ERR(setsockopt(s, 6, 1, &v, sizeof v));
    ERR(getsockopt(s, 6, 1, &v, &(socklen_t){4}));
    ERR(getsockopt(s, SOL_SOCKET, SO_PEERSEC, &v, &(socklen_t){4}));
    printf("type %d domain %d protocol %d error %d acceptconn %d\n", getint(s, SO_TYPE),
           getint(s, SO_DOMAIN), getint(s, SO_PROTOCOL), getint(s, SO_ERROR),
           getint(s, SO_ACCEPTCONN));
    struct timeval tv = {2, 500000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    socklen_t l = sizeof tv;
    getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, &l);
    printf("rcvtimeo %ld.%06ld len %d\n", (long)tv.tv_sec, (long)tv.tv_usec, (int)l);
    tv.tv_usec = 2000000;
    ERR(setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv));
    close(s);
}

static void fill_stream(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    char chunk[1000];
    memset(chunk, 'x', sizeof chunk);
    long total = 0;
    ssize_t n;
    while ((n = write(sv[0], chunk, sizeof chunk)) > 0) total += n;
    printf("stream filled: EAGAIN %d, bounded %d\n", errno == EAGAIN, total > 10000 && total < 2000000);
    printf("full: poll %#x\n", pollev(sv[0]) & (POLLOUT));
    int q = -1;
    ioctl(sv[1], FIONREAD, &q);
    printf("FIONREAD matches %d\n", q == total);
    ioctl(sv[0], SIOCOUTQ, &q);
    printf("SIOCOUTQ positive %d\n", q > 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLET, .data.fd = sv[0]};
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev);
    struct epoll_event out[4];
    printf("epoll ET while full: %d\n", epoll_wait(ep, out, 4, 0));
    char buf[65536];
    long got = 0;
    while ((n = read(sv[1], buf, sizeof buf)) > 0) got += n;
    printf("drained all %d\n", got == total);
    n = epoll_wait(ep, out, 4, 0);
    printf("epoll ET after drain: %zd events %#x\n", n, n > 0 ? out[0].events : 0);
    printf("epoll ET again: %d\n", epoll_wait(ep, out, 4, 0));
    close(ep);
    /* a blocked writer woken by a reader */
    int fl = fcntl(sv[0], F_GETFL);
    fcntl(sv[0], F_SETFL, fl & ~O_NONBLOCK);
    fcntl(sv[1], F_SETFL, fl & ~O_NONBLOCK);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        long r = 0;
        while ((n = read(sv[1], buf, sizeof buf)) > 0) r += n;
        printf("reader got %ld\n", r);
        _exit(0);
    }
    close(sv[1]);
    static char big[3 << 20];
    n = write(sv[0], big, sizeof big);
    printf("blocking write of 3 MiB: %zd\n", n);
    close(sv[0]);
    waitpid(pid, NULL, 0);
}

static void dgram_queue(void) {
    struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "\0dgram-q"};
    socklen_t alen = offsetof(struct sockaddr_un, sun_path) + 8;
    int r = socket(AF_UNIX, SOCK_DGRAM, 0);
    bind(r, (struct sockaddr *)&a, alen);
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int k = 0;
    while (sendto(s, "0123456789", 10, 0, (struct sockaddr *)&a, alen) == 10) k++;
    printf("dgram queue took %d then %s\n", k, strerrorname_np(errno));
    int q; ioctl(r, FIONREAD, &q);
    printf("dgram FIONREAD %d\n", q);
    connect(s, (struct sockaddr *)&a, alen);
    printf("connected sender poll %#x\n", pollev(s) & POLLOUT);
    char buf[16];
    recv(r, buf, sizeof buf, 0);
    printf("after one read: send %zd\n", send(s, "x", 1, 0));
    char huge[300000];
    ERR(send(s, huge, sizeof huge, 0));
    close(s); close(r);
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv);
    k = 0;
    while (send(sv[0], "0123456789", 10, 0) == 10 && k < 100000) k++;
    printf("dgram pair: more than the queue limit %d, bounded %d\n", k > 11, k < 100000);
    close(sv[0]); close(sv[1]);
}

static void backlog(void) {
    for (int b = 0; b < 3; b++) {
        struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "\0backlog"};
        socklen_t alen = offsetof(struct sockaddr_un, sun_path) + 8;
        int l = socket(AF_UNIX, SOCK_STREAM, 0);
        bind(l, (struct sockaddr *)&a, alen);
        listen(l, b);
        printf("listener: acceptconn %d poll %#x\n", getint(l, SO_ACCEPTCONN), pollev(l));
        int cs[10], k = 0;
        for (k = 0; k < 10; k++) {
            cs[k] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (connect(cs[k], (struct sockaddr *)&a, alen) < 0) break;
        }
        printf("backlog %d: %d connected, then %s\n", b, k, strerrorname_np(errno));
        printf("listener poll %#x\n", pollev(l));
        int c = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        printf("accepted: nonblock %d cloexec %d\n", !!(fcntl(c, F_GETFL) & O_NONBLOCK),
               fcntl(c, F_GETFD));
        ERR(connect(cs[k], (struct sockaddr *)&a, alen));
        ERR(connect(cs[0], (struct sockaddr *)&a, alen));
        ERR(listen(cs[0], 1));
        ERR(accept(cs[0], NULL, NULL));
        for (int i = 0; i <= k; i++) close(cs[i]);
        close(c);
        ERR(accept(l, NULL, NULL) >= 0);
        close(l);
    }
    int d = socket(AF_UNIX, SOCK_DGRAM, 0);
    ERR(listen(d, 1));
    ERR(accept(d, NULL, NULL));
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    ERR(listen(u, 1));
    printf("fresh stream poll %#x\n", pollev(u));
    char b;
    ERR(read(u, &b, 1));
    ERR(write(u, &b, 1));
    ERR(send(u, &b, 1, MSG_NOSIGNAL));
    ERR(shutdown(u, 7));
    ERR(shutdown(u, SHUT_RDWR));
    close(u); close(d);
}

static void epoll_edges(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET | EPOLLRDHUP, .data.fd = sv[1]};
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
    int lt = epoll_create1(0);
    ev.events = EPOLLIN;
    epoll_ctl(lt, EPOLL_CTL_ADD, sv[1], &ev);
    struct epoll_event out[4];
    printf("ET empty: %d\n", epoll_wait(ep, out, 4, 0));
    write(sv[0], "a", 1);
    int n = epoll_wait(ep, out, 4, 0);
    printf("ET after write: %d %#x\n", n, n ? out[0].events : 0);
    printf("ET again: %d  LT: %d\n", epoll_wait(ep, out, 4, 0), epoll_wait(lt, out, 4, 0));
    write(sv[0], "b", 1);
    printf("ET after 2nd write: %d\n", epoll_wait(ep, out, 4, 0));
    shutdown(sv[0], SHUT_WR);
    n = epoll_wait(ep, out, 4, 0);
    printf("ET after peer shutdown: %d %#x\n", n, n ? out[0].events : 0);
    printf("poll after peer SHUT_WR %#x\n", pollev(sv[1]));
    printf("poll of the shut writer %#x\n", pollev(sv[0]));
    char buf[8];
    printf("read %zd, then %zd\n", read(sv[1], buf, 8), read(sv[1], buf, 8));
    ERR(send(sv[0], "x", 1, MSG_NOSIGNAL));
    close(ep); close(lt); close(sv[0]); close(sv[1]);
}

static void reset(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    write(sv[0], "unread", 6);
    close(sv[1]);
    printf("poll after reset %#x\n", pollev(sv[0]));
    printf("SO_ERROR %s\n", strerrorname_np(getint(sv[0], SO_ERROR)) ?: "0");
    char b[4];
    ERR(read(sv[0], b, 4));
    close(sv[0]);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    write(sv[0], "unread", 6);
    close(sv[1]);
    ERR(read(sv[0], b, 4));
    ERR(read(sv[0], b, 4));
    close(sv[0]);
    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
    shutdown(sv[1], SHUT_RD);
    ERR(send(sv[0], "x", 1, MSG_NOSIGNAL));
    ERR(recv(sv[1], b, 4, MSG_DONTWAIT));
    close(sv[0]); close(sv[1]);
}

static int fds[2];
static void on_alarm(int sig) { write(fds[0], "!", 1); }
static void on_alarm_quiet(int sig) { (void)sig; }

static void signals(void) {
    socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    alarm(1);
    char b[4];
    ssize_t n = recv(fds[1], b, 4, 0);
    printf("recv interrupted: %zd %s\n", n, n < 0 ? strerrorname_np(errno) : "");
    read(fds[1], b, 1);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    alarm(1);
    n = recv(fds[1], b, 4, 0);
    printf("recv restarted: %zd '%.*s'\n", n, (int)n, b);
    /* a stream write cut short by a handled signal returns what went, even with
       SA_RESTART (nothing is sent twice); a MSG_WAITALL read returns what it got */
    int w[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, w);
    static char big[1 << 20];
    struct sigaction rs = {.sa_handler = on_alarm_quiet, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &rs, NULL);
    alarm(1);
    n = write(w[0], big, sizeof big);
    printf("interrupted write: partial %d\n", n > 0 && n < (ssize_t)sizeof big);
    shutdown(w[0], SHUT_WR);
    long total = 0;
    ssize_t k;
    static char sink[65536];
    while ((k = read(w[1], sink, sizeof sink)) > 0) total += k;
    printf("reader got exactly what the write returned: %d\n", total == n);
    close(w[0]); close(w[1]);
    socketpair(AF_UNIX, SOCK_STREAM, 0, w);
    write(w[0], "abc", 3);
    alarm(1);
    n = recv(w[1], sink, 10, MSG_WAITALL);
    printf("interrupted MSG_WAITALL: %zd\n", n);
    close(w[0]); close(w[1]);
    struct timeval tv = {0, 20000};
    setsockopt(fds[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ERR(recv(fds[1], b, 4, 0));
    close(fds[1]);
    signal(SIGPIPE, SIG_DFL);
    pid_t pid = fork();
    if (pid == 0) {
        send(fds[0], "x", 1, MSG_NOSIGNAL);
        printf("MSG_NOSIGNAL: %s\n", strerrorname_np(errno));
        write(fds[0], "x", 1);
        printf("not reached\n");
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("writer killed by signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    close(fds[0]);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    bufsizes();
    fill_stream();
    dgram_queue();
    backlog();
    epoll_edges();
    reset();
    signals();
    return 0;
}
