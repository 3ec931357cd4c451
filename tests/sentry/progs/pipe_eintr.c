/* A blocking pipe write cut short by a signal after some bytes went returns their count
 * (Linux's pipe_write); one that wrote nothing is EINTR. A repeating timer keeps
 * signalling (no SA_RESTART), so the outcome does not depend on when the first one comes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

static void on_alarm(int sig) { (void)sig; }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;  /* no SA_RESTART */
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 50000}, {0, 50000}};
    setitimer(ITIMER_REAL, &it, NULL);
    int p[2];
    if (pipe(p)) return 1;
    int cap = fcntl(p[1], F_GETPIPE_SZ);
    size_t n = 3 << 20;
    char *buf = calloc(1, n);
    ssize_t r = write(p[1], buf, 2 * (size_t)cap);
    printf("write of 2 x capacity: %s\n", r == cap ? "capacity" : r < 0 ? strerror(errno) : "other");
    r = write(p[1], buf, 100);
    printf("write into a full pipe: %zd %s\n", r, r < 0 ? strerror(errno) : "");
    char *drain = malloc(cap);
    if (read(p[0], drain, cap) != cap) return 2;
    struct iovec v[2] = {{buf, n / 2}, {buf + n / 2, n / 2}};
    r = writev(p[1], v, 2);
    printf("writev of 3 MiB into an empty pipe: %s\n", r == cap ? "capacity" : r < 0 ? strerror(errno) : "other");
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    return 0;
}
