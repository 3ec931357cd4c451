/* Robust futexes released when their owner thread ends (EOWNERDEAD for the next locker,
 * a waiter woken), get_robust_list, futex_waitv and (with argv[1] "futex2", on kernels
 * since 6.7) futex_wake/futex_wait/futex_requeue, with their errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void report(const char *label, long r) {
    if (r < 0)
        printf("%s = -1 %s\n", label, strerrorname_np(errno));
    else
        printf("%s = %ld\n", label, r);
}
#define S(label, ...) do { errno = 0; report(label, syscall(__VA_ARGS__)); } while (0)
#define BAD ((void *)8)
/* Linux 6.7's futex2 numbers and flags (Debian 12's headers predate them) */
#define FUTEX2_SIZE_U8 0x00
#define FUTEX2_SIZE_U32 0x02
#define FUTEX2_PRIVATE 128
#define SYS_futex_wake 454
#define SYS_futex_wait 455
#define SYS_futex_requeue 456

static pthread_mutex_t m1, m2;

static void *hold_and_exit(void *arg) {
    pthread_mutex_lock(&m1);
    return NULL;  /* ends holding m1 */
}

static void *hold_until_waited(void *arg) {
    pthread_mutex_lock(&m2);
    *(volatile int *)arg = 1;
    while (!(__atomic_load_n((unsigned *)&m2.__data.__lock, __ATOMIC_SEQ_CST) & FUTEX_WAITERS))
        sched_yield();
    return NULL;  /* ends holding m2, with the main thread waiting for it */
}

static void robust(void) {
    printf("-- robust\n");
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&m1, &a);
    pthread_mutex_init(&m2, &a);
    pthread_t th;
    pthread_create(&th, NULL, hold_and_exit, NULL);
    pthread_join(th, NULL);
    int r = pthread_mutex_lock(&m1);
    printf("lock after owner exit = %s\n", r ? strerrorname_np(r) : "0");
    printf("consistent = %d\n", pthread_mutex_consistent(&m1));
    printf("unlock = %d\n", pthread_mutex_unlock(&m1));
    printf("relock = %d\n", pthread_mutex_lock(&m1));
    pthread_mutex_unlock(&m1);

    volatile int locked = 0;
    pthread_create(&th, NULL, hold_until_waited, (void *)&locked);
    while (!locked)
        sched_yield();
    r = pthread_mutex_lock(&m2);  /* sleeps until the owner's exit wakes it */
    printf("waiter woken by owner exit = %s\n", r ? strerrorname_np(r) : "0");
    pthread_join(th, NULL);
    pthread_mutex_consistent(&m2);
    pthread_mutex_unlock(&m2);

    void *head = NULL;
    size_t len = 0;
    S("get_robust_list self", SYS_get_robust_list, 0, &head, &len);
    printf("  head set %d len %zu\n", head != NULL, len);
    S("get_robust_list none", SYS_get_robust_list, 99999, &head, &len);
    S("get_robust_list bad", SYS_get_robust_list, 0, BAD, &len);
    S("set_robust_list 23", SYS_set_robust_list, head, 23);
}

static uint32_t w1, w2;

static void *waitv_thread(void *arg) {
    struct futex_waitv v[2] = {{0, (uintptr_t)&w1, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE, 0},
                               {0, (uintptr_t)&w2, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE, 0}};
    long r = syscall(SYS_futex_waitv, v, 2, 0, NULL, 0);
    printf("waitv woke = %ld\n", r);
    return NULL;
}

