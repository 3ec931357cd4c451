/* POSIX message queues against Linux: open/create rules and errors, priority order, size
 * and mode errors, non-blocking and timed calls, attributes, notification by signal,
 * blocking receive woken by another process, restart under SA_RESTART, poll readiness,
 * the queue's file in the mqueue filesystem (argv[1]: where it is mounted), unlink while
 * open, another uid, SIGEV_THREAD (glibc's netlink helper thread; the raw call's cookie
 * and socket checks). Run natively in fresh IPC and mount namespaces. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <mqueue.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BAD ((void *)16)
#define R(label, expr) do { errno = 0; long r_ = (long)(expr); \
    printf("%s = %ld%s%s\n", label, r_, r_ < 0 ? " " : "", r_ < 0 ? strerrorname_np(errno) : ""); \
} while (0)

static volatile int got_sig, got_code, got_pid_ok, got_value;

static void on_sig(int s, siginfo_t *si, void *uc) {
    (void)uc;
    got_sig = s; got_code = si->si_code; got_pid_ok = si->si_pid > 1;
    got_value = si->si_value.sival_int;
}

static void on_usr1(int s) { (void)s; }

static int thread_pipe[2];

static void on_thread(union sigval v) {  /* SIGEV_THREAD: run by glibc in a new thread */
    int val = v.sival_int;
    write(thread_pipe[1], &val, sizeof val);
}

