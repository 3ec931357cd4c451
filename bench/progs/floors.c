/* The floors of the candidate platform mechanisms: a supervisor process answers every
 * getpid a target process makes, with no work of its own, so what is timed is the
 * mechanism alone (the stops, the wake-ups, the context switches).
 *
 *   floors MECH N SUPERVISOR_CPU TARGET_CPU
 *
 * MECH:
 *   sysemu        PTRACE_SYSEMU: every syscall of the target stops it; the supervisor
 *                 writes the answer with PTRACE_SETREGS (the ptrace platform's loop).
 *   seccomp       SECCOMP_RET_USER_NOTIF for getpid (filter installed with
 *                 SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV); the supervisor answers with
 *                 SECCOMP_IOCTL_NOTIF_RECV + SECCOMP_IOCTL_NOTIF_SEND.
 *   seccomp-sync  the same, the listener set to SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
 *                 (Linux 6.6: the waker hands its CPU to the woken side).
 *   systrap       SECCOMP_RET_TRAP: the target's own SIGSYS handler writes the call to a
 *                 shared page and wakes the supervisor with FUTEX_WAKE, then FUTEX_WAITs
 *                 there until the supervisor has written the answer and woken it back.
 *   systrap-spin  the same, each side first polling the shared page for a while (as
 *                 gVisor's systrap does when it has CPUs to spare) before its FUTEX_WAIT.
 *   sigsys        no supervisor: the target's SIGSYS handler answers the call itself
 *                 (what systrap pays for the trap alone, before any wake-up).
 *   trace         SECCOMP_RET_TRACE: the call stops the target (PTRACE_EVENT_SECCOMP); the
 *                 supervisor skips it (orig_rax = -1), writes the answer, PTRACE_CONT.
 * A CPU of -1 leaves that process on the caller's affinity mask.
 *
 * The target makes N getpid calls and checks each answer: the i-th must be ANSWER + i
 * (beyond any pid, so a call that reached the host cannot pass). It times its own loop
 * (clock_gettime is the vDSO's: no syscall) and leaves the figures on a shared page.
 * Output, one line: MECH ns-per-call answered wrong. Exit status 0 only if all N calls
 * were answered with the right value; 3 if this kernel lacks the mechanism.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "bench.h"

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

#define ANSWER (1L << 40)
enum { IDLE, REQUEST, REPLY };

/* The page the two processes share (MAP_SHARED, mapped before the fork). */
struct shared {
    uint32_t state;     /* systrap: the futex word, IDLE -> REQUEST -> REPLY -> IDLE */
    long nr, value;     /* systrap: the call, and the supervisor's answer */
    long answered, wrong;
    double ns;          /* the target's loop, ns per call */
};
static struct shared *sh;
static long spin;  /* systrap: polls of the shared page before a FUTEX_WAIT */

static void die(const char *what) { perror(what); exit(2); }

static void pin(int cpu) {
    cpu_set_t set;
    if (cpu < 0) return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set)) die("sched_setaffinity");
}

static long futex(uint32_t *word, int op, uint32_t val) {
    return syscall(SYS_futex, word, op, val, NULL, NULL, 0);
}

/* systrap: poll until the futex word is `want`, at most `spin` times; whether it is. */
static int polled(uint32_t want) {
    for (long i = 0; i < spin; i++) {
        if (__atomic_load_n(&sh->state, __ATOMIC_ACQUIRE) == want) return 1;
        __builtin_ia32_pause();
    }
    return 0;
}

/* The target's loop: N getpid calls, each answer checked. */
static void target_loop(long n) {
    long wrong = 0;
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (syscall(SYS_getpid) != ANSWER + i) wrong++;
    sh->ns = (now_ns() - t0) / n;
    sh->answered = n;
    sh->wrong = wrong;
}

/* Install a filter sending getpid to `action`, allowing everything else (x86_64 only). */
static int install_filter(unsigned action, unsigned flags) {
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getpid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, action),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof code / sizeof code[0], code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) die("PR_SET_NO_NEW_PRIVS");
    int fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (fd < 0) die("seccomp");
    return fd;
}

