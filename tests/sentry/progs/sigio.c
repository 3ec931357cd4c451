/* Signal-driven I/O and signals against socket timeouts, as Linux: F_SETOWN, F_SETOWN_EX,
 * F_SETSIG and O_ASYNC on pipes, unix sockets (stream, datagram, listening) and TCP/UDP
 * sockets; SIGIO from the kernel by default, the F_SETSIG signal with si_code (POLL_IN,
 * POLL_OUT, POLL_HUP), si_band and si_fd; SIGURG for TCP urgent data. Then a blocked
 * recv/accept/send with SO_RCVTIMEO/SO_SNDTIMEO cut short by an SA_RESTART handler: EINTR,
 * not restarted; with argument "stop", the same for a call stopped and continued (reading
 * /proc to know the child sleeps in it). The signals are blocked and taken with sigtimedwait, so nothing depends on
 * when they arrive; only the first of a kind is printed (Linux may send several). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stddef.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static sigset_t set;
#define RT1 (SIGRTMIN + 1)
#define RT2 (SIGRTMIN + 2)

static const char *code_name(int c) {
    static const char *n[] = {"?", "POLL_IN", "POLL_OUT", "POLL_MSG", "POLL_ERR", "POLL_PRI",
                              "POLL_HUP"};
    if (c == SI_KERNEL) return "SI_KERNEL";
    return c >= 1 && c <= 6 ? n[c] : "other";
}

static void drain(void) {
    struct timespec z = {0, 0};
    siginfo_t si;
    while (sigtimedwait(&set, &si, &z) > 0) {
    }
}

/* Wait for the next signal of `set` and print it; `fd` is the fd si_fd should name. */
static void take(const char *what, int fd) {
    struct timespec ts = {10, 0};
    siginfo_t si;
    int s = sigtimedwait(&set, &si, &ts);
    if (s < 0) {
        printf("%s: no signal (%s)\n", what, strerrorname_np(errno));
        return;
    }
    const char *name = s == SIGIO ? "SIGIO" : s == SIGURG ? "SIGURG" : s == RT1 ? "RT1"
                       : s == RT2 ? "RT2" : "other";
    if (si.si_code == SI_KERNEL)
        printf("%s: %s %s pid %d\n", what, name, code_name(si.si_code), si.si_pid);
    else
        printf("%s: %s %s band %#lx fd-matches %d\n", what, name, code_name(si.si_code),
               si.si_band, si.si_fd == fd);
    drain();
}

static void none(const char *what) {
    struct timespec z = {0, 0};
    siginfo_t si;
    int s = sigtimedwait(&set, &si, &z);
    printf("%s: %s\n", what, s < 0 ? "nothing" : "a signal");
}

static void own(int fd, int sig) {
    fcntl(fd, F_SETOWN, getpid());
    fcntl(fd, F_SETSIG, sig);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC | O_NONBLOCK);
}

