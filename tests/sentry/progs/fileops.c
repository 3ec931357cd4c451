/* File and directory syscalls, each result printed as "label = value" or "label = -1 ENAME".
 *
 * Run natively and inside runpsc with the same argument (an empty directory on tmpfs); the
 * two outputs must be identical. Nothing printed depends on inode numbers, devices, times of
 * day or the directory's own path.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

static void report(const char *label, long r) {
    if (r < 0)
        printf("%s = -1 %s\n", label, strerrorname_np(errno));
    else
        printf("%s = %ld\n", label, r);
}
#define CHK(label, expr) do { errno = 0; report(label, (long)(expr)); } while (0)

static void show_stat(const char *label, const char *path, int flags) {
    struct stat st;
    errno = 0;
    if (fstatat(AT_FDCWD, path, &st, flags) < 0) {
        printf("%s = -1 %s\n", label, strerrorname_np(errno));
        return;
    }
    printf("%s = mode=0%o nlink=%lu uid=%u gid=%u", label, st.st_mode, (unsigned long)st.st_nlink,
           st.st_uid, st.st_gid);
    if (!S_ISDIR(st.st_mode))
        printf(" size=%ld", (long)st.st_size);
    printf("\n");
}

static void show_buf(const char *label, const char *buf, long n) {
    printf("%s = \"", label);
    for (long i = 0; i < n; i++)
        putchar(buf[i] >= 32 && buf[i] < 127 ? buf[i] : '.');
    printf("\"\n");
}

static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

static void list_dir(const char *label, const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    char buf[512];
    char *names[64];
    int n = 0;
    long r;
    while ((r = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < r;) {
            struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; } *d =
                (void *)(buf + off);
            if (n < 64)
                asprintf(&names[n++], "%s:%d", d->name, d->type);
            off += d->reclen;
        }
    }
    if (r < 0)
        printf("%s getdents64 = -1 %s\n", label, strerrorname_np(errno));
    qsort(names, n, sizeof *names, cmp);
    printf("%s =", label);
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
    close(fd);
}

static void list_dir_old(const char *label, const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    char buf[256];
    char *names[64];
    int n = 0;
    long r;
    while ((r = syscall(SYS_getdents, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < r;) {
            struct { unsigned long ino; unsigned long off; unsigned short reclen; char name[]; } *d =
                (void *)(buf + off);
            if (n < 64)
                asprintf(&names[n++], "%s:%d", d->name, buf[off + d->reclen - 1]);
            off += d->reclen;
        }
    }
    if (r < 0)
        printf("%s getdents = -1 %s\n", label, strerrorname_np(errno));
    qsort(names, n, sizeof *names, cmp);
    printf("%s =", label);
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
    close(fd);
}

int main(int argc, char **argv) {
    char buf[256];
    long r;
    int fd, fd2;

    if (argc != 2 || chdir(argv[1]) < 0) {
        fprintf(stderr, "usage: fileops EMPTY-DIR\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    umask(022);
    CHK("umask", umask(027));

    /* open, read, write, offsets */
    CHK("open creat", fd = open("a", O_RDWR | O_CREAT | O_EXCL, 0666));
    CHK("write", write(fd, "hello world\n", 12));
    CHK("pwrite", pwrite(fd, "X", 1, 20));
    CHK("lseek cur", lseek(fd, 0, SEEK_CUR));
    CHK("lseek end", lseek(fd, 0, SEEK_END));
    CHK("lseek neg", lseek(fd, -100, SEEK_SET));
    CHK("lseek whence", lseek(fd, 0, 7));
    CHK("lseek set", lseek(fd, 0, SEEK_SET));
    CHK("read", r = read(fd, buf, sizeof buf));
    show_buf("read data", buf, r);
    CHK("read eof", read(fd, buf, sizeof buf));
    CHK("pread", r = pread(fd, buf, 5, 6));
    show_buf("pread data", buf, r);
    CHK("pread neg", pread(fd, buf, 5, -1));
    struct iovec iov[2] = {{"abc", 3}, {"defg", 4}};
    CHK("writev", writev(fd, iov, 2));
    char b1[4], b2[8];
    struct iovec riov[2] = {{b1, 4}, {b2, 8}};
    CHK("preadv", r = preadv(fd, riov, 2, 0));
    show_buf("preadv 1", b1, 4);
    show_buf("preadv 2", b2, 8);
    CHK("pwritev", pwritev(fd, iov, 2, 2));
    CHK("readv", readv(fd, riov, 2));
    show_stat("stat a", "a", 0);
    CHK("open excl again", open("a", O_RDWR | O_CREAT | O_EXCL, 0666));
    CHK("open missing", open("missing", O_RDONLY));
    CHK("open notdir", open("a/b", O_RDONLY));
    CHK("open dir wr", open(".", O_WRONLY));
    CHK("open file as dir", open("a", O_RDONLY | O_DIRECTORY));
    CHK("open empty", open("", O_RDONLY));
    CHK("read dir", read(fd2 = open(".", O_RDONLY | O_DIRECTORY), buf, 10));
    close(fd2);
    CHK("fcntl getfl", fcntl(fd, F_GETFL));
    CHK("fcntl setfl", fcntl(fd, F_SETFL, O_APPEND | O_NONBLOCK));
    CHK("fcntl getfl 2", fcntl(fd, F_GETFL));
    CHK("append write", write(fd, "Z", 1));
    CHK("append pos", lseek(fd, 0, SEEK_CUR));
    CHK("close", close(fd));
    CHK("close again", close(fd));
    CHK("ro open", fd = open("a", O_RDONLY));
    CHK("write ro", write(fd, "x", 1));
    close(fd);
    CHK("wo open trunc", fd = open("a", O_WRONLY | O_TRUNC));
    CHK("read wo", read(fd, buf, 1));
    close(fd);
    show_stat("stat trunc", "a", 0);
    CHK("creat", fd = creat("c", 0644));
    CHK("write c", write(fd, "0123456789", 10));
    close(fd);

    /* directories */
    CHK("mkdir", mkdir("d", 0777));
    CHK("mkdir exists", mkdir("d", 0777));
    CHK("mkdir missing parent", mkdir("nope/x", 0777));
    show_stat("stat d", "d", 0);
    CHK("mkdirat", mkdirat(AT_FDCWD, "d/sub", 0700));
    CHK("rmdir nonempty", rmdir("d"));
    CHK("rmdir file", rmdir("a"));
    CHK("unlink dir", unlink("d"));
    CHK("rmdir dot", rmdir("d/sub/."));
    CHK("unlinkat removedir", unlinkat(AT_FDCWD, "d/sub", AT_REMOVEDIR));
    CHK("getcwd", syscall(SYS_getcwd, buf, sizeof buf) > 0 && strcmp(buf, argv[1]) == 0);
    CHK("getcwd small", syscall(SYS_getcwd, buf, 2));
    CHK("chdir", chdir("d"));
    CHK("getcwd d", getcwd(buf, sizeof buf) && strlen(buf) == strlen(argv[1]) + 2);
    CHK("chdir file", chdir("../a"));
    CHK("fchdir", fchdir(fd2 = open("..", O_RDONLY | O_DIRECTORY)));
    close(fd2);
    CHK("getcwd back", getcwd(buf, sizeof buf) && strcmp(buf, argv[1]) == 0);

    /* links and renames */
    CHK("symlink", symlink("a", "l"));
    CHK("symlink exists", symlink("a", "l"));
    CHK("readlink", r = readlink("l", buf, sizeof buf));
    show_buf("readlink data", buf, r > 0 ? r : 0);
    CHK("readlink short", readlink("l", buf, 0));
    CHK("readlink file", readlink("a", buf, sizeof buf));
    show_stat("lstat l", "l", AT_SYMLINK_NOFOLLOW);
    show_stat("stat l", "l", 0);
    CHK("open nofollow", open("l", O_RDONLY | O_NOFOLLOW));
    CHK("symlink loop1", symlink("loop2", "loop1"));
    CHK("symlink loop2", symlink("loop1", "loop2"));
    CHK("open loop", open("loop1", O_RDONLY));
    CHK("symlinkat dangling", symlinkat("nowhere", AT_FDCWD, "dangle"));
    CHK("open dangling", open("dangle", O_RDONLY));
    CHK("open dangling creat", fd = open("dangle", O_WRONLY | O_CREAT, 0600));
    close(fd);
    show_stat("stat nowhere", "nowhere", 0);
    CHK("link", link("a", "a2"));
    show_stat("stat a linked", "a", 0);
    CHK("link exists", link("a", "c"));
    CHK("link dir", link("d", "d2"));
    CHK("linkat", linkat(AT_FDCWD, "c", AT_FDCWD, "c2", 0));
    CHK("unlink a2", unlink("a2"));
    CHK("unlink missing", unlink("a2"));
    CHK("rename", rename("c2", "e"));
    CHK("access old", access("c2", F_OK));
    CHK("rename over", rename("e", "c"));
    CHK("rename dir over file", rename("d", "c"));
    CHK("rename file over dir", rename("c", "d"));
    CHK("rename into self", rename("d", "d/x"));
    CHK("renameat2 noreplace", syscall(SYS_renameat2, AT_FDCWD, "a", AT_FDCWD, "c", 1));
    CHK("renameat2 exchange", syscall(SYS_renameat2, AT_FDCWD, "a", AT_FDCWD, "c", 2));
    show_stat("stat a exchanged", "a", 0);
    CHK("renameat", renameat(AT_FDCWD, "c", AT_FDCWD, "d/c"));
    show_stat("stat d/c", "d/c", 0);
    CHK("rename back", rename("d/c", "c"));

    /* attributes */
    CHK("chmod", chmod("a", 0640));
    show_stat("stat chmod", "a", 0);
    CHK("fchmod", fchmod(fd = open("a", O_RDONLY), 04755));
    close(fd);
    show_stat("stat fchmod", "a", 0);
    CHK("fchmodat", fchmodat(AT_FDCWD, "a", 0600, 0));
    CHK("chown", chown("a", 1000, 1001));
    show_stat("stat chown", "a", 0);
    CHK("lchown", lchown("l", 1002, 1003));
    show_stat("lstat lchown", "l", AT_SYMLINK_NOFOLLOW);
    CHK("fchownat", fchownat(AT_FDCWD, "a", 0, 0, 0));
    CHK("chown keep", chown("a", -1, -1));
    struct timespec ts[2] = {{1000000000, 123456789}, {1200000000, 987654321}};
    CHK("utimensat", utimensat(AT_FDCWD, "a", ts, 0));
    struct stat st;
    stat("a", &st);
    printf("times = %ld.%09ld %ld.%09ld\n", st.st_atim.tv_sec, st.st_atim.tv_nsec,
           st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct timespec ts2[2] = {{5, UTIME_OMIT}, {1300000000, 1}};
    CHK("utimensat omit", utimensat(AT_FDCWD, "a", ts2, 0));
    stat("a", &st);
    printf("times omit = %ld.%09ld %ld.%09ld\n", st.st_atim.tv_sec, st.st_atim.tv_nsec,
           st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
    CHK("utimensat einval", utimensat(AT_FDCWD, "a", bad, 0));
    CHK("truncate", truncate("c", 3));
    show_stat("stat truncate", "c", 0);
    CHK("truncate neg", truncate("c", -1));
    CHK("truncate dir", truncate("d", 0));
    CHK("ftruncate", ftruncate(fd = open("c", O_RDWR), 100));
    show_stat("stat ftruncate", "c", 0);
    CHK("pread hole", r = pread(fd, buf, 8, 2));
    show_buf("hole data", buf, r);
    CHK("fallocate", fallocate(fd, 0, 0, 8192));
    show_stat("stat fallocate", "c", 0);
    CHK("fallocate keep", fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 16384));
    show_stat("stat fallocate keep", "c", 0);
    CHK("fallocate einval", fallocate(fd, 0, 0, 0));
    CHK("fsync", fsync(fd));
    CHK("fdatasync", fdatasync(fd));
    CHK("syncfs", syncfs(fd));
    CHK("fadvise", syscall(SYS_fadvise64, fd, 0, 100, POSIX_FADV_SEQUENTIAL));
    CHK("fadvise bad", syscall(SYS_fadvise64, fd, 0, 0, 99));
    CHK("readahead", syscall(SYS_readahead, fd, 0, 4096));
    close(fd);
    CHK("ftruncate ro", ftruncate(fd = open("c", O_RDONLY), 1));
    close(fd);
    CHK("access r", access("a", R_OK | W_OK));
    CHK("access x", access("a", X_OK));
    CHK("access x dir", access("d", X_OK));
    CHK("faccessat", faccessat(AT_FDCWD, "l", R_OK, 0));
    CHK("faccessat2 eaccess", syscall(SYS_faccessat2, AT_FDCWD, "a", R_OK, AT_EACCESS));
    CHK("faccessat2 badflags", syscall(SYS_faccessat2, AT_FDCWD, "a", R_OK, 0x4));
    struct statx sx;
    CHK("statx", syscall(SYS_statx, AT_FDCWD, "c", 0, STATX_BASIC_STATS, &sx));
    printf("statx = basic=%d mode=0%o size=%llu nlink=%u\n",
           (sx.stx_mask & STATX_BASIC_STATS) == STATX_BASIC_STATS, sx.stx_mode,
           (unsigned long long)sx.stx_size, sx.stx_nlink);
    CHK("statx empty path", syscall(SYS_statx, fd = open("c", O_RDONLY), "", AT_EMPTY_PATH,
                                     STATX_BASIC_STATS, &sx));
    printf("statx fd = size=%llu\n", (unsigned long long)sx.stx_size);
    close(fd);
    CHK("fstatat empty path", fstatat(fd = open("a", O_RDONLY), "", &st, AT_EMPTY_PATH));
    CHK("fstatat empty path noflag", fstatat(fd, "", &st, 0));
    close(fd);
    struct statfs sfs;
    CHK("statfs", statfs(".", &sfs));
    printf("statfs = type=0x%lx namelen=%ld bsize=%ld\n", (long)sfs.f_type, (long)sfs.f_namelen,
           (long)sfs.f_bsize);
    CHK("fstatfs", fstatfs(fd = open("a", O_RDONLY), &sfs));
    close(fd);
    printf("fstatfs = type=0x%lx\n", (long)sfs.f_type);

    /* fd table */
    fd = open("a", O_RDWR);
    CHK("dup", fd2 = dup(fd));
    CHK("dup2", dup2(fd, 20));
    CHK("dup2 same", dup2(fd, fd));
    CHK("dup2 bad", dup2(99, 21));
    CHK("dup3 cloexec", dup3(fd, 21, O_CLOEXEC));
    CHK("dup3 same", dup3(fd, fd, 0));
    CHK("dup3 badflags", dup3(fd, 22, O_APPEND));
    CHK("getfd 21", fcntl(21, F_GETFD));
    CHK("getfd 20", fcntl(20, F_GETFD));
    CHK("setfd", fcntl(20, F_SETFD, FD_CLOEXEC));
    CHK("getfd 20 after", fcntl(20, F_GETFD));
    CHK("dupfd", fcntl(fd, F_DUPFD, 30));
    CHK("dupfd cloexec", fcntl(fd, F_DUPFD_CLOEXEC, 30));
    CHK("getfd 31", fcntl(31, F_GETFD));
    CHK("dupfd neg", fcntl(fd, F_DUPFD, -1));
    CHK("fcntl bad cmd", fcntl(fd, 9999));
    CHK("fcntl ebadf", fcntl(99, F_GETFD));
    CHK("shared offset write", write(fd, "Q", 1));
    CHK("shared offset", lseek(fd2, 0, SEEK_CUR));
    CHK("close_range", syscall(SYS_close_range, 20, ~0U, 0));
    CHK("closed 31", fcntl(31, F_GETFD));
    CHK("close_range einval", syscall(SYS_close_range, 5, 4, 0));
    /* CLOSE_RANGE_UNSHARE (2) in a child that shares the table (CLONE_FILES) closes its
       own copy only; without it the shared table loses the fd */
    int keep = dup(fd), cst = 0;
    pid_t cc = syscall(SYS_clone, 0x400 | SIGCHLD, 0, 0, 0, 0);
    if (cc == 0)
        _exit(syscall(SYS_close_range, keep, keep, 2) == 0 && fcntl(keep, F_GETFD) < 0 ? 0 : 1);
    waitpid(cc, &cst, 0);
    CHK("close_range unshare: child closed its copy (0)", WEXITSTATUS(cst));
    CHK("close_range unshare: still open here", fcntl(keep, F_GETFD));
    cc = syscall(SYS_clone, 0x400 | SIGCHLD, 0, 0, 0, 0);
    if (cc == 0)
        _exit(syscall(SYS_close_range, keep, keep, 0) == 0 ? 0 : 1);
    waitpid(cc, &cst, 0);
    CHK("close_range shared: closed here too", fcntl(keep, F_GETFD));
    CHK("close bad", close(-1));
    CHK("read ebadf", read(99, buf, 1));
    CHK("fstat ebadf", fstat(-1, &st));

    /* locks */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    CHK("setlk", fcntl(fd, F_SETLK, &fl));
    fl.l_type = F_RDLCK;
    CHK("getlk own", fcntl(fd, F_GETLK, &fl));
    printf("getlk type = %d\n", fl.l_type);
    fl.l_type = 99;
    CHK("setlk badtype", fcntl(fd, F_SETLK, &fl));
    fl.l_type = F_UNLCK;
    CHK("setlk unlock", fcntl(fd, F_SETLK, &fl));
    int ofd1 = open("a", O_RDWR), ofd2 = open("a", O_RDWR);
    struct flock ofl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 5};
    CHK("ofd setlk", fcntl(ofd1, F_OFD_SETLK, &ofl));
    ofl.l_type = F_WRLCK;
    ofl.l_start = 0;
    ofl.l_len = 0;
    CHK("ofd setlk conflict", fcntl(ofd2, F_OFD_SETLK, &ofl));
    CHK("ofd getlk", fcntl(ofd2, F_OFD_GETLK, &ofl));
    printf("ofd getlk = type=%d start=%ld len=%ld pid=%d\n", ofl.l_type, (long)ofl.l_start,
           (long)ofl.l_len, ofl.l_pid);
    ofl.l_pid = 99;
    CHK("ofd setlk pid", fcntl(ofd1, F_OFD_SETLK, &ofl));
    ofl.l_type = F_UNLCK;
    ofl.l_start = 0;
    ofl.l_len = 0;
    ofl.l_pid = 0;
    CHK("ofd unlock", fcntl(ofd1, F_OFD_SETLK, &ofl));
    ofl.l_type = F_WRLCK;
    CHK("ofd setlk after unlock", fcntl(ofd2, F_OFD_SETLK, &ofl));
    CHK("flock ex", flock(ofd1, LOCK_EX));
    CHK("flock conflict", flock(ofd2, LOCK_EX | LOCK_NB));
    CHK("flock sh conflict", flock(ofd2, LOCK_SH | LOCK_NB));
    CHK("flock un", flock(ofd1, LOCK_UN));
    CHK("flock after", flock(ofd2, LOCK_SH | LOCK_NB));
    CHK("flock shared", flock(ofd1, LOCK_SH | LOCK_NB));
    CHK("flock bad", flock(ofd1, 0));
    close(ofd1);
    close(ofd2);

    /* pipes and ioctls */
    int p[2];
    CHK("pipe2", pipe2(p, O_CLOEXEC | O_NONBLOCK));
    printf("pipe fds = %d %d\n", p[0], p[1]);
    CHK("pipe getfd", fcntl(p[0], F_GETFD));
    CHK("pipe getfl r", fcntl(p[0], F_GETFL));
    CHK("pipe getfl w", fcntl(p[1], F_GETFL));
    CHK("pipe read empty", read(p[0], buf, 10));
    CHK("pipe write", write(p[1], "hello", 5));
    int avail = -1;
    CHK("fionread", ioctl(p[0], FIONREAD, &avail));
    printf("fionread n = %d\n", avail);
    CHK("pipe lseek", lseek(p[0], 0, SEEK_SET));
    CHK("pipe read", r = read(p[0], buf, 10));
    show_buf("pipe data", buf, r);
    CHK("pipe read wrong end", read(p[1], buf, 1));
    CHK("fionclex", ioctl(p[0], FIONCLEX));
    CHK("pipe getfd after", fcntl(p[0], F_GETFD));
    CHK("fioclex", ioctl(p[0], FIOCLEX));
    CHK("pipe getfd after 2", fcntl(p[0], F_GETFD));
    fstat(p[0], &st);
    printf("pipe mode = 0%o\n", st.st_mode & S_IFMT);
    CHK("close write end", close(p[1]));
    CHK("pipe eof", read(p[0], buf, 10));
    CHK("fadvise pipe", syscall(SYS_fadvise64, p[0], 0, 0, 0));
    close(p[0]);
    CHK("pipe", pipe(p));
    close(p[0]);
    close(p[1]);
    struct termios tio;
    CHK("tcgets file", ioctl(fd, TCGETS, &tio));
    CHK("ioctl unknown", ioctl(fd, 0x12345678, 0));
    CHK("fionread file", ioctl(fd, FIONREAD, &avail));
    printf("fionread file n = %d\n", avail);

    /* sendfile, copy_file_range */
    int src = open("copysrc", O_RDWR | O_CREAT, 0644);
    for (int i = 0; i < 100; i++)
        write(src, "0123456789abcdef", 16);
    int dst = open("copydst", O_RDWR | O_CREAT, 0644);
    off_t off = 10;
    CHK("sendfile", sendfile(dst, src, &off, 100));
    printf("sendfile off = %ld\n", (long)off);
    lseek(src, 1590, SEEK_SET);
    CHK("sendfile cur", sendfile(dst, src, NULL, 100));
    CHK("src pos", lseek(src, 0, SEEK_CUR));
    loff_t in_off = 0, out_off = 500;
    CHK("copy_file_range", copy_file_range(src, &in_off, dst, &out_off, 1000, 0));
    printf("cfr offs = %ld %ld\n", (long)in_off, (long)out_off);
    CHK("copy_file_range flags", copy_file_range(src, &in_off, dst, &out_off, 10, 1));
    show_stat("stat copydst", "copydst", 0);
    CHK("pread copydst", r = pread(dst, buf, 32, 95));
    show_buf("copydst data", buf, r);
    CHK("pipe2 badflags", pipe2(p, O_APPEND));
    CHK("sendfile to pipe", (pipe(p), sendfile(p[1], src, &off, 20)));
    CHK("pipe read sendfile", r = read(p[0], buf, 64));
    show_buf("sendfile pipe data", buf, r);
    close(p[0]);
    close(p[1]);
    close(src);
    close(dst);

    /* xattrs */
    CHK("setxattr", setxattr("a", "user.color", "blue", 4, 0));
    CHK("setxattr create", setxattr("a", "user.color", "red", 3, XATTR_CREATE));
    CHK("setxattr replace missing", setxattr("a", "user.size", "1", 1, XATTR_REPLACE));
    CHK("getxattr", r = getxattr("a", "user.color", buf, sizeof buf));
    show_buf("getxattr data", buf, r > 0 ? r : 0);
    CHK("getxattr size", getxattr("a", "user.color", NULL, 0));
    CHK("getxattr small", getxattr("a", "user.color", buf, 2));
    CHK("getxattr missing", getxattr("a", "user.none", buf, sizeof buf));
    CHK("fsetxattr", fsetxattr(fd, "user.shape", "round", 5, 0));
    CHK("listxattr", r = listxattr("a", buf, sizeof buf));
    char *xnames[8];
    int nx = 0;
    for (long i = 0; i < r && nx < 8; i += strlen(buf + i) + 1)
        xnames[nx++] = buf + i;
    qsort(xnames, nx, sizeof *xnames, cmp);
    printf("listxattr data =");
    for (int i = 0; i < nx; i++)
        printf(" %s", xnames[i]);
    printf("\n");
    CHK("flistxattr size", flistxattr(fd, NULL, 0));
    CHK("removexattr", removexattr("a", "user.color"));
    CHK("removexattr missing", removexattr("a", "user.color"));
    CHK("fgetxattr", fgetxattr(fd, "user.shape", buf, sizeof buf));
    CHK("lgetxattr on link", lgetxattr("l", "user.shape", buf, sizeof buf));
    CHK("getxattr bad ns", getxattr("a", "bogus.x", buf, sizeof buf));
    close(fd);

    /* directory listing */
    list_dir("getdents", ".");
    list_dir("getdents d", "d");
    list_dir_old("getdents old", ".");

    /* bad pointers: EFAULT, never a crash */
    CHK("read efault", read(fd = open("a", O_RDONLY), (void *)1, 10));
    close(fd);
    CHK("write efault", write(1, (void *)8, 10));
    CHK("open efault", syscall(SYS_openat, AT_FDCWD, (void *)16, O_RDONLY));
    CHK("stat efault", syscall(SYS_newfstatat, AT_FDCWD, "a", (void *)24, 0));
    CHK("pipe efault", syscall(SYS_pipe2, (void *)32, 0));
    CHK("getcwd efault", syscall(SYS_getcwd, (void *)40, 100));

    /* devices */
    CHK("devnull write", write(fd = open("/dev/null", O_WRONLY), "abc", 3));
    close(fd);
    CHK("devzero read", r = read(fd = open("/dev/zero", O_RDONLY), buf, 4));
    printf("devzero data = %d %d %d %d\n", buf[0], buf[1], buf[2], buf[3]);
    close(fd);
    return 0;
}
