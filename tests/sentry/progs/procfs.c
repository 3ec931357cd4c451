/* /proc/PID/{exe,cmdline,environ,stat} of every process, across fork, execve (through a
 * symlink and a #! script) and an argv rewritten in place; run natively and in the sandbox
 * with outputs compared. DIR (environment) is the directory holding this program, `link`
 * (a symlink to it) and `script` (#!DIR/procfs); paths print with DIR replaced by $DIR. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *dir;
static void on_usr2(int sig) {}

static void show(const char *what, const char *buf, ssize_t n) {
    size_t dl = strlen(dir);
    printf("%s: ", what);
    for (ssize_t i = 0; i < n; i++) {
        if (dl && i + (ssize_t)dl <= n && !memcmp(buf + i, dir, dl)) {
            printf("$DIR");
            i += dl - 1;
        } else {
            putchar(buf[i] ? buf[i] : '|');
        }
    }
    printf("\n");
    fflush(stdout);
}

static void show_file(const char *what, const char *path) {
    char buf[4096];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf);
    if (fd >= 0) close(fd);
    if (n < 0) { printf("%s: (unreadable)\n", what); return; }
    show(what, buf, n);
}

static void show_link(const char *what, const char *path) {
    char buf[4096];
    ssize_t n = readlink(path, buf, sizeof buf);
    if (n < 0) { printf("%s: (no link)\n", what); return; }
    show(what, buf, n);
}

static void show_pid(const char *who, pid_t p) {
    char path[64], what[64];
    snprintf(path, sizeof path, "/proc/%d/exe", p);
    snprintf(what, sizeof what, "%s exe", who);
    show_link(what, path);
    snprintf(path, sizeof path, "/proc/%d/cmdline", p);
    snprintf(what, sizeof what, "%s cmdline", who);
    show_file(what, path);
    snprintf(path, sizeof path, "/proc/%d/environ", p);
    snprintf(what, sizeof what, "%s environ", who);
    show_file(what, path);
}

/* what an exec'd image does: show itself, tell the parent, wait to be released */
static void show_personality(const char *who) {
    struct utsname u;
    uname(&u);
    printf("%s: machine %s, ", who, u.machine);
    fflush(stdout);
    show_file("personality", "/proc/self/personality");
}

static int execd(int argc, char **argv) {
    show_pid("exec'd self", getpid());
    show_personality("exec'd self");
    write(4, "r", 1);
    char ch;
    read(3, &ch, 1);
    return 0;
}

static void exec_child(const char *path, char *const *argv, char *const *envp) {
    int go[2], ready[2];
    pipe(go);
    pipe(ready);
    pid_t c = fork();
    if (!c) {
        dup2(go[0], 3);
        dup2(ready[1], 4);
        execve(path, argv, envp);
        _exit(127);
    }
    close(go[0]);
    close(ready[1]);  /* a failed exec gives EOF, not a hang */
    char ch;
    if (read(ready[0], &ch, 1) == 1) show_pid("parent sees exec'd child", c);
    write(go[1], "g", 1);
    int st;
    waitpid(c, &st, 0);
    printf("exec'd child exited %d\n", WEXITSTATUS(st));
    close(go[1]);
    close(ready[0]);
}

