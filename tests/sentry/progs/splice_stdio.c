/* splice, tee and vmsplice with the inherited stdin and stdout host pipes (as under
 * `runpsc do ... < pipe | cat`): tee from stdin (left unread) into a pipe and stdout, from
 * a pipe into stdout; vmsplice into stdout and out of stdin; splice into a file, into a
 * pipe, ESPIPE for an offset on it, and EINVAL with no pipe on either side. argv[1] is a
 * scratch directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
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
    int p[2];
    pipe(p);
    report("tee stdin to pipe", tee(0, p[1], 4, 0));
    report("tee stdin to stdout", tee(0, 1, 3, 0));
    report("tee pipe to stdout", tee(p[0], 1, 2, 0));
    report("tee stdin to a file", tee(0, f, 3, 0));
    struct iovec vw = {"vm", 2};
    report("vmsplice to stdout", vmsplice(1, &vw, 1, 0));
    char vb[8] = {0};
    struct iovec vr = {vb, 5};
    report("vmsplice from stdin", vmsplice(0, &vr, 1, 0));
    fprintf(stderr, "  [%s]\n", vb);
    report("stdin to file", splice(0, NULL, f, &off, 6, 0));
    report("stdin to pipe", splice(0, NULL, p[1], NULL, 100, 0));
    report("stdin at EOF", splice(0, NULL, f, NULL, 100, 0));
    char buf[64] = {0};
    report("read pipe", read(p[0], buf, sizeof buf - 1));
    fprintf(stderr, "  [%s]\n", buf);
    memset(buf, 0, sizeof buf);
    report("pread file", pread(f, buf, sizeof buf - 1, 0));
    fprintf(stderr, "  [%s]\n", buf);
    off = 0;
    report("file to stdout", splice(f, &off, 1, NULL, 5, 0));
    off = 0;
    report("file to file (no pipe)", splice(f, &off, f, NULL, 5, 0));
    return 0;
}
