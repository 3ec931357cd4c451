/* A random-syscall fuzzer, run as pid 1 of a sandbox (tests/sentry/test_syscall_fuzz.py and
 * bench/syscall_fuzz.py). Never run it natively: it makes random system calls as root.
 *
 *   syscall_fuzz SEED CALLS WORKERS THREADS STUB_START STUB_END
 *
 * The current directory is the fuzzer's fresh working directory. pid 1 is a supervisor: it
 * forks WORKERS processes of THREADS threads each; together they make CALLS calls (each
 * thread its share), random numbers over the x86_64 table (and a few beyond it, x32 numbers,
 * negative ones) with random arguments: small numbers, flags, lengths, fds of every kind the
 * fuzzer opened, and pointers into read-write, read-only, PROT_NONE, unmapped, stub
 * (STUB_START..STUB_END, hidden from /proc/self/maps), vDSO, kernel and non-canonical memory.
 * A worker that dies (a random signal, an rlimit, a bad mapping) is replaced and its slot's
 * remaining calls go on. The run is bounded by the number of calls: a thread that stops
 * advancing is sent SIGALRM (every worker handles it without SA_RESTART, so a blocking call
 * returns EINTR) and SIGCONT; one that still does not advance after many such kicks is
 * reported as STUCK and its worker killed.
 *
 * Not called (they end the run legitimately, or hand control to garbage):
 *   exit, exit_group, rt_sigreturn, execve, execveat, vfork, clone3, seccomp, and prctl's
 *   PR_SET_SECCOMP, PR_SET_MM, PR_SET_SYSCALL_USER_DISPATCH.
 * Sanitised (the call is made, one argument bent):
 *   signals SIGKILL/SIGSTOP become 0 in kill, tkill, tgkill, rt_(tg)sigqueueinfo,
 *   pidfd_send_signal and fcntl(F_SETSIG); pid 1 (the supervisor) becomes 0 in ptrace,
 *   prlimit64 and process_vm_writev; clone never gets CLONE_VM/THREAD/SIGHAND/SETTLS (its
 *   child exits at once); calls that change mappings (mmap MAP_FIXED, munmap, mprotect,
 *   pkey_mprotect, mremap, madvise, remap_file_pages, mseal, shmat) get addresses in a
 *   dedicated arena, the stub, or unmapped memory, never the fuzzer's own; brk never shrinks;
 *   the signal-mask arguments of the waits (rt_sigsuspend, ppoll, pselect6, epoll_pwait(2))
 *   never block SIGALRM; memory sizes stay under 16 MiB.
 * Restored after the call: the signal mask, the handlers and the alternate stack after a
 * signal call, the FS base after arch_prctl.
 *
 * Prints "fuzz: calls N skipped N worker-deaths N kicks N stuck N" at the end (on stdout, at
 * its end: workers write garbage to inherited fds too) and "STUCK ..." lines for stuck calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#define MAXW 8
#define MAXT 8
#define NR_MAX 470
#define MIB (1UL << 20)
#define POOL (64 * 1024)
#define ARENA (4 * MIB)
#define MM_MAX (16 * MIB)

/* Shared with the supervisor (MAP_SHARED, made before the forks). */
struct slot {
    volatile long calls, budget, tid, nr, args[6], done, pid;
};
struct ctl {
    volatile long skipped, kicks;
    struct slot slot[MAXW][MAXT];
};
static struct ctl *ctl;

static unsigned long stub_lo, stub_hi, vdso_lo;
static char *rw, *ro, *none, *arena, *hole, *zeros;
static char *paths[40];
static int npaths;
static volatile int fds[32];
static int nfds;
static unsigned long fs_base;

static inline long raw(long n, long a, long b, long c, long d, long e, long f) {
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

static inline uint64_t next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}
#define R(n) (next(rng) % (n))

static void on_signal(int sig) { (void)sig; }

static void handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocking call returns EINTR */
    for (int s = 1; s < 65; s++) {
        if (s == SIGKILL || s == SIGSTOP || s == SIGCHLD || s == 32 || s == 33)
            continue;
        /* A real fault handled and returned from would fault again for ever: caught once
         * (a random kill of them), then their default action ends the worker. */
        int fault = s == SIGSEGV || s == SIGBUS || s == SIGILL || s == SIGFPE ||
                    s == SIGTRAP || s == SIGSYS;
        sa.sa_flags = fault ? SA_RESETHAND : 0;
        sigaction(s, &sa, NULL);
    }
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
}

