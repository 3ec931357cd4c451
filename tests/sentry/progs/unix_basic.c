/* AF_UNIX basics: socketpair stream/dgram/seqpacket, path and abstract bind/connect/accept,
 * names, read/write/readv/writev, shutdown, EOF, poll. Output compared with Linux. */
#define _GNU_SOURCE
#include <stddef.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(x) do { if ((x) < 0) { printf("%s: %s (line %d)\n", #x, strerror(errno), __LINE__); } } while (0)
#define ERR(x) do { errno = 0; long r_ = (long)(x); printf("%-40s -> %ld %s\n", #x, r_, r_ < 0 ? strerrorname_np(errno) : ""); } while (0)

static void show_name(const char *what, struct sockaddr_un *a, socklen_t len) {
    printf("%s: len %d", what, (int)len);
    if (len > 2) {
        if (a->sun_path[0]) printf(" path %s", a->sun_path);
        else printf(" abstract %.*s", (int)len - 3, a->sun_path + 1);
    }
    printf("\n");
}

static void pairs(void) {
    int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
    const char *names[] = {"stream", "dgram", "seqpacket"};
    for (int i = 0; i < 3; i++) {
        int sv[2];
        CHECK(socketpair(AF_UNIX, types[i], 0, sv));
        char buf[64];
        write(sv[0], "hello", 5);
        write(sv[0], "world", 5);
        ssize_t n = read(sv[1], buf, 3);
        printf("%s: short read %zd '%.*s'\n", names[i], n, (int)n, buf);
        n = read(sv[1], buf, sizeof buf);
        printf("%s: next read %zd '%.*s'\n", names[i], n, (int)n, buf);
        struct iovec iov[2] = {{"ab", 2}, {"cd", 2}};
        writev(sv[1], iov, 2);
        char x[2], y[3];
        struct iovec riov[2] = {{x, 2}, {y, 3}};
        n = readv(sv[0], riov, 2);
        printf("%s: readv %zd '%.2s' '%.*s'\n", names[i], n, x, (int)(n > 2 ? n - 2 : 0), y);
        struct sockaddr_un a; socklen_t len = sizeof a;
        CHECK(getsockname(sv[0], (struct sockaddr *)&a, &len));
        show_name("pair getsockname", &a, len);
        len = sizeof a;
        ERR(getpeername(sv[0], (struct sockaddr *)&a, &len));
        int type; socklen_t tl = sizeof type;
        getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &type, &tl);
        printf("%s: SO_TYPE %d\n", names[i], type);
        struct pollfd p = {sv[0], POLLIN | POLLOUT, 0};
        poll(&p, 1, 0);
        printf("%s: poll %#x\n", names[i], p.revents);
        struct stat st; fstat(sv[0], &st);
        printf("%s: S_ISSOCK %d mode %o\n", names[i], S_ISSOCK(st.st_mode), st.st_mode & 0777);
        close(sv[1]);
        p.revents = 0;
        poll(&p, 1, 0);
        printf("%s: poll after close %#x\n", names[i], p.revents);
        n = recv(sv[0], buf, sizeof buf, MSG_DONTWAIT);
        printf("%s: read after peer close %zd %s\n", names[i], n, n < 0 ? strerrorname_np(errno) : "");
        signal(SIGPIPE, SIG_IGN);
        n = write(sv[0], "x", 1);
        printf("%s: write after peer close %zd %s\n", names[i], n, n < 0 ? strerrorname_np(errno) : "");
        close(sv[0]);
    }
}

