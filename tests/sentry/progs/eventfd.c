/* eventfd and timerfd: counters and semaphore mode, EAGAIN, overflow rules, blocking reads
 * woken by another process, poll/select/epoll (level and edge) readiness, timer
 * expirations counted for relative, absolute and periodic timers on each clock, gettime,
 * fdinfo lines (and a signalfd's and an epoll's), fstatfs of them all (anon_inodefs), and
 * errors (EINVAL bad flags/clocks/sizes, EFAULT bad pointers, EBADF).
 * The output must be the same natively and in the sandbox (no times printed). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BAD ((void *)8)

static void show(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

static int revents(int fd, int ev) {
    struct pollfd p = {.fd = fd, .events = ev};
    int n = poll(&p, 1, 0);
    return n > 0 ? p.revents : n;
}

static long rd(int fd) {
    uint64_t v = 0;
    long n = read(fd, &v, 8);
    if (n < 0)
        return -1000 - errno;
    return (long)v;
}

static long wr(int fd, uint64_t v) {
    long n = write(fd, &v, 8);
    return n < 0 ? -1000 - errno : n;
}

static void fdinfo_line(int fd, const char *key) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("  fdinfo: none\n");
        return;
    }
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key)))
            printf("  fdinfo %s", line);
    fclose(f);
}

static void link_of(int fd) {
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    long n = readlink(path, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("  link %s\n", buf);
}

static void eventfd_tests(void) {
    printf("== eventfd\n");
    int fd = eventfd(3, EFD_NONBLOCK);
    show("eventfd(3, NONBLOCK)", fd >= 0);
    printf("  poll %#x\n", revents(fd, POLLIN | POLLOUT));
    printf("  read %ld\n", rd(fd));
    printf("  read empty %ld\n", rd(fd));
    printf("  poll %#x\n", revents(fd, POLLIN | POLLOUT));
    long a = wr(fd, 5), b = wr(fd, 7);
    printf("  write 5 -> %ld, write 7 -> %ld, ", a, b);
    printf("read %ld\n", rd(fd));
    printf("  write max -> %ld\n", wr(fd, UINT64_MAX));
    printf("  write max-1 -> %ld\n", wr(fd, UINT64_MAX - 1));
    printf("  poll %#x\n", revents(fd, POLLIN | POLLOUT));
    printf("  write 1 -> %ld\n", wr(fd, 1));
    printf("  write 0 -> %ld\n", wr(fd, 0));
    fdinfo_line(fd, "eventfd-count");
    printf("  read %lu\n", (unsigned long)rd(fd));
    char small[4];
    show("  read 4 bytes", read(fd, small, 4));
    show("  write 4 bytes", write(fd, small, 4));
    uint64_t big[2] = {2, 0};
    show("  write 16 bytes", write(fd, big, 16));
    show("  read 16 bytes", read(fd, big, 16));
    printf("  value %lu\n", (unsigned long)big[0]);
    show("  write bad pointer", write(fd, BAD, 8));
    wr(fd, 9);
    show("  read bad pointer", read(fd, BAD, 8));
    printf("  after EFAULT read %ld\n", rd(fd));
    struct stat st;
    fstat(fd, &st);
    printf("  fstat mode %o\n", st.st_mode);
    link_of(fd);
    printf("  F_GETFL %#x\n", fcntl(fd, F_GETFL) & ~0100000);
    close(fd);

    fd = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
    for (int i = 0; i < 4; i++)
        printf("  sem read %ld\n", rd(fd));
    fdinfo_line(fd, "eventfd-semaphore");
    close(fd);

    show("eventfd2 bad flags", syscall(SYS_eventfd2, 0, 0x80));
    show("eventfd2 O_RDWR", syscall(SYS_eventfd2, 0, O_RDWR));
    fd = syscall(SYS_eventfd2, 0, EFD_CLOEXEC);
    printf("  cloexec %d\n", fcntl(fd, F_GETFD));
    close(fd);
    fd = syscall(SYS_eventfd, 7);
    printf("  eventfd() read %ld flags %#x\n", rd(fd), fcntl(fd, F_GETFL) & ~0100000);

    /* a blocking read woken by a child's write; a blocking write woken by a read */
    pid_t c = fork();
    if (c == 0) {
        usleep(20000);
        wr(fd, 42);
        _exit(0);
    }
    printf("  blocking read %ld\n", rd(fd));
    waitpid(c, NULL, 0);
    wr(fd, UINT64_MAX - 1);
    c = fork();
    if (c == 0) {
        usleep(20000);
        rd(fd);
        _exit(0);
    }
    printf("  blocking write %ld\n", wr(fd, 5));
    waitpid(c, NULL, 0);
    printf("  then read %ld\n", rd(fd));

    /* select and epoll, level and edge */
    fd_set r, w;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_SET(fd, &r);
    FD_SET(fd, &w);
    struct timeval tv = {0, 0};
    int n = select(fd + 1, &r, &w, NULL, &tv);
    printf("  select %d r %d w %d\n", n, FD_ISSET(fd, &r), FD_ISSET(fd, &w));
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = 7}, out[4];
    link_of(ep);
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    printf("  epoll ET empty %d\n", epoll_wait(ep, out, 4, 0));
    wr(fd, 1);
    n = epoll_wait(ep, out, 4, 0);
    printf("  epoll ET after write %d data %u\n", n, n > 0 ? out[0].data.u32 : 0);
    printf("  epoll ET again %d\n", epoll_wait(ep, out, 4, 0));
    wr(fd, 1);
    printf("  epoll ET second write %d\n", epoll_wait(ep, out, 4, 0));
    c = fork();
    if (c == 0) {
        usleep(20000);
        wr(fd, 1);
        _exit(0);
    }
    rd(fd);
    printf("  epoll ET woken by child %d\n", epoll_wait(ep, out, 4, 5000));
    waitpid(c, NULL, 0);
    close(ep);
    close(fd);
}

