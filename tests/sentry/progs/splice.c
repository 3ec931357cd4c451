/* splice, tee, vmsplice, sendfile and copy_file_range between pipes and files, with their
 * errors (EBADF, EINVAL, ESPIPE, EISDIR, EFAULT, EAGAIN, EPIPE). Run in an empty directory
 * given as argv[1]; prints "name = result" and the data that moved. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static void report(const char *label, long r) {
    if (r < 0)
        printf("%s = -1 %s\n", label, strerrorname_np(errno));
    else
        printf("%s = %ld\n", label, r);
}
#define S(label, ...) do { errno = 0; report(label, syscall(__VA_ARGS__)); } while (0)
#define BAD ((void *)8)

static void drain(const char *label, int fd) {
    char buf[256];
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    long n = read(fd, buf, sizeof buf - 1);
    fcntl(fd, F_SETFL, fl);
    if (n < 0) {
        printf("  %s: -1 %s\n", label, strerrorname_np(errno));
        return;
    }
    buf[n] = 0;
    printf("  %s: %ld [%s]\n", label, n, buf);
}

static void contents(const char *label, const char *path) {
    char buf[256];
    int fd = open(path, O_RDONLY);
    long n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    printf("  %s: %ld [%s]\n", label, n, buf);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc != 2 || chdir(argv[1]) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    int f = open("src", O_RDWR | O_CREAT, 0644);
    write(f, "0123456789abcdefghij", 20);
    int g = open("dst", O_RDWR | O_CREAT | O_TRUNC, 0644);
    int app = open("app", O_WRONLY | O_CREAT | O_APPEND, 0644);
    int ro = open("src", O_RDONLY);
    mkdir("d", 0755);
    int dfd = open("d", O_RDONLY | O_DIRECTORY);
    int p[2], q[2];
    pipe(p);
    pipe(q);
    loff_t off;

    printf("-- splice file to pipe\n");
    off = 5;
    S("splice off_in 5", SYS_splice, f, &off, p[1], NULL, 4, 0);
    printf("  off %ld pos %ld\n", (long)off, (long)lseek(f, 0, SEEK_CUR));
    lseek(f, 2, SEEK_SET);
    S("splice at position", SYS_splice, f, NULL, p[1], NULL, 3, 0);
    printf("  pos %ld\n", (long)lseek(f, 0, SEEK_CUR));
    off = 18;
    S("splice past end", SYS_splice, f, &off, p[1], NULL, 10, 0);
    off = 40;
    S("splice at EOF", SYS_splice, f, &off, p[1], NULL, 10, 0);
    printf("-- splice pipe to pipe and file\n");
    S("splice pipe to pipe", SYS_splice, p[0], NULL, q[1], NULL, 3, 0);
    drain("q", q[0]);
    off = 2;
    S("splice pipe to file off_out", SYS_splice, p[0], NULL, g, &off, 100, 0);
    printf("  off %ld pos %ld\n", (long)off, (long)lseek(g, 0, SEEK_CUR));
    contents("dst", "dst");
    write(p[1], "XYZ", 3);
    S("splice pipe to file", SYS_splice, p[0], NULL, g, NULL, 2, 0);
    drain("p rest", p[0]);
    contents("dst", "dst");

    printf("-- splice errors\n");
    S("zero length, bad fds", SYS_splice, -1, NULL, -1, NULL, 0, 0);
    S("bad flags", SYS_splice, f, NULL, p[1], NULL, 1, 16);
    S("bad fd", SYS_splice, 999, NULL, p[1], NULL, 1, 0);
    S("two files", SYS_splice, f, NULL, g, NULL, 1, 0);
    off = 0;
    S("offset on pipe in", SYS_splice, p[0], &off, g, NULL, 1, 0);
    S("offset on pipe out", SYS_splice, f, NULL, p[1], &off, 1, 0);
    S("bad offset pointer", SYS_splice, f, BAD, p[1], NULL, 1, 0);
    off = -1;
    S("negative offset", SYS_splice, f, &off, p[1], NULL, 1, 0);
    S("read end as out", SYS_splice, f, NULL, p[0], NULL, 1, 0);
    S("write end as in", SYS_splice, p[1], NULL, g, NULL, 1, 0);
    S("read-only as out", SYS_splice, p[0], NULL, ro, NULL, 1, 0);
    S("same pipe", SYS_splice, p[0], NULL, p[1], NULL, 1, 0);
    S("append out", SYS_splice, p[0], NULL, app, NULL, 1, 0);
    S("nonblock empty", SYS_splice, p[0], NULL, g, NULL, 1, SPLICE_F_NONBLOCK);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    S("O_NONBLOCK empty", SYS_splice, p[0], NULL, g, NULL, 1, 0);
    fcntl(p[0], F_SETFL, 0);
    S("from directory", SYS_splice, dfd, NULL, p[1], NULL, 1, 0);

    printf("-- big splice\n");
    int big = open("big", O_RDWR | O_CREAT, 0644);
    static char blob[100000];
    memset(blob, 'b', sizeof blob);
    write(big, blob, sizeof blob);
    off = 0;
    S("splice 100000 into empty pipe", SYS_splice, big, &off, q[1], NULL, 100000, 0);
    S("splice into full pipe nonblock", SYS_splice, big, &off, q[1], NULL, 10, SPLICE_F_NONBLOCK);
    int fl = fcntl(q[1], F_GETFL);
    fcntl(q[1], F_SETFL, fl | O_NONBLOCK);
    S("splice into full O_NONBLOCK pipe", SYS_splice, big, &off, q[1], NULL, 10, 0);
    fcntl(q[1], F_SETFL, fl);
    S("splice full pipe out", SYS_splice, q[0], NULL, g, NULL, 100000, 0);
    S("splice 3 small writes", SYS_write, q[1], "ab", 2);
    write(q[1], "cd", 2);
    write(q[1], "ef", 2);
    S("splice them out", SYS_splice, q[0], NULL, g, NULL, 100, 0);
    int r[2];
    pipe(r);
    close(r[0]);
    off = 0;
    S("splice to readerless pipe", SYS_splice, f, &off, r[1], NULL, 4, 0);
    close(r[1]);
    pipe(r);
    close(r[1]);
    S("splice from writerless pipe", SYS_splice, r[0], NULL, g, NULL, 4, 0);
    close(r[0]);

    printf("-- tee\n");
    write(p[1], "teedata", 7);
    S("tee", SYS_tee, p[0], q[1], 4, 0);
    drain("q", q[0]);
    drain("p", p[0]);
    S("tee zero", SYS_tee, -1, -1, 0, 0);
    S("tee bad flags", SYS_tee, p[0], q[1], 1, 32);
    S("tee file", SYS_tee, f, q[1], 1, 0);
    S("tee same", SYS_tee, p[0], p[1], 1, 0);
    S("tee nonblock empty", SYS_tee, p[0], q[1], 1, SPLICE_F_NONBLOCK);
    S("tee wrong ends", SYS_tee, p[1], q[0], 1, 0);

    printf("-- vmsplice\n");
    struct iovec iov[2] = {{"hello ", 6}, {"world", 5}};
    S("vmsplice to pipe", SYS_vmsplice, p[1], iov, 2, 0);
    char a[4], b[20];
    struct iovec out[2] = {{a, 4}, {b, 20}};
    memset(b, 0, sizeof b);
    S("vmsplice from pipe", SYS_vmsplice, p[0], out, 2, 0);
    printf("  [%.4s][%s]\n", a, b);
    S("vmsplice file", SYS_vmsplice, f, iov, 2, 0);
    S("vmsplice 1025 segs", SYS_vmsplice, p[1], iov, 1025, 0);
    S("vmsplice bad iov", SYS_vmsplice, p[1], BAD, 2, 0);
    struct iovec bad[1] = {{BAD, 4}};
    S("vmsplice bad base", SYS_vmsplice, p[1], bad, 1, 0);
    S("vmsplice bad flags", SYS_vmsplice, p[1], iov, 2, 64);
    S("vmsplice zero segs", SYS_vmsplice, p[1], iov, 0, 0);
    S("vmsplice nonblock empty", SYS_vmsplice, p[0], out, 2, SPLICE_F_NONBLOCK);
    S("vmsplice bad fd", SYS_vmsplice, 999, iov, 2, 0);

    printf("-- sendfile\n");
    off = 10;
    S("sendfile file to pipe", SYS_sendfile, p[1], f, &off, 5);
    printf("  off %ld\n", (long)off);
    drain("p", p[0]);
    lseek(f, 0, SEEK_SET);
    lseek(g, 0, SEEK_SET);
    ftruncate(g, 0);
    S("sendfile file to file", SYS_sendfile, g, f, NULL, 7);
    printf("  pos %ld\n", (long)lseek(f, 0, SEEK_CUR));
    contents("dst", "dst");
    S("sendfile to append", SYS_sendfile, app, f, NULL, 1);
    S("sendfile from pipe", SYS_sendfile, g, p[0], NULL, 1);
    off = 0;
    S("sendfile from pipe with offset", SYS_sendfile, g, p[0], &off, 1);
    S("sendfile from directory", SYS_sendfile, g, dfd, NULL, 1);
    S("sendfile to read-only", SYS_sendfile, ro, f, NULL, 1);
    S("sendfile bad offset", SYS_sendfile, g, f, BAD, 1);
    off = -5;
    S("sendfile negative offset", SYS_sendfile, g, f, &off, 1);
    S("sendfile at EOF", SYS_sendfile, g, f, NULL, 0x7fffffff);

    printf("-- copy_file_range\n");
    loff_t oi = 3, oo = 0;
    ftruncate(g, 0);
    S("copy", SYS_copy_file_range, f, &oi, g, &oo, 6, 0);
    printf("  %ld %ld\n", (long)oi, (long)oo);
    contents("dst", "dst");
    S("copy flags", SYS_copy_file_range, f, NULL, g, NULL, 1, 1);
    S("copy from dir", SYS_copy_file_range, dfd, NULL, g, NULL, 1, 0);
    S("copy from pipe", SYS_copy_file_range, p[0], NULL, g, NULL, 1, 0);
    S("copy to append", SYS_copy_file_range, f, NULL, app, NULL, 1, 0);
    S("copy to read-only", SYS_copy_file_range, f, NULL, ro, NULL, 1, 0);
    oi = 0;
    oo = 5;
    S("copy overlapping", SYS_copy_file_range, f, &oi, f, &oo, 10, 0);
    oo = 10;
    S("copy same file apart", SYS_copy_file_range, f, &oi, f, &oo, 10, 0);
    S("copy bad offset", SYS_copy_file_range, f, BAD, g, NULL, 1, 0);
    oi = -1;
    S("copy negative", SYS_copy_file_range, f, &oi, g, NULL, 1, 0);
    oi = 1000;
    S("copy past EOF", SYS_copy_file_range, f, &oi, g, NULL, 1, 0);
    S("copy zero", SYS_copy_file_range, f, NULL, g, NULL, 0, 0);
    S("copy bad fd", SYS_copy_file_range, 999, NULL, g, NULL, 1, 0);
    contents("src", "src");
    return 0;
}
