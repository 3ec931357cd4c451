/* Unix-socket round trips per second (bench/unix_socket_roundtrips.py): a socketpair,
 * stream then datagram, an echo child, N round trips of 64 bytes; then the same over two
 * pipes, for scale.  unix_roundtrips N; prints "stream R", "dgram R", "pipes R". */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static double now(void) { return now_ns() / 1e9; }  /* seconds */
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    int types[2] = {SOCK_STREAM, SOCK_DGRAM};
    const char *names[2] = {"stream", "dgram"};
    for (int k = 0; k < 2; k++) {
        int sv[2];
        if (socketpair(AF_UNIX, types[k], 0, sv) < 0) return 1;
        char buf[64] = {0};
        pid_t pid = fork();
        if (pid == 0) {
            close(sv[0]);
            for (long i = 0; i < n; i++) {
                if (read(sv[1], buf, sizeof buf) != sizeof buf) _exit(2);
                if (write(sv[1], buf, sizeof buf) != sizeof buf) _exit(3);
            }
            _exit(0);
        }
        close(sv[1]);
        double t0 = now();
        for (long i = 0; i < n; i++) {
            if (write(sv[0], buf, sizeof buf) != sizeof buf) return 4;
            if (read(sv[0], buf, sizeof buf) != sizeof buf) return 5;
        }
        double t = now() - t0;
        waitpid(pid, NULL, 0);
        close(sv[0]);
        printf("%s %.0f\n", names[k], n / t);
    }
    /* the same over two pipes, for scale: what the platform costs without sockets */
    int a[2], b[2];
    if (pipe(a) < 0 || pipe(b) < 0) return 1;
    char buf[64] = {0};
    pid_t pid = fork();
    if (pid == 0) {
        for (long i = 0; i < n; i++) {
            if (read(a[0], buf, sizeof buf) != sizeof buf) _exit(2);
            if (write(b[1], buf, sizeof buf) != sizeof buf) _exit(3);
        }
        _exit(0);
    }
    double t0 = now();
    for (long i = 0; i < n; i++) {
        if (write(a[1], buf, sizeof buf) != sizeof buf) return 4;
        if (read(b[0], buf, sizeof buf) != sizeof buf) return 5;
    }
    double t = now() - t0;
    waitpid(pid, NULL, 0);
    printf("pipes %.0f\n", n / t);
    return 0;
}
