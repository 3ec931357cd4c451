/* inotify: every event made by changes inside the sandbox (create, delete, modify, moves
 * with one cookie, open/access/close, attrib, delete_self and ignored), IN_ONESHOT,
 * IN_MASK_ADD/IN_MASK_CREATE, rm_watch, the queue's merging and IN_Q_OVERFLOW, reads
 * (EINVAL for a short buffer, EAGAIN, a blocking read woken by another process),
 * FIONREAD, poll/epoll, fdinfo, and errors; dnotify (fcntl F_NOTIFY). Run with a scratch
 * directory on a tmpfs as argv[1]; the same output natively and in the sandbox. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#define BAD ((void *)8)

static void show(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

static const char *names[] = {"ACCESS", "MODIFY", "ATTRIB", "CLOSE_WRITE", "CLOSE_NOWRITE",
                              "OPEN", "MOVED_FROM", "MOVED_TO", "CREATE", "DELETE",
                              "DELETE_SELF", "MOVE_SELF"};
static unsigned last_cookie;

static void print_mask(unsigned m) {
    for (int i = 0; i < 12; i++)
        if (m & (1u << i))
            printf(" %s", names[i]);
    if (m & IN_UNMOUNT) printf(" UNMOUNT");
    if (m & IN_Q_OVERFLOW) printf(" Q_OVERFLOW");
    if (m & IN_IGNORED) printf(" IGNORED");
    if (m & IN_ISDIR) printf(" ISDIR");
}

/* Print every queued event (non-blocking fd); returns how many. */
static int drain(int fd, const char *label) {
    char buf[65536] __attribute__((aligned(8)));
    int count = 0;
    printf(" %s:\n", label);
    for (;;) {
        long n = read(fd, buf, sizeof buf);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN)
                show("  read", n);
            break;
        }
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            printf("  wd %d", e->wd);
            print_mask(e->mask);
            if (e->cookie) {
                printf(" cookie %s", e->cookie == last_cookie ? "same" : "new");
                last_cookie = e->cookie;
            }
            if (e->len)
                printf(" name %s len %u", e->name, e->len);
            printf("\n");
            p += sizeof *e + e->len;
            count++;
        }
    }
    return count;
}

static void fdinfo(int fd) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        unsigned wd, mask;
        if (sscanf(line, "inotify wd:%x %*s %*s mask:%x", &wd, &mask) == 2)
            printf("  fdinfo wd %u mask %#x\n", wd, mask);
    }
    if (f)
        fclose(f);
}

/* the signal a dnotify event sent, if any (the signals are blocked) */
static void dn_signal(const char *what, int dfd) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN + 1);
    sigaddset(&set, SIGIO);
    siginfo_t si;
    struct timespec z = {0, 0};
    int n = 0;
    printf(" %s:", what);
    while (sigtimedwait(&set, &si, &z) > 0) {
        printf(" [%s code %d fd %s band %lx]", si.si_signo == SIGIO ? "SIGIO" : "SIGRTMIN+1",
               si.si_code, si.si_signo == SIGIO ? "-" : si.si_fd == dfd ? "ok" : "?",
               si.si_signo == SIGIO ? 0L : (long)si.si_band);
        n++;
    }
    printf(" %d signals\n", n);
}

/* dnotify: fcntl F_NOTIFY on the scratch directory, multishot and one-shot, F_SETSIG and
 * plain SIGIO, removal, a close of the fd, and the errors */
