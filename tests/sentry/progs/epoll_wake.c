/* epoll_ctl while another thread sleeps in a level-triggered epoll_wait on the same epoll:
 * a MOD adding an event that is ready (EPOLLOUT on a writable TCP socket, EPOLLIN on a
 * pipe holding data), an ADD of a ready fd, and an ADD of an fd (TCP, pipe) that becomes
 * ready afterwards each wake the waiter, as Linux's ep_modify/ep_insert poll the file and
 * wake. The waiter is known to sleep through /proc/self/task/TID/stat; a timerfd in each
 * epoll (10 s) ends a wait nothing woke, and shows in the output. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

static void res(const char *what, int r) {
    if (r < 0) printf("%s: -1 %s\n", what, strerror(errno));
    else printf("%s: %d\n", what, r);
}
#define OK(what, r) res(what, (r) < 0 ? -1 : 0)

struct waiter { int ep; volatile int tid; int n; unsigned events; int timer; };

static void *wait_one(void *arg) {
    struct waiter *w = arg;
    struct epoll_event e[2];
    w->tid = (int)syscall(SYS_gettid);
    w->n = epoll_wait(w->ep, e, 2, -1);
    w->events = 0;
    w->timer = 0;
    for (int i = 0; i < w->n; i++) {
        if (e[i].data.u64 == 99) w->timer = 1;
        else w->events |= e[i].events;
    }
    return NULL;
}

/* An epoll holding a timerfd that fires in 10 s (data 99). */
static int new_epoll(void) {
    int ep = epoll_create1(0);
    int tf = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec its = {.it_value = {.tv_sec = 10}};
    timerfd_settime(tf, 0, &its, NULL);
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = 99};
    epoll_ctl(ep, EPOLL_CTL_ADD, tf, &e);
    return ep;  /* the timerfd stays open until the program ends */
}

/* Start a waiter on `ep` and return once it sleeps (its /proc state S), so the change
   below happens while it waits (if it never shows S, the change merely comes first). */
static pthread_t start_waiter(struct waiter *w, int ep) {
    pthread_t th;
    w->ep = ep;
    w->tid = 0;
    pthread_create(&th, NULL, wait_one, w);
    while (!w->tid) sched_yield();
    char path[64], st[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", w->tid);
    for (int i = 0; i < 100000; i++) {
        int fd = open(path, O_RDONLY);
        int n = fd < 0 ? -1 : (int)read(fd, st, sizeof st - 1);
        if (fd >= 0) close(fd);
        if (n > 0) {
            st[n] = 0;
            char *p = strrchr(st, ')');
            if (p && p[1] == ' ' && p[2] == 'S') break;
        }
        sched_yield();
    }
    return th;
}

static void end_waiter(const char *what, pthread_t th, struct waiter *w) {
    pthread_join(th, NULL);
    printf("%s: n=%d events=%#x%s\n", what, w->n, w->events, w->timer ? " (the timer)" : "");
}

static void epoll_wake(void) {
    struct sockaddr_in a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    OK("ewake listen", bind(l, (struct sockaddr *)&a, sizeof a) | listen(l, 4) |
       getsockname(l, (struct sockaddr *)&a, &al));
    int c = socket(AF_INET, SOCK_STREAM, 0);
    OK("ewake connect", connect(c, (struct sockaddr *)&a, sizeof a));
    int s = accept(l, NULL, NULL);
    int p[2];
    OK("ewake pipe", pipe(p));
    struct waiter w;
    pthread_t th;
    struct epoll_event e = {0};

    /* MOD adds EPOLLOUT to a writable TCP socket watched for EPOLLIN */
    int ep = new_epoll();
    e.events = EPOLLIN;
    OK("ewake add tcp in", epoll_ctl(ep, EPOLL_CTL_ADD, c, &e));
    th = start_waiter(&w, ep);
    e.events = EPOLLIN | EPOLLOUT;
    OK("ewake mod tcp out", epoll_ctl(ep, EPOLL_CTL_MOD, c, &e));
    end_waiter("ewake mod tcp out", th, &w);
    close(ep);

    /* MOD adds EPOLLIN to a pipe holding data, watched for nothing */
    OK("ewake pipe write", write(p[1], "x", 1));
    ep = new_epoll();
    e.events = 0;
    OK("ewake add pipe none", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e));
    th = start_waiter(&w, ep);
    e.events = EPOLLIN;
    OK("ewake mod pipe in", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &e));
    end_waiter("ewake mod pipe in", th, &w);
    close(ep);

    /* ADD of a ready TCP socket to an empty epoll */
    ep = new_epoll();
    th = start_waiter(&w, ep);
    e.events = EPOLLOUT;
    OK("ewake add ready tcp", epoll_ctl(ep, EPOLL_CTL_ADD, c, &e));
    end_waiter("ewake add ready tcp", th, &w);
    close(ep);

    /* ADD of a not-ready TCP socket and of a not-ready pipe, made ready afterwards */
    char b[8];
    OK("ewake pipe drain", read(p[0], b, sizeof b));
    ep = new_epoll();
    th = start_waiter(&w, ep);
    e.events = EPOLLIN;
    OK("ewake add idle tcp", epoll_ctl(ep, EPOLL_CTL_ADD, s, &e));
    OK("ewake tcp send", send(c, "y", 1, 0));
    end_waiter("ewake add idle tcp", th, &w);
    OK("ewake tcp drain", recv(s, b, sizeof b, 0));
    close(ep);
    ep = new_epoll();
    th = start_waiter(&w, ep);
    OK("ewake add idle pipe", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e));
    OK("ewake pipe write 2", write(p[1], "z", 1));
    end_waiter("ewake add idle pipe", th, &w);
    close(ep);
    close(p[0]);
    close(p[1]);
    close(s);
    close(c);
    close(l);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    epoll_wake();
    return 0;
}