/* The supervisor's wait is interrupted (EINTR) when the target dies before its N calls. */
static void on_sigchld(int sig) { (void)sig; }

static void catch_sigchld(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_sigchld;  /* no SA_RESTART: a blocked wait returns EINTR */
    sigaction(SIGCHLD, &sa, NULL);
}

/* ---- PTRACE_SYSEMU ---- */
static void run_sysemu(long n, int tcpu) {
    pid_t pid = fork();
    if (pid == 0) {
        pin(tcpu);
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        target_loop(n);
        syscall(SYS_exit_group, 0);  /* stops too: the supervisor ends the target */
    }
    int status;
    struct user_regs_struct regs;
    long count = 0;
    waitpid(pid, &status, 0);
    ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL);
    ptrace(PTRACE_SYSEMU, pid, 0, 0);
    for (;;) {
        if (waitpid(pid, &status, __WALL) < 0 || !WIFSTOPPED(status)) break;
        ptrace(PTRACE_GETREGS, pid, 0, &regs);
        if (regs.orig_rax == SYS_exit_group) break;
        regs.rax = regs.orig_rax == SYS_getpid ? ANSWER + count++ : -ENOSYS;
        ptrace(PTRACE_SETREGS, pid, 0, &regs);
        ptrace(PTRACE_SYSEMU, pid, 0, 0);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, __WALL);
}

/* ---- SECCOMP_RET_USER_NOTIF ---- */
static void run_seccomp(long n, int tcpu, int sync) {
    int ready[2];
    if (pipe(ready)) die("pipe");
    catch_sigchld();
    pid_t pid = fork();
    if (pid == 0) {
        pin(tcpu);
        int fd = install_filter(SECCOMP_RET_USER_NOTIF, SECCOMP_FILTER_FLAG_NEW_LISTENER |
                                SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
        if (write(ready[1], &fd, sizeof fd) != sizeof fd) _exit(2);
        target_loop(n);
        _exit(0);
    }
    int tfd, status;
    if (read(ready[0], &tfd, sizeof tfd) != sizeof tfd) die("read listener");
    int pidfd = syscall(SYS_pidfd_open, pid, 0);
    int fd = pidfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pidfd, tfd, 0);
    if (fd < 0) die("pidfd_getfd");
    if (sync && ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)) {
        fprintf(stderr, "unsupported: SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6): %s\n",
                strerror(errno));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        exit(3);
    }
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    for (long count = 0; count < n; count++) {
        memset(&req, 0, sizeof req);
        if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req)) break;  /* EINTR: the target died */
        resp.id = req.id;
        resp.val = ANSWER + count;
        resp.error = 0;
        resp.flags = 0;
        if (ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp)) break;
    }
    waitpid(pid, &status, 0);
}

/* ---- systrap: SECCOMP_RET_TRAP, the target's SIGSYS handler, a futex each way ---- */
static void on_sigsys(int sig, siginfo_t *info, void *uc_) {
    ucontext_t *uc = uc_;
    (void)sig;
    sh->nr = info->si_syscall;
    __atomic_store_n(&sh->state, REQUEST, __ATOMIC_RELEASE);
    futex(&sh->state, FUTEX_WAKE, 1);
    polled(REPLY);
    while (__atomic_load_n(&sh->state, __ATOMIC_ACQUIRE) != REPLY)
        futex(&sh->state, FUTEX_WAIT, REQUEST);
    uc->uc_mcontext.gregs[REG_RAX] = sh->value;
    __atomic_store_n(&sh->state, IDLE, __ATOMIC_RELAXED);
}

/* sigsys: the handler is its own supervisor. */
static void on_sigsys_local(int sig, siginfo_t *info, void *uc_) {
    ucontext_t *uc = uc_;
    (void)sig;
    uc->uc_mcontext.gregs[REG_RAX] = info->si_syscall == SYS_getpid ? ANSWER + sh->value++
                                                                    : -ENOSYS;
}

