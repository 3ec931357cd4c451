/* AF_UNIX ancillary data: SCM_RIGHTS across fork (pipes, files, sockets), MSG_CMSG_CLOEXEC,
 * MSG_CTRUNC, SCM_CREDENTIALS with SO_PASSCRED, SO_PEERCRED, malformed cmsgs, too many fds,
 * and MSG_PEEK/MSG_TRUNC/MSG_WAITALL. Pids are printed as relations, never values. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define ERR(x) do { errno = 0; long r_ = (long)(x); printf("%-50s -> %ld %s\n", #x, r_, r_ < 0 ? strerrorname_np(errno) : ""); } while (0)

static int send_fds(int s, const int *fds, int n, const char *data) {
    char cbuf[CMSG_SPACE(sizeof(int) * 300)];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {(void *)data, strlen(data)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n > 0) {
        m.msg_control = cbuf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    }
    return sendmsg(s, &m, 0);
}

/* Receive; print data, flags and what the cmsgs carried; return the first fd or -1. */
static int recv_show(int s, const char *tag, size_t ctl, int flags) {
    char data[64], cbuf[512];
    struct iovec iov = {data, sizeof data};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl ? cbuf : NULL,
                       .msg_controllen = ctl};
    ssize_t n = recvmsg(s, &m, flags);
    if (n < 0) { printf("%s: recvmsg %s\n", tag, strerrorname_np(errno)); return -1; }
    printf("%s: %zd '%.*s' flags%s%s controllen %zu\n", tag, n, (int)n, data,
           m.msg_flags & MSG_CTRUNC ? " CTRUNC" : "", m.msg_flags & MSG_TRUNC ? " TRUNC" : "",
           (size_t)m.msg_controllen);
    int first = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *fds = (int *)CMSG_DATA(c);
            printf("  SCM_RIGHTS %d fds, cloexec", k);
            for (int i = 0; i < k; i++) {
                printf(" %d", fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
                if (first < 0) first = fds[i]; else close(fds[i]);
            }
            printf("\n");
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred u; memcpy(&u, CMSG_DATA(c), sizeof u);
            printf("  SCM_CREDENTIALS pid %s uid %u gid %u\n",
                   u.pid == getpid() ? "self" : u.pid == getppid() ? "parent" : u.pid == 0 ? "0" : "other",
                   u.uid, u.gid);
        } else {
            printf("  cmsg %d/%d\n", c->cmsg_level, c->cmsg_type);
        }
    }
    return first;
}

static void rights(void) {
    int sv[2], pp[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pipe(pp);
    int file = open("/tmp/scm_file", O_CREAT | O_RDWR | O_TRUNC, 0644);
    write(file, "file-data", 9);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        int fd = recv_show(sv[1], "child", 512, 0);
        char buf[32];
        ssize_t n = pread(fd, buf, sizeof buf, 0);
        printf("child read passed file: %zd '%.*s'\n", n, (int)n, buf);
        close(fd);
        fd = recv_show(sv[1], "child pipe", 512, MSG_CMSG_CLOEXEC);
        write(fd, "via-pipe", 8);
        close(fd);
        _exit(0);
    }
    close(sv[1]);
    send_fds(sv[0], &file, 1, "file");
    int two[2] = {pp[1], pp[1]};
    send_fds(sv[0], two, 2, "pipe");
    close(pp[1]);
    char buf[32];
    ssize_t n = read(pp[0], buf, sizeof buf);
    printf("parent read from pipe written by child: %zd '%.*s'\n", n, (int)n, buf);
    int st; waitpid(pid, &st, 0);
    printf("child status %d\n", st);
    n = read(pp[0], buf, sizeof buf);
    printf("pipe EOF after child: %zd\n", n);
    close(pp[0]); close(file); close(sv[0]);
}

static void truncation(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    int fds[3] = {0, 1, 2};
    send_fds(sv[0], fds, 3, "three");
    recv_show(sv[1], "ctl 24", CMSG_LEN(sizeof(int) * 2), 0);
    send_fds(sv[0], fds, 3, "three");
    recv_show(sv[1], "ctl 8", 8, 0);
    send_fds(sv[0], fds, 3, "three");
    recv_show(sv[1], "no ctl", 0, 0);
    send_fds(sv[0], fds, 1, "peekme");
    recv_show(sv[1], "peek", 512, MSG_PEEK);
    recv_show(sv[1], "after peek", 512, 0);
    send_fds(sv[0], NULL, 0, "a-long-datagram");
    char small[4];
    ssize_t n = recv(sv[1], small, sizeof small, MSG_TRUNC);
    printf("MSG_TRUNC recv: %zd '%.4s'\n", n, small);
    send_fds(sv[0], NULL, 0, "again-long");
    recv_show(sv[1], "trunc flag", 0, MSG_PEEK);
    struct iovec iov = {small, sizeof small};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    n = recvmsg(sv[1], &m, 0);
    printf("recvmsg short: %zd flags %#x\n", n, m.msg_flags);
    /* bad cmsgs */
    char cbuf[64] = {0};
    struct cmsghdr *c = (struct cmsghdr *)cbuf;
    iov.iov_base = "x"; iov.iov_len = 1;
    m = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf};
    c->cmsg_len = 100; c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS;
    m.msg_controllen = 32;
    ERR(sendmsg(sv[0], &m, 0));
    c->cmsg_len = 8;
    ERR(sendmsg(sv[0], &m, 0));
    c->cmsg_len = CMSG_LEN(4); c->cmsg_type = 77;
    m.msg_controllen = CMSG_SPACE(4);
    ERR(sendmsg(sv[0], &m, 0));
    c->cmsg_type = SCM_RIGHTS; *(int *)CMSG_DATA(c) = 999;
    ERR(sendmsg(sv[0], &m, 0));
    c->cmsg_level = 99;  /* other levels are skipped */
    ERR(sendmsg(sv[0], &m, 0));
    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_CREDENTIALS; c->cmsg_len = CMSG_LEN(8);
    ERR(sendmsg(sv[0], &m, 0));
    m.msg_controllen = 8;  /* shorter than a header: no cmsg at all */
    ERR(sendmsg(sv[0], &m, 0));
    m.msg_control = (void *)8; m.msg_controllen = 64;
    ERR(sendmsg(sv[0], &m, 0));
    int many[300];
    for (int i = 0; i < 300; i++) many[i] = 0;
    ERR(send_fds(sv[0], many, 253, "max"));
    ERR(send_fds(sv[0], many, 254, "too-many"));
    while (recv(sv[1], small, sizeof small, MSG_DONTWAIT) >= 0) {}
    recv_show(sv[1], "drained", 0, MSG_DONTWAIT);
    close(sv[0]); close(sv[1]);
}

