/* EPOLLET on connected TCP sockets over loopback (CPython's test_epoll
 * test_control_and_wait): one EPOLLOUT edge each after ADD, none on the next wait while
 * nothing changes, EPOLLIN|EPOLLOUT after data arrives, then none again; a level-triggered
 * MOD reports again and again. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int cli, srv;

static void wait_show(const char *what, int ep) {
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, 0);
    unsigned c = 0, s = 0;
    for (int i = 0; i < n; i++) {
        if (ev[i].data.fd == cli) c = ev[i].events;
        if (ev[i].data.fd == srv) s = ev[i].events;
    }
    printf("%s: n=%d client=%#x server=%#x\n", what, n, c, s);
}

static void add(int ep, int fd, unsigned events) {
    struct epoll_event e = {.events = events, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) perror("epoll_ctl add");
}

int main(void) {
    int lst = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(lst, (struct sockaddr *)&a, sizeof a) < 0 || listen(lst, 4) < 0 ||
        getsockname(lst, (struct sockaddr *)&a, &len) < 0) {
        perror("listen");
        return 1;
    }
    cli = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(cli, (struct sockaddr *)&a, sizeof a);
    printf("connect: %d %s\n", r, r < 0 ? strerror(errno) : "");
    srv = accept(lst, NULL, NULL);
    if (srv < 0) {
        perror("accept");
        return 1;
    }
    /* the connection is established once the client's socket is writable */
    int ep0 = epoll_create1(0);
    add(ep0, cli, EPOLLOUT);
    struct epoll_event e;
    epoll_wait(ep0, &e, 1, -1);
    close(ep0);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    add(ep, srv, EPOLLIN | EPOLLOUT | EPOLLET);
    add(ep, cli, EPOLLIN | EPOLLOUT | EPOLLET);
    wait_show("after add", ep);
    wait_show("again, nothing new", ep);
    wait_show("and again", ep);

    if (write(cli, "Hello!", 6) != 6 || write(srv, "world!!!", 8) != 8) perror("write");
    /* wait until both have arrived: each side readable */
    struct pollfd pc = {.fd = cli, .events = POLLIN}, ps = {.fd = srv, .events = POLLIN};
    poll(&pc, 1, -1);
    poll(&ps, 1, -1);
    wait_show("after both wrote", ep);
    wait_show("again, data unread", ep);

    struct epoll_event m = {.events = EPOLLOUT, .data.fd = srv};
    epoll_ctl(ep, EPOLL_CTL_DEL, cli, NULL);
    epoll_ctl(ep, EPOLL_CTL_MOD, srv, &m);
    wait_show("level-triggered MOD", ep);
    wait_show("level-triggered again", ep);
    return 0;
}
