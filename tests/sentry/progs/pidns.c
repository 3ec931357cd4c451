/* PID namespaces made by unshare(2) and clone(2), run as root: the first child is pid 1
 * of the new namespace and its parent 0; ids inside (getpid, getppid, gettid, getpgid,
 * getsid, fork's return, wait's, siginfo's si_pid, tgkill) are the namespace's and the
 * parent's view (fork, wait, waitid's si_pid) its own; a second unshare before the fork
 * EINVAL; a proc mounted inside lists only the namespace's processes (self, stat,
 * status's NSpid, task/); an orphan goes to the namespace's init (with its parent-death
 * signal); the init ignores signals it has no handler for from inside (SIGTERM, SIGKILL;
 * and the SIGKILL of its own POSIX timer, mqueue notification and F_SETSIG, which the kernel
 * raises unforced) and from the parent (SIGTERM), handles those it has a handler for, dies of SIGKILL
 * from the parent, and takes every other process of the namespace with it; then fork
 * into the dead namespace is ENOMEM. clone(CLONE_NEWPID) and CLONE_NEWPID|CLONE_THREAD.
 * SysV IPC pids (shm_cpid/lpid, msg_lspid, GETPID, /proc/sysvipc) and a pidfd's fdinfo
 * (Pid, NSpid through the outer and the inner proc) in each side's numbers. setns into a
 * pid namespace by a /proc/PID/ns/pid file and by a pidfd (the next fork's child is in
 * it), and its errors (wrong type, an ancestor, no CAP_SYS_ADMIN, a reaped pidfd, bad
 * flags, not a namespace file), and a fork after joining a dead namespace.
 * usage: pidns DIR (a scratch directory, for the inner proc mount). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char procdir[300];
static int to_parent[2], to_init[2];
static int shmid, msqid, semid, parent_pidfd;
static pid_t me;
static void init_ipc_and_pidfds(void);

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static void res(const char *what, long r) {
    if (r < 0)
        say("%s = -1 %s\n", what, strerror(errno));
    else
        say("%s = %ld\n", what, r);
}

static volatile sig_atomic_t got_usr1;
static void on_usr1(int s) { (void)s; got_usr1++; }

static void list_proc(void) {
    DIR *d = opendir(procdir);
    if (!d) {
        say("opendir: %s\n", strerror(errno));
        return;
    }
    int pids[64], n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
            pids[n++] = atoi(e->d_name);
    closedir(d);
    for (int i = 0; i < n; i++)  /* sorted, small */
        for (int j = i + 1; j < n; j++)
            if (pids[j] < pids[i]) { int x = pids[i]; pids[i] = pids[j]; pids[j] = x; }
    say("inner proc lists:");
    for (int i = 0; i < n; i++)
        say(" %d", pids[i]);
    say("\n");
}

static void show_file(const char *rel, const char *key) {
    char path[400], line[512];
    snprintf(path, sizeof path, "%s/%s", procdir, rel);
    FILE *f = fopen(path, "r");
    if (!f) {
        say("%s: %s\n", rel, strerror(errno));
        return;
    }
    while (fgets(line, sizeof line, f))
        if (!key || !strncmp(line, key, strlen(key)))
            say("%s: %s", rel, line);
    fclose(f);
}

/* the number of fields of NSpid in the host-level /proc's view of this process */
static int outer_nspid_levels(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "NSpid:", 6))
            for (char *p = strtok(line + 6, " \t\n"); p; p = strtok(NULL, " \t\n"))
                n++;
    if (f)
        fclose(f);
    return n;
}

static int outer_pid(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[512];
    int pid = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "NSpid:", 6))
            pid = atoi(line + 6);
    if (f)
        fclose(f);
    return pid;
}

static void grandchild(void) {
    say("grandchild: getpid %d getppid %d gettid %ld getpgid %d getsid %d\n", getpid(),
        getppid(), syscall(SYS_gettid), getpgid(0), getsid(0));
    /* from inside, the init without a handler ignores SIGTERM and SIGKILL */
    res("grandchild: kill(1, SIGTERM)", kill(1, SIGTERM));
    res("grandchild: kill(1, SIGKILL)", kill(1, SIGKILL));
    res("grandchild: kill(99, 0)", kill(99, 0));
    /* an orphan: its child goes to the init and gets its parent-death signal */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int p[2];
    pipe(p);
    pid_t gg = fork();
    if (gg == 0) {
        prctl(PR_SET_PDEATHSIG, SIGUSR2);
        write(p[1], "r", 1);
        siginfo_t si;
        int s = sigwaitinfo(&set, &si);
        say("orphan: signal %s, si_pid %d, getppid %d\n", s == SIGUSR2 ? "SIGUSR2" : "?",
            si.si_pid, getppid());
        _exit(0);
    }
    char c;
    read(p[0], &c, 1);
    say("grandchild: forked %d, exits\n", gg);
    _exit(5);
}