static void unblock(void) {
    uint64_t none_set = 0;
    raw(SYS_rt_sigprocmask, SIG_SETMASK, (long)&none_set, 0, 8, 0, 0);
}

static char *guarded(size_t n, int prot) {
    char *p = mmap(NULL, n + 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    mprotect(p + 4096, n, PROT_READ | PROT_WRITE);
    (void)prot;
    return p + 4096;
}

static void fill(char *p, size_t n, uint64_t *rng) {
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = next(rng);
        memcpy(p + i, &v, 8);
    }
}

/* The memory every worker aims at: made by the supervisor, inherited. */
static void setup_memory(uint64_t *rng) {
    static const char *names[] = {
        "f0", "f1", "d0", "d0/f2", "d0/d1", "l0", "l1", "p0", "s0", ".", "..", "/", "",
        "/tmp", "/tmp/fuzz-outside-mark", "../fuzz-outside-mark", "/dev/null", "/dev/zero",
        "/dev/full", "/dev/urandom", "/dev/ptmx", "/dev/tty", "/proc/self/maps",
        "/proc/self/status", "/proc/self/fd", "/proc/self/fd/0", "/proc/1/stat",
        "/proc/sys/kernel/hostname", "/sys/kernel", "f0/", "d0/../f0", "//d0///f2",
        "/proc/self/cwd/f0", "/proc/self/root/tmp", "d0/d1/../../f1"};
    rw = guarded(POOL, PROT_READ | PROT_WRITE);
    ro = guarded(POOL, PROT_READ);
    arena = guarded(ARENA, PROT_READ | PROT_WRITE);
    none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* zeroes nothing can overwrite: the empty signal sets of the waits */
    zeros = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* Unmapped memory far below where anything of the fuzzer's own is allocated (top
     * down, near the stack), so that whatever the workers map later (thread stacks, the
     * shared counters) never lands there and a random munmap of the hole cannot take it. */
    hole = (char *)0x200000000000UL;
    munmap(hole, 1 << 20);
    fill(rw, POOL, rng);
    fill(ro, POOL, rng);
    /* path strings at the start of rw and ro, and one long name */
    size_t off = 0;
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++) {
        size_t n = strlen(names[i]) + 1;
        memcpy(rw + off, names[i], n);
        memcpy(ro + off, names[i], n);
        paths[npaths++] = rw + off;
        if (npaths < 39)
            paths[npaths++] = ro + off;
        off += n;
        if (npaths >= 38)
            break;
    }
    memset(rw + 4096, 'a', 5000);
    rw[4096 + 5000] = 0;
    paths[npaths++] = rw + 4096;
    /* a few well-formed structures: timespecs of 1 ms, iovecs into rw, an empty sigset */
    long *w = (long *)(rw + 16384);
    for (int i = 0; i < 16; i++) {
        w[2 * i] = 0;
        w[2 * i + 1] = 1000000;
    }
    struct iovec *iov = (struct iovec *)(rw + 20480);
    for (int i = 0; i < 16; i++) {
        iov[i].iov_base = rw + 32768 + 1024 * i;
        iov[i].iov_len = i == 7 ? 1 << 30 : 1024;
    }
    iov[3].iov_base = ro;
    iov[5].iov_base = (void *)stub_lo;
    iov[9].iov_base = hole;
    mprotect(ro, POOL, PROT_READ);
    /* the vDSO, from /proc/self/maps */
    FILE *m = fopen("/proc/self/maps", "r");
    char line[512];
    while (m && fgets(line, sizeof line, m))
        if (strstr(line, "[vdso]"))
            vdso_lo = strtoul(line, NULL, 16);
    if (m)
        fclose(m);
}