static void run_systrap(long n, int tcpu, int local) {
    catch_sigchld();
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction sa = {0};
        pin(tcpu);
        sa.sa_sigaction = local ? on_sigsys_local : on_sigsys;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSYS, &sa, NULL);
        install_filter(SECCOMP_RET_TRAP, 0);
        target_loop(n);
        _exit(0);
    }
    int status;
    for (long count = 0; count < n && !local; count++) {
        polled(REQUEST);
        /* Until the next call: the word is REPLY until the target has read the last answer,
         * then IDLE; waiting on whichever it is, the target's FUTEX_WAKE of REQUEST wakes
         * us (a FUTEX_WAIT on IDLE alone would spin through REPLY). */
        uint32_t seen;
        while ((seen = __atomic_load_n(&sh->state, __ATOMIC_ACQUIRE)) != REQUEST)
            if (futex(&sh->state, FUTEX_WAIT, seen) && errno == EINTR && waitpid(pid, &status, WNOHANG))
                return;  /* the target died */
        sh->value = sh->nr == SYS_getpid ? ANSWER + count : -ENOSYS;
        __atomic_store_n(&sh->state, REPLY, __ATOMIC_RELEASE);
        futex(&sh->state, FUTEX_WAKE, 1);
    }
    waitpid(pid, &status, 0);
}

/* ---- SECCOMP_RET_TRACE + PTRACE_CONT ---- */
static void run_trace(long n, int tcpu) {
    pid_t pid = fork();
    if (pid == 0) {
        pin(tcpu);
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        install_filter(SECCOMP_RET_TRACE, 0);
        target_loop(n);
        _exit(0);
    }
    int status;
    struct user_regs_struct regs;
    long count = 0;
    waitpid(pid, &status, 0);
    ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL);
    ptrace(PTRACE_CONT, pid, 0, 0);
    for (;;) {
        if (waitpid(pid, &status, __WALL) < 0 || !WIFSTOPPED(status)) break;
        int sig = 0;
        if (status >> 8 == (SIGTRAP | (PTRACE_EVENT_SECCOMP << 8))) {
            ptrace(PTRACE_GETREGS, pid, 0, &regs);
            regs.rax = regs.orig_rax == SYS_getpid ? ANSWER + count++ : -ENOSYS;
            regs.orig_rax = -1;  /* skip the call: it never runs on the host */
            ptrace(PTRACE_SETREGS, pid, 0, &regs);
        } else {
            sig = WSTOPSIG(status);
        }
        ptrace(PTRACE_CONT, pid, 0, sig);
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s sysemu|seccomp|seccomp-sync|systrap|systrap-spin|sigsys|trace N SUPCPU TGTCPU\n",
                argv[0]);
        return 2;
    }
    const char *mech = argv[1];
    long n = atol(argv[2]);
    int scpu = atoi(argv[3]), tcpu = atoi(argv[4]);
    sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED || n <= 0) die("mmap");
    pin(scpu);
    if (!strcmp(mech, "sysemu")) run_sysemu(n, tcpu);
    else if (!strcmp(mech, "seccomp")) run_seccomp(n, tcpu, 0);
    else if (!strcmp(mech, "seccomp-sync")) run_seccomp(n, tcpu, 1);
    else if (!strcmp(mech, "systrap")) run_systrap(n, tcpu, 0);
    else if (!strcmp(mech, "systrap-spin")) { spin = 1000; run_systrap(n, tcpu, 0); }
    else if (!strcmp(mech, "sigsys")) run_systrap(n, tcpu, 1);
    else if (!strcmp(mech, "trace")) run_trace(n, tcpu);
    else { fprintf(stderr, "unknown mechanism %s\n", mech); return 2; }
    printf("%s %.0f %ld %ld\n", mech, sh->ns, sh->answered, sh->wrong);
    return sh->answered == n && sh->wrong == 0 ? 0 : 1;
}
