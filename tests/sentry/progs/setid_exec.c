/* execve of set-user-ID and set-group-ID programs, run as root: the program copies itself
 * into DIR with the set-id bits and owners under test, and children with lowered ids exec
 * the copies, which print the ids, capabilities and AT_SECURE they run with. Covers a
 * set-user-ID-root program run by uid 1000, a set-group-ID one (and one without group
 * execute, whose bit means mandatory locking), no_new_privs, a nosuid mount, a tracer
 * without and with CAP_SYS_PTRACE, and root
 * running a program set-user-ID to uid 1000; the personality flags an applied set-id bit
 * clears (PER_CLEAR_ON_SETID). usage: setid_exec DIR | setid_exec show. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[512];

static void show(void) {
    uid_t r, e, s;
    gid_t rg, eg, sg;
    getresuid(&r, &e, &s);
    getresgid(&rg, &eg, &sg);
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {0};
    syscall(SYS_capget, &h, d);
    printf("  uids %d/%d/%d gids %d/%d/%d eff %x prm %x secure %lu personality %x\n", r, e, s,
           rg, eg, sg, d[0].effective & 0x3ff, d[0].permitted & 0x3ff, getauxval(AT_SECURE),
           personality(0xffffffff));
    fflush(stdout);
}

static void copy(const char *self, const char *to, uid_t uid, gid_t gid, mode_t mode) {
    int in = open(self, O_RDONLY), out = open(to, O_CREAT | O_TRUNC | O_WRONLY, 0700);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        write(out, buf, n);
    close(in);
    close(out);
    chown(to, uid, gid);
    chmod(to, mode);
}

static char path[512];
static const char *at(const char *name) {
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static void run(const char *what, const char *prog, uid_t uid, gid_t gid, int nnp) {
    printf("%s\n", what);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
            perror("nnp");
        if (setresgid(gid, gid, gid) || setresuid(uid, uid, uid))
            perror("set ids");
        /* set-id bits that apply clear PER_CLEAR_ON_SETID (not UNAME26) */
        personality(ADDR_NO_RANDOMIZE | ADDR_COMPAT_LAYOUT | UNAME26);
        execl(prog, prog, "show", (char *)0);
        printf("  exec: %s\n", strerror(errno));
        _exit(1);
    }
    int st;
    waitpid(c, &st, 0);
}

/* uid 1000 traced by `tracer_uid` (dropped to it) runs `prog`: a tracer without
 * CAP_SYS_PTRACE makes the exec ignore the set-id bits (LSM_UNSAFE_PTRACE). */
static void traced_run(const char *what, const char *prog, uid_t tracer_uid) {
    printf("%s\n", what);
    fflush(stdout);
    pid_t a = fork();
    if (a == 0) {
        if (tracer_uid && (setresgid(3000, 3000, 3000) || setresuid(tracer_uid, tracer_uid,
                                                                    tracer_uid)))
            perror("tracer ids");
        pid_t c = fork();
        if (c == 0) {
            if (setresgid(3000, 3000, 3000) || setresuid(1000, 1000, 1000))
                perror("set ids");
            ptrace(PTRACE_TRACEME, 0, 0, 0);
            execl(prog, prog, "show", (char *)0);
            _exit(1);
        }
        int st;
        waitpid(c, &st, 0);  /* the SIGTRAP after the exec */
        ptrace(PTRACE_CONT, c, 0, 0);
        waitpid(c, &st, 0);
        _exit(0);
    }
    waitpid(a, NULL, 0);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "show")) {
        show();
        return 0;
    }
    if (argc < 2)
        return 2;
    snprintf(dir, sizeof dir, "%s", argv[1]);
    chmod(dir, 0755);
    copy(argv[0], at("suid"), 0, 0, 04755);
    copy(argv[0], at("sgid"), 0, 2000, 02755);
    copy(argv[0], at("sgid-nox"), 0, 2000, 02745);
    copy(argv[0], at("suid-1000"), 1000, 0, 04755);
    copy(argv[0], at("plain"), 0, 0, 0755);
    run("uid 1000 runs a plain program", at("plain"), 1000, 3000, 0);
    run("uid 1000 runs a set-user-ID-root program", at("suid"), 1000, 3000, 0);
    run("uid 1000 runs a set-group-ID-2000 program", at("sgid"), 1000, 3000, 0);
    run("uid 1000 runs set-group-ID without group execute", at("sgid-nox"), 1000, 3000, 0);
    run("uid 1000 with no_new_privs runs set-user-ID-root", at("suid"), 1000, 3000, 1);
    run("root runs a program set-user-ID to 1000", at("suid-1000"), 0, 0, 0);
    run("root runs it with no_new_privs", at("suid-1000"), 0, 0, 1);
    traced_run("uid 1000 traced by uid 1000 runs set-user-ID-root", at("suid"), 1000);
    traced_run("uid 1000 traced by root runs set-user-ID-root", at("suid"), 0);

    printf("a nosuid mount\n");
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        unshare(CLONE_NEWNS);
        mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL);
        char m[400];
        snprintf(m, sizeof m, "%s/m", dir);
        mkdir(m, 0755);
        if (mount("none", m, "tmpfs", MS_NOSUID, "mode=0755"))
            perror("mount");
        snprintf(dir, sizeof dir, "%s", m);
        copy(argv[0], at("suid"), 0, 0, 04755);
        run("uid 1000 runs set-user-ID-root there", at("suid"), 1000, 3000, 0);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    return 0;
}
