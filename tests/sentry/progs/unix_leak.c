/* Files that must not leak: sockets passed in a cycle through each other's queues and
 * closed, a socket passed to itself, pipes in flight when everything closes, and 10,000
 * connect/accept/close rounds. The test counts the Sentry's sockets and pipes afterwards. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int send_fd(int s, int fd) {
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {"f", 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                       .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(s, &m, 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < 50; i++) {
        int a[2], b[2], p[2];
        socketpair(AF_UNIX, SOCK_STREAM, 0, a);
        socketpair(AF_UNIX, SOCK_DGRAM, 0, b);
        pipe(p);
        send_fd(a[0], a[1]);   /* a[1] in its own queue */
        send_fd(a[1], b[0]);
        send_fd(b[1], a[0]);   /* a cycle through both pairs */
        send_fd(b[0], p[0]);   /* and a pipe riding along */
        send_fd(b[0], b[1]);
        close(p[1]);
        close(a[0]); close(a[1]); close(b[0]); close(b[1]); close(p[0]);
    }
    printf("cycles closed\n");
    struct sockaddr_un addr = {.sun_family = AF_UNIX, .sun_path = "\0leak-rounds"};
    socklen_t alen = offsetof(struct sockaddr_un, sun_path) + 12;
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(l, (struct sockaddr *)&addr, alen) < 0 || listen(l, 16) < 0) return 1;
    int bad = 0, maxfd = 0;
    for (int i = 0; i < 10000; i++) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)&addr, alen) < 0) bad++;
        int s = accept(l, NULL, NULL);
        if (s < 0) bad++;
        if (s > maxfd) maxfd = s;
        if (i % 2) write(c, "x", 1);
        close(c);
        close(s);
    }
    printf("10000 rounds: %d failures, highest fd %d\n", bad, maxfd);
    close(l);
    return 0;
}
