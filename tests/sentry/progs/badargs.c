/* File syscalls with bad pointers, lengths and counts: the errno must be Linux's, and the
 * Sentry must never fail internally. Run in an empty directory; prints "name = result". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static void report(const char *label, long r) {
    if (r < 0)
        printf("%s = -1 %s\n", label, strerrorname_np(errno));
    else
        printf("%s = %ld\n", label, r);
}
#define S(label, ...) do { errno = 0; report(label, syscall(__VA_ARGS__)); } while (0)

int main(int argc, char **argv) {
    void *bads[] = {(void *)1, (void *)0xffff800000000000UL, (void *)0x7ffffffff000UL};
    const char *names[] = {"low", "kernel", "top"};
    char buf[512];
    if (argc == 3 && !strcmp(argv[1], "arglen")) {  /* the re-exec below */
        printf("exec long arg = %zu\n", strlen(argv[2]));
        return 0;
    }
    if (argc != 2 || chdir(argv[1]) < 0)
        return 2;
    int fd = open("f", O_RDWR | O_CREAT, 0644);
    int fd2 = open("g", O_RDWR | O_CREAT, 0644);
    write(fd, "0123456789", 10);
    symlink("f", "l");
    mkdir("d", 0755);
    int dfd = open("d", O_RDONLY | O_DIRECTORY);
    int p[2];
    pipe(p);
    write(p[1], "xy", 2);
    syscall(SYS_setxattr, "f", "user.k", "v", 1, 0);
    for (int i = 0; i < 3; i++) {
        void *B = bads[i];
        printf("-- %s\n", names[i]);
        struct iovec biov[2] = {{B, 4}, {buf, 4}};
        S("read", SYS_read, fd, B, 10);
        S("write", SYS_write, fd, B, 10);
        S("pread64", SYS_pread64, fd, B, 10, 0);
        S("pwrite64", SYS_pwrite64, fd, B, 10, 0);
        S("readv arr", SYS_readv, fd, B, 2);
        S("writev arr", SYS_writev, fd, B, 2);
        S("readv base", SYS_preadv, fd, biov, 2, 0, 0);
        S("writev base", SYS_pwritev, fd, biov, 2, 0, 0);
        S("open", SYS_open, B, O_RDONLY);
        S("openat", SYS_openat, AT_FDCWD, B, O_RDONLY);
        S("creat", SYS_creat, B, 0644);
        S("stat path", SYS_stat, B, buf);
        S("stat buf", SYS_stat, "f", B);
        S("lstat buf", SYS_lstat, "l", B);
        S("fstat buf", SYS_fstat, fd, B);
        S("newfstatat", SYS_newfstatat, AT_FDCWD, "f", B, 0);
        S("statx buf", SYS_statx, AT_FDCWD, "f", 0, 0x7ff, B);
        S("statx path", SYS_statx, AT_FDCWD, B, 0, 0x7ff, buf);
        S("getdents64", SYS_getdents64, dfd, B, 512);
        S("getdents", SYS_getdents, dfd, B, 512);
        S("mkdir", SYS_mkdir, B, 0755);
        S("rmdir", SYS_rmdir, B);
        S("unlink", SYS_unlink, B);
        S("rename old", SYS_rename, B, "x");
        S("rename new", SYS_rename, "f", B);
        S("link", SYS_link, "f", B);
        S("symlink target", SYS_symlink, B, "x");
        S("readlink buf", SYS_readlink, "l", B, 10);
        S("chmod", SYS_chmod, B, 0644);
        S("chown", SYS_chown, B, 0, 0);
        S("utimensat times", SYS_utimensat, AT_FDCWD, "f", B, 0);
        S("utimes", SYS_utimes, "f", B);
        S("truncate", SYS_truncate, B, 0);
        S("access", SYS_access, B, 0);
        S("faccessat2", SYS_faccessat2, AT_FDCWD, B, 0, 0);
        S("getcwd", SYS_getcwd, B, 100);
        S("chdir", SYS_chdir, B);
        S("statfs path", SYS_statfs, B, buf);
        S("statfs buf", SYS_statfs, ".", B);
        S("fstatfs buf", SYS_fstatfs, fd, B);
        S("fcntl setlk", SYS_fcntl, fd, F_SETLK, B);
        S("fcntl getlk", SYS_fcntl, fd, F_GETLK, B);
        S("ioctl fionread", SYS_ioctl, p[0], 0x541B, B);
        S("ioctl fionbio", SYS_ioctl, p[0], 0x5421, B);
        S("pipe", SYS_pipe, B);
        S("pipe2", SYS_pipe2, B, 0);
        S("sendfile off", SYS_sendfile, fd2, fd, B, 10);
        S("copy_file_range off", SYS_copy_file_range, fd, B, fd2, NULL, 10, 0);
        S("setxattr name", SYS_setxattr, "f", B, "v", 1, 0);
        S("setxattr value", SYS_setxattr, "f", "user.x", B, 1, 0);
        S("getxattr value", SYS_getxattr, "f", "user.k", B, 100);
        S("listxattr buf", SYS_listxattr, "f", B, 100);
        S("removexattr name", SYS_removexattr, "f", B);
        S("readlinkat path", SYS_readlinkat, AT_FDCWD, B, buf, 10);
        S("renameat2", SYS_renameat2, AT_FDCWD, B, AT_FDCWD, "y", 0);
    }
    printf("-- lengths\n");
    S("read huge", SYS_read, fd, buf, (size_t)-1);
    S("write huge", SYS_write, fd, buf, (size_t)1 << 40);
    S("readv 1025", SYS_readv, fd, buf, 1025);
    S("readv neg", SYS_readv, fd, buf, -1);
    struct iovec big[2] = {{buf, (size_t)1 << 63}, {buf, (size_t)1 << 63}};
    S("readv overflow", SYS_readv, fd, big, 2);
    S("getcwd zero", SYS_getcwd, buf, 0);
    S("readlink zero", SYS_readlink, "l", buf, 0);
    S("readlink neg", SYS_readlink, "l", buf, -1);
    S("getdents small", SYS_getdents64, dfd, buf, 1);
    S("lseek big", SYS_lseek, fd, (long)1 << 62, SEEK_SET);
    S("pread huge off", SYS_pread64, fd, buf, 1, (long)1 << 62);
    S("ftruncate neg", SYS_ftruncate, fd, -5);
    S("fallocate neg", SYS_fallocate, fd, 0, -1, 10);
    S("fd huge", SYS_read, 1 << 30, buf, 1);
    S("fd neg", SYS_close, -5);
    S("dup2 huge", SYS_dup2, fd, 1 << 30);
    S("fcntl dupfd huge", SYS_fcntl, fd, F_DUPFD, 1 << 30);
    char longname[300];
    memset(longname, 'a', 299);
    longname[299] = 0;
    S("open longname", SYS_open, longname, O_RDONLY);
    S("getxattr longname", SYS_getxattr, "f", longname, buf, 10);
    static char longpath[5000];
    memset(longpath, 'b', 4999);
    S("open longpath", SYS_open, longpath, O_RDONLY);
    printf("-- strings at a page's end\n");
    char *pg = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(pg + 4096, 4096);
    memcpy(pg + 4094, "f", 2);  /* "f" and its NUL end the readable page */
    S("stat at page end", SYS_stat, pg + 4094, buf);
    memcpy(pg + 4094, "ff", 2);  /* no NUL before the unmapped page */
    S("stat past page end", SYS_stat, pg + 4094, buf);
    memset(pg, 'd', 4096);  /* a whole page of name, then the hole */
    S("open page no nul", SYS_open, pg, O_RDONLY);
    printf("-- exec strings\n");
    static char huge[32 * 4096 + 1];
    memset(huge, 'a', sizeof huge - 1);
    char *big_argv[] = {argv[0], "arglen", huge, NULL};
    S("execve arg too long", SYS_execve, argv[0], big_argv, NULL);
    huge[10000] = 0;  /* a name of 10,000 bytes: read in more than one page */
    fflush(stdout);
    execv(argv[0], big_argv);
    report("execv", -1);
    return 0;
}
