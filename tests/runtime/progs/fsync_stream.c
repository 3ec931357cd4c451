/* A checksummed stream written block by block, each block fsync'd, then read back whole.
 * After block PAUSE_AT it prints "paused" and waits for a line on stdin (the test changes
 * the world then: a link cut). Any error: one line naming the call, the block and the errno,
 * exit status 1.
 *
 * usage: fsync_stream PATH BLOCKS PAUSE_AT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK 65536

static unsigned sum(unsigned s, const unsigned char *p, size_t n)
{
    while (n--)
        s = s * 33 + *p++;
    return s;
}

static int fail(const char *what, int block)
{
    printf("%s block %d: %s\n", what, block, strerrorname_np(errno));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: fsync_stream PATH BLOCKS PAUSE_AT\n");
        return 2;
    }
    int blocks = atoi(argv[2]), pause_at = atoi(argv[3]);
    static unsigned char buf[BLOCK];
    unsigned wrote = 0, read_back = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    int fd = open(argv[1], O_CREAT | O_TRUNC | O_RDWR, 0644);
    if (fd < 0)
        return fail("open", -1);
    for (int i = 0; i < blocks; i++) {
        for (int j = 0; j < BLOCK; j++)
            buf[j] = (unsigned char)(i * 131 + j * 7 + j / 251);
        wrote = sum(wrote, buf, BLOCK);
        if (write(fd, buf, BLOCK) != BLOCK)
            return fail("write", i);
        if (fsync(fd) < 0)
            return fail("fsync", i);
        if (i == pause_at) {
            printf("paused\n");
            char line[16];
            if (!fgets(line, sizeof line, stdin))
                return 1;
        }
    }
    long total = 0;
    ssize_t n;
    while ((n = pread(fd, buf, BLOCK, total)) > 0) {
        read_back = sum(read_back, buf, n);
        total += n;
    }
    if (n < 0)
        return fail("pread", (int)(total / BLOCK));
    if (close(fd) < 0)
        return fail("close", blocks);
    printf("wrote %d blocks sum %08x, read back %ld bytes sum %08x\n", blocks, wrote, total,
           read_back);
    return wrote == read_back && total == (long)blocks * BLOCK ? 0 : 1;
}
