/* Priority-inheritance futexes: pthread mutexes with PTHREAD_PRIO_INHERIT under contention
 * (the count must come out exact), trylock of a held one, a robust PI mutex whose owner
 * ends holding it (EOWNERDEAD, then consistent), and the raw FUTEX_LOCK_PI, LOCK_PI2,
 * TRYLOCK_PI and UNLOCK_PI answers: the word's owner and bits after each, EDEADLK, EPERM,
 * ESRCH for an owner that does not exist, ETIMEDOUT, ENOSYS, EINVAL, EFAULT. Then the
 * requeue of condition waiters to a PI lock: FUTEX_WAIT_REQUEUE_PI and
 * FUTEX_CMP_REQUEUE_PI (a free lock taken for the first waiter, waiters queued behind a
 * held one and handed it in turn, an early plain wake, a plain waiter EINVAL, the errors),
 * and a pthread condition variable with a PI mutex. Tids are printed as who they are
 * ("self", "holder"), never as numbers. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define THREADS 4
#define ROUNDS 5000

static pthread_mutex_t m;
static long counter;
static pid_t holder_tid;
static uint32_t word;
static long holder_unlock;
static int holder_errno;

static long futex(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts) {
    return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

static void res(const char *what, long r) {
    if (r < 0)
        printf("%s = -1 %s\n", what, strerror(errno));
    else
        printf("%s = %ld\n", what, r);
}

static void show_word(const char *when) {
    uint32_t w = __atomic_load_n(&word, __ATOMIC_SEQ_CST), tid = w & FUTEX_TID_MASK;
    const char *who = tid == 0 ? "0" : tid == (uint32_t)gettid() ? "self"
                    : tid == (uint32_t)holder_tid ? "holder" : "other";
    printf("  word after %s: owner %s%s%s\n", when, who, w & FUTEX_WAITERS ? " WAITERS" : "",
           w & FUTEX_OWNER_DIED ? " OWNER_DIED" : "");
}

static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&m);
        counter++;
        if (i % 500 == 0)
            sched_yield();  /* let the others queue behind a held lock */
        pthread_mutex_unlock(&m);
    }
    return NULL;
}

static int pipe_ready[2], pipe_release[2];

/* Takes the raw PI word, says so, then waits to be told to release it (or to end). */
static void *holder(void *arg) {
    long mode = (long)arg;
    holder_tid = gettid();
    if (mode == 2) {
        pthread_mutex_lock(&m);  /* robust PI mutex: end holding it */
        write(pipe_ready[1], "r", 1);
        return NULL;
    }
    res("holder LOCK_PI", futex(&word, FUTEX_LOCK_PI_PRIVATE, 0, NULL));
    write(pipe_ready[1], "r", 1);
    char c;
    read(pipe_release[0], &c, 1);
    if (mode == 1) {
        /* a waiter queued behind us: hand the lock over (main prints the answer, after
         * the waiter's lines) */
        holder_unlock = futex(&word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL);
        holder_errno = errno;
    }
    return NULL;  /* mode 0: end holding the word (no robust list: the waiter gets it) */
}

static void *waiter(void *arg) {
    (void)arg;
    res("waiter LOCK_PI", futex(&word, FUTEX_LOCK_PI_PRIVATE, 0, NULL));
    show_word("waiter got it");
    res("waiter UNLOCK_PI", futex(&word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL));
    show_word("waiter's unlock");
    return NULL;
}

/* Start a waiter behind the holder and return once it is queued: the word's FUTEX_WAITERS
 * bit, cleared first, is set by the waiter's LOCK_PI just before it sleeps. */
