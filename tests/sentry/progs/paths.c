/* openat2 with every RESOLVE_* flag and struct open_how's size rules, execveat (AT_EMPTY_PATH
 * on an O_PATH fd, dirfd-relative, AT_SYMLINK_NOFOLLOW) and process_vm_readv/writev between
 * a parent and its child, with their errors. argv[1] is an empty scratch directory; the
 * program must be run by an absolute argv[0] (it execs itself). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *label, long r) {
    if (r < 0)
        printf("%s = -1 %s\n", label, strerrorname_np(errno));
    else
        printf("%s = %ld\n", label, r);
}
#define S(label, ...) do { errno = 0; report(label, syscall(__VA_ARGS__)); } while (0)
#define BAD ((void *)8)

static int root;

static void o2(const char *label, int dirfd, const char *path, uint64_t flags, uint64_t mode,
               uint64_t resolve) {
    struct open_how how = {flags, mode, resolve};
    errno = 0;
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd < 0) {
        report(label, fd);
        return;
    }
    char buf[32] = {0};
    long n = (flags & O_PATH) ? -2 : read(fd, buf, sizeof buf - 1);
    struct stat st;
    fstat(fd, &st);
    printf("%s = fd, mode %o read %ld [%s] cloexec %d\n", label, st.st_mode & S_IFMT, n,
           n > 0 ? buf : "", fcntl(fd, F_GETFD));
    close(fd);
}

static void openat2s(const char *scratch) {
    printf("-- openat2\n");
    mkdir("root", 0755);
    mkdir("root/a", 0755);
    int f = open("root/a/f", O_CREAT | O_WRONLY, 0644);
    write(f, "inside", 6);
    close(f);
    f = open("x", O_CREAT | O_WRONLY, 0644);
    write(f, "outside", 7);
    close(f);
    char abs[512];
    snprintf(abs, sizeof abs, "%s/root/a/f", scratch);
    symlink(abs, "root/a/abs");
    symlink("f", "root/a/rel");
    symlink("../../x", "root/a/up");
    symlink("/a/f", "root/a/rootabs");
    root = open("root", O_RDONLY | O_DIRECTORY);

    struct open_how how = {O_RDONLY, 0, 0};
    S("size 23", SYS_openat2, root, "a/f", &how, 23);
    S("size 4097", SYS_openat2, root, "a/f", &how, 4097);
    char big[64] = {0};
    memcpy(big, &how, sizeof how);
    S("size 64 zero tail", SYS_openat2, root, "a/f", big, 64);
    big[40] = 1;
    S("size 64 nonzero tail", SYS_openat2, root, "a/f", big, 64);
    S("bad how", SYS_openat2, root, "a/f", BAD, 24);
    S("bad path", SYS_openat2, root, BAD, &how, 24);
    o2("plain", root, "a/f", O_RDONLY | O_CLOEXEC, 0, 0);
    o2("unknown flag", root, "a/f", O_RDONLY | 0x10, 0, 0);
    o2("high flag", root, "a/f", O_RDONLY | (1ULL << 40), 0, 0);
    o2("mode without creat", root, "a/f", O_RDONLY, 0644, 0);
    o2("bad mode", root, "a/new", O_CREAT | O_WRONLY, 010000, 0);
    o2("creat", root, "a/new", O_CREAT | O_WRONLY, 0600, 0);
    o2("creat|directory", root, "a/new2", O_CREAT | O_DIRECTORY, 0600, 0);
    o2("path|append", root, "a/f", O_PATH | O_APPEND, 0, 0);
    o2("path|nofollow", root, "a/rel", O_PATH | O_NOFOLLOW, 0, 0);
    o2("unknown resolve", root, "a/f", O_RDONLY, 0, 0x40);
    o2("beneath|in_root", root, "a/f", O_RDONLY, 0, RESOLVE_BENEATH | RESOLVE_IN_ROOT);
    o2("cached creat", root, "a/f", O_RDONLY | O_CREAT, 0, RESOLVE_CACHED);
    o2("cached trunc", root, "a/f", O_WRONLY | O_TRUNC, 0, RESOLVE_CACHED);

    o2("beneath a/f", root, "a/f", O_RDONLY, 0, RESOLVE_BENEATH);
    o2("beneath ../x", root, "../x", O_RDONLY, 0, RESOLVE_BENEATH);
    o2("beneath a/../a/f", root, "a/../a/f", O_RDONLY, 0, RESOLVE_BENEATH);
    o2("beneath a/../..", root, "a/../..", O_RDONLY, 0, RESOLVE_BENEATH);
    o2("beneath absolute", root, abs, O_RDONLY, 0, RESOLVE_BENEATH);
    o2("beneath abs link", root, "a/abs", O_RDONLY, 0, RESOLVE_BENEATH);
    o2("beneath rel link", root, "a/rel", O_RDONLY, 0, RESOLVE_BENEATH);
    o2("beneath up link", root, "a/up", O_RDONLY, 0, RESOLVE_BENEATH);
    o2("in_root /a/f", root, "/a/f", O_RDONLY, 0, RESOLVE_IN_ROOT);
    o2("in_root ../../a/f", root, "../../a/f", O_RDONLY, 0, RESOLVE_IN_ROOT);
    o2("in_root up link", root, "a/up", O_RDONLY, 0, RESOLVE_IN_ROOT);
    o2("in_root rootabs link", root, "a/rootabs", O_RDONLY, 0, RESOLVE_IN_ROOT);
    o2("in_root abs link", root, "a/abs", O_RDONLY, 0, RESOLVE_IN_ROOT);
    o2("no_symlinks rel", root, "a/rel", O_RDONLY, 0, RESOLVE_NO_SYMLINKS);
    o2("no_symlinks nofollow path", root, "a/rel", O_PATH | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS);
    o2("no_symlinks f", root, "a/f", O_RDONLY, 0, RESOLVE_NO_SYMLINKS);
    o2("no_magiclinks rel", root, "a/rel", O_RDONLY, 0, RESOLVE_NO_MAGICLINKS);
    o2("no_xdev a/f", root, "a/f", O_RDONLY, 0, RESOLVE_NO_XDEV);
    o2("no_xdev /dev/null", AT_FDCWD, "/dev/null", O_RDONLY, 0, RESOLVE_NO_XDEV);
    int slash = open("/", O_RDONLY | O_DIRECTORY);
    o2("no_xdev dev/null from /", slash, "dev/null", O_RDONLY, 0, RESOLVE_NO_XDEV);
    o2("no_xdev dev from /", slash, "dev", O_RDONLY, 0, RESOLVE_NO_XDEV);
    close(slash);
    o2("cached a/f", root, "a/f", O_RDONLY, 0, RESOLVE_CACHED);
    o2("bad dirfd", 999, "a/f", O_RDONLY, 0, RESOLVE_BENEATH);
}

static void execs(const char *self) {
    printf("-- execveat\n");
    char *envp[] = {NULL};
    char copy[512];
    snprintf(copy, sizeof copy, "%s", self);
    int exe = open(self, O_PATH);
    int dir = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    snprintf(copy, sizeof copy, "%s", self);
    const char *base = basename(copy);
    symlink(self, "selflink");
    int p[2];
    pipe(p);
    struct {
        const char *label;
        int dirfd;
        const char *path;
        int flags;
    } cases[] = {
        {"o_path empty", exe, "", AT_EMPTY_PATH},
        {"dirfd relative", dir, base, 0},
        {"absolute", AT_FDCWD, self, 0},
        {"through symlink", AT_FDCWD, "selflink", 0},
        {"empty without flag", exe, "", 0},
        {"bad flags", exe, "", 0x4},
        {"nofollow symlink", AT_FDCWD, "selflink", AT_SYMLINK_NOFOLLOW},
        {"file as dirfd", exe, "x", 0},
        {"bad dirfd", 999, "x", 0},
        {"empty on directory", dir, "", AT_EMPTY_PATH},
        {"empty on pipe", p[0], "", AT_EMPTY_PATH},
        {"missing", dir, "no-such-program", 0},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pid_t c = fork();
        if (c == 0) {
            char *argv[] = {"prog", "child", (char *)cases[i].label, NULL};
            long r = syscall(SYS_execveat, cases[i].dirfd, cases[i].path, argv, envp,
                             cases[i].flags);
            printf("%s = %ld %s\n", cases[i].label, r, strerrorname_np(errno));
            _exit(0);
        }
        waitpid(c, NULL, 0);
    }
    S("execveat bad argv", SYS_execveat, exe, "", BAD, envp, AT_EMPTY_PATH);
    S("execveat bad path", SYS_execveat, exe, BAD, NULL, envp, 0);
}

static char shared[64];
static const char ro[] = "read-only data";

static void vm(void) {
    printf("-- process_vm\n");
    int go[2], done[2];
    pipe(go);
    pipe(done);
    strcpy(shared, "parent's copy");
    pid_t c = fork();
    if (c == 0) {
        strcpy(shared, "child's secret");
        write(done[1], "r", 1);
        char b;
        read(go[0], &b, 1);
        printf("  child sees [%s]\n", shared);
        fflush(stdout);
        _exit(0);
    }
    char b;
    read(done[0], &b, 1);
    char buf[64] = {0}, small[4];
    struct iovec local = {buf, sizeof buf}, remote = {shared, 20};
    S("readv", SYS_process_vm_readv, c, &local, 1, &remote, 1, 0);
    printf("  [%s]\n", buf);
    struct iovec two[2] = {{small, 4}, {buf, 8}};
    memset(buf, 0, sizeof buf);
    S("readv scattered", SYS_process_vm_readv, c, two, 2, &remote, 1, 0);
    printf("  [%.4s][%s]\n", small, buf);
    struct iovec badr[2] = {{shared, 5}, {BAD, 5}};
    S("readv remote then fault", SYS_process_vm_readv, c, &local, 1, badr, 2, 0);
    struct iovec badr0 = {BAD, 5};
    S("readv remote fault", SYS_process_vm_readv, c, &local, 1, &badr0, 1, 0);
    struct iovec badl = {BAD, 5};
    S("readv local fault", SYS_process_vm_readv, c, &badl, 1, &remote, 1, 0);
    S("readv bad iov array", SYS_process_vm_readv, c, BAD, 1, &remote, 1, 0);
    S("readv flags", SYS_process_vm_readv, c, &local, 1, &remote, 1, 1);
    S("readv 1025", SYS_process_vm_readv, c, &local, 1025, &remote, 1, 0);
    S("readv no such pid", SYS_process_vm_readv, 99999, &local, 1, &remote, 1, 0);
    S("readv zero count", SYS_process_vm_readv, c, &local, 0, &remote, 1, 0);
    struct iovec w = {"written by parent", 18};
    S("writev", SYS_process_vm_writev, c, &w, 1, &remote, 1, 0);
    struct iovec rorem = {(void *)ro, 4};
    S("writev read-only", SYS_process_vm_writev, c, &w, 1, &rorem, 1, 0);
    write(go[1], "g", 1);
    waitpid(c, NULL, 0);

    /* an unprivileged process: its own child yes, its parent (root) no */
    pid_t u = fork();
    if (u == 0) {
        setgid(65534);
        setuid(65534);
        pid_t parent = getppid();
        struct iovec l = {buf, 8}, r = {shared, 8};
        S("unprivileged reads root parent", SYS_process_vm_readv, parent, &l, 1, &r, 1, 0);
        pipe(done);
        pid_t g = fork();
        if (g == 0) {
            prctl(PR_SET_DUMPABLE, 1);  /* setuid made the process undumpable */
            strcpy(shared, "grandkid");
            write(done[1], "r", 1);
            pause();
            _exit(0);
        }
        read(done[0], &b, 1);
        memset(buf, 0, sizeof buf);
        S("unprivileged reads own child", SYS_process_vm_readv, g, &l, 1, &r, 1, 0);
        printf("  [%s]\n", buf);
        kill(g, SIGKILL);
        waitpid(g, NULL, 0);
        fflush(stdout);
        _exit(0);
    }
    waitpid(u, NULL, 0);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 3 && strcmp(argv[1], "child") == 0) {
        printf("  exec'd: %s\n", argv[2]);
        return 0;
    }
    if (argc != 2 || chdir(argv[1]) < 0 || argv[0][0] != '/')
        return 2;
    openat2s(argv[1]);
    execs(argv[0]);
    vm();
    return 0;
}