/* SIGKILL the kernel raises on the init's own behalf, caused inside its namespace: a
 * POSIX timer's, an mqueue notification's, F_SETSIG's; each is dropped (not forced) */
static void kernel_kills(void) {
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGKILL;
    timer_t tid;
    res("init: timer_create(SIGKILL)", timer_create(CLOCK_MONOTONIC, &sev, &tid));
    struct itimerspec its = {{0, 0}, {0, 1000}}, left;
    res("init: timer_settime", timer_settime(tid, 0, &its, NULL));
    do  /* until it expired */
        timer_gettime(tid, &left);
    while (left.it_value.tv_sec || left.it_value.tv_nsec);
    say("init: alive after its timer's SIGKILL\n");
    timer_delete(tid);
    char name[64];
    snprintf(name, sizeof name, "/pidns-init-%d", outer_pid());
    struct mq_attr attr = {.mq_maxmsg = 4, .mq_msgsize = 16};
    mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
    res("init: mq_notify(SIGKILL)", mq_notify(q, &sev));
    res("init: mq_send", mq_send(q, "x", 1, 0));
    say("init: alive after its queue's SIGKILL\n");
    mq_close(q);
    mq_unlink(name);
    int p[2];
    pipe(p);
    fcntl(p[0], F_SETOWN, getpid());
    res("init: F_SETSIG(SIGKILL)", fcntl(p[0], F_SETSIG, SIGKILL));
    fcntl(p[0], F_SETFL, O_ASYNC | O_NONBLOCK);
    res("init: write to its O_ASYNC pipe", write(p[1], "x", 1));
    say("init: alive after its descriptor's SIGKILL\n");
    close(p[0]);
    close(p[1]);
}

/* its namespace's pid_max: PID_MAX_LIMIT in a new one; root sets it within
 * [301, PID_MAX_LIMIT]; fork's numbers then start again above 300 once past it */
static void pid_max_wraps(void) {
    char buf[32] = {0};
    int fd = open("/proc/sys/kernel/pid_max", O_RDWR);
    pread(fd, buf, sizeof buf - 1, 0);
    say("init: pid_max %s", buf);
    res("init: pid_max = 300", pwrite(fd, "300\n", 4, 0));
    res("init: pid_max = 4194305", pwrite(fd, "4194305\n", 8, 0));
    res("init: pid_max = 301", pwrite(fd, "301\n", 4, 0));
    memset(buf, 0, sizeof buf);
    int fd2 = open("/proc/sys/kernel/pid_max", O_RDONLY);
    read(fd2, buf, sizeof buf - 1);
    close(fd2);
    say("init: pid_max now %s", buf);
    pid_t prev = 0, p;
    int n = 0;
    for (;;) {
        p = vfork();
        if (p == 0)
            _exit(0);
        waitpid(p, NULL, 0);
        n++;
        if (p <= prev || n > 1000)
            break;
        prev = p;
    }
    say("init: %d forks, the last numbered %d, then %d\n", n, prev, p);
    res("init: pid_max = 4194304", pwrite(fd, "4194304\n", 8, 0));
    close(fd);
}

