/* Ancillary data on UDP sockets, as Linux delivers it: IP_RECVTTL/IP_RECVTOS,
 * IPV6_RECVHOPLIMIT/IPV6_RECVTCLASS (also set per packet by the sender's cmsgs), IP_PKTINFO,
 * SO_TIMESTAMP/SO_TIMESTAMPNS (their size and a non-zero time), MSG_CTRUNC for a control
 * buffer too small or absent; IP_RECVERR's error queue. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <poll.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void show(const char *what, int s, size_t space) {
    char data[16], ctl[512];
    struct iovec iov = {data, sizeof data};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = space ? ctl : NULL,
                       .msg_controllen = space};
    errno = 0;
    ssize_t n = recvmsg(s, &m, 0);
    printf("%s: %zd flags %#x controllen %zu\n", what, n, m.msg_flags, (size_t)m.msg_controllen);
    if (n < 0 || !space) return;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        size_t dl = c->cmsg_len - CMSG_LEN(0);
        unsigned char *d = CMSG_DATA(c);
        printf("  cmsg level %d type %d len %zu", c->cmsg_level, c->cmsg_type, (size_t)c->cmsg_len);
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMP && dl >= sizeof(struct timeval))
            printf(" timeval set %d", ((struct timeval *)d)->tv_sec > 0);
        else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS && dl >= sizeof(struct timespec))
            printf(" timespec set %d", ((struct timespec *)d)->tv_sec > 0);
        else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo *p = (struct in_pktinfo *)d;
            char a[32];
            inet_ntop(AF_INET, &p->ipi_addr, a, sizeof a);
            printf(" ifindex %d addr %s", p->ipi_ifindex, a);
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS)
            printf(" tos %d", d[0]);
        else if (dl >= 4)
            printf(" int %d", *(int *)d);
        printf("\n");
    }
}

static int one = 1;

static void v4(void) {
    int r = socket(AF_INET, SOCK_DGRAM, 0), w = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(r, (struct sockaddr *)&a, al);
    getsockname(r, (struct sockaddr *)&a, &al);
    setsockopt(r, IPPROTO_IP, IP_RECVTTL, &one, sizeof one);
    setsockopt(r, IPPROTO_IP, IP_RECVTOS, &one, sizeof one);
    int ttl = 33, tos = 0x10;
    setsockopt(w, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
    setsockopt(w, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
    sendto(w, "a", 1, 0, (struct sockaddr *)&a, al);
    show("v4 ttl+tos", r, 512);
    /* per-packet TTL and TOS from the sender's cmsgs */
    char cbuf[CMSG_SPACE(sizeof(int)) * 2] = {0};
    struct iovec iov = {"b", 1};
    struct msghdr m = {.msg_name = &a, .msg_namelen = al, .msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_TTL;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    *(int *)CMSG_DATA(c) = 7;
    c = CMSG_NXTHDR(&m, c);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_TOS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    *(int *)CMSG_DATA(c) = 0x20;
    errno = 0;
    ssize_t n = sendmsg(w, &m, 0);
    printf("sendmsg with IP_TTL/IP_TOS: %zd %s\n", n, n < 0 ? strerrorname_np(errno) : "");
    show("v4 cmsg ttl+tos", r, 512);
    sendto(w, "c", 1, 0, (struct sockaddr *)&a, al);
    show("v4 small control buffer", r, CMSG_SPACE(sizeof(int)));
    sendto(w, "d", 1, 0, (struct sockaddr *)&a, al);
    show("v4 no control buffer", r, 0);
    setsockopt(r, IPPROTO_IP, IP_RECVTTL, &(int){0}, sizeof(int));
    setsockopt(r, IPPROTO_IP, IP_RECVTOS, &(int){0}, sizeof(int));
    setsockopt(r, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    sendto(w, "e", 1, 0, (struct sockaddr *)&a, al);
    show("v4 pktinfo", r, 512);
    setsockopt(r, IPPROTO_IP, IP_PKTINFO, &(int){0}, sizeof(int));
    setsockopt(r, SOL_SOCKET, SO_TIMESTAMP, &one, sizeof one);
    sendto(w, "f", 1, 0, (struct sockaddr *)&a, al);
    show("v4 timestamp", r, 512);
    setsockopt(r, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    sendto(w, "g", 1, 0, (struct sockaddr *)&a, al);
    show("v4 timestampns", r, 512);
    close(r);
    close(w);
}

static void v6(void) {
    int r = socket(AF_INET6, SOCK_DGRAM, 0), w = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    socklen_t al = sizeof a;
    bind(r, (struct sockaddr *)&a, al);
    getsockname(r, (struct sockaddr *)&a, &al);
    setsockopt(r, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one);
    setsockopt(r, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof one);
    int hops = 9, tclass = 0x28;
    setsockopt(w, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops);
    setsockopt(w, IPPROTO_IPV6, IPV6_TCLASS, &tclass, sizeof tclass);
    sendto(w, "a", 1, 0, (struct sockaddr *)&a, al);
    show("v6 hoplimit+tclass", r, 512);
    char cbuf[CMSG_SPACE(sizeof(int)) * 2] = {0};
    struct iovec iov = {"b", 1};
    struct msghdr m = {.msg_name = &a, .msg_namelen = al, .msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_HOPLIMIT;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    *(int *)CMSG_DATA(c) = 2;
    c = CMSG_NXTHDR(&m, c);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_TCLASS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    *(int *)CMSG_DATA(c) = 0x40;
    errno = 0;
    ssize_t n = sendmsg(w, &m, 0);
    printf("sendmsg with IPV6_HOPLIMIT/TCLASS: %zd %s\n", n, n < 0 ? strerrorname_np(errno) : "");
    show("v6 cmsg hoplimit+tclass", r, 512);
    *(int *)CMSG_DATA(CMSG_FIRSTHDR(&m)) = 300;
    errno = 0;
    n = sendmsg(w, &m, 0);
    printf("sendmsg with hop limit 300: %zd %s\n", n, n < 0 ? strerrorname_np(errno) : "");
    close(r);
    close(w);
}

/* IP_RECVERR: a datagram to a closed port comes back on the error queue with its
   sock_extended_err (ICMP port unreachable) */
static void errqueue(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0), d = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(d, (struct sockaddr *)&a, al);
    getsockname(d, (struct sockaddr *)&a, &al);
    close(d); /* nobody listens there now */
    setsockopt(s, IPPROTO_IP, IP_RECVERR, &one, sizeof one);
    sendto(s, "x", 1, 0, (struct sockaddr *)&a, al);
    struct pollfd p = {.fd = s, .events = 0};
    poll(&p, 1, -1);
    printf("errqueue poll revents %#x\n", p.revents);
    char data[16], ctl[256];
    struct iovec iov = {data, sizeof data};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                       .msg_controllen = sizeof ctl};
    ssize_t n = recvmsg(s, &m, MSG_ERRQUEUE);
    printf("errqueue recvmsg %zd flags %#x\n", n, m.msg_flags);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        struct sock_extended_err *e = (struct sock_extended_err *)CMSG_DATA(c);
        printf("  cmsg level %d type %d errno %s origin %d type %d code %d\n", c->cmsg_level,
               c->cmsg_type, strerrorname_np(e->ee_errno), e->ee_origin, e->ee_type, e->ee_code);
    }
    errno = 0;
    n = recvmsg(s, &m, MSG_ERRQUEUE);
    printf("errqueue empty: %zd %s\n", n, n < 0 ? strerrorname_np(errno) : "");
    close(s);
}

