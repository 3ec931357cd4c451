/* signalfd and signalfd4: reading blocked pending signals as signalfd_siginfo records,
 * non-blocking EAGAIN, blocking reads woken by another process, updating the mask, SIGCHLD
 * and sigqueue fields, poll/select/epoll readiness, per-thread pending signals, EINTR and
 * errors. The output must be the same natively and in the sandbox (no pids printed). */
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
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

static pid_t me;

static void record(const struct signalfd_siginfo *s, pid_t from) {
    printf("    signo %u code %d pid %s uid %u status %d int %d ptr %llu errno %d\n",
           s->ssi_signo, s->ssi_code,
           (pid_t)s->ssi_pid == from ? "ok" : (s->ssi_pid ? "other" : "0"), s->ssi_uid,
           s->ssi_status, s->ssi_int, (unsigned long long)s->ssi_ptr, s->ssi_errno);
}

static int read_show(int fd, int max, pid_t from) {
    struct signalfd_siginfo s[8];
    long n = read(fd, s, sizeof(s[0]) * max);
    show("  read", n);
    for (long i = 0; n > 0 && i < n / (long)sizeof(s[0]); i++)
        record(&s[i], from);
    return (int)n;
}

static void pending(void) {
    sigset_t p;
    sigpending(&p);
    printf("  pending USR1 %d USR2 %d RTMIN %d CHLD %d\n", sigismember(&p, SIGUSR1),
           sigismember(&p, SIGUSR2), sigismember(&p, SIGRTMIN), sigismember(&p, SIGCHLD));
}

static int readable(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, 0);
    return n > 0 ? p.revents : n;
}