static void init_main(void) {
    say("init: getpid %d getppid %d gettid %ld getpgid %d getsid %d getpgrp %d\n", getpid(),
        getppid(), syscall(SYS_gettid), getpgid(0), getsid(0), getpgrp());
    say("init: outer NSpid levels %d\n", outer_nspid_levels());
    res("init: kill(getpid(), SIGTERM)", kill(getpid(), SIGTERM));
    say("init: still here\n");
    kernel_kills();
    /* a handled signal from itself by its namespace's numbers */
    signal(SIGUSR1, on_usr1);
    res("init: tgkill(1, 1, SIGUSR1)", syscall(SYS_tgkill, 1, 1, SIGUSR1));
    say("init: handler ran %d\n", (int)got_usr1);
    /* a proc of its own */
    res("init: mount proc", mount("proc", procdir, "proc", 0, NULL));
    init_ipc_and_pidfds();
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int gate[2];
    pipe(gate);
    pid_t g = fork();
    if (g == 0) {
        close(gate[1]);
        char c;
        read(gate[0], &c, 1);
        grandchild();
    }
    say("init: fork returned %d\n", g);
    list_proc();
    char self[64] = {0};
    char selfpath[400];
    snprintf(selfpath, sizeof selfpath, "%s/self", procdir);
    readlink(selfpath, self, sizeof self - 1);
    say("init: inner proc self -> %s\n", self);
    char rel[64];
    snprintf(rel, sizeof rel, "%d/status", g);
    show_file(rel, "NSpid:");
    show_file(rel, "PPid:");
    show_file("1/status", "NSpid:");
    show_file("1/status", "PPid:");
    snprintf(rel, sizeof rel, "%d/stat", g);
    char path[400], line[512];
    snprintf(path, sizeof path, "%s/%s", procdir, rel);
    FILE *f = fopen(path, "r");
    if (f && fgets(line, sizeof line, f)) {
        int pid, ppid, pgrp, sid;
        char comm[64], st;
        sscanf(line, "%d %63s %c %d %d %d", &pid, comm, &st, &ppid, &pgrp, &sid);
        say("init: stat of %d: pid %d ppid %d pgrp %d session %d\n", g, pid, ppid, pgrp, sid);
    }
    if (f)
        fclose(f);
    snprintf(rel, sizeof rel, "%d/task", g);
    snprintf(path, sizeof path, "%s/%s", procdir, rel);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            say("init: task of %d: %s\n", g, e->d_name);
    if (d)
        closedir(d);
    write(gate[1], "g", 1);
    /* the grandchild exits: SIGCHLD names it by the namespace's number; then the
       orphan, reparented to us, exits too */
    siginfo_t si;
    sigwaitinfo(&chld, &si);
    int st, st2;
    pid_t wg = waitpid(g, &st, 0);
    pid_t w = wait(&st2);  /* after the orphan printed its line */
    say("init: SIGCHLD si_pid %d (grandchild %d)\n", si.si_pid, g);
    say("init: waitpid(grandchild) = %d, exit %d\n", wg, WEXITSTATUS(st));
    say("init: reaped orphan %d exit %d\n", w, WEXITSTATUS(st2));
    pid_max_wraps();
    /* a last child that only the end of the namespace ends */
    int lp[2];
    pipe(lp);
    pid_t last = fork();
    if (last == 0) {
        int op = outer_pid();
        write(lp[1], &op, sizeof op);
        for (;;)
            pause();
    }
    int op;
    read(lp[0], &op, sizeof op);
    write(to_parent[1], &op, sizeof op);
    write(to_parent[1], &last, sizeof last);
    /* the parent's SIGTERM (no handler) is ignored; the token comes after it */
    char c;
    read(to_init[0], &c, 1);
    say("init: alive after the parent's SIGTERM\n");
    write(to_parent[1], "k", 1);
    for (;;)
        pause();
}

static int child_fn(void *arg) {
    (void)arg;
    say("clone child: getpid %d getppid %d\n", getpid(), getppid());
    return 7;
}

/* columns `a` and `b` (from 0) of the /proc/sysvipc/NAME line of object `id` */
static void sysvipc_cols(const char *proc, const char *name, int id, int a, int b,
                         long *va, long *vb) {
    char path[400], line[512];
    snprintf(path, sizeof path, "%s/sysvipc/%s", proc, name);
    *va = *vb = -2;
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        long v[8];
        if (sscanf(line, "%ld %ld %lo %ld %ld %ld %ld", &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6]) == 7 && v[1] == id) {
            *va = v[a];
            *vb = v[b];
        }
    }
    if (f)
        fclose(f);
}

/* the Pid and NSpid lines of fdinfo `fd` of this process through proc `proc`, as numbers */
static int pidfd_info(const char *proc, int fd, long *pid, long ns[4]) {
    char path[400], line[512];
    snprintf(path, sizeof path, "%s/self/fdinfo/%d", proc, fd);
    FILE *f = fopen(path, "r");
    int n = 0;
    *pid = -9;
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Pid:", 4))
            *pid = atol(line + 4);
        if (!strncmp(line, "NSpid:", 6))
            for (char *p = strtok(line + 6, " \t\n"); p && n < 4; p = strtok(NULL, " \t\n"))
                ns[n++] = atol(p);
    }
    if (f)
        fclose(f);
    return n;
}

