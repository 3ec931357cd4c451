/* New UTS, IPC and mount namespaces made by unshare(2) and by clone(2), run as root (each
 * with a /proc/PID/ns link of its own, the first process's kept by the others): a
 * host name set in the new UTS namespace, System V objects and their keys in the new IPC
 * namespace, a tmpfs mounted in the new mount namespace, each seen there and not by the
 * parent; EINVAL for clone's impossible pairs and unknown unshare flags, EPERM without
 * CAP_SYS_ADMIN; setns into another process's mount namespace by its ns file and its pidfd
 * (root and cwd move to its root), EPERM without CAP_SYS_CHROOT, EINVAL when the fs context
 * is shared. usage: namespaces DIR (a scratch directory). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY 0x52756e70
static char dir[256], mnt[300], file_in[320];

static void res(const char *what, long r) {
    if (r < 0)
        printf("%s = -1 %s\n", what, strerror(errno));
    else
        printf("%s = %ld\n", what, r);
    fflush(stdout);
}

static int mounted_here(void) {
    FILE *f = fopen("/proc/self/mounts", "r");
    char line[1024];
    int found = 0;
    while (f && fgets(line, sizeof line, f)) {
        char dev[256], at[512];
        if (sscanf(line, "%255s %511s", dev, at) == 2 && !strcmp(at, mnt))
            found = 1;
    }
    if (f)
        fclose(f);
    return found;
}

static char first_ns[3][64];
static const char *ns_names[3] = {"uts", "ipc", "mnt"};

static void ns_link(int i, char *out) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/ns/%s", ns_names[i]);
    memset(out, 0, 64);
    readlink(path, out, 63);
}

/* whether each of the caller's UTS, IPC, mount namespaces is the first process's */
static void report_ns(const char *who) {
    printf("%s: namespaces", who);
    for (int i = 0; i < 3; i++) {
        char now[64];
        ns_link(i, now);
        printf(" %s %s", ns_names[i], !strcmp(now, first_ns[i]) ? "first" : "new");
    }
    printf("\n");
}

static void report(const char *who) {
    report_ns(who);
    char host[65] = {0};
    gethostname(host, 64);
    struct stat st;
    printf("%s: hostname %s, shm key %s, msg key %s, tmpfs %s, file %s\n", who,
           !strcmp(host, "ns-test-name") ? "changed" : "original",
           shmget(KEY, 0, 0) >= 0 ? "seen" : strerror(errno),
           msgget(KEY + 1, 0) >= 0 ? "seen" : strerror(errno),
           mounted_here() ? "mounted" : "not mounted",
           stat(file_in, &st) == 0 ? "seen" : strerror(errno));
    fflush(stdout);
}

/* What a child does in its new namespaces. */
static int inside(void) {
    report("child before");
    /* keep the mount below from propagating back (the host's / may be shared) */
    res("child make / private", mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL));
    res("child sethostname", sethostname("ns-test-name", 12));
    int q = msgget(KEY + 1, IPC_CREAT | 0600);
    res("child msgget create", q >= 0 ? 0 : -1);
    res("child mount tmpfs", mount("none", mnt, "tmpfs", 0, "size=64k"));
    int fd = open(file_in, O_CREAT | O_WRONLY, 0644);
    res("child create a file there", fd >= 0 ? 0 : -1);
    close(fd);
    report("child after");
    msgctl(q, IPC_RMID, NULL);
    return 0;
}