static void open_fds(void) {
    int sp[2], p[2];
    for (int i = 0; i < nfds; i++)
        if (fds[i] > 2)
            close(fds[i]);
    nfds = 0;
#define ADD(x) do { int _f = (x); if (_f >= 0 && nfds < 32) fds[nfds++] = _f; } while (0)
    ADD(open("f0", O_RDWR | O_CREAT | O_NONBLOCK, 0644));
    ADD(open("f1", O_RDONLY | O_CREAT | O_NONBLOCK, 0600));
    ADD(open(".", O_RDONLY | O_DIRECTORY));
    ADD(open("d0", O_RDONLY | O_DIRECTORY));
    ADD(open("f0", O_PATH));
    ADD(open("/dev/null", O_RDWR));
    ADD(open("/dev/zero", O_RDONLY));
    ADD(open("/proc/self/status", O_RDONLY));
    if (pipe2(p, O_NONBLOCK) == 0) {
        ADD(p[0]);
        ADD(p[1]);
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp) == 0) {
        ADD(sp[0]);
        ADD(sp[1]);
    }
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sp) == 0)
        ADD(sp[0]);
    ADD(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (l >= 0) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
        bind(l, (struct sockaddr *)&a, sizeof a);
        listen(l, 4);
        ADD(l);
    }
    ADD(eventfd(1, EFD_NONBLOCK));
    ADD(epoll_create1(0));
    ADD(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK));
    ADD(inotify_init1(IN_NONBLOCK));
    ADD((int)syscall(SYS_memfd_create, "fuzz", 0));
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGUSR2);
    ADD(signalfd(-1, &ss, SFD_NONBLOCK));
    ADD((int)syscall(SYS_pidfd_open, getpid(), 0));
#undef ADD
}

static long pick_ptr(uint64_t *rng) {
    switch (R(16)) {
    case 0: return 0;
    case 1: return (long)ro + (long)R(POOL);
    case 2: return (long)ro;
    case 3: return (long)none + (long)R(4096);
    case 4: return (long)hole + (long)R(1 << 20); /* unmapped */
    case 5: return (long)(stub_lo + R(stub_hi - stub_lo));
    case 6: return (long)stub_lo;
    case 7: return vdso_lo ? (long)(vdso_lo + R(4096)) : 0;
    case 8: return (long)0xffffffff81000000UL;
    case 9: return (long)0x8000000000000000UL + (long)R(4096);
    case 10: return (long)rw + POOL - (long)R(16); /* ends at the guard page */
    case 11: return (long)paths[R(npaths)];
    case 12: return (long)rw + 16384 + 16 * (long)R(8); /* timespecs */
    case 13: return (long)rw + 20480 + 16 * (long)R(8); /* iovecs */
    case 14: return (long)zeros;
    default: return (long)rw + (long)R(POOL);
    }
}

static long pick_len(uint64_t *rng) {
    switch (R(12)) {
    case 0: return 0;
    case 1: return 1;
    case 2: return (long)R(64);
    case 3: return 4096;
    case 4: return (long)R(POOL);
    case 5: return POOL + 1;
    case 6: return (long)R(MM_MAX);
    case 7: return -1;
    case 8: return 0x7ffff000;
    case 9: return 1L << 32;
    case 10: return (long)R(16);
    default: return (long)R(4096);
    }
}

static long pick_fd(uint64_t *rng) {
    switch (R(8)) {
    case 0: return (long)R(40);
    case 1: return -1;
    case 2: return -100; /* AT_FDCWD */
    case 3: return (long)next(rng);
    default: return nfds ? fds[R(nfds)] : 0;
    }
}

static long pick_any(uint64_t *rng) {
    switch (R(10)) {
    case 0: case 1: return (long)R(8) - 1;
    case 2: return (long)R(1024);
    case 3: return 1L << R(64);
    case 4: return (long)next(rng);
    case 5: return (long)(next(rng) & 0xffffffff);
    case 6: return pick_len(rng);
    case 7: return pick_fd(rng);
    default: return pick_ptr(rng);
    }
}

static long mm_addr(uint64_t *rng) {
    switch (R(8)) {
    case 0: return (long)stub_lo + 4096 * (long)R(2);
    case 1: return (long)hole;
    case 2: return 0;
    case 3: return (long)arena + (long)R(ARENA); /* unaligned */
    case 4: return (long)0x8000000000000000UL;
    default: return (long)arena + 4096 * (long)R(ARENA / 4096);
    }
}

/* A length from `addr` that stays inside the arena, the hole or the stub (whatever lies
 * around them is the fuzzer's own). */
static long mm_len(uint64_t *rng, long addr) {
    long n = R(4) ? 4096 * (long)(1 + R(64)) : (long)R(MM_MAX);
    long a = (long)arena, h = (long)hole, s = (long)stub_lo;
    if (addr >= a && addr < a + ARENA && addr + n > a + ARENA)
        n = a + ARENA - addr;
    if (addr >= h && addr < h + (1 << 20) && addr + n > h + (1 << 20))
        n = h + (1 << 20) - addr;
    if (addr >= s && addr < (long)stub_hi && addr + n > (long)stub_hi)
        n = (long)stub_hi - addr;
    return n;
}

