/* Socket families and kinds a process without CAP_NET_RAW cannot have: raw IP sockets and
 * AF_PACKET are EPERM. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

static void try(const char *what, int dom, int type, int proto) {
    int s = socket(dom, type, proto);
    printf("%s: %s\n", what, s >= 0 ? "ok" : strerror(errno));
}

int main(void) {
    try("raw icmp", AF_INET, SOCK_RAW, IPPROTO_ICMP);
    try("raw6 icmp", AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
    try("packet", AF_PACKET, SOCK_RAW, 0);
    try("packet dgram", AF_PACKET, SOCK_DGRAM, 0);
    try("udp", AF_INET, SOCK_DGRAM, 0);
    return 0;
}