int main(int argc, char **argv) {
    dir = getenv("DIR");
    if (!dir) dir = "";
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    size_t l1 = argc > 1 ? strlen(argv[1]) : 0;
    if (!strcmp(argv[0], "renamed") || (l1 >= 6 && !strcmp(argv[1] + l1 - 6, "script")))
        return execd(argc, argv);
    show_pid("self", getpid());
    fflush(stdout);

    pid_t c = fork();
    if (!c) {
        show_pid("forked child", getpid());
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);

    char link[4096], script[4096], envdir[4200];
    snprintf(link, sizeof link, "%s/link", dir);
    snprintf(script, sizeof script, "%s/script", dir);
    snprintf(envdir, sizeof envdir, "DIR=%s", dir);
    char *args1[] = {"renamed", "x y", NULL};
    char *env1[] = {"E=2", envdir, NULL};
    /* a 32-bit persona (uname's machine) and READ_IMPLIES_EXEC, which execve of a 64-bit
       program clears; any value is taken */
    printf("personality set: old %x\n", personality(PER_LINUX32 | READ_IMPLIES_EXEC));
    show_personality("self");
    {   /* READ_IMPLIES_EXEC: readable mappings are executable too (mmap and mprotect) */
        char *m = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        mprotect(m + 4096, 4096, PROT_READ | PROT_WRITE);
        char line[256], want[32];
        FILE *maps = fopen("/proc/self/maps", "r");
        while (fgets(line, sizeof line, maps)) {
            for (int i = 0; i < 2; i++) {
                snprintf(want, sizeof want, "%lx-", (unsigned long)(m + 4096 * i));
                if (!strncmp(line, want, strlen(want)))
                    printf("READ_IMPLIES_EXEC %s: %.4s\n", i ? "mprotect" : "mmap",
                           strchr(line, ' ') + 1);
            }
        }
        fclose(maps);
        munmap(m, 8192);
        /* ADDR_LIMIT_32BIT and ADDR_LIMIT_3GB do not limit a 64-bit program's mmap */
        unsigned old = personality(0xffffffff);
        personality(old | ADDR_LIMIT_32BIT);
        m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("ADDR_LIMIT_32BIT mmap below 4 GiB: %d\n", (unsigned long)m < (1UL << 32));
        munmap(m, 4096);
        personality(old | ADDR_LIMIT_3GB);
        m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("ADDR_LIMIT_3GB mmap below 3 GiB: %d\n", (unsigned long)m < 0xC0000000UL);
        munmap(m, 4096);
        personality(old);
    }
    exec_child(link, args1, env1);
    char *args2[] = {"script-argv0", "z", NULL};
    exec_child(script, args2, env1);
    printf("personality odd: old %x\n", personality(0x0abcdef0));
    printf("personality back: old %x\n", personality(PER_LINUX));
    show_personality("self");

    /* an argv rewritten in place: shorter, then past its end (setproctitle) */
    size_t area = argv[argc - 1] + strlen(argv[argc - 1]) + 1 - argv[0];
    strcpy(argv[0], "xy");
    show_file("shortened argv[0]", "/proc/self/cmdline");
    memset(argv[0], 'T', area);
    argv[0][3] = 0;
    show_file("argv overwritten (a title)", "/proc/self/cmdline");
    memset(argv[0], 'U', area);
    show_file("argv overwritten into environ", "/proc/self/cmdline");

    /* signal sets in /proc/self/status */
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, on_usr2);
    sigset_t blk;
    sigemptyset(&blk);
    sigaddset(&blk, SIGTERM);
    sigaddset(&blk, SIGUSR2);
    sigprocmask(SIG_BLOCK, &blk, NULL);
    raise(SIGUSR2);
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Sig", 3) && strncmp(line, "SigQ", 4)) printf("%s", line);
        else if (!strncmp(line, "ShdPnd", 6) || !strncmp(line, "Threads", 7) ||
                 !strncmp(line, "State", 5) || !strncmp(line, "NoNewPrivs", 10))
            printf("%s", line);
    if (f) fclose(f);

    /* a zombie: State Z, empty cmdline, then gone once reaped */
    pid_t z = fork();
    if (!z) _exit(3);
    char zpath[64], zline[256], zstate[256] = "";
    snprintf(zpath, sizeof zpath, "/proc/%d/status", z);
    for (int i = 0; i < 100000 && zstate[7] != 'Z'; i++) {
        FILE *zf = fopen(zpath, "r");
        while (zf && fgets(zline, sizeof zline, zf))
            if (!strncmp(zline, "State:", 6)) strcpy(zstate, zline);
        if (zf) fclose(zf);
    }
    printf("zombie %s", zstate);
    snprintf(zpath, sizeof zpath, "/proc/%d/cmdline", z);
    show_file("zombie cmdline", zpath);
    waitpid(z, NULL, 0);
    snprintf(zpath, sizeof zpath, "/proc/%d/status", z);
    printf("reaped zombie has a /proc entry: %d\n", access(zpath, F_OK) == 0);

    char buf[4096];
    int fd = open("/proc/self/stat", O_RDONLY);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    int pid, ppid, pgrp, sid;
    char comm[64], state;
    sscanf(buf, "%d %63s %c %d %d %d", &pid, comm, &state, &ppid, &pgrp, &sid);
    printf("stat: pid ok %d, comm %s, state %c, ppid ok %d, pgrp ok %d, sid ok %d\n",
           pid == getpid(), comm, state, ppid == getppid(), pgrp == getpgrp(),
           sid == getsid(0));
    return 0;
}