static struct timespec now(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t;
}

static void timerfd_tests(void) {
    printf("== timerfd\n");
    clockid_t clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME};
    for (int i = 0; i < 3; i++) {
        int fd = timerfd_create(clocks[i], TFD_NONBLOCK);
        printf(" clock %d\n", clocks[i]);
        printf("  unarmed read %ld ", rd(fd));
        printf("poll %#x\n", revents(fd, POLLIN));
        struct itimerspec its = {.it_value = {0, 2000000}};
        show("  settime 2ms", timerfd_settime(fd, 0, &its, NULL));
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pn = poll(&p, 1, 5000);
        printf("  poll wait %d %#x\n", pn, p.revents);
        printf("  read %ld, ", rd(fd));
        printf("again %ld\n", rd(fd));
        /* absolute, 10 s in the past, every second: 11 expirations at once */
        its.it_value = now(clocks[i]);
        its.it_value.tv_sec -= 10;
        its.it_interval.tv_sec = 1;
        show("  settime abs past periodic", timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL));
        printf("  read %ld\n", rd(fd));
        struct itimerspec cur;
        timerfd_gettime(fd, &cur);
        printf("  gettime interval %ld.%09ld value<=1s %d\n", cur.it_interval.tv_sec,
               cur.it_interval.tv_nsec, cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0);
        struct itimerspec old, lng = {.it_value = {100, 0}, .it_interval = {0, 500}};
        timerfd_settime(fd, 0, &lng, &old);
        printf("  old interval %ld.%09ld\n", old.it_interval.tv_sec, old.it_interval.tv_nsec);
        timerfd_gettime(fd, &cur);
        printf("  100s timer: value in (99,100] %d interval ns %ld\n",
               cur.it_value.tv_sec == 99 || (cur.it_value.tv_sec == 100 && !cur.it_value.tv_nsec),
               cur.it_interval.tv_nsec);
        fdinfo_line(fd, "clockid");
        fdinfo_line(fd, "ticks");
        fdinfo_line(fd, "settime flags");
        fdinfo_line(fd, "it_interval");
        struct itimerspec zero = {{0, 0}, {0, 0}};
        timerfd_settime(fd, 0, &zero, &old);
        timerfd_gettime(fd, &cur);
        printf("  disarmed value %ld.%09ld interval %ld\n", cur.it_value.tv_sec,
               cur.it_value.tv_nsec, cur.it_interval.tv_nsec);
        if (clocks[i] == CLOCK_REALTIME) {
            its.it_value = now(CLOCK_REALTIME);
            its.it_value.tv_sec += 100;
            its.it_interval.tv_sec = 0;
            show("  CANCEL_ON_SET abs", timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL));
            printf("  read %ld\n", rd(fd));
            fdinfo_line(fd, "settime flags");
        }
        close(fd);
    }
    /* a blocking read of a periodic timer */
    int fd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {.it_value = {0, 1000000}, .it_interval = {0, 1000000}};
    timerfd_settime(fd, 0, &its, NULL);
    long got = rd(fd);
    printf(" blocking periodic read >=1 %d\n", got >= 1);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET}, out[2];
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    printf(" epoll ET wait %d\n", epoll_wait(ep, out, 2, 5000));
    rd(fd);
    printf(" epoll ET wait again %d\n", epoll_wait(ep, out, 2, 5000));
    close(ep);
    struct stat st;
    fstat(fd, &st);
    printf(" fstat mode %o\n", st.st_mode);
    link_of(fd);
    char small[4];
    show(" read 4 bytes", read(fd, small, 4));
    show(" write", write(fd, &got, 8));
    show(" settime bad flags", timerfd_settime(fd, 4, &its, NULL));
    struct itimerspec badns = {.it_value = {0, 1000000000}};
    show(" settime bad nsec", timerfd_settime(fd, 0, &badns, NULL));
    struct itimerspec negs = {.it_value = {-1, 0}};
    show(" settime negative", timerfd_settime(fd, 0, &negs, NULL));
    show(" settime bad new", timerfd_settime(fd, 0, BAD, NULL));
    show(" settime bad new and flags", timerfd_settime(fd, 4, BAD, NULL));
    show(" settime bad old", timerfd_settime(fd, 0, &its, BAD));
    show(" gettime bad", timerfd_gettime(fd, BAD));
    show(" gettime on eventfd", timerfd_gettime(eventfd(0, 0), &its));
    show(" gettime on bad fd", timerfd_gettime(999, &its));
    show(" create bad clock", timerfd_create(CLOCK_PROCESS_CPUTIME_ID, 0));
    show(" create clock 99", timerfd_create(99, 0));
    show(" create bad flags", timerfd_create(CLOCK_MONOTONIC, 1));
    int c = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    printf(" cloexec %d\n", fcntl(c, F_GETFD));
    close(fd);
}