/* the init's view: the pids of SysV objects it used and of pidfds */
static void init_ipc_and_pidfds(void) {
    void *at = shmat(shmid, NULL, 0);
    shmdt(at);
    struct { long type; char text[4]; } m = {1, "x"};
    msgsnd(msqid, &m, 1, 0);
    struct sembuf op = {0, 1, 0};
    semop(semid, &op, 1);
    struct shmid_ds sd;
    struct msqid_ds qd;
    shmctl(shmid, IPC_STAT, &sd);
    msgctl(msqid, IPC_STAT, &qd);
    say("init: shm cpid %d lpid %d, msg lspid %d lrpid %d, sem pid %d\n", sd.shm_cpid,
        sd.shm_lpid, qd.msg_lspid, qd.msg_lrpid, semctl(semid, 0, GETPID));
    const char *procs[2] = {"/proc", procdir};
    for (int i = 0; i < 2; i++) {
        long a, b;
        sysvipc_cols(procs[i], "shm", shmid, 4, 5, &a, &b);
        say("init: %s sysvipc/shm cpid %ld lpid %ld\n", i ? "inner" : "outer", a, b);
        sysvipc_cols(procs[i], "msg", msqid, 5, 6, &a, &b);
        say("init: %s sysvipc/msg lspid %ld lrpid %ld\n", i ? "inner" : "outer", a, b);
    }
    int selffd = syscall(SYS_pidfd_open, getpid(), 0);
    int outer_me = outer_pid();
    for (int i = 0; i < 2; i++) {
        long pid, ns[4];
        int n = pidfd_info(procs[i], selffd, &pid, ns);
        say("init: %s fdinfo of its own pidfd: Pid %s, NSpid %d fields, first %s last %ld\n",
            i ? "inner" : "outer", pid == 1 ? "1" : pid == outer_me ? "outer" : "?", n,
            n && ns[0] == pid ? "Pid" : "?", n ? ns[n - 1] : -9);
        n = pidfd_info(procs[i], parent_pidfd, &pid, ns);
        say("init: %s fdinfo of the parent's pidfd: Pid %s, NSpid %d fields %ld\n",
            i ? "inner" : "outer", pid == me ? "parent" : pid == 0 ? "0" : "?", n,
            n == 1 ? (ns[0] == me ? 1 : ns[0]) : -9);
    }
    close(selffd);
}

/* the parent's view of the same, with the init named by `init` */
static void parent_ipc_and_pidfds(pid_t init) {
    struct shmid_ds sd;
    struct msqid_ds qd;
    shmctl(shmid, IPC_STAT, &sd);
    msgctl(msqid, IPC_STAT, &qd);
    say("parent: shm cpid is its own %d, lpid the init's %d, msg lspid the init's %d, "
        "sem pid the init's %d\n", sd.shm_cpid == getpid(), sd.shm_lpid == init,
        qd.msg_lspid == init, semctl(semid, 0, GETPID) == init);
    long a, b;
    sysvipc_cols("/proc", "shm", shmid, 4, 5, &a, &b);
    say("parent: sysvipc/shm cpid its own %d lpid the init's %d\n", a == getpid(), b == init);
    sysvipc_cols("/proc", "msg", msqid, 5, 6, &a, &b);
    say("parent: sysvipc/msg lspid the init's %d lrpid %ld\n", a == init, b);
    int fd = syscall(SYS_pidfd_open, init, 0);
    long pid, ns[4];
    int n = pidfd_info("/proc", fd, &pid, ns);
    say("parent: fdinfo of the init's pidfd: Pid the init's %d, NSpid %d fields: %d %ld\n",
        pid == init, n, n > 0 && ns[0] == init, n > 1 ? ns[1] : -9);
    close(fd);
    shmctl(shmid, IPC_RMID, NULL);
    msgctl(msqid, IPC_RMID, NULL);
    semctl(semid, 0, IPC_RMID);
}

static int holder_fn(void *arg) {
    char c;
    read(*(int *)arg, &c, 1);
    return 0;
}

