/* setxattrat, getxattrat, listxattrat and removexattrat (Linux 6.13): a dirfd, a path, AT_
 * flags and struct xattr_args, with their errors. argv[1] is an empty scratch directory on
 * a filesystem with user xattrs; "probe" says whether the kernel has the calls. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SYS_setxattrat 463
#define SYS_getxattrat 464
#define SYS_listxattrat 465
#define SYS_removexattrat 466
struct xattr_args { uint64_t value; uint32_t size; uint32_t flags; };

static void report(const char *label, long r) {
    if (r < 0)
        printf("%s = -1 %s\n", label, strerrorname_np(errno));
    else
        printf("%s = %ld\n", label, r);
}
#define S(label, ...) do { errno = 0; report(label, syscall(__VA_ARGS__)); } while (0)
#define BAD ((void *)8)

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 2 && strcmp(argv[1], "probe") == 0) {
        errno = 0;
        syscall(SYS_listxattrat, AT_FDCWD, "/", 0, NULL, 0);
        printf("%s\n", errno == ENOSYS ? "no xattrat" : "xattrat");
        return 0;
    }
    if (argc != 2 || chdir(argv[1]) < 0)
        return 2;
    mkdir("d", 0755);
    close(open("d/f", O_CREAT | O_WRONLY, 0644));
    symlink("f", "d/l");
    int d = open("d", O_RDONLY | O_DIRECTORY);
    int f = open("d/f", O_RDONLY);
    char buf[64];
    struct xattr_args a = {(uintptr_t) "value", 5, 0};
    S("set", SYS_setxattrat, d, "f", 0, "user.k", &a, sizeof a);
    a.flags = 1;  /* XATTR_CREATE */
    S("set create existing", SYS_setxattrat, d, "f", 0, "user.k", &a, sizeof a);
    a.flags = 2;  /* XATTR_REPLACE */
    S("set replace missing", SYS_setxattrat, d, "f", 0, "user.other", &a, sizeof a);
    a.flags = 0;
    S("set on symlink nofollow", SYS_setxattrat, d, "l", AT_SYMLINK_NOFOLLOW, "user.k", &a,
      sizeof a);
    S("set empty path", SYS_setxattrat, f, "", AT_EMPTY_PATH, "user.e", &a, sizeof a);
    S("set empty without flag", SYS_setxattrat, f, "", 0, "user.e", &a, sizeof a);
    S("set bad at flag", SYS_setxattrat, d, "f", 0x2, "user.k", &a, sizeof a);
    S("set size 8", SYS_setxattrat, d, "f", 0, "user.k", &a, 8);
    S("set size 8192", SYS_setxattrat, d, "f", 0, "user.k", &a, 8192);
    char big[32] = {0};
    memcpy(big, &a, sizeof a);
    big[20] = 1;
    S("set nonzero tail", SYS_setxattrat, d, "f", 0, "user.k", big, 32);
    big[20] = 0;
    S("set zero tail", SYS_setxattrat, d, "f", 0, "user.k", big, 32);
    S("set bad args", SYS_setxattrat, d, "f", 0, "user.k", BAD, sizeof a);
    S("set bad name", SYS_setxattrat, d, "f", 0, "", &a, sizeof a);

    struct xattr_args g = {(uintptr_t)buf, sizeof buf, 0};
    memset(buf, 0, sizeof buf);
    S("get", SYS_getxattrat, d, "l", 0, "user.k", &g, sizeof g);
    printf("  [%s]\n", buf);
    g.size = 0;
    S("get size only", SYS_getxattrat, d, "f", 0, "user.k", &g, sizeof g);
    g.size = 2;
    S("get too small", SYS_getxattrat, d, "f", 0, "user.k", &g, sizeof g);
    g.size = sizeof buf;
    g.flags = 1;
    S("get flags", SYS_getxattrat, d, "f", 0, "user.k", &g, sizeof g);
    g.flags = 0;
    S("get missing", SYS_getxattrat, d, "f", 0, "user.none", &g, sizeof g);
    S("get empty path", SYS_getxattrat, f, "", AT_EMPTY_PATH, "user.e", &g, sizeof g);
    S("get bad path", SYS_getxattrat, d, BAD, 0, "user.k", &g, sizeof g);

    memset(buf, 0, sizeof buf);
    long n = syscall(SYS_listxattrat, d, "f", 0, buf, sizeof buf);
    printf("list = %ld:", n);
    for (long i = 0; i < n; i += strlen(buf + i) + 1)
        printf(" %s", buf + i);
    printf("\n");
    S("list size only", SYS_listxattrat, d, "f", 0, NULL, 0);
    S("list too small", SYS_listxattrat, d, "f", 0, buf, 3);
    S("list bad flag", SYS_listxattrat, d, "f", 0x4, buf, sizeof buf);
    S("remove", SYS_removexattrat, d, "f", 0, "user.k");
    S("remove again", SYS_removexattrat, d, "f", 0, "user.k");
    S("remove empty path", SYS_removexattrat, f, "", AT_EMPTY_PATH, "user.e");
    S("remove bad fd", SYS_removexattrat, 999, "f", 0, "user.k");
    S("list after", SYS_listxattrat, d, "f", 0, buf, sizeof buf);
    return 0;
}
