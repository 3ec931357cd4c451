/* SO_PEEK_OFF on AF_UNIX stream, datagram and seqpacket sockets (MSG_PEEK from an offset
 * that peeks move forward and reads move back), and the queue ioctls (FIONREAD/SIOCINQ,
 * SIOCOUTQ) on unix sockets, TCP and UDP, as Linux answers them. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define ERR(call)                                                                          \
    do {                                                                                   \
        errno = 0;                                                                         \
        long r_ = (long)(call);                                                            \
        printf("%-48s -> %ld %s\n", #call, r_, r_ < 0 ? strerrorname_np(errno) : "");      \
    } while (0)

static int peekoff(int s) {
    int v = -7;
    socklen_t l = sizeof v;
    getsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &v, &l);
    return v;
}

static void rd(const char *what, int s, int n, int flags) {
    char b[64];
    errno = 0;
    ssize_t r = recv(s, b, n, flags | MSG_DONTWAIT);
    printf("%s: %zd '%.*s' %s peek_off %d\n", what, r, r > 0 ? (int)r : 0, b,
           r < 0 ? strerrorname_np(errno) : "", peekoff(s));
}

static void peek(int type, const char *name) {
    int sv[2];
    socketpair(AF_UNIX, type, 0, sv);
    printf("-- %s\n", name);
    printf("peek_off fresh %d\n", peekoff(sv[1]));
    send(sv[0], "hello", 5, 0);
    send(sv[0], "world", 5, 0);
    send(sv[0], "!!", 2, 0);
    rd("peek without offset", sv[1], 3, MSG_PEEK);
    int v = 0;
    ERR(setsockopt(sv[1], SOL_SOCKET, SO_PEEK_OFF, &v, sizeof v));
    rd("peek 3", sv[1], 3, MSG_PEEK);
    rd("peek 4", sv[1], 4, MSG_PEEK);
    rd("peek 20", sv[1], 20, MSG_PEEK);
    rd("peek past the end", sv[1], 4, MSG_PEEK);
    rd("read 4", sv[1], 4, 0);
    rd("peek again", sv[1], 4, MSG_PEEK);
    rd("read 20", sv[1], 20, 0);
    rd("peek after reads", sv[1], 4, MSG_PEEK);
    v = 2;
    ERR(setsockopt(sv[1], SOL_SOCKET, SO_PEEK_OFF, &v, sizeof v));
    rd("peek from 2", sv[1], 20, MSG_PEEK | MSG_TRUNC);
    v = -1;
    ERR(setsockopt(sv[1], SOL_SOCKET, SO_PEEK_OFF, &v, sizeof v));
    rd("peek offset off", sv[1], 3, MSG_PEEK);
    v = -5;
    ERR(setsockopt(sv[1], SOL_SOCKET, SO_PEEK_OFF, &v, sizeof v));
    printf("peek_off after -5: %d\n", peekoff(sv[1]));
    rd("peek with -5", sv[1], 3, MSG_PEEK);
    ERR(setsockopt(sv[1], SOL_SOCKET, SO_PEEK_OFF, &v, 2));
    while (recv(sv[1], (char[64]){0}, 64, MSG_DONTWAIT) > 0) {
    }
    close(sv[0]);
    close(sv[1]);
}

static int q(int s, unsigned long cmd) {
    int v = -7;
    if (ioctl(s, cmd, &v) < 0) return -errno;
    return v;
}

static void queues(void) {
    int sv[2];
    printf("-- unix queues\n");
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    send(sv[0], "abcdef", 6, 0);
    send(sv[0], "gh", 2, 0);
    printf("stream inq %d outq>0 %d\n", q(sv[1], SIOCINQ), q(sv[0], SIOCOUTQ) > 0);
    recv(sv[1], (char[8]){0}, 8, 0);
    printf("stream after read inq %d outq %d\n", q(sv[1], FIONREAD), q(sv[0], SIOCOUTQ));
    close(sv[0]);
    close(sv[1]);
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    send(sv[0], "abcdef", 6, 0);
    send(sv[0], "gh", 2, 0);
    printf("dgram inq (next message) %d\n", q(sv[1], SIOCINQ));
    close(sv[0]);
    close(sv[1]);
    printf("-- inet queues\n");
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(l, (struct sockaddr *)&a, al);
    getsockname(l, (struct sockaddr *)&a, &al);
    listen(l, 1);
    printf("tcp listener inq %d\n", q(l, SIOCINQ));
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, (struct sockaddr *)&a, al);
    int s = accept(l, NULL, NULL);
    send(c, "abcdef", 6, 0);
    struct pollfd p = {.fd = s, .events = POLLIN};
    poll(&p, 1, -1);
    printf("tcp inq %d\n", q(s, SIOCINQ));
    recv(s, (char[8]){0}, 8, 0);
    printf("tcp inq after read %d\n", q(s, FIONREAD));
    /* SO_PEEK_OFF reaches the host's TCP and UDP */
    int v = 0;
    errno = 0;
    int r = setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &v, sizeof v);
    printf("tcp SO_PEEK_OFF set %d %s\n", r, r < 0 ? strerrorname_np(errno) : "");
    send(c, "0123456789", 10, 0);
    p.revents = 0;
    poll(&p, 1, -1);
    rd("tcp peek 4", s, 4, MSG_PEEK);
    rd("tcp peek 4 more", s, 4, MSG_PEEK);
    rd("tcp read 3", s, 3, 0);
    close(c);
    close(s);
    close(l);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in ua = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t ul = sizeof ua;
    bind(u, (struct sockaddr *)&ua, ul);
    getsockname(u, (struct sockaddr *)&ua, &ul);
    int w = socket(AF_INET, SOCK_DGRAM, 0);
    sendto(w, "abcdef", 6, 0, (struct sockaddr *)&ua, ul);
    sendto(w, "gh", 2, 0, (struct sockaddr *)&ua, ul);
    p.fd = u;
    p.revents = 0;
    poll(&p, 1, -1);
    printf("udp inq (next datagram) %d\n", q(u, SIOCINQ));
    ERR(setsockopt(u, SOL_SOCKET, SO_PEEK_OFF, &v, sizeof v));
    rd("udp peek 3", u, 3, MSG_PEEK);
    rd("udp peek 10", u, 10, MSG_PEEK);
    close(u);
    close(w);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    peek(SOCK_STREAM, "stream");
    peek(SOCK_DGRAM, "dgram");
    peek(SOCK_SEQPACKET, "seqpacket");
    queues();
    return 0;
}
