/* TCP and UDP over IPv4 and IPv6 on loopback: the calls, options, non-blocking connect,
 * dual stack, timeouts, EINTR and the errors Linux gives for bad input. Prints only what
 * is the same on every run (no port numbers), so the native and sandbox outputs match. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

static void res(const char *what, int r) {
    if (r < 0) printf("%s: -1 %s\n", what, strerror(errno));
    else printf("%s: %d\n", what, r);
}
#define OK(what, r) res(what, (r) < 0 ? -1 : 0)

static int listener4(struct sockaddr_in *a) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    OK("tcp4 bind", bind(s, (struct sockaddr *)a, sizeof *a));
    OK("tcp4 listen", listen(s, 16));
    socklen_t l = sizeof *a;
    OK("tcp4 getsockname", getsockname(s, (struct sockaddr *)a, &l));
    printf("tcp4 name len %d family %d addr %s port>0 %d\n", l, a->sin_family,
           inet_ntoa(a->sin_addr), ntohs(a->sin_port) > 0);
    return s;
}

static void on_alarm(int sig) { (void)sig; }

static void tcp4(void) {
    struct sockaddr_in a, c, p;
    int ls = listener4(&a);
    int cs = socket(AF_INET, SOCK_STREAM, 0);
    OK("tcp4 connect", connect(cs, (struct sockaddr *)&a, sizeof a));
    socklen_t l = sizeof p;
    int as = accept(ls, (struct sockaddr *)&p, &l);
    OK("tcp4 accept", as);
    socklen_t cl = sizeof c;
    getsockname(cs, (struct sockaddr *)&c, &cl);
    printf("tcp4 peer is client: %d len %d\n", l == cl && memcmp(&c, &p, l) == 0, l);
    struct sockaddr_in q; socklen_t ql = sizeof q;
    OK("tcp4 getpeername", getpeername(cs, (struct sockaddr *)&q, &ql));
    printf("tcp4 client's peer is server: %d\n", memcmp(&q, &a, ql) == 0);
    res("tcp4 send", send(cs, "hello", 5, 0));
    char buf[64] = {0};
    res("tcp4 recv peek", recv(as, buf, sizeof buf, MSG_PEEK));
    res("tcp4 recv", recv(as, buf, sizeof buf, 0));
    printf("tcp4 data %s\n", buf);
    res("tcp4 recv dontwait", recv(as, buf, sizeof buf, MSG_DONTWAIT));
    res("tcp4 write", write(as, "0123456789", 10));
    res("tcp4 recv waitall", recv(cs, buf, 10, MSG_WAITALL));
    /* faults on the data path: a send from an unmapped buffer or across a hole sends
       nothing; a receive into an unmapped buffer is EFAULT and the data stays queued */
    char *pg = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(pg + 4096, 4096);
    memset(pg, 'f', 4096);
    res("tcp4 send unmapped", send(cs, pg + 4096, 10, 0));
    res("tcp4 send across a hole", send(cs, pg + 4096 - 100, 200, 0));
    res("tcp4 sendto unmapped", sendto(cs, pg + 4096, 10, 0, NULL, 0));
    res("tcp4 send 3", send(cs, "abc", 3, 0));
    res("tcp4 recv unmapped", recv(as, pg + 4096, 10, 0));
    res("tcp4 read unmapped", read(as, pg + 4096, 10));
    res("tcp4 recv after the faults", recv(as, buf, sizeof buf, 0));
    /* a receive into a partly writable buffer: EFAULT while more is queued than fits
       (the data stays), the data when it fits */
    res("tcp4 send 300", send(cs, buf, 300, 0));
    res("tcp4 recv partly writable", recv(as, pg + 4096 - 50, 200, 0));
    res("tcp4 read partly writable", read(as, pg + 4096 - 50, 200));
    res("tcp4 recvfrom partly writable", recvfrom(as, pg + 4096 - 50, 200, 0, NULL, NULL));
    res("tcp4 peek partly writable", recv(as, pg + 4096 - 50, 200, MSG_PEEK));
    res("tcp4 recv 280", recv(as, buf, 280, MSG_WAITALL));
    res("tcp4 recv the rest partly writable", recv(as, pg + 4096 - 50, 200, 0));
    res("tcp4 send 3 more", send(cs, "def", 3, 0));
    res("tcp4 recv trunc discards", recv(as, NULL, 2, MSG_TRUNC));
    res("tcp4 recv the rest", recv(as, buf, sizeof buf, 0));
    printf("tcp4 rest %c\n", buf[0]);
    munmap(pg, 4096);
    int n = -1;
    ioctl(as, FIONREAD, &n);
    printf("tcp4 fionread %d\n", n);
    struct pollfd pf = {as, POLLIN | POLLOUT, 0};
    res("tcp4 poll", poll(&pf, 1, 0));
    printf("tcp4 revents %#x\n", pf.revents);
    OK("tcp4 shutdown wr", shutdown(cs, SHUT_WR));
    res("tcp4 recv eof", recv(as, buf, sizeof buf, 0));
    pf.events = POLLIN; pf.revents = 0;
    poll(&pf, 1, 0);
    printf("tcp4 revents after eof %#x\n", pf.revents);
    res("tcp4 send after shutdown", send(cs, "x", 1, MSG_NOSIGNAL));
    res("tcp4 shutdown bad how", shutdown(cs, 7));
    /* a second bind on the listener's port */
    int s2 = socket(AF_INET, SOCK_STREAM, 0);
    res("tcp4 bind in use", bind(s2, (struct sockaddr *)&a, sizeof a));
    res("tcp4 connect listener twice", listen(s2, 1));
    close(s2);
    /* SO_RCVTIMEO on an idle connection */
    struct timeval tv = {0, 20000}, tv2; socklen_t tl = sizeof tv2;
    OK("tcp4 set rcvtimeo", setsockopt(cs, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    OK("tcp4 get rcvtimeo", getsockopt(cs, SOL_SOCKET, SO_RCVTIMEO, &tv2, &tl));
    printf("tcp4 rcvtimeo %ld.%06ld len %d\n", (long)tv2.tv_sec, (long)tv2.tv_usec, tl);
    res("tcp4 recv timed out", recv(cs, buf, sizeof buf, 0));
    res("tcp4 write after shutdown", write(cs, "", 0));
    fcntl(ls, F_SETFL, O_NONBLOCK);
    res("tcp4 accept nonblock empty", accept4(ls, NULL, NULL, SOCK_CLOEXEC));
    fcntl(ls, F_SETFL, 0);
    /* a blocking accept interrupted by a signal without SA_RESTART */
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    res("tcp4 accept interrupted", accept(ls, NULL, NULL));
    close(as); close(cs); close(ls);
}

static void nbconnect(void) {
    struct sockaddr_in a;
    int ls = listener4(&a);
    int cs = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(cs, (struct sockaddr *)&a, sizeof a);
    printf("nb connect: %s\n", r == 0 ? "0" : errno == EINPROGRESS ? "EINPROGRESS" : strerror(errno));
    struct pollfd pf = {cs, POLLOUT, 0};
    res("nb poll", poll(&pf, 1, 5000));
    int err = -1; socklen_t el = sizeof err;
    getsockopt(cs, SOL_SOCKET, SO_ERROR, &err, &el);
    printf("nb so_error %d\n", err);
    res("nb connect again", connect(cs, (struct sockaddr *)&a, sizeof a));
    close(cs);
    close(ls);
    /* to a port nobody listens on (the listener is closed) */
    cs = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    r = connect(cs, (struct sockaddr *)&a, sizeof a);
    printf("nb refused connect: %s\n", r == 0 ? "0" : errno == EINPROGRESS ? "EINPROGRESS" : strerror(errno));
    pf.fd = cs; pf.revents = 0;
    poll(&pf, 1, 5000);
    printf("nb refused revents has err %d\n", !!(pf.revents & (POLLERR | POLLHUP)));
    err = -1;
    getsockopt(cs, SOL_SOCKET, SO_ERROR, &err, &el);
    printf("nb refused so_error %s\n", strerror(err));
    close(cs);
    cs = socket(AF_INET, SOCK_STREAM, 0);
    res("blocking refused", connect(cs, (struct sockaddr *)&a, sizeof a));
    close(cs);
}

static void options(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0), v, on = 1;
    socklen_t l;
#define GET(lvl, opt) do { v = -1; l = sizeof v; res(#opt, getsockopt(s, lvl, opt, &v, &l)); \
    printf("  %s = %d (len %d)\n", #opt, v, l); } while (0)
#define SET(lvl, opt, val) do { int x = val; res("set " #opt, setsockopt(s, lvl, opt, &x, sizeof x)); } while (0)
    GET(SOL_SOCKET, SO_TYPE); GET(SOL_SOCKET, SO_DOMAIN); GET(SOL_SOCKET, SO_PROTOCOL);
    GET(SOL_SOCKET, SO_ACCEPTCONN); GET(SOL_SOCKET, SO_ERROR);
    SET(SOL_SOCKET, SO_REUSEADDR, 1); GET(SOL_SOCKET, SO_REUSEADDR);
    SET(SOL_SOCKET, SO_REUSEPORT, 1); GET(SOL_SOCKET, SO_REUSEPORT);
    SET(SOL_SOCKET, SO_KEEPALIVE, 1); GET(SOL_SOCKET, SO_KEEPALIVE);
    SET(SOL_SOCKET, SO_BROADCAST, 1); GET(SOL_SOCKET, SO_BROADCAST);
    SET(SOL_SOCKET, SO_SNDBUF, 65536); GET(SOL_SOCKET, SO_SNDBUF);
    SET(IPPROTO_TCP, TCP_NODELAY, 1); GET(IPPROTO_TCP, TCP_NODELAY);
    SET(IPPROTO_TCP, TCP_KEEPIDLE, 30); GET(IPPROTO_TCP, TCP_KEEPIDLE);
    SET(IPPROTO_TCP, TCP_KEEPINTVL, 5); GET(IPPROTO_TCP, TCP_KEEPINTVL);
    SET(IPPROTO_TCP, TCP_KEEPCNT, 3); GET(IPPROTO_TCP, TCP_KEEPCNT);
    SET(IPPROTO_TCP, TCP_CORK, 1); GET(IPPROTO_TCP, TCP_CORK);
    SET(IPPROTO_TCP, TCP_KEEPIDLE, 0);
    SET(IPPROTO_IP, IP_TOS, 0x10); GET(IPPROTO_IP, IP_TOS);
    SET(IPPROTO_IP, IP_TTL, 33); GET(IPPROTO_IP, IP_TTL);
    SET(IPPROTO_IP, IP_TTL, 300);
    struct linger lg = {1, 5}, lg2; l = sizeof lg2;
    res("set SO_LINGER", setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    res("SO_LINGER", getsockopt(s, SOL_SOCKET, SO_LINGER, &lg2, &l));
    printf("  linger %d %d len %d\n", lg2.l_onoff, lg2.l_linger, l);
    struct tcp_info ti; l = sizeof ti;
    res("TCP_INFO", getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &l));
    printf("  tcpi_state %d\n", ti.tcpi_state);
    res("set unknown tcp option", setsockopt(s, IPPROTO_TCP, 99, &on, sizeof on));
    res("set short int", setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &on, 2));
    res("get bad ptr", getsockopt(s, SOL_SOCKET, SO_TYPE, (void *)1, &l));
    res("set bad ptr", setsockopt(s, SOL_SOCKET, SO_REUSEADDR, (void *)1, 4));
    close(s);
    s = socket(AF_INET, SOCK_DGRAM, 0);
    GET(SOL_SOCKET, SO_TYPE); GET(SOL_SOCKET, SO_PROTOCOL);
    SET(IPPROTO_IP, IP_MULTICAST_TTL, 4); GET(IPPROTO_IP, IP_MULTICAST_TTL);
    SET(IPPROTO_IP, IP_MULTICAST_LOOP, 0); GET(IPPROTO_IP, IP_MULTICAST_LOOP);
    close(s);
    s = socket(AF_INET6, SOCK_STREAM, 0);
    GET(IPPROTO_IPV6, IPV6_V6ONLY);
    SET(IPPROTO_IPV6, IPV6_V6ONLY, 1); GET(IPPROTO_IPV6, IPV6_V6ONLY);
    close(s);
}

