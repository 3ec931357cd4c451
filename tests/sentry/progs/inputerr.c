/* Application input that once made the Sentry fail with an internal error (issue 19,
   finding 4); each mode prints what Linux answers.
   inputerr statfs PATH   statfs's f_fsid and f_namelen of PATH (a volume's
                          f_type is 9P's, not the host's)
   inputerr stdio         on fd 0 (the caller makes it /dev/null or a regular file):
                          lseek with a whence of 0xffffffff and other bad ones, poll and
                          ppoll for POLLPRI alone, select with fd 0 in exceptfds only */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

static void report(const char *what, long r) {
    printf("%s -> %ld%s%s\n", what, r, r < 0 ? " " : "", r < 0 ? strerror(errno) : "");
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "statfs")) {
        struct statfs s;
        long r = statfs(argv[2], &s);
        report("statfs", r);
        if (r == 0)
            printf("fsid %08x %08x namelen %ld\n", (unsigned)s.f_fsid.__val[0],
                   (unsigned)s.f_fsid.__val[1], (long)s.f_namelen);
        return 0;
    }
    if (argc != 2 || strcmp(argv[1], "stdio"))
        return 2;
    static const unsigned long whences[] = {0xffffffffUL, 5, 0x7fffffff, 0x100000000UL};
    for (unsigned i = 0; i < sizeof whences / sizeof *whences; i++) {
        char what[64];
        snprintf(what, sizeof what, "lseek(0, 0, %#lx)", whences[i]);
        report(what, syscall(SYS_lseek, 0, 0L, whences[i]));
    }
    struct pollfd p = {0, POLLPRI, 0};
    report("poll(POLLPRI, 20ms)", poll(&p, 1, 20));
    printf("revents %#x\n", p.revents);
    struct timespec ts = {0, 20000000};
    p.revents = 0;
    report("ppoll(POLLPRI, 20ms)", ppoll(&p, 1, &ts, NULL));
    printf("revents %#x\n", p.revents);
    fd_set ex;
    FD_ZERO(&ex);
    FD_SET(0, &ex);
    struct timeval tv = {0, 20000};
    report("select(exceptfds {0}, 20ms)", select(1, NULL, NULL, &ex, &tv));
    printf("fd 0 in exceptfds %d\n", FD_ISSET(0, &ex));
    struct pollfd both[2] = {{0, POLLPRI, 0}, {0, POLLIN, 0}};
    report("poll(POLLPRI and POLLIN)", poll(both, 2, 20));
    printf("revents %#x %#x\n", both[0].revents, both[1].revents);
    return 0;
}
