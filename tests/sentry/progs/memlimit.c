/* Anonymous memory against a memory limit of LIMIT_MIB (argv[1]): mmap and touch 8 MiB
 * chunks until mmap fails, then the same with brk (sbrk) and with an mremap growing a
 * mapping past the limit. What is printed does not depend on how much exactly was reached,
 * only on how the limit showed itself (which errno) and that the amount reached is between
 * half the limit and the limit; then the memory is given back and mapping works again.
 * Natively the limit is RLIMIT_AS (set by the caller); in the sandbox, --memory. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK (8UL << 20)
#define MAXCHUNKS 1024

static void *chunks[MAXCHUNKS];

static const char *verdict(unsigned long reached, unsigned long limit) {
    if (reached > limit) return "past the limit";
    if (reached < limit / 2) return "below half the limit";
    return "within the limit";
}

int main(int argc, char **argv) {
    unsigned long limit = strtoul(argc > 1 ? argv[1] : "128", NULL, 0) << 20;
    setvbuf(stdout, NULL, _IONBF, 0);

    /* mmap: touch every page, so that a lazily enforced limit would show too */
    int n = 0, err = 0;
    for (; n < MAXCHUNKS; n++) {
        void *p = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { err = errno; break; }
        memset(p, 0x5a, CHUNK);
        chunks[n] = p;
    }
    printf("mmap: %s, %s\n", strerror(err), verdict(n * CHUNK, limit));
    for (int i = 0; i < n; i++) munmap(chunks[i], CHUNK);
    void *again = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap after munmap: %s\n", again == MAP_FAILED ? strerror(errno) : "ok");

    /* mremap: grow the mapping past the limit */
    void *big = mremap(again, CHUNK, 2 * limit, MREMAP_MAYMOVE);
    printf("mremap to twice the limit: %s\n", big == MAP_FAILED ? strerror(errno) : "ok");
    if (big != MAP_FAILED) again = big;
    munmap(again, big == MAP_FAILED ? CHUNK : 2 * limit);

    /* brk */
    char *start = sbrk(0);
    unsigned long grown = 0;
    err = 0;
    while (grown < 2 * limit) {
        char *p = sbrk(CHUNK);
        if (p == (char *)-1) { err = errno; break; }
        memset(p, 0xa5, CHUNK);
        grown += CHUNK;
    }
    printf("brk: %s, %s\n", strerror(err), verdict(grown, limit));
    printf("brk back: %s\n", brk(start) == 0 ? "ok" : strerror(errno));
    char *p = sbrk(CHUNK);
    if (p != (char *)-1) memset(p, 1, CHUNK);
    printf("brk after shrinking: %s\n", p == (char *)-1 ? strerror(errno) : "ok");
    return 0;
}