static void errors(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = inet_addr("192.0.2.77");
    res("bind addr not avail", bind(s, (struct sockaddr *)&a, sizeof a));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    res("bind short len", bind(s, (struct sockaddr *)&a, 8));
    res("bind negative len", bind(s, (struct sockaddr *)&a, -1));
    res("bind huge len", bind(s, (struct sockaddr *)&a, 4096));
    res("bind bad ptr", bind(s, (struct sockaddr *)1, sizeof a));
    struct sockaddr_in6 a6 = {0};
    a6.sin6_family = AF_INET6;
    res("bind wrong family", bind(s, (struct sockaddr *)&a6, sizeof a6));
    res("bind", bind(s, (struct sockaddr *)&a, sizeof a));
    res("bind twice", bind(s, (struct sockaddr *)&a, sizeof a));
    socklen_t l = 3;
    res("getsockname small len", getsockname(s, (struct sockaddr *)&a, &l));
    printf("  len now %d\n", l);
    res("getsockname bad len ptr", getsockname(s, (struct sockaddr *)&a, (socklen_t *)1));
    res("getpeername unconnected", getpeername(s, (struct sockaddr *)&a, &l));
    res("accept unlistened", accept(s, NULL, NULL));
    res("recv unconnected", recv(s, &l, 1, 0));
    res("send unconnected", send(s, &l, 1, MSG_NOSIGNAL));
    res("socket bad type", socket(AF_INET, 9, 0));
    res("socket bad protocol", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
    res("socket bad flags", socket(AF_INET, SOCK_STREAM | 0x10000000, 0));
    close(s);
}

static void udp4(void) {
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {0}, sb = {0}, from;
    sa.sin_family = sb.sin_family = AF_INET;
    sa.sin_addr.s_addr = sb.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof sa;
    bind(a, (struct sockaddr *)&sa, sizeof sa); getsockname(a, (struct sockaddr *)&sa, &l);
    bind(b, (struct sockaddr *)&sb, sizeof sb); getsockname(b, (struct sockaddr *)&sb, &l);
    res("udp4 sendto", sendto(b, "datagram-one", 12, 0, (struct sockaddr *)&sa, sizeof sa));
    res("udp4 sendto 2", sendto(b, "two", 3, 0, (struct sockaddr *)&sa, sizeof sa));
    char buf[64] = {0};
    l = sizeof from;
    res("udp4 recvfrom trunc", recvfrom(a, buf, 4, MSG_TRUNC, (struct sockaddr *)&from, &l));
    printf("udp4 from is b: %d len %d data %.4s\n", memcmp(&from, &sb, sizeof sb) == 0, l, buf);
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {0};
    m.msg_iov = &iov; m.msg_iovlen = 1; m.msg_name = &from; m.msg_namelen = sizeof from;
    memset(buf, 0, sizeof buf);
    res("udp4 recvmsg", recvmsg(a, &m, 0));
    printf("udp4 recvmsg flags %#x namelen %d data %s\n", m.msg_flags, m.msg_namelen, buf);
    res("udp4 recv empty nonblock", recv(a, buf, sizeof buf, MSG_DONTWAIT));
    OK("udp4 connect", connect(b, (struct sockaddr *)&sa, sizeof sa));
    res("udp4 send connected", send(b, "three", 5, 0));
    memset(buf, 0, sizeof buf);
    res("udp4 read", read(a, buf, sizeof buf));
    printf("udp4 data %s\n", buf);
    res("udp4 trunc flag", sendto(b, "0123456789", 10, 0, NULL, 0));
    memset(&m, 0, sizeof m); iov.iov_len = 4; m.msg_iov = &iov; m.msg_iovlen = 1;
    res("udp4 recvmsg short", recvmsg(a, &m, 0));
    printf("udp4 msg_flags trunc %d\n", !!(m.msg_flags & MSG_TRUNC));
    struct sockaddr un = {0};
    un.sa_family = AF_UNSPEC;
    OK("udp4 disconnect", connect(b, &un, sizeof un));
    res("udp4 send disconnected", send(b, "x", 1, 0));
    close(a); close(b);
}

static void tcp6(void) {
    int ls = socket(AF_INET6, SOCK_STREAM, 0), off = 0;
    setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    struct sockaddr_in6 a = {0};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    OK("tcp6 bind any", bind(ls, (struct sockaddr *)&a, sizeof a));
    OK("tcp6 listen", listen(ls, 4));
    socklen_t l = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &l);
    printf("tcp6 name len %d family %d\n", l, a.sin6_family);
    /* IPv6 loopback */
    int c6 = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 t = a;
    t.sin6_addr = in6addr_loopback;
    OK("tcp6 connect ::1", connect(c6, (struct sockaddr *)&t, sizeof t));
    struct sockaddr_in6 p; l = sizeof p;
    int s1 = accept(ls, (struct sockaddr *)&p, &l);
    char txt[64];
    printf("tcp6 peer %s len %d\n", inet_ntop(AF_INET6, &p.sin6_addr, txt, sizeof txt), l);
    /* dual stack: an IPv4 client reaches the IPv6 listener */
    int c4 = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in t4 = {0};
    t4.sin_family = AF_INET; t4.sin_port = a.sin6_port; t4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    OK("tcp6 v4 client connect", connect(c4, (struct sockaddr *)&t4, sizeof t4));
    l = sizeof p;
    int s2 = accept(ls, (struct sockaddr *)&p, &l);
    printf("tcp6 mapped peer %s\n", inet_ntop(AF_INET6, &p.sin6_addr, txt, sizeof txt));
    res("tcp6 send", send(c4, "via4", 4, 0));
    char buf[8] = {0};
    res("tcp6 recv", recv(s2, buf, sizeof buf, 0));
    printf("tcp6 data %s\n", buf);
    close(s1); close(s2); close(c4); close(c6); close(ls);
    /* V6ONLY keeps IPv4 out */
    ls = socket(AF_INET6, SOCK_STREAM, 0);
    int on = 1;
    setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    a.sin6_port = 0;
    bind(ls, (struct sockaddr *)&a, sizeof a);
    listen(ls, 4);
    l = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &l);
    c4 = socket(AF_INET, SOCK_STREAM, 0);
    t4.sin_port = a.sin6_port;
    res("tcp6 v6only v4 connect", connect(c4, (struct sockaddr *)&t4, sizeof t4));
    close(c4); close(ls);
    /* UDP over ::1 */
    int u1 = socket(AF_INET6, SOCK_DGRAM, 0), u2 = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 ua = {0};
    ua.sin6_family = AF_INET6; ua.sin6_addr = in6addr_loopback;
    bind(u1, (struct sockaddr *)&ua, sizeof ua);
    l = sizeof ua;
    getsockname(u1, (struct sockaddr *)&ua, &l);
    res("udp6 sendto", sendto(u2, "six", 3, 0, (struct sockaddr *)&ua, sizeof ua));
    l = sizeof p;
    memset(buf, 0, sizeof buf);
    res("udp6 recvfrom", recvfrom(u1, buf, sizeof buf, 0, (struct sockaddr *)&p, &l));
    printf("udp6 from %s len %d data %s\n", inet_ntop(AF_INET6, &p.sin6_addr, txt, sizeof txt), l, buf);
    close(u1); close(u2);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGPIPE, SIG_IGN);
    tcp4();
    nbconnect();
    options();
    errors();
    udp4();
    tcp6();
    return 0;
}
