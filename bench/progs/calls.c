/* One system call in a loop, timed from inside: natively, or in a sandbox where each call
 * costs the platform's stop.
 *
 *   calls MODE N FILE
 *
 * MODE: getpid, getppid, umask (umask(022)), openclose (open + close of FILE), stat (of
 * FILE), pread4k (4 KiB of FILE at offset 0), read4k (4 KiB of /dev/zero), mmap64k (an
 * anonymous 64 KiB mmap, a write to its first page, munmap: busybox find's per-directory
 * buffer; the figure is per mmap + munmap pair). FILE is opened
 * and stat'ed once before the loop, so its lookup is cached where a sandbox caches.
 * Prints ns per call. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

/* A connected TCP pair over 127.0.0.1 (sv[0] the client, sv[1] the accepted end). */
static int tcp_pair(int sv[2]) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (void *)&a, sizeof a) || listen(l, 1) ||
        getsockname(l, (void *)&a, &len))
        return -1;
    if ((sv[0] = socket(AF_INET, SOCK_STREAM, 0)) < 0 || connect(sv[0], (void *)&a, sizeof a))
        return -1;
    if ((sv[1] = accept(l, NULL, NULL)) < 0) return -1;
    close(l);
    return 0;
}

/* Read exactly n bytes (a stream read may return less). */
static int read_all(int fd, char *p, long n) {
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) return -1;
        p += r;
        n -= r;
    }
    return 0;
}

static char big[128 * 1024];

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODE N FILE\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    long n = atol(argv[2]);
    const char *file = argv[3];
    char buf[4096];
    struct stat st;
    int fd = open(file, O_RDONLY);
    if (fd < 0 || stat(file, &st)) { perror(file); return 1; }
    if (!strcmp(mode, "read4k")) {
        close(fd);  /* /dev/zero instead (a sandbox's root may not have one: only here) */
        if ((fd = open("/dev/zero", O_RDONLY)) < 0) { perror("/dev/zero"); return 1; }
    }
    int sv[2] = {-1, -1}, ep = -1;
    struct epoll_event ev = {.events = EPOLLIN}, out[4];
    if (!strncmp(mode, "tcp", 3) || !strncmp(mode, "epoll", 5)) {
        if (tcp_pair(sv)) { perror("tcp pair"); return 1; }
        if ((ep = epoll_create1(0)) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev)) {
            perror("epoll");
            return 1;
        }
        if (write(sv[0], "x", 1) != 1) { perror("write"); return 1; }  /* sv[1] readable */
    }
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        if (!strcmp(mode, "getpid")) syscall(SYS_getpid);
        else if (!strcmp(mode, "getppid")) syscall(SYS_getppid);
        else if (!strcmp(mode, "umask")) syscall(SYS_umask, 022);
        else if (!strcmp(mode, "openclose")) close(open(file, O_RDONLY));
        else if (!strcmp(mode, "stat")) stat(file, &st);
        else if (!strcmp(mode, "pread4k")) pread(fd, buf, 4096, 0);
        else if (!strcmp(mode, "read4k")) read(fd, buf, 4096);
        else if (!strcmp(mode, "mmap64k")) {
            char *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                           -1, 0);
            if (p == MAP_FAILED) { perror("mmap"); return 1; }
            p[0] = 1;
            munmap(p, 65536);
        }
        else if (!strcmp(mode, "tcp64")) {
            if (write(sv[0], buf, 64) != 64 || read_all(sv[1], buf, 64)) { perror("tcp64"); return 1; }
        } else if (!strcmp(mode, "tcp128k")) {
            if (write(sv[0], big, sizeof big) != sizeof big || read_all(sv[1], big, sizeof big)) {
                perror("tcp128k");
                return 1;
            }
        } else if (!strcmp(mode, "epollctl")) {
            ev.events = i & 1 ? EPOLLIN : EPOLLIN | EPOLLOUT;
            epoll_ctl(ep, EPOLL_CTL_MOD, sv[1], &ev);
        } else if (!strcmp(mode, "epollwait")) epoll_wait(ep, out, 4, 0);
        else { fprintf(stderr, "unknown mode %s\n", mode); return 2; }
    }
    double t1 = now_ns();
    printf("%.0f\n", (t1 - t0) / n);
    return 0;
}