#define ERR(call)                                                                          \
    do {                                                                                   \
        errno = 0;                                                                         \
        long r_ = (long)(call);                                                            \
        printf("%-40s -> %ld %s\n", #call, r_, r_ < 0 ? strerrorname_np(errno) : "");        \
    } while (0)

static void owners(void) {
    int p[2];
    pipe(p);
    errno = 0;
    printf("getown fresh %d getsig %d\n", fcntl(p[0], F_GETOWN), fcntl(p[0], F_GETSIG));
    struct f_owner_ex ex;
    fcntl(p[0], F_GETOWN_EX, &ex);
    printf("getown_ex fresh type %d pid %d\n", ex.type, ex.pid);
    fcntl(p[0], F_SETOWN, getpid());
    fcntl(p[0], F_GETOWN_EX, &ex);
    printf("setown self: getown==pid %d ex type %d ex pid==pid %d\n",
           fcntl(p[0], F_GETOWN) == getpid(), ex.type, ex.pid == getpid());
    fcntl(p[0], F_SETOWN, -getpgrp());
    fcntl(p[0], F_GETOWN_EX, &ex);
    printf("setown pgrp: getown==-pgrp %d ex type %d\n", fcntl(p[0], F_GETOWN) == -getpgrp(),
           ex.type);
    ex.type = F_OWNER_TID;
    ex.pid = gettid();
    fcntl(p[0], F_SETOWN_EX, &ex);
    fcntl(p[0], F_GETOWN_EX, &ex);
    printf("setown_ex tid: getown==tid %d ex type %d\n", fcntl(p[0], F_GETOWN) == gettid(),
           ex.type);
    errno = 0;
    ERR(fcntl(p[0], F_SETOWN, 999999));
    errno = 0;
    ex.type = 7;
    ERR(fcntl(p[0], F_SETOWN_EX, &ex));
    errno = 0;
    ex.type = F_OWNER_PID;
    ex.pid = 999999;
    ERR(fcntl(p[0], F_SETOWN_EX, &ex));
    errno = 0;
    ERR(fcntl(p[0], F_SETOWN_EX, (void *)8));
    errno = 0;
    ERR(fcntl(p[0], F_GETOWN_EX, (void *)8));
    errno = 0;
    ERR(fcntl(p[0], F_SETSIG, 65));
    errno = 0;
    ERR(fcntl(p[0], F_SETSIG, -1));
    errno = 0;
    ERR(fcntl(p[0], F_SETSIG, 64));
    printf("getsig %d\n", fcntl(p[0], F_GETSIG));
    errno = 0;
    ERR(fcntl(p[0], F_SETOWN, 0));
    printf("getown cleared %d\n", fcntl(p[0], F_GETOWN));
    close(p[0]);
    close(p[1]);
}

static void pipes(void) {
    int p[2];
    char c;
    pipe(p);
    fcntl(p[0], F_SETOWN, getpid());
    fcntl(p[0], F_SETFL, O_ASYNC | O_NONBLOCK);
    printf("pipe getfl has O_ASYNC %d\n", !!(fcntl(p[0], F_GETFL) & O_ASYNC));
    none("pipe, nothing written");
    write(p[1], "x", 1);
    take("pipe write, default", p[0]);
    fcntl(p[0], F_SETSIG, RT1);
    write(p[1], "y", 1);
    take("pipe write, F_SETSIG", p[0]);
    /* the fd O_ASYNC was set through is si_fd, also when read through a dup */
    int d = dup(p[0]);
    write(p[1], "z", 1);
    take("pipe write, dup'ed reader", p[0]);
    own(p[1], RT2);
    read(p[0], &c, 1);
    take("pipe read, writer end", p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK); /* O_ASYNC off: no signal */
    write(p[1], "w", 1);
    none("pipe write, O_ASYNC off");
    read(p[0], &c, 1);
    take("pipe read, writer end again", p[1]);
    /* FIOASYNC sets it too, through the fd given */
    int on = 1;
    ioctl(d, FIOASYNC, &on);
    printf("FIOASYNC sets O_ASYNC %d\n", !!(fcntl(p[0], F_GETFL) & O_ASYNC));
    write(p[1], "v", 1);
    take("pipe write, FIOASYNC on the dup", d);
    close(p[0]);
    close(d);
    /* the last reader gone: the writer hears POLL_OUT */
    take("pipe reader closed", p[1]);
    close(p[1]);
}

static void unix_stream(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    fcntl(sv[1], F_SETOWN, getpid());
    fcntl(sv[1], F_SETFL, O_ASYNC | O_NONBLOCK);
    send(sv[0], "a", 1, 0);
    take("unix stream send, default", sv[1]);
    fcntl(sv[1], F_SETSIG, RT1);
    send(sv[0], "b", 1, 0);
    take("unix stream send, F_SETSIG", sv[1]);
    /* the writer: POLL_OUT only once a send found the buffer full */
    own(sv[0], RT2);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    static char buf[1 << 16];
    recv(sv[1], buf, sizeof buf, 0);
    none("unix stream read, writer never full");
    int n = 0;
    while (send(sv[0], buf, sizeof buf, MSG_DONTWAIT) > 0) n++;
    printf("filled after some sends %d (%s)\n", n > 0, strerrorname_np(errno));
    none("unix stream full, nothing read");
    while (recv(sv[1], buf, sizeof buf, 0) > 0) {
    }
    take("unix stream drained, writer end", sv[0]);
    fcntl(sv[1], F_SETFL, O_ASYNC | O_NONBLOCK);
    shutdown(sv[0], SHUT_WR);
    take("unix stream peer SHUT_WR", sv[1]);
    close(sv[0]);
    take("unix stream peer closed", sv[1]);
    close(sv[1]);
}

static void unix_other(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    own(sv[1], RT1);
    send(sv[0], "d", 1, 0);
    take("unix dgram send", sv[1]);
    close(sv[0]);
    none("unix dgram peer closed");
    close(sv[1]);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path + 1, "sigio-listener");
    socklen_t al = offsetof(struct sockaddr_un, sun_path) + 1 + strlen("sigio-listener");
    bind(l, (struct sockaddr *)&a, al);
    listen(l, 4);
    own(l, RT1);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    connect(c, (struct sockaddr *)&a, al);
    take("unix listener, connection", l);
    int s = accept(l, NULL, NULL);
    own(s, RT2);
    shutdown(c, SHUT_RDWR);
    take("unix peer SHUT_RDWR", s);
    close(s);
    close(c);
    close(l);
}