static void path_server(const char *path, int abstract) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    socklen_t alen;
    if (abstract) {
        a.sun_path[0] = 0;
        memcpy(a.sun_path + 1, path, strlen(path));
        alen = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(path);
    } else {
        unlink(path);
        strcpy(a.sun_path, path);
        alen = sizeof a;
    }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(bind(s, (struct sockaddr *)&a, alen));
    ERR(bind(s, (struct sockaddr *)&a, alen));
    int s2 = socket(AF_UNIX, SOCK_STREAM, 0);
    ERR(bind(s2, (struct sockaddr *)&a, alen));
    close(s2);
    if (!abstract) {
        struct stat st;
        CHECK(stat(path, &st));
        printf("bound file S_ISSOCK %d\n", S_ISSOCK(st.st_mode));
    }
    int c0 = socket(AF_UNIX, SOCK_STREAM, 0);
    ERR(connect(c0, (struct sockaddr *)&a, alen));  /* not listening */
    close(c0);
    CHECK(listen(s, 5));
    struct sockaddr_un got; socklen_t glen = sizeof got;
    CHECK(getsockname(s, (struct sockaddr *)&got, &glen));
    show_name("server name", &got, glen);
    pid_t pid = fork();
    if (pid == 0) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        CHECK(connect(c, (struct sockaddr *)&a, alen));
        write(c, "ping", 4);
        char buf[16];
        ssize_t n = read(c, buf, sizeof buf);
        struct sockaddr_un p; socklen_t plen = sizeof p;
        CHECK(getpeername(c, (struct sockaddr *)&p, &plen));
        show_name("client peer", &p, plen);
        printf("client got %zd '%.*s'\n", n, (int)n, buf);
        shutdown(c, SHUT_WR);
        n = read(c, buf, sizeof buf);
        printf("client read after shutdown %zd\n", n);
        _exit(0);
    }
    struct sockaddr_un p; socklen_t plen = sizeof p;
    int c = accept(s, (struct sockaddr *)&p, &plen);
    CHECK(c);
    show_name("accepted peer", &p, plen);
    char buf[16];
    ssize_t n = read(c, buf, sizeof buf);
    printf("server got %zd '%.*s'\n", n, (int)n, buf);
    write(c, "pong", 4);
    n = read(c, buf, sizeof buf);
    printf("server read at EOF %zd\n", n);
    close(c);
    int st;
    waitpid(pid, &st, 0);
    printf("child status %d\n", st);
    close(s);
    if (!abstract) {
        int c2 = socket(AF_UNIX, SOCK_STREAM, 0);
        ERR(connect(c2, (struct sockaddr *)&a, alen));  /* file left, nobody bound */
        close(c2);
        unlink(path);
        c2 = socket(AF_UNIX, SOCK_STREAM, 0);
        ERR(connect(c2, (struct sockaddr *)&a, alen));
        close(c2);
    } else {
        int c2 = socket(AF_UNIX, SOCK_STREAM, 0);
        ERR(connect(c2, (struct sockaddr *)&a, alen));
        close(c2);
    }
}

static void dgram(void) {
    const char *path = "/tmp/ux_dgram.sock";
    unlink(path);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, path);
    int r = socket(AF_UNIX, SOCK_DGRAM, 0);
    CHECK(bind(r, (struct sockaddr *)&a, sizeof a));
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    ERR(send(s, "x", 1, 0));
    ERR(sendto(s, "one", 3, 0, (struct sockaddr *)&a, sizeof a));
    struct sockaddr_un me = {.sun_family = AF_UNIX};
    CHECK(bind(s, (struct sockaddr *)&me, offsetof(struct sockaddr_un, sun_path)));  /* autobind */
    struct sockaddr_un n1; socklen_t l1 = sizeof n1;
    getsockname(s, (struct sockaddr *)&n1, &l1);
    printf("autobind len %d abstract %d\n", (int)l1, n1.sun_path[0] == 0);
    ERR(sendto(s, "two!", 4, 0, (struct sockaddr *)&a, sizeof a));
    char buf[16];
    struct sockaddr_un from; socklen_t fl = sizeof from;
    ssize_t n = recvfrom(r, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    printf("dgram 1: %zd '%.*s' fromlen %d\n", n, (int)n, buf, (int)fl);
    fl = sizeof from;
    n = recvfrom(r, buf, 2, 0, (struct sockaddr *)&from, &fl);
    printf("dgram 2 (truncated): %zd '%.*s' fromlen %d same %d\n", n, (int)n, buf, (int)fl,
           fl == l1 && memcmp(&from, &n1, fl) == 0);
    ERR(recv(r, buf, sizeof buf, MSG_DONTWAIT));
    close(r); close(s); unlink(path);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    pairs();
    path_server("/tmp/ux_stream.sock", 0);
    path_server("runpsc-test-abstract", 1);
    dgram();
    ERR(socket(AF_UNIX, SOCK_STREAM, 7));
    ERR(socket(AF_UNIX, 9, 0));
    ERR(socket(AF_UNIX, SOCK_STREAM | 0x100, 0));
    ERR(socket(AF_UNIX, SOCK_RAW, 0) > 0);
    ERR(socket(99, SOCK_STREAM, 0));
    ERR(socket(AF_APPLETALK, SOCK_DGRAM, 0));
    return 0;
}