static int sfd_thread;
static void *other_thread(void *arg) {
    (void)arg;
    struct signalfd_siginfo s;
    long n = read(sfd_thread, &s, sizeof(s));
    printf("  other thread reads: %ld %s, readable %d\n", n, n < 0 ? strerrorname_np(errno) : "",
           readable(sfd_thread));
    return 0;
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) { (void)sig; alarms++; }

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    me = getpid();
    sigset_t block, m;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGRTMIN);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, 0);

    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    int sfd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
    printf("cloexec %d, flags %#o\n", fcntl(sfd, F_GETFD),
           fcntl(sfd, F_GETFL) & (O_ACCMODE | O_NONBLOCK));

    struct stat st1, st2;
    int ep0 = epoll_create1(0);
    show("fstat", fstat(sfd, &st1));
    fstat(ep0, &st2);
    printf("  mode %o nlink %lu size %ld, the same inode as an epoll fd's %d\n", st1.st_mode,
           (unsigned long)st1.st_nlink, (long)st1.st_size,
           st1.st_ino == st2.st_ino && st1.st_dev == st2.st_dev && st2.st_mode == st1.st_mode);
    close(ep0);
    puts("errors");
    show("  read nothing pending", read(sfd, (char[128]){0}, 128));
    show("  read too small", read(sfd, (char[128]){0}, 127));
    show("  write", write(sfd, (char[128]){0}, 128));
    show("  bad sizemask", syscall(SYS_signalfd4, -1, &m, 4, 0));
    show("  bad flags", signalfd(-1, &m, 1));
    show("  not a signalfd", signalfd(1, &m, 0));
    show("  closed fd", signalfd(77, &m, 0));
    show("  NULL mask", syscall(SYS_signalfd4, -1, 0, 8, 0));
    long old = syscall(SYS_signalfd, -1, &m, 8);
    show("  old signalfd syscall", old > 0);
    close(old);
    printf("  readable with nothing pending: %d\n", readable(sfd));

    puts("raise (tgkill): SI_TKILL");
    raise(SIGUSR1);
    pending();
    printf("  readable %#x\n", readable(sfd));
    read_show(sfd, 4, me);
    pending();
    read_show(sfd, 4, me);

    puts("kill: SI_USER, a standard signal is pending once");
    kill(me, SIGUSR1);
    kill(me, SIGUSR1);
    read_show(sfd, 4, me);

    puts("signal outside the mask: not readable until the mask is updated");
    kill(me, SIGUSR2);
    printf("  readable %d\n", readable(sfd));
    sigaddset(&m, SIGUSR2);
    sigaddset(&m, SIGRTMIN);
    show("  update mask", signalfd(sfd, &m, 0) == sfd);
    printf("  still non-blocking %d\n", (fcntl(sfd, F_GETFL) & O_NONBLOCK) != 0);
    printf("  readable %#x\n", readable(sfd));
    read_show(sfd, 4, me);

    puts("sigqueue: real-time signals queue, with their values, in order");
    for (int i = 0; i < 3; i++)
        sigqueue(me, SIGRTMIN, (union sigval){.sival_int = 42 + i});
    kill(me, SIGUSR2);
    read_show(sfd, 2, me);
    read_show(sfd, 8, me);
    pending();

    puts("SIGCHLD of an exiting child, blocking read on a second signalfd");
    sigemptyset(&m);
    sigaddset(&m, SIGCHLD);
    int cfd = syscall(SYS_signalfd4, -1, &m, 8, 0);  /* the kernel's sigset_t */
    pid_t c = fork();
    if (c == 0)
        _exit(7);
    read_show(cfd, 1, c);
    printf("  waitpid %d\n", waitpid(c, 0, 0) == c);
    c = fork();
    if (c == 0) {
        signal(SIGTERM, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, 0);
        pause();
        _exit(0);
    }
    usleep(20000);
    kill(c, SIGTERM);
    read_show(cfd, 1, c);
    waitpid(c, 0, 0);

    puts("a blocking read woken by another process's kill");
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    int bfd = signalfd(-1, &m, 0);
    c = fork();
    if (c == 0) {
        usleep(30000);
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    read_show(bfd, 1, c);
    waitpid(c, 0, 0);
    read_show(cfd, 1, c);  /* that child's SIGCHLD */

    puts("epoll and select");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 5}, out[2];
    show("  epoll_ctl add", epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev));
    show("  epoll_wait nothing", epoll_wait(ep, out, 2, 0));
    kill(me, SIGUSR1);
    int n = epoll_wait(ep, out, 2, 0);
    printf("  epoll_wait: %d events %#x data %llu\n", n, out[0].events,
           (unsigned long long)out[0].data.u64);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(sfd, &rs);
    struct timeval tv = {0, 0};
    printf("  select: %d isset %d\n", select(sfd + 1, &rs, 0, 0, &tv), FD_ISSET(sfd, &rs));
    read_show(sfd, 1, me);
    show("  epoll_wait drained", epoll_wait(ep, out, 2, 0));
    c = fork();
    if (c == 0) {
        usleep(30000);
        kill(getppid(), SIGUSR2);
        _exit(0);
    }
    n = epoll_wait(ep, out, 2, 5000);
    printf("  epoll_wait woken: %d events %#x\n", n, out[0].events);
    read_show(sfd, 1, c);
    waitpid(c, 0, 0);
    read_show(cfd, 1, c);
    struct pollfd pf = {.fd = sfd, .events = POLLIN};
    c = fork();
    if (c == 0) {
        usleep(30000);
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    n = poll(&pf, 1, 5000);
    printf("  poll woken: %d revents %#x\n", n, pf.revents);
    read_show(sfd, 1, c);
    waitpid(c, 0, 0);
    read_show(cfd, 1, c);

    puts("a signal for one thread is read by that thread only");
    sfd_thread = sfd;
    pthread_kill(pthread_self(), SIGUSR1);
    pthread_t th;
    pthread_create(&th, 0, other_thread, 0);
    pthread_join(th, 0);
    read_show(sfd, 1, me);
    puts("a signal for the process is read by any thread");
    kill(me, SIGUSR1);
    sfd_thread = signalfd(-1, &m, 0);  /* blocking: it must get the signal */
    pthread_create(&th, 0, other_thread, 0);
    pthread_join(th, 0);

    puts("a handled signal interrupts a blocking read (no SA_RESTART)");
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, 0);
    struct itimerval it = {.it_value = {0, 30000}};
    setitimer(ITIMER_REAL, &it, 0);
    show("  read", read(bfd, (char[128]){0}, 128));
    printf("  alarms %d\n", alarms);

    puts("fork: the child reads its own signals through the inherited fd");
    kill(me, SIGUSR1);  /* pending in the parent only */
    c = fork();
    if (c == 0) {
        printf("  child readable %d\n", readable(sfd));
        kill(getpid(), SIGUSR2);
        read_show(sfd, 2, getpid());
        _exit(0);
    }
    waitpid(c, 0, 0);
    read_show(sfd, 2, me);
    read_show(cfd, 1, c);
    close(sfd);
    close(cfd);
    close(bfd);
    puts("done");
    return 0;
}
