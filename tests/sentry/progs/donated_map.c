/* Reads and private mappings of a file (on the sandbox's root: a donated goferfs file),
 * printed so a native run and a sandbox run can be compared.
 *   donated_map read FILE   read(), pread(), private mappings (read-only, written, at an
 *                           offset, past the end: zeros in the last page, SIGBUS beyond)
 *   donated_map trunc FILE  map FILE, say "mapped", wait for a byte on stdin (the test
 *                           truncates FILE on the host meanwhile), touch the mapping
 *   donated_map fds FILE    map FILE, then report every descriptor the process can reach
 *                           (fcntl on 0..4095, /proc/self/fd) */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static sigjmp_buf jb;
static volatile int got;

static void on_fault(int sig, siginfo_t *si, void *uc) {
    (void)si; (void)uc;
    got = sig;
    siglongjmp(jb, 1);
}

static unsigned long sum(const unsigned char *p, size_t n) {
    unsigned long s = 0;
    for (size_t i = 0; i < n; i++) s = s * 31 + p[i];
    return s;
}

/* Read one byte at p; print what happened (the byte or the signal). */
static void touch(const char *what, const volatile unsigned char *p) {
    got = 0;
    if (sigsetjmp(jb, 1) == 0) {
        unsigned char c = *p;
        printf("%s: byte %u\n", what, c);
    } else {
        printf("%s: signal %s\n", what, got == SIGBUS ? "SIGBUS" : got == SIGSEGV ? "SIGSEGV" : "other");
    }
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    struct sigaction sa = {0};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    setvbuf(stdout, NULL, _IONBF, 0);
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    struct stat st;
    fstat(fd, &st);
    size_t size = st.st_size, pg = 4096, len = (size + pg - 1) / pg * pg;
    if (!strcmp(argv[1], "read")) {
        unsigned char *buf = malloc(size + 1);
        ssize_t n = read(fd, buf, size + 1);
        printf("read %zd sum %lx\n", n, sum(buf, n > 0 ? n : 0));
        n = pread(fd, buf, 100, size / 2);
        printf("pread %zd sum %lx\n", n, sum(buf, n > 0 ? n : 0));
        unsigned char *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        printf("map r sum %lx\n", sum(m, size));
        unsigned char *w = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        memset(w, 'Z', 100);
        printf("map rw written sum %lx, other map sum %lx\n", sum(w, size), sum(m, size));
        pread(fd, buf, 100, 0);
        printf("file after the private write: %lx\n", sum(buf, 100));
        unsigned char *o = mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, pg);
        printf("map at offset 4096 sum %lx\n", o == MAP_FAILED ? 0 : sum(o, pg));
        printf("mprotect rw of the read-only map: %d\n", mprotect(m, pg, PROT_READ | PROT_WRITE));
        m[1] = 'Q';
        printf("after: %u %u\n", m[0], m[1]);
        unsigned char *big = mmap(NULL, len + 2 * pg, PROT_READ, MAP_PRIVATE, fd, 0);
        printf("tail of the last page zero: %lx\n", sum(big + size, len - size));
        touch("past the end", big + len + 10);
        munmap(big, len + 2 * pg);
        printf("write from a mapping: %zd\n", write(1, "", 0) + pwrite(open("/dev/null", O_WRONLY), m, size, 0));
        return 0;
    }
    unsigned char *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) { perror("mmap"); return 1; }
    if (!strcmp(argv[1], "trunc")) {
        touch("before", m + pg + 1);
        printf("mapped\n");
        char c;
        if (read(0, &c, 1) != 1) return 3;
        touch("first page after truncation", m + 1);
        touch("second page after truncation", m + pg + 1);
        return 0;
    }
    if (!strcmp(argv[1], "fds")) {
        close(fd);
        int open_ = 0;
        for (int i = 0; i < 4096; i++)
            if (fcntl(i, F_GETFD) >= 0) { printf("fd %d open\n", i); open_++; }
        for (int i = 3; i < 4096; i++) {
            char b[1];
            if (pread(i, b, 1, 0) >= 0) printf("fd %d reads\n", i);
        }
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;
        while ((e = readdir(d))) if (e->d_name[0] != '.') n++;
        closedir(d);
        printf("%d open, /proc/self/fd lists %d (itself included), map sum %lx\n", open_, n, sum(m, size));
        return 0;
    }
    return 2;
}