static void show_file(const char *dir, const char *name) {
    char path[128], line[256] = {0};
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) { printf("%s: %s\n", name, strerrorname_np(errno)); return; }
    fgets(line, sizeof line, f);
    fclose(f);  /* a close by the notification's owner also unregisters it, as in Linux */
    char *pid = strstr(line, "NOTIFY_PID:");
    if (pid) { pid += 11; *pid = atoi(pid) ? 'P' : '0'; pid[1] = 0; }  /* host pids differ */
    printf("%s: %s\n", name, line);
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IOLBF, 0);
    const char *dir = argc > 1 ? argv[1] : "/dev/mqueue";
    struct mq_attr a = {0, 4, 64, 0}, got;
    R("open missing", mq_open("/q", O_RDWR));
    R("open slash inside", mq_open("/a/b", O_RDWR | O_CREAT, 0600, &a));
    R("open empty", mq_open("/", O_RDWR | O_CREAT, 0600, &a));
    R("create accmode 3", mq_open("/acc3", 3 | O_CREAT, 0600, &a) >= 0);
    R("open existing accmode 3", mq_open("/acc3", 3 | O_CREAT, 0600, &a));
    R("unlink acc3", mq_unlink("/acc3"));
    struct mq_attr bad = {0, 0, 64, 0};
    R("open maxmsg 0", mq_open("/bad", O_RDWR | O_CREAT, 0600, &bad));
    bad.mq_maxmsg = 4; bad.mq_msgsize = -1;
    R("open msgsize -1", mq_open("/bad", O_RDWR | O_CREAT, 0600, &bad));
    R("open bad attr", mq_open("/bad", O_RDWR | O_CREAT, 0600, BAD));
    R("open bad name", syscall(SYS_mq_open, BAD, O_RDWR, 0, 0));
    mqd_t q = mq_open("/q", O_RDWR | O_CREAT | O_EXCL, 0640, &a);
    printf("opened %d\n", q >= 0);
    R("open excl again", mq_open("/q", O_RDWR | O_CREAT | O_EXCL, 0600, &a));
    mq_getattr(q, &got);
    printf("attr flags %ld maxmsg %ld msgsize %ld curmsgs %ld\n", got.mq_flags, got.mq_maxmsg,
           got.mq_msgsize, got.mq_curmsgs);
    mqd_t dflt = mq_open("/dflt", O_RDWR | O_CREAT, 0600, NULL);
    mq_getattr(dflt, &got);
    printf("default maxmsg %ld msgsize %ld\n", got.mq_maxmsg, got.mq_msgsize);
    mq_close(dflt);
    struct stat st;
    fstat(q, &st);
    printf("fstat mode %o size %ld\n", st.st_mode, (long)st.st_size);
    R("send 1 prio 1", mq_send(q, "one", 4, 1));
    R("send 2 prio 5", mq_send(q, "two", 4, 5));
    R("send 3 prio 1", mq_send(q, "three", 6, 1));
    R("send too big", mq_send(q, "x", 65, 0));
    R("send prio too high", mq_send(q, "x", 1, 40000));
    R("send EFAULT", mq_send(q, BAD, 10, 0));
    show_file(dir, "q");
    struct pollfd p = {q, POLLIN | POLLOUT, 0};
    poll(&p, 1, 0);
    printf("poll %x\n", p.revents);
    char buf[128];
    unsigned prio;
    R("receive small buffer", mq_receive(q, buf, 10, &prio));
    for (int i = 0; i < 3; i++) {
        long n = mq_receive(q, buf, sizeof buf, &prio);
        printf("received %ld '%s' prio %u\n", n, buf, prio);
    }
    poll(&p, 1, 0);
    printf("poll empty %x\n", p.revents);
    struct mq_attr nb = {O_NONBLOCK, 0, 0, 0}, old;
    R("setattr nonblock", mq_setattr(q, &nb, &old));
    printf("old flags %ld\n", old.mq_flags);
    R("receive empty nonblock", mq_receive(q, buf, sizeof buf, &prio));
    for (int i = 0; i < 4; i++) mq_send(q, "fill", 5, 0);
    R("send full nonblock", mq_send(q, "x", 1, 0));
    poll(&p, 1, 0);
    printf("poll full %x\n", p.revents);
    nb.mq_flags = 0;
    mq_setattr(q, &nb, 0);
    nb.mq_flags = O_RDWR;
    R("setattr bad flags", mq_setattr(q, &nb, 0));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 2000000;
    if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
    R("timedsend full", mq_timedsend(q, "x", 1, 0, &ts));
    struct timespec badts = {0, -1};
    R("timedsend bad timeout", mq_timedsend(q, "x", 1, 0, &badts));
    for (int i = 0; i < 4; i++) mq_receive(q, buf, sizeof buf, &prio);
    R("timedreceive past", mq_timedreceive(q, buf, sizeof buf, &prio, &ts));
    R("send on bad fd", mq_send(99, "x", 1, 0));
    R("send on a pipe", ({ int pp[2]; pipe(pp); mq_send(pp[0], "x", 1, 0); }));
    mqd_t ro = mq_open("/q", O_RDONLY);
    R("send on read-only", mq_send(ro, "x", 1, 0));
    mqd_t wo = mq_open("/q", O_WRONLY);
    R("receive on write-only", mq_receive(wo, buf, sizeof buf, &prio));
    /* notification */
    struct sigaction sa = {0};
    sa.sa_sigaction = on_sig;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &sa, 0);
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR2;
    ev.sigev_value.sival_int = 77;
    R("notify", mq_notify(q, &ev));
    show_file(dir, "q");
    R("notify again, after the close", mq_notify(q, &ev));
    R("notify busy", mq_notify(q, &ev));
    ev.sigev_notify = 99;
    R("notify bad kind", mq_notify(ro, &ev));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        R("child unregisters another's", mq_notify(q, NULL));
        mq_send(q, "wake", 5, 3);
        _exit(0);
    }
    waitpid(pid, 0, 0);
    printf("signal %d code %d pid-ok %d value %d\n", got_sig, got_code, got_pid_ok, got_value);
    show_file(dir, "q");
    mq_receive(q, buf, sizeof buf, &prio);
    ev.sigev_notify = SIGEV_NONE;
    R("notify none", mq_notify(q, &ev));
    show_file(dir, "q");
    R("unregister", mq_notify(q, NULL));
    /* SIGEV_THREAD: glibc passes a netlink socket and a cookie the kernel sends it */
    pipe(thread_pipe);
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = on_thread;
    ev.sigev_notify_attributes = NULL;
    ev.sigev_value.sival_int = 55;
    R("notify thread", mq_notify(q, &ev));
    R("notify thread busy", mq_notify(q, &ev));
    R("send to thread", mq_send(q, "thr", 4, 1));
    int tval = 0;
    R("thread ran", read(thread_pipe[0], &tval, sizeof tval));
    printf("thread value %d\n", tval);
    mq_receive(q, buf, sizeof buf, &prio);
    R("notify thread again", mq_notify(q, &ev));
    R("unregister thread", mq_notify(q, NULL));  /* the kernel sends NOTIFY_REMOVED */
    R("notify thread after removal", mq_notify(q, &ev));
    R("send to thread again", mq_send(q, "thr", 4, 1));
    R("thread ran again", read(thread_pipe[0], &tval, sizeof tval));
    printf("thread value %d\n", tval);
    mq_receive(q, buf, sizeof buf, &prio);
    {   /* the raw call's checks of the cookie and the socket */
        char cookie[32] = {0};
        struct sigevent raw = {0};
        raw.sigev_notify = SIGEV_THREAD;
        raw.sigev_value.sival_ptr = cookie;
        raw.sigev_signo = 999;
        R("raw thread bad fd", syscall(SYS_mq_notify, q, &raw));
        raw.sigev_signo = thread_pipe[0];
        R("raw thread not a socket", syscall(SYS_mq_notify, q, &raw));
        int us = socket(AF_UNIX, SOCK_DGRAM, 0);
        raw.sigev_signo = us;
        R("raw thread unix socket", syscall(SYS_mq_notify, q, &raw));
        int nl = socket(AF_NETLINK, SOCK_RAW, 0);
        raw.sigev_signo = nl;
        raw.sigev_value.sival_ptr = BAD;
        R("raw thread bad cookie", syscall(SYS_mq_notify, q, &raw));
        memcpy(cookie, "cookie", 6);
        raw.sigev_value.sival_ptr = cookie;
        R("raw thread", syscall(SYS_mq_notify, q, &raw));
        R("raw send", mq_send(q, "raw", 4, 1));
        char got[64] = {0};
        long n = recv(nl, got, sizeof got, 0);
        printf("raw cookie %ld '%s' last %d\n", n, got, got[31]);
        mq_receive(q, buf, sizeof buf, &prio);
        R("raw thread again", syscall(SYS_mq_notify, q, &raw));
        R("raw unregister", syscall(SYS_mq_notify, q, NULL));
        n = recv(nl, got, sizeof got, 0);
        printf("raw removed %ld '%s' last %d\n", n, got, got[31]);
        close(us);
        close(nl);
    }
    /* a blocked receive woken by another process, restarted after a handler */
    struct sigaction su = {0};
    su.sa_handler = on_usr1;
    su.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &su, 0);
    int ready[2];
    pipe(ready);
    fflush(stdout);
    pid_t parent = getpid();
    pid = fork();
    if (pid == 0) {
        char c;
        read(ready[0], &c, 1);
        usleep(20000);
        kill(parent, SIGUSR1);
        usleep(20000);
        mq_send(q, "late", 5, 9);
        _exit(0);
    }
    write(ready[1], "x", 1);
    long n = mq_receive(q, buf, sizeof buf, &prio);
    printf("blocking receive %ld '%s' prio %u\n", n, buf, prio);
    waitpid(pid, 0, 0);
    /* another uid */
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        setgid(1000); setuid(1000);
        R("other uid open rw", mq_open("/q", O_RDWR));
        R("other uid open wo", mq_open("/q", O_WRONLY));
        R("other uid unlink", mq_unlink("/q"));
        mqd_t mine = mq_open("/mine", O_RDWR | O_CREAT, 0600, &a);
        printf("other uid creates %d\n", mine >= 0);
        _exit(0);
    }
    waitpid(pid, 0, 0);
    fstat(mq_open("/mine", O_RDONLY), &st);
    printf("created by uid %d mode %o\n", st.st_uid, st.st_mode);
    /* unlink while open */
    R("unlink", mq_unlink("/q"));
    R("unlink again", mq_unlink("/q"));
    R("open unlinked", mq_open("/q", O_RDWR));
    R("still usable", mq_send(q, "after", 6, 0));
    n = mq_receive(q, buf, sizeof buf, &prio);
    printf("after unlink %ld '%s'\n", n, buf);
    show_file(dir, "q");
    R("unlink mine", mq_unlink("/mine"));
    R("unlink dflt", mq_unlink("/dflt"));
    /* files in the mqueue filesystem */
    char path[128];
    snprintf(path, sizeof path, "%s/byopen", dir);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    printf("open(O_CREAT) in fs %d\n", fd >= 0);
    mqd_t byopen = mq_open("/byopen", O_RDWR);
    mq_getattr(byopen, &got);
    printf("byopen maxmsg %ld msgsize %ld\n", got.mq_maxmsg, got.mq_msgsize);
    snprintf(path, sizeof path, "%s/sub", dir);
    R("mkdir in fs", mkdir(path, 0755));
    snprintf(path, sizeof path, "%s/byopen", dir);
    R("unlink in fs", unlink(path));
    R("open after fs unlink", mq_open("/byopen", O_RDWR));
    return 0;
}
