/* A thread that writes the stub's scratch page (0x7e0000001000, where the Sentry's injected
 * recvmsg of a memfd finds its msghdr and control buffer) while the program maps shared
 * tmpfs files: whatever it writes there may hurt the program itself, never make the Sentry
 * act on a forged message (issue 19, finding 5).
 *
 * stub_scratch DIR cmsg: one thread forges a control message naming fd 0 (the stub's
 *   channel) over and over; the main thread maps DIR/a shared 2000 times, each time
 *   checking the mapping shows the file's bytes. Forged and trusted, the message made the
 *   Sentry close the channel: every later shared mapping failed (ENOTCONN).
 * stub_scratch DIR fork: a child process fills its whole scratch page with garbage
 *   (making its own receives fail) while mapping DIR/b; the parent maps DIR/a meanwhile
 *   and must always see DIR/a's bytes, never a file whose message the child left queued
 *   on the channel the two stubs share.
 * Natively the page is the program's own (mapped here when nothing is there), so the
 * writes are harmless and the output is the Linux answer. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE_ADDR 0x7e0000001000UL
#define ROUNDS 2000

static volatile int stop;
static volatile uint64_t *page = (volatile uint64_t *)PAGE_ADDR;

static void *forge_cmsg(void *arg) {
    (void)arg;
    while (!stop) {
        /* a cmsghdr {len 20, SOL_SOCKET, SCM_RIGHTS, fd 0} where the control buffer is */
        page[16] = 20;
        page[17] = 1 | (1UL << 32);
        page[18] = 0;
    }
    return NULL;
}

static void *garbage(void *arg) {
    (void)arg;
    uint64_t x = 0x9e3779b97f4a7c15UL;
    while (!stop) {
        for (int i = 0; i < 32; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            page[i] = (i & 1) ? (x & 0xff) : x;
        }
    }
    return NULL;
}

/* Map `path` shared ROUNDS times; each time the file holds tag|i, which the mapping must
 * show. Returns the number of rounds that went right; prints the first failure if `loud`. */
static int map_rounds(const char *path, uint32_t tag, int loud) {
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, 4096) < 0) {
        if (loud)
            printf("open %s: %s\n", path, strerror(errno));
        return 0;
    }
    int good = 0;
    for (int i = 0; i < ROUNDS; i++) {
        uint32_t want = tag | i;
        if (pwrite(fd, &want, 4, 0) != 4)
            break;
        uint32_t *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            if (loud)
                printf("round %d: mmap: %s\n", i, strerror(errno));
            if (loud)
                break;
            continue;
        }
        if (*m != want) {
            if (loud)
                printf("round %d: mapping shows %#x, the file holds %#x\n", i, *m, want);
            munmap(m, 4096);
            if (loud)
                break;
            continue;
        }
        munmap(m, 4096);
        good++;
    }
    close(fd);
    return good;
}

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    /* natively nothing is there: give the writers a page of the program's own */
    mmap((void *)PAGE_ADDR, 4096, PROT_READ | PROT_WRITE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/a", argv[1]);
    snprintf(b, sizeof b, "%s/b", argv[1]);
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_t t;
    if (!strcmp(argv[2], "cmsg")) {
        pthread_create(&t, NULL, forge_cmsg, NULL);
        int good = map_rounds(a, 0x5a000000, 1);
        stop = 1;
        pthread_join(t, NULL);
        printf("cmsg: %d of %d shared mappings showed the file\n", good, ROUNDS);
        return 0;
    }
    if (!strcmp(argv[2], "fork")) {
        pid_t child = fork();
        if (child == 0) {
            pthread_create(&t, NULL, garbage, NULL);
            map_rounds(b, 0xc3000000, 0); /* it may fail: it hurts itself */
            stop = 1;
            pthread_join(t, NULL);
            _exit(0);
        }
        int good = map_rounds(a, 0x5a000000, 1);
        int st;
        waitpid(child, &st, 0);
        printf("fork: parent %d of %d shared mappings showed its file; child status %#x\n",
               good, ROUNDS, st);
        return 0;
    }
    return 2;
}
