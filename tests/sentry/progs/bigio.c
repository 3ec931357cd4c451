/* Big transfers (issue 19, finding 3): one read/write/readv/writev/pread/pwrite/sendfile
   moves at most 0x7ffff000 bytes (MAX_RW_COUNT) and returns the short count, as Linux.
   Three threads read 3 GiB each from /dev/zero into one 2 GiB buffer at once; the rest
   write from (or read into) that buffer or untouched memory (the zero page: no memory
   spent). Prints each count; then, if an argument is given, says "done" and waits for
   stdin to close, so a test can read the Sentry's peak memory while it still runs. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <unistd.h>

#define GIB (1UL << 30)

static char *buf;  /* 2 GiB, filled by the readers */
static long got[3];

static void *reader(void *arg) {
    long i = (long)arg;
    int fd = open("/dev/zero", O_RDONLY);
    got[i] = read(fd, buf, 3 * GIB);
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    buf = mmap(NULL, 2 * GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    char *untouched = mmap(NULL, 3 * GIB, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (buf == MAP_FAILED || untouched == MAP_FAILED)
        return perror("mmap"), 1;
    pthread_t th[3];
    for (long i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, reader, (void *)i);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++)
        printf("thread %d read(/dev/zero, 3 GiB): %#lx\n", i, got[i]);
    int zero = open("/dev/zero", O_RDONLY), null = open("/dev/null", O_WRONLY);
    printf("write(/dev/null, 3 GiB): %#lx\n", (long)write(null, untouched, 3 * GIB));
    printf("pwrite(/dev/null, 3 GiB): %#lx\n", (long)pwrite(null, untouched, 3 * GIB, 0));
    struct iovec iov[3] = {{untouched, GIB}, {untouched + GIB, GIB}, {untouched + 2 * GIB, GIB}};
    printf("writev(/dev/null, 3 x 1 GiB): %#lx\n", (long)writev(null, iov, 3));
    struct iovec riov[2] = {{buf, GIB}, {buf + GIB, GIB}};
    printf("readv(/dev/zero, 2 x 1 GiB): %#lx\n", (long)readv(zero, riov, 2));
    printf("pread(/dev/zero, 3 GiB): %#lx\n", (long)pread(zero, buf, 3 * GIB, 0));
    printf("sendfile(/dev/null, /dev/zero, 3 GiB): %#lx\n", (long)sendfile(null, zero, NULL, 3 * GIB));
    printf("buffer is zeros: %d\n", buf[0] == 0 && buf[2 * GIB - 4097] == 0);
    /* past the first chunk: a pipe gives what it holds, a fault ends the copy short */
    int p[2];
    pipe(p);
    write(p[1], "0123456789", 10);
    printf("read(pipe holding 10 bytes, 1 GiB): %ld\n", (long)read(p[0], buf, GIB));
    munmap(buf + (3 << 20) + (1 << 19), 4096);  /* a hole at 3.5 MiB */
    printf("read(/dev/zero, 8 MiB over a hole at 3.5 MiB): %#lx\n", (long)read(zero, buf, 8 << 20));
    int mfd = memfd_create("bigio", 0);
    memset(buf, 'x', 3 << 20);
    printf("write(memfd, 8 MiB over the hole): %#lx\n", (long)write(mfd, buf, 8 << 20));
    struct iovec hiov[2] = {{buf, 2 << 20}, {buf + (2 << 20), 6 << 20}};
    printf("writev(memfd, 2 + 6 MiB over the hole): %#lx\n", (long)writev(mfd, hiov, 2));
    printf("pread(memfd, 8 MiB over the hole): %#lx\n", (long)pread(mfd, buf, 8 << 20, 0));
    fflush(stdout);
    if (argc > 1) {
        printf("done\n");
        fflush(stdout);
        char c;
        while (read(0, &c, 1) > 0) {}
    }
    return 0;
}
