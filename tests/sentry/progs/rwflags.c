/* preadv2/pwritev2 with each RWF_* flag on a regular file in DIR (argv[1]) and on a pipe:
 * the result or errno name, and what the file holds afterwards. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RWF_HIPRI
#define RWF_HIPRI 1
#endif
static const struct { const char *name; int flag; } FLAGS[] = {
    {"0", 0}, {"HIPRI", 1}, {"DSYNC", 2}, {"SYNC", 4}, {"HIPRI|SYNC", 5},
    {"unknown 0x40000000", 0x40000000}, {"-1", -1},
};

static void show(const char *what, long r) {
    if (r < 0)
        printf("%-34s %s\n", what, strerrorname_np(errno));
    else
        printf("%-34s %ld\n", what, r);
}

int main(int argc, char **argv) {
    char path[4096], buf[64], line[96];
    snprintf(path, sizeof path, "%s/f", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(fd, "0123456789", 10);
    int p[2];
    pipe(p);
    for (unsigned i = 0; i < sizeof FLAGS / sizeof FLAGS[0]; i++) {
        int fl = FLAGS[i].flag;
        struct iovec w = {"ab", 2}, r = {buf, 4};
        snprintf(line, sizeof line, "pwritev2 file at 2 %s", FLAGS[i].name);
        show(line, syscall(SYS_pwritev2, fd, &w, 1, 2L, 0L, fl));
        snprintf(line, sizeof line, "pwritev2 file at -1 %s", FLAGS[i].name);
        show(line, syscall(SYS_pwritev2, fd, &w, 1, -1L, 0L, fl));
        snprintf(line, sizeof line, "preadv2 file at 1 %s", FLAGS[i].name);
        show(line, syscall(SYS_preadv2, fd, &r, 1, 1L, 0L, fl));
        snprintf(line, sizeof line, "pwritev2 pipe %s", FLAGS[i].name);
        show(line, syscall(SYS_pwritev2, p[1], &w, 1, -1L, 0L, fl));
        snprintf(line, sizeof line, "preadv2 pipe %s", FLAGS[i].name);
        show(line, syscall(SYS_preadv2, p[0], &r, 1, -1L, 0L, fl));
        snprintf(line, sizeof line, "preadv2 bad fd %s", FLAGS[i].name);
        show(line, syscall(SYS_preadv2, 999, &r, 1, 0L, 0L, fl));
        snprintf(line, sizeof line, "preadv2 bad iov %s", FLAGS[i].name);
        show(line, syscall(SYS_preadv2, fd, (void *)8, 1, 0L, 0L, fl));
    }
    int n = pread(fd, buf, sizeof buf, 0);
    printf("file: %.*s, position %ld\n", n, buf, (long)lseek(fd, 0, SEEK_CUR));
    return 0;
}
