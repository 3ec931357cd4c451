/* epoll on files the host kernel serves (stdin and stdout are host pipes driven by the
 * test): EPOLLET reports an edge once (data present at ADD, new data written by the
 * test, the test closing its end), EPOLLOUT|EPOLLET once while the pipe stays writable,
 * level-triggered repeats; epoll refuses devices without poll. The test writes to stdin
 * when it reads "first please" and "more please" and closes it at "close please". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

static void wait_show(const char *what, int ep, int ms) {
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, ms);
    printf("  %s: %d", what, n);
    for (int i = 0; i < n; i++)
        printf(" [%#x %llu]", ev[i].events, (unsigned long long)ev[i].data.u64);
    printf("\n");
}

static int ctl(int ep, int op, int fd, unsigned events, unsigned long long data) {
    struct epoll_event e = {.events = events, .data.u64 = data};
    return epoll_ctl(ep, op, fd, &e);
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    char buf[64];
    int ep = epoll_create1(0), lt = epoll_create1(0);

    puts("devices without poll");
    const char *devs[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/urandom", "/dev/random"};
    for (int i = 0; i < 5; i++) {
        int f = open(devs[i], O_RDONLY);
        printf("  %s", devs[i]);
        show("", ctl(lt, EPOLL_CTL_ADD, f, EPOLLIN, 0));
        close(f);
    }

    puts("stdout (a host pipe), EPOLLOUT|EPOLLET");
    show("  add", ctl(ep, EPOLL_CTL_ADD, 1, EPOLLOUT | EPOLLET, 1));
    wait_show("writable at add", ep, 0);
    wait_show("still writable: no new edge", ep, 0);
    wait_show("after writing that line", ep, 0);

    puts("first please");
    struct pollfd pf = {.fd = 0, .events = POLLIN};
    printf("  poll for the first data: %d\n", poll(&pf, 1, 5000));
    puts("stdin (a host pipe with data), EPOLLIN|EPOLLET, and level-triggered");
    show("  add", ctl(ep, EPOLL_CTL_ADD, 0, EPOLLIN | EPOLLET, 2));
    show("  add lt", ctl(lt, EPOLL_CTL_ADD, 0, EPOLLIN, 3));
    wait_show("data at add", ep, 0);
    wait_show("again", ep, 0);
    wait_show("level", lt, 0);
    wait_show("level again", lt, 0);
    show("  read one byte", read(0, buf, 1));
    wait_show("after a partial read", ep, 0);
    puts("more please");
    wait_show("new data", ep, 5000);
    wait_show("again", ep, 0);
    show("  mod", ctl(ep, EPOLL_CTL_MOD, 0, EPOLLIN | EPOLLET, 4));
    wait_show("after mod", ep, 0);
    wait_show("again", ep, 0);
    puts("close please");
    wait_show("writer closed", ep, 5000);
    wait_show("again", ep, 0);
    show("  mod to level-triggered", ctl(ep, EPOLL_CTL_MOD, 0, EPOLLIN, 5));
    wait_show("level", ep, 0);
    wait_show("level again", ep, 0);
    long n = read(0, buf, sizeof(buf));
    printf("  read %ld: %.*s\n", n, (int)(n > 0 ? n : 0), buf);
    show("  del", ctl(ep, EPOLL_CTL_DEL, 0, 0, 0));
    close(ep);
    close(lt);
    puts("done");
    return 0;
}