/* One cmsg of (level, type) with an int, sent on `s` to `a`: the verdict. */
static void send_one(const char *what, int s, int level, int type, struct sockaddr *a,
                     socklen_t al) {
    char ctl[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {"c", 1};
    struct msghdr m = {.msg_name = a, .msg_namelen = al, .msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    int v = 0; /* (SCM_RIGHTS: fd 0, which an inet socket never passes) */
    memcpy(CMSG_DATA(c), &v, sizeof v);
    errno = 0;
    ssize_t n = sendmsg(s, &m, 0);
    printf("send %s level %d type %d: %zd %s\n", what, level, type, n,
           n < 0 ? strerrorname_np(errno) : "");
}

/* Control messages a send does not know: EINVAL at SOL_SOCKET for every inet socket
 * (SCM_RIGHTS/SCM_CREDENTIALS ignored), at the IP level for UDP; TCP skips other levels. */
static void unknown_cmsgs(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    bind(u, (struct sockaddr *)&a, al);
    getsockname(u, (struct sockaddr *)&a, &al);
    int sol[] = {SCM_RIGHTS, SCM_CREDENTIALS, 3 /* SCM_SECURITY */, 99, SO_TYPE};
    for (int i = 0; i < 5; i++)
        send_one("udp", u, SOL_SOCKET, sol[i], (struct sockaddr *)&a, al);
    int ip[] = {IP_TTL, IP_RECVERR, 77};
    for (int i = 0; i < 3; i++)
        send_one("udp", u, IPPROTO_IP, ip[i], (struct sockaddr *)&a, al);
    send_one("udp", u, IPPROTO_TCP, 99, (struct sockaddr *)&a, al);
    send_one("udp", u, IPPROTO_IPV6, 99, (struct sockaddr *)&a, al);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in b = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t bl = sizeof b;
    bind(l, (struct sockaddr *)&b, bl);
    getsockname(l, (struct sockaddr *)&b, &bl);
    listen(l, 1);
    int t = socket(AF_INET, SOCK_STREAM, 0);
    connect(t, (struct sockaddr *)&b, bl);
    send_one("tcp", t, SOL_SOCKET, SCM_RIGHTS, NULL, 0);
    send_one("tcp", t, SOL_SOCKET, 99, NULL, 0);
    send_one("tcp", t, IPPROTO_IP, 77, NULL, 0);
    send_one("tcp", t, IPPROTO_TCP, 99, NULL, 0);
    int u6 = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    socklen_t al6 = sizeof a6;
    bind(u6, (struct sockaddr *)&a6, al6);
    getsockname(u6, (struct sockaddr *)&a6, &al6);
    send_one("udp6", u6, IPPROTO_IPV6, 99, (struct sockaddr *)&a6, al6);
    send_one("udp6", u6, IPPROTO_IP, 77, (struct sockaddr *)&a6, al6);
    send_one("udp6", u6, SOL_SOCKET, 99, (struct sockaddr *)&a6, al6);
    close(u);
    close(t);
    close(l);
    close(u6);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    unknown_cmsgs();
    errqueue();
    v4();
    v6();
    return 0;
}