static int is_sig_bad(long s) { return (int)s == SIGKILL || (int)s == SIGSTOP; }

/* Bend the arguments of call `nr`; 0: do not make it. */
static int sanitize(long nr, long *a, uint64_t *rng) {
    switch (nr) {
    case SYS_exit: case SYS_exit_group: case SYS_rt_sigreturn: case SYS_execve:
    case SYS_execveat: case SYS_vfork: case SYS_clone3: case SYS_seccomp:
        return 0;
    case SYS_prctl:
        return (int)a[0] != 22 && (int)a[0] != 35 && (int)a[0] != 59;
    case SYS_kill: case SYS_tkill: case SYS_rt_sigqueueinfo: case SYS_pidfd_send_signal:
        if (is_sig_bad(a[1])) a[1] = 0;
        return 1;
    case SYS_tgkill: case SYS_rt_tgsigqueueinfo:
        if (is_sig_bad(a[2])) a[2] = 0;
        return 1;
    case SYS_fcntl:
        if ((int)a[1] == F_SETSIG && is_sig_bad(a[2])) a[2] = 0;
        return 1;
    case SYS_ptrace:
        if ((int)a[1] == 1) a[1] = 0;
        return 1;
    case SYS_prlimit64: case SYS_process_vm_writev:
        if ((int)a[0] == 1) a[0] = 0;
        return 1;
    case SYS_clone:
        a[0] &= ~(long)(CLONE_VM | CLONE_THREAD | CLONE_SIGHAND | CLONE_SETTLS);
        a[1] = R(4) ? 0 : a[1];
        return 1;
    case SYS_mmap:
        if (a[3] & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
            a[0] = mm_addr(rng);
            a[1] = mm_len(rng, a[0]);
        } else if ((unsigned long)a[1] > MM_MAX) {
            a[1] = (long)R(MM_MAX);
        }
        if (R(2)) a[3] = (R(2) ? MAP_PRIVATE : MAP_SHARED) | (R(2) ? MAP_ANONYMOUS : 0) |
                         (a[3] & (MAP_FIXED | MAP_POPULATE | MAP_NORESERVE | MAP_GROWSDOWN));
        if (R(2)) a[2] = R(8);
        if (R(2)) a[5] = 4096 * (long)R(4);
        return 1;
    case SYS_munmap: case SYS_mprotect: case SYS_pkey_mprotect: case SYS_madvise:
    case SYS_remap_file_pages: case 462 /* mseal */:
        a[0] = mm_addr(rng);
        a[1] = mm_len(rng, a[0]);
        if (nr == SYS_mprotect || nr == SYS_pkey_mprotect) a[2] = R(2) ? R(8) : a[2];
        if (nr == SYS_madvise && R(2)) a[2] = R(26);
        return 1;
    case SYS_mremap:
        a[0] = mm_addr(rng);
        a[1] = mm_len(rng, a[0]);
        a[2] = R(2) ? mm_len(rng, a[0]) : (long)R(MM_MAX);
        a[3] = R(8);
        a[4] = mm_addr(rng);
        return 1;
    case SYS_shmat:
        a[1] = R(2) ? 0 : mm_addr(rng);
        return 1;
    case SYS_brk: {
        long cur = raw(SYS_brk, 0, 0, 0, 0, 0, 0);
        a[0] = R(3) == 0 ? 0 : R(2) ? cur + 4096 * (long)R(16) : (long)next(rng) | (1L << 47);
        return 1;
    }
    case SYS_rt_sigsuspend:
        a[0] = R(2) ? (long)zeros : R(2) ? (long)hole : (long)stub_lo;
        a[1] = R(4) ? 8 : a[1];
        return 1;
    case SYS_ppoll:
        if (a[3] >= (long)ro && a[3] < (long)ro + POOL) a[3] = 0;
        if (a[3] >= (long)rw && a[3] < (long)rw + POOL) a[3] = (long)zeros;
        return 1;
    case SYS_pselect6:
        a[5] = R(2) ? 0 : (long)zeros; /* {NULL, 0}: no mask */
        return 1;
    case SYS_epoll_pwait: case SYS_epoll_pwait2:
        if (a[4] >= (long)ro && a[4] < (long)ro + POOL) a[4] = 0;
        if (a[4] >= (long)rw && a[4] < (long)rw + POOL) a[4] = (long)zeros;
        return 1;
    case SYS_io_pgetevents:
        a[5] = 0;
        return 1;
    }
    return 1;
}