static void dnotify(void) {
    printf("dnotify\n");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN + 1);
    sigaddset(&set, SIGIO);
    sigprocmask(SIG_BLOCK, &set, NULL);
    mkdir("dn", 0755);
    int dfd = open("dn", O_RDONLY | O_DIRECTORY);
    fcntl(dfd, F_SETSIG, SIGRTMIN + 1);
    show(" F_NOTIFY create|multishot", fcntl(dfd, F_NOTIFY, DN_CREATE | DN_MULTISHOT));
    printf(" owner is the caller %d\n", fcntl(dfd, F_GETOWN) == getpid());
    close(open("dn/a", O_CREAT | O_WRONLY, 0644));
    dn_signal("after creating a", dfd);
    close(open("dn/b", O_CREAT | O_WRONLY, 0644));
    dn_signal("after creating b", dfd);
    close(open("x-outside", O_CREAT | O_WRONLY, 0644));
    dn_signal("after creating outside", dfd);
    show(" F_NOTIFY 0", fcntl(dfd, F_NOTIFY, 0));
    close(open("dn/c", O_CREAT | O_WRONLY, 0644));
    dn_signal("after removal", dfd);
    show(" F_NOTIFY delete (one-shot)", fcntl(dfd, F_NOTIFY, DN_DELETE));
    unlink("dn/a");
    unlink("dn/b");
    dn_signal("after two unlinks", dfd);
    fcntl(dfd, F_SETSIG, 0);
    show(" F_NOTIFY modify|multishot, plain SIGIO", fcntl(dfd, F_NOTIFY, DN_MODIFY | DN_MULTISHOT));
    int wf = open("dn/c", O_WRONLY);
    write(wf, "x", 1);
    close(wf);
    dn_signal("after a write", dfd);
    int dup_fd = dup(dfd);
    close(dup_fd);
    wf = open("dn/c", O_WRONLY);
    write(wf, "y", 1);
    close(wf);
    dn_signal("after closing a dup of the fd", dfd);
    show(" F_NOTIFY on a file", fcntl(open("x-outside", O_RDONLY), F_NOTIFY, DN_CREATE));
    show(" F_NOTIFY 0 on a file", fcntl(open("x-outside", O_RDONLY), F_NOTIFY, 0));
    close(dfd);
    unlink("dn/c");
    unlink("x-outside");
    rmdir("dn");
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2 || chdir(argv[1]))
        return 2;
    mkdir("d", 0755);
    int in = inotify_init1(IN_NONBLOCK);
    show("inotify_init1", in >= 0);
    printf("  fl %#x\n", fcntl(in, F_GETFL) & ~0100000);
    int wd = inotify_add_watch(in, "d", IN_ALL_EVENTS);
    show(" add_watch d", wd);
    show(" add_watch d again", inotify_add_watch(in, "d", IN_ALL_EVENTS));
    fdinfo(in);

    int f = open("d/a", O_CREAT | O_WRONLY, 0644);
    write(f, "x", 1);
    write(f, "y", 1); /* merged with the previous MODIFY */
    close(f);
    drain(in, "create, write twice, close");
    int fw = inotify_add_watch(in, "d/a", IN_ALL_EVENTS);
    show(" add_watch d/a", fw);
    f = open("d/a", O_RDONLY);
    char c;
    read(f, &c, 1);
    close(f);
    drain(in, "open, read, close (dir and file watches)");
    chmod("d/a", 0600);
    truncate("d/a", 0);
    struct timespec ts[2] = {{0, UTIME_OMIT}, {1, 0}};
    utimensat(AT_FDCWD, "d/a", ts, 0);
    setxattr("d/a", "user.k", "v", 1, 0);
    drain(in, "chmod, truncate, utimensat mtime, setxattr");
    link("d/a", "d/b");
    rename("d/b", "d/c");
    mkdir("d/sub", 0755);
    rename("d/sub", "d/sub2");
    drain(in, "link, rename, mkdir, rename dir");
    unlink("d/c");
    unlink("d/a");
    rmdir("d/sub2");
    symlink("target", "d/sym");
    mknod("d/fifo", S_IFIFO | 0644, 0);
    drain(in, "unlink a link, unlink last, rmdir, symlink, mknod");

    /* moves between two watched directories */
    mkdir("e", 0755);
    int we = inotify_add_watch(in, "e", IN_MOVED_TO | IN_MOVED_FROM);
    show(" add_watch e", we - wd);
    close(open("d/m", O_CREAT | O_RDONLY, 0644));
    drain(in, "create m");
    rename("d/m", "e/m2");
    rename("e/m2", "d/m");
    drain(in, "move d->e, e->d");

    /* IN_ONESHOT, IN_MASK_ADD, IN_MASK_CREATE, rm_watch */
    int wf = inotify_add_watch(in, "d/m", IN_ATTRIB | IN_ONESHOT);
    chmod("d/m", 0600);
    chmod("d/m", 0644);
    drain(in, "oneshot attrib twice");
    wf = inotify_add_watch(in, "d/m", IN_ATTRIB);
    show(" MASK_CREATE existing", inotify_add_watch(in, "d/m", IN_MODIFY | IN_MASK_CREATE));
    show(" MASK_ADD", inotify_add_watch(in, "d/m", IN_MODIFY | IN_MASK_ADD) == wf);
    fdinfo(in);
    show(" MASK_ADD|MASK_CREATE", inotify_add_watch(in, "d/m", IN_MODIFY | IN_MASK_ADD | IN_MASK_CREATE));
    show(" replace", inotify_add_watch(in, "d/m", IN_OPEN) == wf);
    show(" rm_watch d", inotify_rm_watch(in, wd));
    show(" rm_watch d again", inotify_rm_watch(in, wd));
    f = open("d/m", O_WRONLY);
    write(f, "z", 1);
    close(f);
    drain(in, "after rm_watch d, with m watched for OPEN");
    show(" rm_watch e", inotify_rm_watch(in, we));
    show(" rm_watch m", inotify_rm_watch(in, wf));
    drain(in, "rm_watch e and m");

    /* a watched file removed while open: DELETE_SELF at the last close; writes through
     * the open fd are still seen */
    int fo = open("d/open", O_CREAT | O_WRONLY, 0644);
    int fo2 = dup(fo);
    int wo = inotify_add_watch(in, "d/open", IN_ALL_EVENTS);
    unlink("d/open");
    drain(in, "unlink of an open file");
    write(fo, "more", 4);
    close(fo);
    drain(in, "write through the open fd, close one of two fds");
    close(fo2);
    drain(in, "last close");
    (void)wo;

    /* a watched directory removed: DELETE_SELF then IGNORED */
    mkdir("g", 0755);
    int wg = inotify_add_watch(in, "g", IN_DELETE_SELF | IN_CREATE);
    close(open("g/x", O_CREAT | O_RDONLY, 0644));
    unlink("g/x");
    rmdir("g");
    drain(in, "dir removed");
    (void)wg;

    /* read sizes, FIONREAD, poll, epoll, blocking */
    int wd2 = inotify_add_watch(in, "d", IN_CREATE);
    close(open("d/longer-name-here", O_CREAT | O_RDONLY, 0644));
    int avail = -1;
    ioctl(in, FIONREAD, &avail);
    printf(" FIONREAD %d\n", avail);
    char small[20];
    show(" read 20 bytes", read(in, small, sizeof small));
    struct pollfd p = {.fd = in, .events = POLLIN};
    int pn = poll(&p, 1, 0);
    printf(" poll %d %#x\n", pn, p.revents);
    drain(in, "long name");
    printf(" poll empty %d\n", poll(&p, 1, 0));
    show(" read empty", read(in, small, sizeof small));
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET}, out[2];
    epoll_ctl(ep, EPOLL_CTL_ADD, in, &ev);
    printf(" epoll ET empty %d\n", epoll_wait(ep, out, 2, 0));
    pid_t ch = fork();
    if (ch == 0) {
        usleep(20000);
        close(open("d/from-child", O_CREAT | O_RDONLY, 0644));
        _exit(0);
    }
    printf(" epoll ET woken by child %d\n", epoll_wait(ep, out, 2, 5000));
    waitpid(ch, NULL, 0);
    drain(in, "child created");
    int blk = inotify_init();
    inotify_add_watch(blk, "d", IN_DELETE);
    ch = fork();
    if (ch == 0) {
        usleep(20000);
        unlink("d/from-child");
        _exit(0);
    }
    char buf[256] __attribute__((aligned(8)));
    long n = read(blk, buf, sizeof buf);
    struct inotify_event *e = (struct inotify_event *)buf;
    printf(" blocking read %ld: mask %#x name %s\n", n, e->mask, e->name);
    waitpid(ch, NULL, 0);
    close(blk);
    close(ep);
    (void)wd2;

    /* overflow: more events than max_queued_events */
    int ov = inotify_init1(IN_NONBLOCK);
    mkdir("ov", 0755);
    inotify_add_watch(ov, "ov", IN_CREATE);
    char name[64];
    for (int i = 0; i < 16384 + 10; i++) {
        snprintf(name, sizeof name, "ov/%d", i);
        mknod(name, S_IFREG | 0644, 0);
    }
    int total = 0, overflow = 0;
    for (;;) {
        char big[65536] __attribute__((aligned(8)));
        long r = read(ov, big, sizeof big);
        if (r <= 0)
            break;
        for (char *q = big; q < big + r;) {
            struct inotify_event *x = (struct inotify_event *)q;
            total++;
            if (x->mask & IN_Q_OVERFLOW)
                printf(" overflow event at %d wd %d len %u\n", total, x->wd, x->len);
            q += sizeof *x + x->len;
        }
    }
    printf(" events read %d\n", total);
    mknod("ov/after", S_IFREG | 0644, 0);
    drain(ov, "after the overflow was read");
    close(ov);
    (void)overflow;

    printf("== errors\n");
    show(" init1 bad flags", inotify_init1(1));
    show(" add_watch on a pipe", inotify_add_watch(0, "d", IN_CREATE));
    int pp[2];
    pipe(pp);
    show(" add_watch on a pipe fd", inotify_add_watch(pp[0], "d", IN_CREATE));
    show(" add_watch bad fd", inotify_add_watch(999, "d", IN_CREATE));
    show(" add_watch missing", inotify_add_watch(in, "nope", IN_CREATE));
    show(" add_watch bad path", inotify_add_watch(in, BAD, IN_CREATE));
    show(" add_watch mask 0", inotify_add_watch(in, "d", 0));
    show(" add_watch ONLYDIR on file", inotify_add_watch(in, "d/m", IN_CREATE | IN_ONLYDIR));
    show(" add_watch mask 0 on bad fd", inotify_add_watch(999, "d", 0));
    show(" rm_watch bad wd", inotify_rm_watch(in, 12345));
    show(" rm_watch on a pipe", inotify_rm_watch(pp[0], 1));
    pid_t u = fork();
    if (u == 0) { /* as an unprivileged user */
        if (setgid(65534) || setuid(65534))
            _exit(1);
        show(" unprivileged fanotify_init", syscall(SYS_fanotify_init, 0, 0));
        show(" unprivileged fanotify_mark", syscall(SYS_fanotify_mark, 0, 0, 0, AT_FDCWD, "d"));
        show(" fanotify_mark ADD on a pipe", syscall(SYS_fanotify_mark, 0, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, "d"));
        show(" fanotify_mark ADD on a bad fd", syscall(SYS_fanotify_mark, 999, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, "d"));
        _exit(0);
    }
    waitpid(u, NULL, 0);
    char lnk[64], tgt[64] = {0};
    snprintf(lnk, sizeof lnk, "/proc/self/fd/%d", in);
    readlink(lnk, tgt, sizeof tgt - 1);
    printf(" link %s\n", tgt);
    dnotify();
    return 0;
}
