/* What every benchmark program of bench/progs shares. */
#ifndef RUNPSC_BENCH_H
#define RUNPSC_BENCH_H
#include <time.h>

/* Monotonic time in ns; clock_gettime is the vDSO's, so reading it makes no syscall (and
 * no stop in a sandbox). */
static inline double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}
#endif
