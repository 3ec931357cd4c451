/* Ping sockets (SOCK_DGRAM, IPPROTO_ICMP/ICMPV6) over loopback: an echo request and its
 * reply; then urgent data (MSG_OOB) on a TCP connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void ping4(void) {
    int s = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    if (s < 0) { printf("ping4 socket: %s\n", strerror(errno)); return; }
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct icmphdr h = {0};
    h.type = ICMP_ECHO;
    h.un.echo.sequence = htons(7);
    char pkt[sizeof h + 4];
    memcpy(pkt, &h, sizeof h);
    memcpy(pkt + sizeof h, "ping", 4);
    printf("ping4 sendto: %zd\n", sendto(s, pkt, sizeof pkt, 0, (struct sockaddr *)&a, sizeof a));
    char buf[64];
    struct sockaddr_in from; socklen_t l = sizeof from;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &l);
    struct icmphdr *r = (struct icmphdr *)buf;
    printf("ping4 reply: %zd type %d seq %d from %s data %.4s\n", n, r->type,
           ntohs(r->un.echo.sequence), inet_ntoa(from.sin_addr), buf + sizeof *r);
    close(s);
}

static void ping6(void) {
    int s = socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6);
    if (s < 0) { printf("ping6 socket: %s\n", strerror(errno)); return; }
    struct sockaddr_in6 a = {0};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    struct icmp6_hdr h = {0};
    h.icmp6_type = ICMP6_ECHO_REQUEST;
    h.icmp6_seq = htons(9);
    printf("ping6 sendto: %zd\n", sendto(s, &h, sizeof h, 0, (struct sockaddr *)&a, sizeof a));
    char buf[64];
    ssize_t n = recv(s, buf, sizeof buf, 0);
    struct icmp6_hdr *r = (struct icmp6_hdr *)buf;
    printf("ping6 reply: %zd type %d seq %d\n", n, r->icmp6_type, ntohs(r->icmp6_seq));
    close(s);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    ping4();
    ping6();
    int ls = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    bind(ls, (struct sockaddr *)&a, sizeof a);
    listen(ls, 1);
    getsockname(ls, (struct sockaddr *)&a, &l);
    connect(c, (struct sockaddr *)&a, sizeof a);
    ssize_t r = send(c, "!", 1, MSG_OOB);
    printf("oob send: %s\n", r < 0 ? strerror(errno) : "sent");
    return 0;
}