static void start_waiter(pthread_t *w) {
    __atomic_store_n(&word, (uint32_t)holder_tid, __ATOMIC_SEQ_CST);
    pthread_create(w, NULL, waiter, NULL);
    while (!(__atomic_load_n(&word, __ATOMIC_SEQ_CST) & FUTEX_WAITERS)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* requeue-PI: a condition word and a PI lock word */
static uint32_t cond, piw;
static long rq_ret[4];
static int rq_err[4], rq_owned[4], rq_count;

static void *rq_waiter(void *arg) {
    long i = (long)arg;
    long r = syscall(SYS_futex, &cond, FUTEX_WAIT_REQUEUE_PI_PRIVATE, 0, NULL, &piw, 0);
    rq_ret[i] = r;
    rq_err[i] = r < 0 ? errno : 0;
    if (r == 0) {
        rq_owned[i] = (__atomic_load_n(&piw, __ATOMIC_SEQ_CST) & FUTEX_TID_MASK) == (uint32_t)gettid();
        rq_count++;  /* under the PI lock */
        futex(&piw, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL);
    }
    return NULL;
}

static void *plain_waiter(void *arg) {
    (void)arg;
    futex(&cond, FUTEX_WAIT_PRIVATE, 0, NULL);
    return NULL;
}

static long cmp_requeue_pi(uint32_t *to, int nr_wake, int nr_requeue, uint32_t cmpval) {
    return syscall(SYS_futex, &cond, FUTEX_CMP_REQUEUE_PI_PRIVATE, nr_wake,
                   (void *)(long)nr_requeue, to, cmpval);
}

static void rq_report(int n) {
    for (int i = 0; i < n; i++) {
        errno = rq_err[i];
        printf("  waiter %d: ", i);
        res("WAIT_REQUEUE_PI", rq_ret[i]);
        printf("  waiter %d owned the lock: %s\n", i, rq_owned[i] ? "yes" : "no");
        rq_ret[i] = rq_err[i] = rq_owned[i] = 0;
    }
    printf("  lock word after: %s\n", piw == 0 ? "0" : "held");
}

static pthread_mutex_t cm;
static pthread_cond_t cv;
static int items, consumed, done;

static void *consumer(void *arg) {
    (void)arg;
    pthread_mutex_lock(&cm);
    for (;;) {
        while (!items && !done)
            pthread_cond_wait(&cv, &cm);
        if (!items && done)
            break;
        items--;
        consumed++;
    }
    pthread_mutex_unlock(&cm);
    return NULL;
}

static void requeue_pi(void) {
    struct timespec past = {1, 0};
    printf("requeue PI:\n");
    res("CMP_REQUEUE_PI nr_wake 2", cmp_requeue_pi(&piw, 2, 0, 0));
    res("CMP_REQUEUE_PI to the same word", cmp_requeue_pi(&cond, 1, 0, 0));
    res("CMP_REQUEUE_PI nr_requeue -1", cmp_requeue_pi(&piw, 1, -1, 0));
    res("CMP_REQUEUE_PI value differs", cmp_requeue_pi(&piw, 1, 0, 5));
    res("CMP_REQUEUE_PI nobody waits", cmp_requeue_pi(&piw, 1, 0, 0));
    res("WAIT_REQUEUE_PI value differs",
        syscall(SYS_futex, &cond, FUTEX_WAIT_REQUEUE_PI_PRIVATE, 1, NULL, &piw, 0));
    res("WAIT_REQUEUE_PI to the same word",
        syscall(SYS_futex, &cond, FUTEX_WAIT_REQUEUE_PI_PRIVATE, 0, NULL, &cond, 0));
    res("WAIT_REQUEUE_PI deadline passed",
        syscall(SYS_futex, &cond, FUTEX_WAIT_REQUEUE_PI_PRIVATE, 0, &past, &piw, 0));
    printf("  lock word after the errors: %s\n", piw == 0 ? "0" : "held");

    /* a free lock: the first waiter takes it at the requeue */
    pthread_t w[3];
    pthread_create(&w[0], NULL, rq_waiter, (void *)0);
    long r;
    while ((r = cmp_requeue_pi(&piw, 1, 0, 0)) == 0)
        sched_yield();
    res("CMP_REQUEUE_PI, lock free", r);
    pthread_join(w[0], NULL);
    rq_report(1);

    /* a held lock: three waiters queue behind it, each gets it at the unlock before */
    rq_count = 0;
    res("LOCK_PI", futex(&piw, FUTEX_LOCK_PI_PRIVATE, 0, NULL));
    for (long i = 0; i < 3; i++)
        pthread_create(&w[i], NULL, rq_waiter, (void *)i);
    long total = 0;
    while (total < 3) {
        r = cmp_requeue_pi(&piw, 1, 0x7fffffff, 0);
        if (r < 0) {
            res("CMP_REQUEUE_PI, lock held", r);
            break;
        }
        total += r;
        if (total < 3)
            sched_yield();
    }
    printf("  requeued behind the held lock: %ld\n", total);
    uint32_t v = piw;
    printf("  lock word: owner %s%s\n", (v & FUTEX_TID_MASK) == (uint32_t)gettid() ? "self" : "other",
           v & FUTEX_WAITERS ? " WAITERS" : "");
    res("UNLOCK_PI", futex(&piw, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL));
    for (int i = 0; i < 3; i++)
        pthread_join(w[i], NULL);
    printf("  took the lock in turn: %d\n", rq_count);
    int owned = rq_owned[0] + rq_owned[1] + rq_owned[2];
    printf("  each owned it on return: %s\n", owned == 3 ? "yes" : "no");
    rq_report(0);
    for (int i = 0; i < 3; i++)
        rq_ret[i] = rq_err[i] = rq_owned[i] = 0;

    /* a plain wake meets a requeue-PI waiter: EINVAL, and the waiter stays */
    rq_count = 0;
    pthread_create(&w[0], NULL, rq_waiter, (void *)0);
    while ((r = futex(&cond, FUTEX_WAKE_PRIVATE, 1, NULL)) == 0)
        sched_yield();
    res("FUTEX_WAKE of a requeue-PI waiter", r);
    res("FUTEX_WAKE_BITSET of a requeue-PI waiter",
        syscall(SYS_futex, &cond, FUTEX_WAKE_BITSET_PRIVATE, 1, NULL, NULL, 1));
    res("CMP_REQUEUE_PI after it", cmp_requeue_pi(&piw, 1, 0, 0));
    pthread_join(w[0], NULL);
    rq_report(1);

    /* a plain FUTEX_WAIT waiter cannot be requeued to a PI lock */
    pthread_create(&w[0], NULL, plain_waiter, NULL);
    while ((r = cmp_requeue_pi(&piw, 1, 0, 0)) == 0)
        sched_yield();
    res("CMP_REQUEUE_PI of a plain waiter", r);
    while (futex(&cond, FUTEX_WAKE_PRIVATE, 1, NULL) == 0)
        sched_yield();
    pthread_join(w[0], NULL);

    /* a condition variable with a PI mutex */
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&cm, &a);
    pthread_cond_init(&cv, NULL);
    pthread_t c[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&c[i], NULL, consumer, NULL);
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&cm);
        items++;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&cm);
    }
    pthread_mutex_lock(&cm);
    done = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&cm);
    for (int i = 0; i < 2; i++)
        pthread_join(c[i], NULL);
    printf("condition variable with a PI mutex: consumed %d of 500\n", consumed);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&m, &a);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    printf("PI mutex count %ld (want %d)\n", counter, THREADS * ROUNDS);

    pipe(pipe_ready);
    pipe(pipe_release);
    char c;

    /* raw calls on a free word */
    res("LOCK_PI free", futex(&word, FUTEX_LOCK_PI_PRIVATE, 0, NULL));
    show_word("LOCK_PI");
    res("LOCK_PI again (own)", futex(&word, FUTEX_LOCK_PI_PRIVATE, 0, NULL));
    res("TRYLOCK_PI own", futex(&word, FUTEX_TRYLOCK_PI_PRIVATE, 0, NULL));
    res("UNLOCK_PI", futex(&word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL));
    show_word("UNLOCK_PI");
    res("UNLOCK_PI not owner", futex(&word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL));
    res("TRYLOCK_PI free", futex(&word, FUTEX_TRYLOCK_PI, 0, NULL));
    show_word("TRYLOCK_PI");
    res("UNLOCK_PI shared", futex(&word, FUTEX_UNLOCK_PI, 0, NULL));
    word = FUTEX_OWNER_DIED;
    res("LOCK_PI owner-died word", futex(&word, FUTEX_LOCK_PI_PRIVATE, 0, NULL));
    show_word("LOCK_PI of an owner-died word");
    res("UNLOCK_PI", futex(&word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL));
    show_word("UNLOCK_PI");
    word = 0x3ffffff0;
    res("LOCK_PI owner that does not exist", futex(&word, FUTEX_LOCK_PI_PRIVATE, 0, NULL));
    printf("  word %s\n", word == (0x3ffffff0 | FUTEX_WAITERS) ? "tid|WAITERS" : "changed");
    res("UNLOCK_PI of another's", futex(&word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL));
    word = 0;
    res("LOCK_PI unaligned", futex((uint32_t *)((char *)&word + 1), FUTEX_LOCK_PI_PRIVATE, 0, NULL));
    res("LOCK_PI bad address", futex((uint32_t *)8, FUTEX_LOCK_PI_PRIVATE, 0, NULL));
    res("UNLOCK_PI bad address", futex((uint32_t *)8, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL));
    res("TRYLOCK_PI bad address", futex((uint32_t *)8, FUTEX_TRYLOCK_PI_PRIVATE, 0, NULL));
    res("LOCK_PI CLOCK_REALTIME flag", futex(&word, FUTEX_LOCK_PI_PRIVATE | FUTEX_CLOCK_REALTIME, 0, NULL));
    struct timespec bad = {0, 2000000000};
    res("LOCK_PI bad timeout", futex(&word, FUTEX_LOCK_PI_PRIVATE, 0, &bad));
    res("LOCK_PI timeout pointer bad", futex(&word, FUTEX_LOCK_PI_PRIVATE, 0, (void *)8));
    show_word("the errors");

    /* a held word: trylock, timeouts, then a waiter gets it at the unlock */
    pthread_t h, w;
    pthread_create(&h, NULL, holder, (void *)1);
    read(pipe_ready[0], &c, 1);
    show_word("the holder's LOCK_PI");
    res("TRYLOCK_PI held", futex(&word, FUTEX_TRYLOCK_PI_PRIVATE, 0, NULL));
    show_word("TRYLOCK_PI held");
    struct timespec past = {1, 0};
    res("LOCK_PI held, realtime deadline passed", futex(&word, FUTEX_LOCK_PI_PRIVATE, 0, &past));
    res("LOCK_PI2 held, monotonic deadline passed", futex(&word, FUTEX_LOCK_PI2 | FUTEX_PRIVATE_FLAG, 0, &past));
    res("LOCK_PI2 held, realtime deadline passed",
        futex(&word, FUTEX_LOCK_PI2 | FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME, 0, &past));
    show_word("timeouts");
    start_waiter(&w);
    write(pipe_release[1], "x", 1);
    pthread_join(h, NULL);
    pthread_join(w, NULL);
    errno = holder_errno;
    res("holder UNLOCK_PI with a waiter", holder_unlock);

    /* the owner ends holding the word: the waiter becomes the owner */
    word = 0;
    pthread_create(&h, NULL, holder, (void *)0);
    read(pipe_ready[0], &c, 1);
    start_waiter(&w);
    write(pipe_release[1], "x", 1);
    pthread_join(h, NULL);
    pthread_join(w, NULL);

    /* trylock of a held PI mutex; a robust PI mutex whose owner ends holding it */
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_destroy(&m);
    pthread_mutex_init(&m, &a);
    pthread_create(&h, NULL, holder, (void *)2);
    read(pipe_ready[0], &c, 1);
    pthread_join(h, NULL);
    int r = pthread_mutex_lock(&m);
    printf("robust PI lock after the owner ended: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
    printf("consistent: %d\n", pthread_mutex_consistent(&m));
    printf("unlock: %d\n", pthread_mutex_unlock(&m));
    printf("lock again: %d\n", pthread_mutex_lock(&m));
    pthread_t t2;
    pthread_create(&t2, NULL, (void *(*)(void *))pthread_mutex_trylock, &m);
    void *tr;
    pthread_join(t2, &tr);
    printf("trylock from another thread: %s\n", (long)tr == EBUSY ? "EBUSY" : "?");
    printf("unlock: %d\n", pthread_mutex_unlock(&m));
    requeue_pi();
    return 0;
}
