"""Threads: pthread_create/join (clone with CLONE_THREAD, CLONE_CHILD_CLEARTID + futex),
per-thread ids, TLS, mutexes, exit of one thread, exit_group from a thread, and fork/exec
from a threaded process; compared with Linux."""

from .platform_helpers import build_c, native, run

PROGRAM = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long total;
static __thread long mine;
static pid_t tids[4];
static int mapped;
static void *work(void *arg) {
    long id = (long)arg;
    mine = id;
    /* memory calls from a thread while others run: injected through this thread */
    char *m = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    m[id] = 1;
    mprotect(m, 4096, PROT_READ);
    munmap(m, 1 << 20);
    free(malloc(200000 + id));
    __atomic_add_fetch(&mapped, 1, __ATOMIC_SEQ_CST);
    tids[id] = syscall(SYS_gettid);
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&lock);
        total += id;
        pthread_mutex_unlock(&lock);
        if (i % 100 == 0) getppid();
    }
    return (void *)(mine * 10);
}
static void *quitter(void *arg) { pthread_exit((void *)7); }
static void *sleeper(void *arg) { for (;;) pause(); }
int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1) {
        pthread_t s;
        pthread_create(&s, NULL, sleeper, NULL);
        usleep(1000);
        exit(9);  /* exit_group with a thread asleep */
    }
    pthread_t th[4];
    for (long i = 0; i < 4; i++) pthread_create(&th[i], NULL, work, (void *)i);
    while (__atomic_load_n(&mapped, __ATOMIC_SEQ_CST) < 4) {}  /* running, not stopped */
    long sum = 0;
    for (int i = 0; i < 4; i++) { void *r; pthread_join(th[i], &r); sum += (long)r; }
    int distinct = 1;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < i; j++)
            if (tids[i] == tids[j]) distinct = 0;
    printf("total %ld sum %ld distinct %d not_pid %d\n", total, sum, distinct,
           tids[1] != getpid());
    pthread_t q;
    void *qr;
    pthread_create(&q, NULL, quitter, NULL);
    pthread_join(q, &qr);
    printf("pthread_exit %ld\n", (long)qr);
    pid_t c = fork();
    if (c == 0) {
        char *args[] = {argv[0], "child", NULL};
        execv(argv[0], args);
        _exit(99);
    }
    int st;
    waitpid(c, &st, 0);
    printf("threaded child exit %d\n", WEXITSTATUS(st));
    return 0;
}
"""


async def test_threads_match_linux(tmp_path):
    prog = build_c(tmp_path, "threads", PROGRAM, "-static", "-pthread")
    st, out = native([prog])
    status, got, _, k = await run([prog])
    assert (status, got) == (st, out), k.events
    assert b"total 6000 sum 60 distinct 1 not_pid 1" in got