static void waitv(void) {
    printf("-- futex_waitv\n");
    pthread_t th;
    pthread_create(&th, NULL, waitv_thread, NULL);
    while (syscall(SYS_futex, &w2, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) != 1)
        sched_yield();
    pthread_join(th, NULL);
    struct futex_waitv v[2] = {{0, (uintptr_t)&w1, FUTEX2_SIZE_U32, 0},
                               {0, (uintptr_t)&w2, FUTEX2_SIZE_U32, 0}};
    struct timespec past = {0, 0};
    S("waitv timeout", SYS_futex_waitv, v, 2, 0, &past, CLOCK_MONOTONIC);
    S("waitv realtime timeout", SYS_futex_waitv, v, 2, 0, &past, CLOCK_REALTIME);
    S("waitv bad clock", SYS_futex_waitv, v, 2, 0, &past, 5);
    S("waitv bad timeout", SYS_futex_waitv, v, 2, 0, BAD, CLOCK_MONOTONIC);
    S("waitv flags", SYS_futex_waitv, v, 2, 1, NULL, 0);
    S("waitv none", SYS_futex_waitv, v, 0, 0, NULL, 0);
    S("waitv 129", SYS_futex_waitv, v, 129, 0, NULL, 0);
    S("waitv null", SYS_futex_waitv, NULL, 2, 0, NULL, 0);
    S("waitv bad array", SYS_futex_waitv, BAD, 2, 0, NULL, 0);
    w1 = 5;
    S("waitv value differs", SYS_futex_waitv, v, 2, 0, NULL, 0);
    w1 = 0;
    v[1].flags = FUTEX2_SIZE_U8;
    S("waitv u8", SYS_futex_waitv, v, 2, 0, NULL, 0);
    v[1].flags = FUTEX2_SIZE_U32;
    v[1].__reserved = 1;
    S("waitv reserved", SYS_futex_waitv, v, 2, 0, NULL, 0);
    v[1].__reserved = 0;
    v[1].uaddr += 1;
    S("waitv unaligned", SYS_futex_waitv, v, 2, 0, NULL, 0);
    v[1].uaddr -= 1;
    v[1].val = 1ULL << 32;
    S("waitv value too big", SYS_futex_waitv, v, 2, 0, NULL, 0);
}

static uint32_t w3;

static void *wait_thread(void *arg) {
    long r = syscall(SYS_futex_wait, &w3, 0, 0x2, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE, NULL, 0);
    printf("futex_wait woke = %ld\n", r);
    return NULL;
}

static void futex2(void) {
    printf("-- futex2\n");
    pthread_t th;
    pthread_create(&th, NULL, wait_thread, NULL);
    while (syscall(SYS_futex_wake, &w3, 0x1, 1, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE) != 0)
        ;  /* a mask that misses the waiter's bitset wakes nobody */
    while (syscall(SYS_futex_wake, &w3, 0x6, 1, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE) != 1)
        sched_yield();
    pthread_join(th, NULL);
    struct timespec past = {0, 0};
    S("wait timeout", SYS_futex_wait, &w3, 0, ~0UL >> 32, FUTEX2_SIZE_U32, &past, CLOCK_MONOTONIC);
    S("wait differs", SYS_futex_wait, &w3, 1, ~0UL >> 32, FUTEX2_SIZE_U32, NULL, 0);
    S("wait mask 0", SYS_futex_wait, &w3, 0, 0, FUTEX2_SIZE_U32, NULL, 0);
    S("wait u64", SYS_futex_wait, &w3, 0, 1, 3, NULL, 0);
    S("wait bad flags", SYS_futex_wait, &w3, 0, 1, FUTEX2_SIZE_U32 | 0x100, NULL, 0);
    S("wake nobody", SYS_futex_wake, &w3, 1, 5, FUTEX2_SIZE_U32);
    S("wake mask 0", SYS_futex_wake, &w3, 0, 5, FUTEX2_SIZE_U32);
    S("wake u16", SYS_futex_wake, &w3, 1, 5, 1);
    S("wake unaligned", SYS_futex_wake, (char *)&w3 + 1, 1, 5, FUTEX2_SIZE_U32);
    struct futex_waitv rq[2] = {{0, (uintptr_t)&w1, FUTEX2_SIZE_U32, 0},
                                {0, (uintptr_t)&w2, FUTEX2_SIZE_U32, 0}};
    S("requeue", SYS_futex_requeue, rq, 0, 1, 1);
    S("requeue flags", SYS_futex_requeue, rq, 1, 1, 1);
    S("requeue negative", SYS_futex_requeue, rq, 0, -1, 1);
    rq[0].val = 9;
    S("requeue differs", SYS_futex_requeue, rq, 0, 1, 1);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 2 && strcmp(argv[1], "probe") == 0) {
        errno = 0;
        syscall(SYS_futex_wake, &w3, 1, 0, FUTEX2_SIZE_U32);
        printf("%s\n", errno == ENOSYS ? "no futex2" : "futex2");
        return 0;
    }
    robust();
    waitv();
    if (argc == 2 && strcmp(argv[1], "futex2") == 0)
        futex2();
    return 0;
}