static void wait_child(pid_t c) {
    int st;
    waitpid(c, &st, 0);
    printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    snprintf(dir, sizeof dir, "%s", argv[1]);
    snprintf(mnt, sizeof mnt, "%s/m", dir);
    snprintf(file_in, sizeof file_in, "%s/m/f", dir);
    mkdir(mnt, 0755);
    for (int i = 0; i < 3; i++)
        ns_link(i, first_ns[i]);
    int shm = shmget(KEY, 4096, IPC_CREAT | 0600);
    res("parent shmget", shm >= 0 ? 0 : -1);
    report("parent");

    puts("== unshare");
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        res("unshare UTS|IPC|NS", unshare(CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNS));
        _exit(inside());
    }
    wait_child(c);
    report("parent");

    puts("== clone");
    fflush(stdout);
    c = syscall(SYS_clone, CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
    if (c == 0)
        _exit(inside());
    res("clone UTS|IPC|NS", c > 0 ? 0 : -1);
    wait_child(c);
    report("parent");

    puts("== each alone");
    fflush(stdout);
    c = fork();
    if (c == 0) {
        res("unshare IPC", unshare(CLONE_NEWIPC));
        report("child, IPC only");
        res("unshare UTS", unshare(CLONE_NEWUTS));
        res("sethostname", sethostname("ns-test-name", 12));
        report("child, UTS too");
        _exit(0);
    }
    wait_child(c);

    puts("== setns into a mount namespace");
    fflush(stdout);
    int go[2], ready[2];
    pipe(go);
    pipe(ready);
    pid_t holder = fork();
    if (holder == 0) {
        unshare(CLONE_NEWNS);
        mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL);
        mount("none", mnt, "tmpfs", 0, "size=64k");
        close(open(file_in, O_CREAT | O_WRONLY, 0644));
        write(ready[1], "r", 1);
        char ch;
        read(go[0], &ch, 1);
        _exit(0);
    }
    char ch;
    read(ready[0], &ch, 1);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/mnt", holder);
    for (int how = 0; how < 4; how++) {
        c = fork();
        if (c == 0) {
            chdir(dir);
            int nsfd = open(path, O_RDONLY);
            struct stat st;
            long r;
            if (how == 0) {
                r = setns(nsfd, 0);
            } else if (how == 1) {
                r = setns(syscall(SYS_pidfd_open, holder, 0), CLONE_NEWNS);
            } else if (how == 2) {
                struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
                struct __user_cap_data_struct d[2];
                syscall(SYS_capget, &h, d);
                d[0].effective &= ~(1u << CAP_SYS_CHROOT);
                syscall(SYS_capset, &h, d);
                r = setns(nsfd, CLONE_NEWNS);
            } else {  /* another process shares its root and cwd (CLONE_FS) */
                pid_t sib = syscall(SYS_clone, CLONE_FS | SIGCHLD, 0, 0, 0, 0);
                if (sib == 0) {
                    read(go[0], &ch, 1);
                    _exit(0);
                }
                r = setns(nsfd, CLONE_NEWNS);
                int e = errno;
                kill(sib, SIGKILL);
                waitpid(sib, NULL, 0);
                errno = e;
            }
            const char *err = r < 0 ? strerror(errno) : "ok";
            char cwd[256] = "?";
            getcwd(cwd, sizeof cwd);
            const char *names[4] = {"ns file", "pidfd", "without CAP_SYS_CHROOT", "fs shared"};
            printf("setns mnt by %s: %s; cwd is / %d; the file %s\n", names[how], err,
                   !strcmp(cwd, "/"),
                   stat(file_in, &st) == 0 ? "seen" : strerror(errno));
            fflush(stdout);
            _exit(0);
        }
        wait_child(c);
    }
    write(go[1], "g", 1);
    wait_child(holder);
    report("parent");

    puts("== errors");
    fflush(stdout);
    res("clone NEWNS|FS", syscall(SYS_clone, CLONE_NEWNS | CLONE_FS | SIGCHLD, 0, 0, 0, 0));
    res("clone NEWIPC|SYSVSEM",
        syscall(SYS_clone, CLONE_NEWIPC | CLONE_SYSVSEM | SIGCHLD, 0, 0, 0, 0));
    res("unshare unknown flag", unshare(0x1));
    c = fork();
    if (c == 0) {
        struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct d[2];
        syscall(SYS_capget, &h, d);
        d[0].effective &= ~(1u << CAP_SYS_ADMIN);
        res("drop CAP_SYS_ADMIN", syscall(SYS_capset, &h, d));
        res("unshare NEWNS", unshare(CLONE_NEWNS));
        res("unshare NEWIPC", unshare(CLONE_NEWIPC));
        res("unshare NEWUTS", unshare(CLONE_NEWUTS));
        res("clone NEWUTS", syscall(SYS_clone, CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0));
        res("unshare FS|FILES", unshare(CLONE_FS | CLONE_FILES));
        _exit(0);
    }
    wait_child(c);
    shmctl(shm, IPC_RMID, NULL);
    rmdir(mnt);
    return 0;
}
