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
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

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
        else { fprintf(stderr, "unknown mode %s\n", mode); return 2; }
    }
    double t1 = now_ns();
    printf("%.0f\n", (t1 - t0) / n);
    return 0;
}