/* the fdinfo lines of a signalfd (its mask, without SIGKILL/SIGSTOP) and of an epoll
 * (one tfd line per registration, sorted here: Linux lists them by file address) */
static int by_tfd(const void *a, const void *b) {
    return atoi(*(char *const *)a + 5) - atoi(*(char *const *)b + 5);
}

static void other_fdinfo(void) {
    printf("signalfd and epoll fdinfo\n");
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigaddset(&m, SIGKILL);
    sigaddset(&m, 40);
    int sfd = signalfd(-1, &m, 0);
    fdinfo_line(sfd, "sigmask");
    int efd = eventfd(0, 0), ep = epoll_create1(0), p[2];
    pipe(p);
    struct epoll_event e1 = {.events = EPOLLIN | EPOLLET, .data.u64 = 0x1122334455667788ULL};
    struct epoll_event e2 = {.events = EPOLLOUT, .data.fd = p[1]};
    struct epoll_event e3 = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = 3};
    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &e1);
    epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &e2);
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &e3);
    char path[64], line[256], *lines[8];
    int n = 0;
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", ep);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f) && n < 8)
        if (!strncmp(line, "tfd:", 4))
            lines[n++] = strdup(line);
    if (f)
        fclose(f);
    qsort(lines, n, sizeof *lines, by_tfd);
    for (int i = 0; i < n; i++) {
        int tfd;
        unsigned events;
        unsigned long long data;
        sscanf(lines[i], "tfd: %d events: %x data: %llx", &tfd, &events, &data);
        printf("  tfd %s events %x data %llx\n", tfd == efd ? "eventfd" : tfd == p[1] ?
               "pipe" : tfd == sfd ? "signalfd" : "?", events, data);
        free(lines[i]);
    }
    close(sfd);
    close(efd);
    close(ep);
    close(p[0]);
    close(p[1]);
}

/* fstatfs of the anonymous-inode files: anon_inodefs (its fsid the inode's device) */
static void anon_statfs(void) {
    printf("== fstatfs\n");
    sigset_t none;
    sigemptyset(&none);
    const char *names[] = {"eventfd", "epoll", "signalfd", "timerfd", "inotify"};
    int fds[] = {eventfd(0, 0), epoll_create1(0), signalfd(-1, &none, 0),
                 timerfd_create(CLOCK_MONOTONIC, 0), inotify_init1(0)};
    for (int i = 0; i < 5; i++) {
        struct statfs sf;
        struct stat st;
        int r = fstatfs(fds[i], &sf);
        fstat(fds[i], &st);
        printf("  %s: %d type %lx bsize %ld blocks %ld files %ld namelen %ld frsize %ld "
               "flags %lx fsid-is-dev %d\n", names[i], r, (long)sf.f_type, (long)sf.f_bsize,
               (long)sf.f_blocks, (long)sf.f_files, (long)sf.f_namelen, (long)sf.f_frsize,
               (long)sf.f_flags, sf.f_fsid.__val[0] == (int)st.st_dev && !sf.f_fsid.__val[1]);
        close(fds[i]);
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    eventfd_tests();
    timerfd_tests();
    other_fdinfo();
    anon_statfs();
    return 0;
}
