/* splice with the inherited stdin a host pipe (as under `runpsc do ... < pipe`): into a
 * file, into a pipe, ESPIPE for an offset on it, and EINVAL for stdout, a regular file,
 * with no pipe on either side. argv[1] is a scratch directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void report(const char *label, long r) {
    if (r < 0)
        fprintf(stderr, "%s = -1 %s\n", label, strerrorname_np(errno));
    else
        fprintf(stderr, "%s = %ld\n", label, r);
}

int main(int argc, char **argv) {
    if (argc != 2 || chdir(argv[1]) < 0)
        return 2;
    int f = open("got", O_RDWR | O_CREAT | O_TRUNC, 0644);
    off64_t off = 0;
    errno = 0;
    report("offset on stdin", splice(0, &off, f, NULL, 4, 0));
    report("stdin to file", splice(0, NULL, f, &off, 6, 0));
    int p[2];
    pipe(p);
    report("stdin to pipe", splice(0, NULL, p[1], NULL, 100, 0));
    report("stdin at EOF", splice(0, NULL, f, NULL, 100, 0));
    char buf[64] = {0};
    report("read pipe", read(p[0], buf, sizeof buf - 1));
    fprintf(stderr, "  [%s]\n", buf);
    memset(buf, 0, sizeof buf);
    report("pread file", pread(f, buf, sizeof buf - 1, 0));
    fprintf(stderr, "  [%s]\n", buf);
    off = 0;
    report("file to stdout (no pipe)", splice(f, &off, 1, NULL, 5, 0));
    return 0;
}