static void inet(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(l, (struct sockaddr *)&a, al);
    getsockname(l, (struct sockaddr *)&a, &al);
    listen(l, 4);
    own(l, RT1);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, (struct sockaddr *)&a, al);
    take("tcp listener, connection", l);
    int s = accept(l, NULL, NULL);
    close(l);
    own(s, RT2);
    send(c, "hi", 2, 0);
    take("tcp send", s);
    char b[8];
    recv(s, b, sizeof b, 0);
    drain();
    /* urgent data: SIGURG to the owner, with or without O_ASYNC */
    fcntl(s, F_SETFL, O_NONBLOCK);
    sigaddset(&set, SIGURG);
    sigprocmask(SIG_BLOCK, &set, NULL);
    send(c, "!", 1, MSG_OOB);
    struct timespec ts = {10, 0};
    siginfo_t si;
    sigset_t urg;
    sigemptyset(&urg);
    sigaddset(&urg, SIGURG);
    int sig = sigtimedwait(&urg, &si, &ts);
    printf("tcp urgent data: %s code %s\n", sig == SIGURG ? "SIGURG" : "none",
           sig == SIGURG ? code_name(si.si_code) : "-");
    int mark = -1;
    ioctl(s, SIOCATMARK, &mark);
    printf("tcp SIOCATMARK before reading %d\n", mark);
    errno = 0;
    ssize_t n = recv(s, b, sizeof b, MSG_OOB);
    printf("tcp recv MSG_OOB %zd '%.*s' %s\n", n, n > 0 ? (int)n : 0, b,
           n < 0 ? strerrorname_np(errno) : "");
    ioctl(s, SIOCATMARK, &mark);
    printf("tcp SIOCATMARK after %d\n", mark);
    drain();
    fcntl(s, F_SETFL, O_ASYNC | O_NONBLOCK);
    shutdown(c, SHUT_WR);
    take("tcp peer SHUT_WR", s);
    close(c);
    close(s);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in ua = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t ul = sizeof ua;
    bind(u, (struct sockaddr *)&ua, ul);
    getsockname(u, (struct sockaddr *)&ua, &ul);
    own(u, RT1);
    int v = socket(AF_INET, SOCK_DGRAM, 0);
    sendto(v, "u", 1, 0, (struct sockaddr *)&ua, ul);
    take("udp datagram", u);
    close(u);
    close(v);
}

/* -- SO_RCVTIMEO / SO_SNDTIMEO and SA_RESTART ----------------------------------------- */

static void on_alarm(int sig) { (void)sig; }
static int late_fd = -1;
static void on_alarm_send(int sig) { (void)sig; send(late_fd, "late", 4, 0); }

