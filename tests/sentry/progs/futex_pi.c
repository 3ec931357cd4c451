/* Priority-inheritance futexes: pthread mutexes with PTHREAD_PRIO_INHERIT under contention
 * (the count must come out exact), trylock of a held one, a robust PI mutex whose owner
 * ends holding it (EOWNERDEAD, then consistent), and the raw FUTEX_LOCK_PI, LOCK_PI2,
 * TRYLOCK_PI and UNLOCK_PI answers: the word's owner and bits after each, EDEADLK, EPERM,
 * ESRCH for an owner that does not exist, ETIMEDOUT, ENOSYS, EINVAL, EFAULT. Tids are
 * printed as who they are ("self", "holder"), never as numbers. */
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
    return 0;
}