static void creds(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
    struct ucred u; socklen_t len = sizeof u;
    getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &u, &len);
    printf("socketpair SO_PEERCRED len %d pid %s uid %u gid %u\n", (int)len,
           u.pid == getpid() ? "self" : "other", u.uid, u.gid);
    int on = 1;
    setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    int v; len = sizeof v;
    getsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &v, &len);
    printf("SO_PASSCRED %d\n", v);
    pid_t pid = fork();
    if (pid == 0) {
        send_fds(sv[0], NULL, 0, "from-child");
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    int fd = recv_show(sv[1], "creds", 512, 0);
    (void)fd;
    /* explicit credentials */
    char cbuf[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec iov = {"explicit", 8};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                       .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_CREDENTIALS; c->cmsg_len = CMSG_LEN(sizeof u);
    u = (struct ucred){getpid(), 0, 0};
    memcpy(CMSG_DATA(c), &u, sizeof u);
    ERR(sendmsg(sv[0], &m, 0));
    recv_show(sv[1], "explicit creds", 512, 0);
    u.pid = 999999;
    memcpy(CMSG_DATA(c), &u, sizeof u);
    ERR(sendmsg(sv[0], &m, 0));
    /* a listener's and a connector's SO_PEERCRED */
    struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "\0scm-test"};
    socklen_t alen = offsetof(struct sockaddr_un, sun_path) + 9;
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    bind(l, (struct sockaddr *)&a, alen);
    listen(l, 1);
    pid = fork();
    if (pid == 0) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        connect(s, (struct sockaddr *)&a, alen);
        struct ucred p; socklen_t pl = sizeof p;
        getsockopt(s, SOL_SOCKET, SO_PEERCRED, &p, &pl);
        printf("connector sees listener: pid %s\n", p.pid == getppid() ? "parent" : "other");
        write(s, "x", 1);
        _exit(0);
    }
    int s = accept(l, NULL, NULL);
    char b;
    read(s, &b, 1);
    struct ucred p; socklen_t pl = sizeof p;
    getsockopt(s, SOL_SOCKET, SO_PEERCRED, &p, &pl);
    printf("acceptor sees connector: pid %s\n", p.pid == pid ? "child" : "other");
    pl = 4;
    ERR(getsockopt(s, SOL_SOCKET, SO_PEERCRED, &p, &pl));
    printf("short SO_PEERCRED len %d\n", (int)pl);
    waitpid(pid, NULL, 0);
    int nb = socket(AF_UNIX, SOCK_DGRAM, 0);
    pl = sizeof p;
    getsockopt(nb, SOL_SOCKET, SO_PEERCRED, &p, &pl);
    printf("unconnected SO_PEERCRED pid %d uid %u gid %u\n", p.pid, p.uid, p.gid);
    close(nb); close(s); close(l); close(sv[0]); close(sv[1]);
}

static void waitall(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 5; i++) { write(sv[0], "ab", 2); usleep(1000); }
        _exit(0);
    }
    char buf[16];
    ssize_t n = recv(sv[1], buf, 10, MSG_WAITALL);
    printf("MSG_WAITALL got %zd '%.*s'\n", n, (int)n, buf);
    waitpid(pid, NULL, 0);
    write(sv[0], "peek", 4);
    n = recv(sv[1], buf, sizeof buf, MSG_PEEK);
    printf("stream peek %zd\n", n);
    n = recv(sv[1], buf, sizeof buf, MSG_PEEK | MSG_TRUNC);
    printf("stream peek|trunc %zd\n", n);
    n = recv(sv[1], buf, sizeof buf, 0);
    printf("stream read %zd '%.*s'\n", n, (int)n, buf);
    close(sv[0]); close(sv[1]);
}

/* An unprivileged user with more files in flight than its RLIMIT_NOFILE: ETOOMANYREFS. */
static void toomany(void) {
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {8, 8};
        setrlimit(RLIMIT_NOFILE, &rl);
        if (setgid(65534) < 0 || setuid(65534) < 0) { printf("setuid failed\n"); _exit(1); }
        int sv[2];
        socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
        int three[3] = {0, 1, 2};
        int k = 0;
        while (k < 10 && send_fds(sv[0], three, 3, "m") >= 0) k++;
        printf("unprivileged: %d messages of 3 fds, then %s\n", k, strerrorname_np(errno));
        recv_show(sv[1], "one read", 0, 0);
        ERR(send_fds(sv[0], three, 3, "m"));
        _exit(0);
    }
    waitpid(pid, NULL, 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    rights();
    truncation();
    creds();
    waitall();
    toomany();
    return 0;
}