static void timeouts(void) {
    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &sa, NULL);
    struct timeval tv = {30, 0};
    char b[4];
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    alarm(1);
    errno = 0;
    ERR(recv(sv[1], b, 4, 0));
    struct timeval shortv = {0, 20000};
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &shortv, sizeof shortv);
    errno = 0;
    ERR(recv(sv[1], b, 4, 0));
    /* a full send buffer and SO_SNDTIMEO */
    static char big[1 << 16];
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    while (send(sv[0], big, sizeof big, 0) > 0) {
    }
    fcntl(sv[0], F_SETFL, 0);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    alarm(1);
    errno = 0;
    ERR(send(sv[0], big, sizeof big, 0));
    close(sv[0]);
    close(sv[1]);
    /* a unix listener's accept */
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un ua = {.sun_family = AF_UNIX};
    strcpy(ua.sun_path + 1, "sigio-timeo");
    bind(l, (struct sockaddr *)&ua, offsetof(struct sockaddr_un, sun_path) + 12);
    listen(l, 1);
    setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    alarm(1);
    errno = 0;
    ERR(accept(l, NULL, NULL));
    close(l);
    /* TCP: recv and accept */
    int tl = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(tl, (struct sockaddr *)&a, al);
    getsockname(tl, (struct sockaddr *)&a, &al);
    listen(tl, 4);
    setsockopt(tl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    alarm(1);
    errno = 0;
    ERR(accept(tl, NULL, NULL));
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, (struct sockaddr *)&a, al);
    int s = accept(tl, NULL, NULL);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    alarm(1);
    errno = 0;
    ERR(recv(s, b, 4, 0));
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &shortv, sizeof shortv);
    errno = 0;
    ERR(recv(s, b, 4, 0));
    /* without a timeout, SA_RESTART restarts: the handler's own send ends the call */
    struct timeval zero = {0, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &zero, sizeof zero);
    late_fd = c;
    struct sigaction tell = {.sa_handler = on_alarm_send, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &tell, NULL);
    alarm(1);
    errno = 0;
    ERR(recv(s, b, 4, 0));
    close(c);
    close(s);
    close(tl);
}

/* Wait until `pid` sleeps (state S in /proc/PID/task/PID/stat): it is in its blocking
   call, so a stop now cuts that call short. */
static void wait_sleeping(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, pid);
    for (;;) {
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        if (p && p[1] == ' ' && p[2] == 'S') return;
        usleep(1000);
    }
}

static void stop_and_continue(pid_t pid) {
    int st;
    wait_sleeping(pid);
    kill(pid, SIGSTOP);
    waitpid(pid, &st, WUNTRACED);
    printf("child stopped %d\n", WIFSTOPPED(st));
    kill(pid, SIGCONT);
}

/* socket(7): with a timeout set, a socket call stopped and continued returns EINTR;
   without one it is restarted. */
static void stopped(void) {
    int sv[2], sync[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pipe(sync);
    pid_t pid = fork();
    if (pid == 0) {
        char b[8];
        struct timeval tv = {30, 0};
        setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        errno = 0;
        ssize_t n = recv(sv[1], b, sizeof b, 0);
        printf("stopped recv with a timeout: %zd %s\n", n, n < 0 ? strerrorname_np(errno) : "");
        tv.tv_sec = 0;
        setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        write(sync[1], "1", 1);
        n = recv(sv[1], b, sizeof b, 0);
        printf("stopped recv without one: %zd '%.*s'\n", n, n > 0 ? (int)n : 0, b);
        _exit(0);
    }
    char c;
    stop_and_continue(pid);
    read(sync[0], &c, 1);
    stop_and_continue(pid);
    send(sv[0], "data", 4, 0);
    waitpid(pid, NULL, 0);
    close(sv[0]);
    close(sv[1]);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && !strcmp(argv[1], "stop")) { /* needs /proc */
        stopped();
        return 0;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGIO);
    sigaddset(&set, RT1);
    sigaddset(&set, RT2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    owners();
    pipes();
    unix_stream();
    unix_other();
    inet();
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    timeouts();
    return 0;
}
