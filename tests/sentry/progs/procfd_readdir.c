/* Closing descriptors while reading /proc/self/fd, as CPython's subprocess does before
 * exec (getdents64 in small pieces, each listed fd closed at once): no fd may be skipped,
 * since a listing position is the fd number, not an index. Prints the d_off of each entry
 * of a first full listing (the next entry's position: its fd + 2), then which fds survive the closing loop. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

struct linux_dirent64 {
    unsigned long d_ino;
    long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < 9; i++) {
        int p[2];
        pipe(p);
    }
    dup2(5, 40); /* a gap: 21..39 unused */
    char buf[4096];
    int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    long n = syscall(SYS_getdents64, dfd, buf, sizeof buf);
    for (long off = 0; off < n;) {
        struct linux_dirent64 *d = (void *)(buf + off);
        off += d->d_reclen;
        /* the last entry's d_off is the fd table's size + 2 in Linux: not compared */
        if (off < n)
            printf("%s d_off %ld type %d\n", d->d_name, d->d_off, d->d_type);
        else
            printf("%s (last) type %d\n", d->d_name, d->d_type);
    }
    close(dfd);

    dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (;;) {
        /* room for about three entries at a time */
        n = syscall(SYS_getdents64, dfd, buf, 80);
        if (n <= 0) {
            printf("last getdents64 %ld\n", n);
            break;
        }
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (void *)(buf + off);
            off += d->d_reclen;
            if (d->d_name[0] == '.')
                continue;
            int fd = atoi(d->d_name);
            if (fd > 2 && fd != dfd)
                close(fd);
        }
    }
    printf("open after the loop:");
    for (int fd = 0; fd < 64; fd++)
        if (fd != dfd && fcntl(fd, F_GETFD) >= 0)
            printf(" %d", fd);
    printf("\n");
    return 0;
}