static void restore(long nr) {
    switch (nr) {
    case SYS_rt_sigaction: case SYS_sigaltstack: case SYS_signalfd: case SYS_signalfd4:
        handlers();
        break;
    case SYS_arch_prctl:
        raw(SYS_arch_prctl, 0x1002 /* ARCH_SET_FS */, (long)fs_base, 0, 0, 0, 0);
        break;
    }
    if (nr == SYS_rt_sigprocmask || nr == SYS_rt_sigaction)
        unblock();
}

static void fuzz(struct slot *me, uint64_t seed) {
    uint64_t st = seed * 0x9E3779B97F4A7C15ULL + 1, *rng = &st;
    raw(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, (long)&fs_base, 0, 0, 0, 0);
    me->tid = raw(SYS_gettid, 0, 0, 0, 0, 0, 0);
    while (me->calls < me->budget) {
        long a[6], nr;
        switch (R(32)) {
        case 0: nr = 512 + (long)R(40); break;            /* x32 numbers: invalid here */
        case 1: nr = R(2) ? -1 : (long)next(rng); break;  /* garbage numbers */
        case 2: nr = 0x40000000L | (long)R(NR_MAX); break;
        case 3: nr = (long)R(NR_MAX); break;              /* gaps of the table too */
        default: nr = R(8) ? (long)R(335) : 424 + (long)R(NR_MAX - 424);
        }
        for (int i = 0; i < 6; i++)
            a[i] = pick_any(rng);
        /* the usual shapes: (fd, ptr, len), (dirfd, path, flags), (path, ...) */
        switch (R(4)) {
        case 0: a[0] = pick_fd(rng); a[1] = pick_ptr(rng); a[2] = pick_len(rng); break;
        case 1: a[0] = pick_fd(rng); a[1] = (long)paths[R(npaths)]; break;
        case 2: a[0] = (long)paths[R(npaths)]; break;
        }
        if (!sanitize(nr, a, rng)) {
            __sync_fetch_and_add(&ctl->skipped, 1);
            continue;
        }
        me->nr = nr;
        for (int i = 0; i < 6; i++)
            me->args[i] = a[i];
        long r = raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (r == 0 && (nr == SYS_fork || nr == SYS_clone))
            raw(SYS_exit_group, 0, 0, 0, 0, 0, 0); /* the child of a random fork */
        restore(nr);
        me->calls++;
        if (me->calls % 256 == 0)
            open_fds();
    }
    me->nr = -1;
    me->done = 1;
}

struct targ {
    struct slot *slot;
    uint64_t seed;
};

static void *thread_main(void *p) {
    struct targ *t = p;
    fuzz(t->slot, t->seed);
    return NULL;
}