static void readlink_same(const char *what, const char *a, const char *b) {
    char x[64] = {0}, y[64] = {0};
    long r1 = readlink(a, x, sizeof x - 1), r2 = readlink(b, y, sizeof y - 1);
    say("%s: %s\n", what, r1 < 0 || r2 < 0 ? strerror(errno) : strcmp(x, y) ? "no" : "yes");
}

/* fork a child that reports its ids (and, inside `nsfd`'s namespace, setns back up) */
static void fork_report(const char *what, int rootfd, int nsfd) {
    fflush(stdout);
    pid_t c = fork();
    if (c < 0) {
        say("%s: fork = -1 %s\n", what, strerror(errno));
        return;
    }
    if (c == 0) {
        say("%s: child getpid %d getppid %d\n", what, getpid(), getppid());
        if (rootfd >= 0) {
            res("  child: setns(ancestor's ns)", setns(rootfd, CLONE_NEWPID));
            res("  child: setns(its own ns)", setns(nsfd, CLONE_NEWPID));
        }
        _exit(0);
    }
    int st;
    res("  waitpid is fork's", waitpid(c, &st, 0) == c);
}

static void setns_cases(pid_t dead_init_unused, int deadfd, int dead_pidfd) {
    (void)dead_init_unused;
    static char stack[65536];
    int rootfd = open("/proc/self/ns/pid", O_RDONLY);
    res("setns(bad fd)", setns(-1, CLONE_NEWPID));
    res("setns(a regular file)", setns(open("/proc/self/status", O_RDONLY), 0));
    res("setns(own ns, CLONE_NEWUTS)", setns(rootfd, CLONE_NEWUTS));
    res("setns(own ns, CLONE_NEWPID)", setns(rootfd, CLONE_NEWPID));
    readlink_same("pid_for_children is its own again", "/proc/self/ns/pid",
                  "/proc/self/ns/pid_for_children");
    int gate[2];
    pipe(gate);
    pid_t h = clone(holder_fn, stack + sizeof stack, CLONE_NEWPID | SIGCHLD, &gate[0]);
    res("clone(CLONE_NEWPID) after setns back", h > 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/pid", h);
    int nsfd = open(path, O_RDONLY);
    int pfd = syscall(SYS_pidfd_open, h, 0);
    res("setns(ns file, 0)", setns(nsfd, 0));
    readlink_same("pid_for_children is the holder's", path, "/proc/self/ns/pid_for_children");
    readlink_same("pid is still its own", "/proc/self/ns/pid", "/proc/self/ns/pid_for_children");
    res("clone(CLONE_THREAD) with another pid_for_children",
        clone(child_fn, stack + sizeof stack, CLONE_THREAD | CLONE_SIGHAND | CLONE_VM, NULL));
    fork_report("after setns by file", rootfd, nsfd);
    res("setns(own ns) again", setns(rootfd, 0));
    res("setns(pidfd, 0)", setns(pfd, 0));
    res("setns(pidfd, bad flag)", setns(pfd, CLONE_NEWPID | 1));
    res("setns(pidfd, CLONE_NEWUSER)", setns(pfd, CLONE_NEWPID | CLONE_NEWUSER));
    res("setns(pidfd, CLONE_NEWPID|CLONE_NEWUTS|CLONE_NEWIPC)",
        setns(pfd, CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC));
    readlink_same("pid_for_children is the holder's", path, "/proc/self/ns/pid_for_children");
    fork_report("after setns by pidfd", -1, -1);
    res("setns(uts ns file, CLONE_NEWUTS)",
        setns(open("/proc/self/ns/uts", O_RDONLY), CLONE_NEWUTS));
    fflush(stdout);
    pid_t u = fork();
    if (u == 0) {
        setresgid(65534, 65534, 65534);
        setresuid(65534, 65534, 65534);
        res("unprivileged: setns(ns file)", setns(nsfd, CLONE_NEWPID));
        res("unprivileged: setns(pidfd)", setns(pfd, CLONE_NEWPID));
        _exit(0);
    }
    waitpid(u, NULL, 0);
    res("setns(the dead namespace's file)", setns(deadfd, CLONE_NEWPID));
    fork_report("after joining the dead namespace", -1, -1);
    res("setns(a reaped process's pidfd)", setns(dead_pidfd, CLONE_NEWPID));
    write(gate[1], "x", 1);
    int st;
    res("holder reaped", waitpid(h, &st, 0) == h);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: pidns DIR\n");
        return 2;
    }
    snprintf(procdir, sizeof procdir, "%s/proc", argv[1]);
    mkdir(procdir, 0755);
    me = getpid();
    /* clone(CLONE_NEWPID) straight away; and with CLONE_THREAD */
    static char stack[65536];
    pid_t c2 = clone(child_fn, stack + sizeof stack, CLONE_NEWPID | SIGCHLD, NULL);
    if (c2 < 0)
        say("clone(CLONE_NEWPID) = -1 %s\n", strerror(errno));
    int st = 0;
    res("parent: waitpid(clone child) is clone's", waitpid(c2, &st, 0) == c2 ? 1 : 0);
    say("parent: clone child exit %d\n", WEXITSTATUS(st));
    res("clone(CLONE_NEWPID|CLONE_THREAD)",
        clone(child_fn, stack + sizeof stack,
              CLONE_NEWPID | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM, NULL));
    res("unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS));
    res("mount private", mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
    res("unshare(CLONE_NEWIPC)", unshare(CLONE_NEWIPC));
    shmid = shmget(IPC_PRIVATE, 4096, 0600);
    msqid = msgget(IPC_PRIVATE, 0600);
    semid = semget(IPC_PRIVATE, 1, 0600);
    parent_pidfd = syscall(SYS_pidfd_open, getpid(), 0);
    char ns0[64] = {0}, nsc[64] = {0};
    readlink("/proc/self/ns/pid", ns0, sizeof ns0 - 1);
    readlink("/proc/self/ns/pid_for_children", nsc, sizeof nsc - 1);
    say("parent: pid_for_children is its own before unshare: %s\n", strcmp(ns0, nsc) ? "no" : "yes");
    res("unshare(CLONE_NEWPID)", unshare(CLONE_NEWPID));
    res("parent: readlink pid_for_children before the first child",
        readlink("/proc/self/ns/pid_for_children", nsc, sizeof nsc - 1));
    say("parent: getpid unchanged %s\n", getpid() == me ? "yes" : "no");
    res("unshare(CLONE_NEWPID) again", unshare(CLONE_NEWPID));
    pipe(to_parent);
    pipe(to_init);
    pid_t init = fork();
    if (init == 0)
        init_main();
    pid_t outer_last;
    read(to_parent[0], &outer_last, sizeof outer_last);
    pid_t last;
    read(to_parent[0], &last, sizeof last);
    say("parent: last child is %d inside\n", last);
    parent_ipc_and_pidfds(init);
    char deadpath[64];
    snprintf(deadpath, sizeof deadpath, "/proc/%d/ns/pid", init);
    int deadfd = open(deadpath, O_RDONLY);
    int dead_pidfd = syscall(SYS_pidfd_open, init, 0);
    /* the init now waits for the parent: nothing else prints meanwhile */
    say("parent: fork returned a pid of its own namespace %s\n", init != 1 ? "yes" : "no");
    char nsi[64] = {0}, path[64];
    memset(nsc, 0, sizeof nsc);
    readlink("/proc/self/ns/pid_for_children", nsc, sizeof nsc - 1);
    snprintf(path, sizeof path, "/proc/%d/ns/pid", init);
    readlink(path, nsi, sizeof nsi - 1);
    say("parent: the child's pid namespace is its pid_for_children: %s, not its own: %s\n",
        strcmp(nsi, nsc) ? "no" : "yes", strcmp(nsi, ns0) ? "yes" : "no");
    res("parent: kill(init, SIGTERM)", kill(init, SIGTERM));
    write(to_init[1], "t", 1);
    char c;
    read(to_parent[0], &c, 1);
    res("parent: kill(init, SIGKILL)", kill(init, SIGKILL));
    siginfo_t si;
    memset(&si, 0, sizeof si);
    res("parent: waitid(init)", waitid(P_PID, init, &si, WEXITED));
    say("parent: si_pid is fork's %s, code %d status %d\n", si.si_pid == init ? "yes" : "no",
        si.si_code, si.si_status);
    errno = 0;
    say("parent: last child after init's end: %s\n",
        kill(outer_last, 0) < 0 ? strerror(errno) : "alive");
    res("parent: fork into the dead namespace", fork());
    res("parent: clone(CLONE_NEWPID) after unshare",
        clone(child_fn, stack + sizeof stack, CLONE_NEWPID | SIGCHLD, NULL));
    setns_cases(init, deadfd, dead_pidfd);
    return 0;
}
