/* Futex- and lock-heavy work whose output does not depend on scheduling:
 * threads hand work around through pthread mutexes and condition variables (futexes),
 * then contend for flock and OFD record locks on files of DIR (argv[1]), then a child
 * process and its parent meet at POSIX record locks (F_GETLK, F_SETLK, F_SETLKW).
 * `isolation DIR small` does a little of each (for many runs in a row). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#define NTHREADS 4
#define QCAP 8

static int rounds, items;
static char dir[256];

/* a bounded queue: producers and consumers sleep on condition variables */
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t notempty = PTHREAD_COND_INITIALIZER, notfull = PTHREAD_COND_INITIALIZER;
static long queue[QCAP];
static int qhead, qlen;
static long consumed_sum[NTHREADS];
static int consumed_n[NTHREADS];

static void put(long v) {
    pthread_mutex_lock(&qlock);
    while (qlen == QCAP)
        pthread_cond_wait(&notfull, &qlock);
    queue[(qhead + qlen++) % QCAP] = v;
    pthread_cond_signal(&notempty);
    pthread_mutex_unlock(&qlock);
}

static long take(void) {
    pthread_mutex_lock(&qlock);
    while (qlen == 0)
        pthread_cond_wait(&notempty, &qlock);
    long v = queue[qhead];
    qhead = (qhead + 1) % QCAP;
    qlen--;
    pthread_cond_signal(&notfull);
    pthread_mutex_unlock(&qlock);
    return v;
}

static void *consumer(void *arg) {
    int me = (int)(long)arg;
    for (;;) {
        long v = take();
        if (v < 0)
            return NULL;
        consumed_sum[me] += v;
        consumed_n[me]++;
    }
}

/* a counter in a file, incremented under a lock taken through `fd` */
static int bump(int fd, int use_flock) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    if (use_flock ? flock(fd, LOCK_EX) : fcntl(fd, F_OFD_SETLKW, &fl))
        return -1;
    int v = 0;
    if (pread(fd, &v, sizeof v, 0) < 0)
        return -1;
    v++;
    if (pwrite(fd, &v, sizeof v, 0) != sizeof v)
        return -1;
    fl.l_type = F_UNLCK;
    if (use_flock ? flock(fd, LOCK_UN) : fcntl(fd, F_OFD_SETLK, &fl))
        return -1;
    return 0;
}

static int errors;

static void *locker(void *arg) {
    int use_flock = (int)(long)arg;
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, use_flock ? "flocked" : "ofd");
    int fd = open(path, O_RDWR | O_CREAT, 0600); /* each thread its own open file */
    if (fd < 0) {
        __atomic_add_fetch(&errors, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    for (int i = 0; i < rounds; i++)
        if (bump(fd, use_flock))
            __atomic_add_fetch(&errors, 1, __ATOMIC_SEQ_CST);
    close(fd);
    return NULL;
}

static int counter(const char *name) {
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY), v = -1;
    if (fd >= 0 && pread(fd, &v, sizeof v, 0) != sizeof v)
        v = -2;
    close(fd);
    return v;
}

/* parent and child at POSIX record locks, in a fixed order (pipes say whose turn it is) */
static void records(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/records", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    int go[2], done[2];
    if (fd < 0 || pipe(go) || pipe(done)) {
        printf("records: setup failed: %s\n", strerror(errno));
        return;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    if (fcntl(fd, F_SETLK, &fl))
        printf("records: parent lock failed: %s\n", strerror(errno));
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        char c;
        close(go[0]);
        close(done[1]);
        struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 1};
        fcntl(fd, F_GETLK, &q);
        printf("child: F_GETLK type=%s start=%ld len=%ld by-parent=%d\n",
               q.l_type == F_WRLCK ? "F_WRLCK" : "other", (long)q.l_start, (long)q.l_len,
               q.l_pid == parent);
        q.l_type = F_WRLCK;
        q.l_start = 5;
        q.l_len = 1;
        int r = fcntl(fd, F_SETLK, &q);
        printf("child: F_SETLK = %d %s\n", r, r ? strerror(errno) : "");
        q.l_start = 20; /* outside the parent's range */
        r = fcntl(fd, F_SETLK, &q);
        printf("child: F_SETLK elsewhere = %d\n", r);
        fflush(stdout);
        write(go[1], "g", 1);
        q.l_start = 0;
        q.l_len = 10;
        r = fcntl(fd, F_SETLKW, &q); /* waits until the parent unlocks */
        printf("child: F_SETLKW = %d\n", r);
        fflush(stdout);
        read(done[0], &c, 1);
        _exit(0);
    }
    char c;
    close(go[1]); /* a child that dies early gives EOF, not a hang */
    close(done[0]);
    read(go[0], &c, 1);
    fl.l_type = F_UNLCK;
    fcntl(fd, F_SETLK, &fl);
    int st;
    write(done[1], "d", 1);
    waitpid(pid, &st, 0);
    printf("parent: child exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    fcntl(fd, F_GETLK, &q);
    printf("parent: after the child's exit F_GETLK type=%s\n",
           q.l_type == F_UNLCK ? "F_UNLCK" : "locked");
    close(fd);
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    snprintf(dir, sizeof dir, "%s", argv[1]);
    int small = argc > 2 && !strcmp(argv[2], "small");
    rounds = small ? 20 : 300;
    items = small ? 50 : 2000;
    setvbuf(stdout, NULL, _IOLBF, 0);

    pthread_t th[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, consumer, (void *)i);
    long want = 0;
    for (long v = 1; v <= items; v++) {
        put(v);
        want += v;
    }
    for (int i = 0; i < NTHREADS; i++)
        put(-1);
    long got = 0;
    int n = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        got += consumed_sum[i];
        n += consumed_n[i];
    }
    printf("queue: %d items, sum %ld, expected %ld\n", n, got, want);

    const char *names[] = {"flocked", "ofd"};
    for (int i = 0; i < 2; i++) { /* fresh counters */
        char path[300];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        close(open(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
    }
    for (long i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, locker, (void *)(i & 1));
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    printf("flock counter %d, OFD counter %d, expected %d each, errors %d\n",
           counter("flocked"), counter("ofd"), rounds * NTHREADS / 2, errors);

    records();
    return 0;
}
