/* pidfd_open, pidfd_send_signal, pidfd_getfd, waitid(P_PIDFD), and poll/select/epoll on a
 * pidfd: readable once the process exits, hung up once it is reaped; PIDFD_NONBLOCK's
 * EAGAIN; signals with and without a siginfo; errors (EINVAL, EBADF, ESRCH, EPERM,
 * ECHILD, EFAULT). Same output natively and in the sandbox (no pids printed). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#define BAD ((void *)8)

static void show(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

static int pidfd_open(pid_t pid, unsigned flags) { return syscall(SYS_pidfd_open, pid, flags); }
static int pidfd_send_signal(int fd, int sig, siginfo_t *info, unsigned flags) {
    return syscall(SYS_pidfd_send_signal, fd, sig, info, flags);
}
static int pidfd_getfd(int fd, int target, unsigned flags) {
    return syscall(SYS_pidfd_getfd, fd, target, flags);
}

static int revents(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, 0);
    return n > 0 ? p.revents : n;
}

static void fdinfo_pid(int fd, pid_t want) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        int v;
        if (sscanf(line, "Pid:\t%d", &v) == 1)
            printf("  fdinfo Pid %s\n", v == want ? "ok" : v == -1 ? "-1" : "other");
    }
    if (f)
        fclose(f);
}

static volatile int got_sig, got_code, got_val;
static void handler(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got_sig = sig;
    got_code = si->si_code;
    got_val = si->si_value.sival_int;
}

static void *idle_thread(void *arg) {
    int *p = arg;
    char c;
    read(p[0], &c, 1);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int go[2], back[2];
    pipe(go);
    pipe(back);
    pid_t c = fork();
    if (c == 0) {
        char ch;
        write(back[1], "r", 1);
        read(go[0], &ch, 1);
        _exit(7);
    }
    char ch;
    read(back[0], &ch, 1);
    int fd = pidfd_open(c, 0);
    show("pidfd_open child", fd >= 0);
    printf("  cloexec %d fl %#x\n", fcntl(fd, F_GETFD), fcntl(fd, F_GETFL) & ~0100000);
    printf("  poll while running %#x\n", revents(fd));
    fdinfo_pid(fd, c);
    int nb = pidfd_open(c, PIDFD_NONBLOCK);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    show("  waitid nonblocking pidfd", waitid(P_PIDFD, nb, &si, WEXITED));
    show("  waitid nonblocking pidfd WNOHANG", waitid(P_PIDFD, nb, &si, WEXITED | WNOHANG));
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = 5}, out[2];
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    printf("  epoll ET while running %d\n", epoll_wait(ep, out, 2, 0));
    write(go[1], "g", 1);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, 5000);
    printf("  poll wait %d revents %#x\n", n, p.revents);
    n = epoll_wait(ep, out, 2, 5000);
    printf("  epoll ET exit %d events %#x\n", n, n > 0 ? out[0].events : 0);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(fd, &r);
    struct timeval tv = {0, 0};
    printf("  select %d\n", select(fd + 1, &r, NULL, NULL, &tv));
    fdinfo_pid(fd, c);
    show("  send to zombie", pidfd_send_signal(fd, SIGTERM, NULL, 0));
    memset(&si, 0, sizeof si);
    show("  waitid P_PIDFD", waitid(P_PIDFD, fd, &si, WEXITED));
    printf("  si_pid ok %d code %d status %d\n", si.si_pid == c, si.si_code, si.si_status);
    printf("  poll after reap %#x\n", revents(fd));
    fdinfo_pid(fd, c);
    show("  waitid again", waitid(P_PIDFD, fd, &si, WEXITED));
    show("  send after reap", pidfd_send_signal(fd, SIGTERM, NULL, 0));
    show("  getfd after reap", pidfd_getfd(fd, 0, 0));
    close(ep);
    close(fd);
    close(nb);

    printf("== signals\n");
    struct sigaction sa = {.sa_sigaction = handler, .sa_flags = SA_SIGINFO};
    sigaction(SIGUSR1, &sa, NULL);
    int self = pidfd_open(getpid(), 0);
    show(" send self", pidfd_send_signal(self, SIGUSR1, NULL, 0));
    printf("  got sig %d code %d\n", got_sig, got_code);
    memset(&si, 0, sizeof si);
    si.si_signo = SIGUSR1;
    si.si_code = SI_QUEUE;
    si.si_value.sival_int = 1234;
    show(" send self with info", pidfd_send_signal(self, SIGUSR1, &si, 0));
    printf("  got sig %d code %d val %d\n", got_sig, got_code, got_val);
    si.si_code = SI_USER;
    show(" send self SI_USER info", pidfd_send_signal(self, SIGUSR1, &si, 0));
    si.si_signo = SIGUSR2;
    show(" info signo mismatch", pidfd_send_signal(self, SIGUSR1, &si, 0));
    show(" bad info pointer", pidfd_send_signal(self, SIGUSR1, BAD, 0));
    show(" bad flags", pidfd_send_signal(self, SIGUSR1, NULL, 8));
    show(" two flags", pidfd_send_signal(self, SIGUSR1, NULL, 3));
    show(" bad signal", pidfd_send_signal(self, 99, NULL, 0));
    show(" signal 0", pidfd_send_signal(self, 0, NULL, 0));
    got_sig = 0;
    int procdir = open("/proc/self", O_DIRECTORY | O_RDONLY);
    show(" send via /proc/self dir", pidfd_send_signal(procdir, SIGUSR1, NULL, 0));
    printf("  got sig %d\n", got_sig);
    char taskdir[64];
    snprintf(taskdir, sizeof taskdir, "/proc/self/task/%d", getpid());
    int tdir = open(taskdir, O_DIRECTORY | O_RDONLY);
    show(" send via /proc/self/task/TID dir", pidfd_send_signal(tdir, SIGUSR1, NULL, 0));
    int rootdir = open("/proc", O_DIRECTORY | O_RDONLY);
    show(" send via /proc dir", pidfd_send_signal(rootdir, SIGUSR1, NULL, 0));
    show(" waitid P_PIDFD on a /proc dir", waitid(P_PIDFD, procdir, &si, WEXITED));
    close(procdir);
    close(tdir);
    close(rootdir);
    show(" on a pipe", pidfd_send_signal(go[0], SIGUSR1, NULL, 0));
    show(" on a bad fd", pidfd_send_signal(999, SIGUSR1, NULL, 0));
    c = fork();
    if (c == 0) {
        pause();
        _exit(0);
    }
    fd = pidfd_open(c, 0);
    si.si_signo = SIGTERM;
    si.si_code = SI_QUEUE;
    show(" SI_QUEUE info to another process", pidfd_send_signal(fd, SIGTERM, &si, 0));
    si.si_code = SI_USER;
    show(" SI_USER info to another process", pidfd_send_signal(fd, SIGTERM, &si, 0));
    show(" SIGTERM to child", pidfd_send_signal(fd, SIGTERM, NULL, 0));
    int st;
    waitpid(c, &st, 0);
    printf("  child killed by %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    close(fd);

    printf("== getfd\n");
    int tp[2];
    pipe(tp);
    c = fork();
    if (c == 0) {
        int q[2];
        pipe(q);  /* q[0], q[1] after tp's */
        write(q[1], "secret", 6);
        ch = (char)q[0];
        write(back[1], &ch, 1);
        read(go[0], &ch, 1);
        _exit(0);
    }
    read(back[0], &ch, 1);
    fd = pidfd_open(c, 0);
    int q0 = ch;
    int g = pidfd_getfd(fd, q0, 0);
    show(" pidfd_getfd", g >= 0);
    char buf[16] = {0};
    read(g, buf, 6);
    printf("  read %s cloexec %d\n", buf, fcntl(g, F_GETFD));
    show(" getfd bad flags", pidfd_getfd(fd, q0, 1));
    show(" getfd closed target fd", pidfd_getfd(fd, 900, 0));
    show(" getfd on a pipe", pidfd_getfd(go[0], 0, 0));
    write(go[1], "g", 1);
    waitpid(c, NULL, 0);
    close(fd);

    printf("== CLONE_PIDFD\n");
    int cfd = -1;
    long rc = syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, 0, &cfd, 0, 0);
    if (rc == 0)
        _exit(5);
    printf(" clone pidfd ok %d cloexec %d\n", cfd >= 0, fcntl(cfd, F_GETFD));
    struct pollfd cp = {.fd = cfd, .events = POLLIN};
    printf(" poll %d\n", poll(&cp, 1, 5000));
    memset(&si, 0, sizeof si);
    waitid(P_PIDFD, cfd, &si, WEXITED);
    printf(" waitid status %d pid ok %d\n", si.si_status, si.si_pid == rc);
    close(cfd);
    struct {
        unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack,
            stack_size, tls, set_tid, set_tid_size, cgroup;
    } ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_PIDFD;
    ca.pidfd = (unsigned long long)(unsigned long)&cfd;
    ca.exit_signal = SIGCHLD;
    cfd = -1;
    rc = syscall(SYS_clone3, &ca, sizeof ca);
    if (rc == 0)
        _exit(6);
    memset(&si, 0, sizeof si);
    waitid(P_PIDFD, cfd, &si, WEXITED);
    printf(" clone3 pidfd ok %d waitid status %d\n", cfd >= 0, si.si_status);
    close(cfd);
    int ptid = 0;
    show(" clone PIDFD|PARENT_SETTID", syscall(SYS_clone, CLONE_PIDFD | CLONE_PARENT_SETTID | SIGCHLD, 0, &ptid, 0, 0));
    show(" clone PIDFD|DETACHED", syscall(SYS_clone, CLONE_PIDFD | CLONE_DETACHED | SIGCHLD, 0, &ptid, 0, 0));
    ca.pidfd = 8;
    rc = syscall(SYS_clone3, &ca, sizeof ca);
    if (rc == 0)
        _exit(0);
    show(" clone3 bad pidfd pointer", rc);
    int fds_before = dup(0);
    close(fds_before);
    printf(" no fd left behind %d\n", dup(0) == fds_before);

    printf("== errors\n");
    show(" open pid 0", pidfd_open(0, 0));
    show(" open pid -1", pidfd_open(-1, 0));
    show(" open bad flags", pidfd_open(getpid(), 1));
    show(" open no such pid", pidfd_open(4000000, 0));
    pthread_t th;
    int tpipe[2];
    pipe(tpipe);
    pthread_create(&th, NULL, idle_thread, tpipe);
    usleep(10000);
    pid_t tid = 0;
    /* find the thread's tid through /proc/self/task */
    char path[64];
    for (pid_t x = getpid() + 1; x < getpid() + 100000 && !tid; x++) {
        snprintf(path, sizeof path, "/proc/self/task/%d", x);
        if (!access(path, F_OK))
            tid = x;
    }
    show(" open a non-leader thread", pidfd_open(tid, 0));
    write(tpipe[1], "x", 1);
    pthread_join(th, NULL);
    c = fork();
    if (c == 0)
        _exit(0);
    waitpid(c, NULL, 0);
    show(" open a reaped child", pidfd_open(c, 0));
    show(" waitid P_PIDFD on a pipe", waitid(P_PIDFD, go[0], &si, WEXITED));
    show(" waitid P_PIDFD on a bad fd", waitid(P_PIDFD, 999, &si, WEXITED));
    show(" waitid P_PIDFD -1", waitid(P_PIDFD, -1, &si, WEXITED));
    show(" waitid P_PIDFD on self", waitid(P_PIDFD, self, &si, WEXITED));
    return 0;
}