static void worker(int w, int nthreads, uint64_t seed) {
    static struct targ targs[MAXT];
    handlers();
    /* fds 1 and 2 stay the sandbox's stdout/stderr in the supervisor only */
    int null = open("/dev/null", O_RDWR);
    dup2(null, 1);
    dup2(null, 2);
    close(null);
    open_fds();
    for (int i = 1; i < nthreads; i++) {
        struct slot *s = &ctl->slot[w][i];
        if (s->calls >= s->budget) {
            s->done = 1;
            continue;
        }
        targs[i] = (struct targ){s, seed + (uint64_t)i * 7919 + (uint64_t)s->calls};
        pthread_t th;
        if (pthread_create(&th, NULL, thread_main, &targs[i]) != 0)
            s->done = 1; /* counted as short; a refill in the next generation */
    }
    struct slot *s0 = &ctl->slot[w][0];
    fuzz(s0, seed + (uint64_t)s0->calls);
    for (;;) {
        int all = 1;
        for (int i = 0; i < nthreads; i++)
            all &= (int)ctl->slot[w][i].done;
        if (all)
            break;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    raw(SYS_exit_group, 0, 0, 0, 0, 0, 0);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s SEED CALLS WORKERS THREADS STUB_START STUB_END\n", argv[0]);
        return 2;
    }
    if (getpid() != 1) {
        fprintf(stderr, "syscall_fuzz: refusing to run outside a sandbox (not pid 1)\n");
        return 2;
    }
    uint64_t seed = strtoull(argv[1], NULL, 0);
    long calls = strtol(argv[2], NULL, 0);
    int nw = atoi(argv[3]), nt = atoi(argv[4]);
    stub_lo = strtoul(argv[5], NULL, 0);
    stub_hi = strtoul(argv[6], NULL, 0);
    if (nw < 1 || nw > MAXW || nt < 1 || nt > MAXT || stub_hi <= stub_lo) {
        fprintf(stderr, "syscall_fuzz: bad arguments\n");
        return 2;
    }
    uint64_t st = seed + 1;
    setup_memory(&st);
    mkdir("d0", 0755);
    mkdir("d0/d1", 0755);
    close(open("d0/f2", O_CREAT | O_RDWR, 0644));
    symlink("f0", "l0");
    symlink("l1", "l1");
    mkfifo("p0", 0644);
    ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    long per = calls / (nw * nt);
    for (int w = 0; w < nw; w++)
        for (int t = 0; t < nt; t++)
            ctl->slot[w][t].budget = per + (w == 0 && t == 0 ? calls % (nw * nt) : 0);
    handlers();
    long deaths = 0, stuck = 0;
    long last[MAXW][MAXT], idle[MAXW][MAXT];
    int gen[MAXW];
    memset(last, 0, sizeof last);
    memset(idle, 0, sizeof idle);
    memset(gen, 0, sizeof gen);
    int live = 0;
    for (int w = 0; w < nw; w++) {
        pid_t p = fork();
        if (p == 0)
            worker(w, nt, seed * 1000003 + (uint64_t)w * 104729);
        ctl->slot[w][0].pid = p;
        live += p > 0;
    }
    while (live > 0) {
        int status;
        pid_t p = waitpid(-1, &status, WNOHANG | __WALL);
        if (p > 0) {
            for (int w = 0; w < nw; w++) {
                if (ctl->slot[w][0].pid != p)
                    continue;
                live--;
                int left = 0;
                for (int t = 0; t < nt; t++) {
                    struct slot *s = &ctl->slot[w][t];
                    left |= s->calls < s->budget;
                    s->done = 0;
                    s->tid = 0;
                    idle[w][t] = 0;
                }
                if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                    deaths++;
                if (left && ++gen[w] < 1000) { /* the slot's remaining calls go on */
                    pid_t q = fork();
                    if (q == 0)
                        worker(w, nt, seed * 1000003 + (uint64_t)w * 104729 + (uint64_t)gen[w]);
                    ctl->slot[w][0].pid = q;
                    live += q > 0;
                }
            }
            continue;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
        for (int w = 0; w < nw; w++) {
            for (int t = 0; t < nt; t++) {
                struct slot *s = &ctl->slot[w][t];
                if (s->done || !s->tid || !ctl->slot[w][0].pid)
                    continue;
                if (s->calls != last[w][t]) {
                    last[w][t] = s->calls;
                    idle[w][t] = 0;
                    continue;
                }
                if (++idle[w][t] % 10 == 0) { /* about 100 ms without a call */
                    syscall(SYS_tgkill, ctl->slot[w][0].pid, s->tid, SIGALRM);
                    kill(ctl->slot[w][0].pid, SIGCONT);
                    __sync_fetch_and_add(&ctl->kicks, 1);
                }
                if (idle[w][t] == 3000) { /* 300 kicks: not interruptible */
                    stuck++;
                    printf("STUCK worker %d thread %d nr %ld args %lx %lx %lx %lx %lx %lx\n",
                           w, t, s->nr, s->args[0], s->args[1], s->args[2], s->args[3],
                           s->args[4], s->args[5]);
                    kill(ctl->slot[w][0].pid, SIGKILL);
                }
            }
        }
    }
    long total = 0;
    for (int w = 0; w < nw; w++)
        for (int t = 0; t < nt; t++)
            total += ctl->slot[w][t].calls;
    fflush(stdout);
    lseek(1, 0, SEEK_END);
    printf("fuzz: calls %ld skipped %ld worker-deaths %ld kicks %ld stuck %ld\n", total,
           ctl->skipped, deaths, ctl->kicks, stuck);
    return 0;
}
