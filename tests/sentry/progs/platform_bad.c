/* What a program may do to the platform under it (sentry/platform/usernotif.py, ptrace.py):
 * install its own seccomp filter, block SIGSYS or handle it, run `syscall` from memory it
 * just wrote (JIT), vfork, end a thread while another execs, jump to the stub's gadget,
 * call the legacy vsyscall page (the host emulates it outside the syscall entry), make
 * int 0x80 look like `syscall` (rcx = rip, r11 = rflags) for a call the Sentry injects.
 * Every mode prints what it saw; the test compares with Linux (and platform with platform). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static void say(const char *what, long r) {
    char buf[160];
    int n = snprintf(buf, sizeof buf, "%s %ld %s\n", what, r, r < 0 ? strerror(errno) : "");
    syscall(SYS_write, 1, buf, n);
}

static void calls(const char *when) {
    char name[64];
    struct stat st;
    snprintf(name, sizeof name, "%s.getppid", when);
    say(name, syscall(SYS_getppid) >= 0);
    snprintf(name, sizeof name, "%s.open", when);
    int fd = open("/dev/null", O_WRONLY);
    say(name, fd >= 0);
    snprintf(name, sizeof name, "%s.write", when);
    say(name, write(fd, "x", 1));
    close(fd);
    snprintf(name, sizeof name, "%s.stat", when);
    say(name, stat("/", &st));
    snprintf(name, sizeof name, "%s.badptr", when);
    say(name, syscall(SYS_write, 1, (void *)8, 1));
}

static volatile int sigsys_seen;
static void on_sigsys(int sig) { (void)sig; sigsys_seen++; }

static void *exit_now(void *arg) {
    pthread_barrier_t *b = arg;
    pthread_barrier_wait(b);
    syscall(SYS_exit, 0);
    return NULL;
}

static volatile long gadget_rax = -1;
static void on_trap(int sig, siginfo_t *si, void *ctx) {
    (void)sig; (void)si;
    gadget_rax = ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RAX];
    say("gadget.trap", 1);
    say("gadget.is_getpid", gadget_rax == getpid());
    _exit(0);
}

/* The legacy vsyscall page's three entries (x86-64 ABI, fixed addresses). */
typedef long (*vgtod_t)(struct timeval *, struct timezone *);
typedef long (*vtime_t)(long *);
typedef long (*vgetcpu_t)(unsigned *, unsigned *, void *);
#define VSYS(off) (0xffffffffff600000UL + (off))

static long usec(const struct timespec *t) { return t->tv_sec * 1000000L + t->tv_nsec / 1000; }

static void vsyscalls(void) {
    struct timespec before, after;
    struct timeval tv;
    long t = -1, r;
    unsigned cpu = ~0u, node = ~0u;
    clock_gettime(CLOCK_REALTIME, &before);
    r = ((vgtod_t)VSYS(0))(&tv, NULL);
    clock_gettime(CLOCK_REALTIME, &after);
    say("vsys.gettimeofday", r);
    say("vsys.gettimeofday_in_range", usec(&before) / 1000000 * 1000000 <= tv.tv_sec * 1000000L
        + tv.tv_usec && tv.tv_sec * 1000000L + tv.tv_usec <= usec(&after));
    say("vsys.gettimeofday_null", ((vgtod_t)VSYS(0))(NULL, NULL));
    clock_gettime(CLOCK_REALTIME, &before);
    r = ((vtime_t)VSYS(0x400))(&t);
    clock_gettime(CLOCK_REALTIME, &after);
    say("vsys.time_stored", r == t);
    say("vsys.time_in_range", before.tv_sec <= r && r <= after.tv_sec);
    say("vsys.time_null_in_range", ((vtime_t)VSYS(0x400))(NULL) >= before.tv_sec);
    r = ((vgetcpu_t)VSYS(0x800))(&cpu, &node, NULL);
    say("vsys.getcpu", r);
    say("vsys.getcpu_cpu_valid", cpu < (unsigned)sysconf(_SC_NPROCESSORS_CONF));
    say("vsys.getcpu_node", node);
    /* a pointer the host cannot write: Linux's emulation raises SIGSEGV before the call */
    pid_t c = fork();
    if (c == 0) {
        ((vgtod_t)VSYS(0))((struct timeval *)8, NULL);
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    say("vsys.badptr_signal", WIFSIGNALED(st) ? WTERMSIG(st) : -WEXITSTATUS(st));
    say("vsys.after", syscall(SYS_getppid) >= 0);
}

/* int 0x80 with eax = 10 and the registers `syscall` would leave: the Sentry takes it for
 * the 64-bit mprotect its registers spell (sentry/README.md, "Only the `syscall`
 * instruction is served") and makes a host mprotect of its own. Linux's i386 table has
 * unlink() at 10: ebx names a host file, so a host running the Sentry's mprotect by this
 * entry would remove it. Static, non-PIE: the name's address fits in 32 bits. */
static char unlink_path[256];

static long int80_as_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5) {
    long r;
    register long r10 __asm__("r10") = a3;
    register long r8 __asm__("r8") = a4;
    register long r9 __asm__("r9") = a5;
    __asm__ volatile("lea 1f(%%rip), %%rcx\n\t"
                     "pushfq\n\t"
                     "pop %%r11\n\t"
                     "int $0x80\n"
                     "1:"
                     : "=a"(r)
                     : "a"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8), "r"(r9),
                       "b"(unlink_path)
                     : "r11", "memory");
    return r;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "exit3")) return 3;
    if (!strcmp(mode, "ownfilter")) {
        /* a filter of its own: EPERM for getppid, everything else allowed */
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {4, f};
        say("nnp", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
        long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
        long r2 = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
        /* installed or refused, the program goes on and its calls are answered */
        say("installed", r == 0 || r2 == 0);
        calls("after_filter");
        return 0;
    }
    if (!strcmp(mode, "sigsys")) {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGSYS);
        signal(SIGSYS, on_sigsys);
        calls("handled");
        say("block", sigprocmask(SIG_BLOCK, &s, NULL));
        calls("blocked");
        say("sigsys_seen", sigsys_seen);
        return 0;
    }
    if (!strcmp(mode, "jit")) {
        /* mov eax, 39 (getpid); syscall; ret */
        static const unsigned char code[] = {0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xc3};
        unsigned char *p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                -1, 0);
        memcpy(p, code, sizeof code);
        say("mprotect", mprotect(p, 4096, PROT_READ | PROT_EXEC));
        say("jit.is_getpid", ((long (*)(void))p)() == getpid());
        unsigned char *q = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        memcpy(q, code, sizeof code);
        say("rwx.is_getpid", ((long (*)(void))q)() == getpid());
        memcpy(q + 1, (unsigned char[]){110, 0, 0, 0}, 4);  /* rewritten: getppid */
        say("rewritten.is_getppid", ((long (*)(void))q)() == getppid());
        return 0;
    }
    if (!strcmp(mode, "vfork")) {
        int st;
        pid_t c = vfork();
        if (c == 0) _exit(7);
        waitpid(c, &st, 0);
        say("vfork.exit", WEXITSTATUS(st));
        c = vfork();
        if (c == 0) {
            execl(argv[0], argv[0], "exit3", (char *)NULL);
            _exit(127);
        }
        waitpid(c, &st, 0);
        say("vfork.exec", WEXITSTATUS(st));
        calls("after_vfork");
        return 0;
    }
    if (!strcmp(mode, "exit_exec")) {
        pthread_barrier_t b;
        pthread_t th;
        pthread_barrier_init(&b, NULL, 2);
        pthread_create(&th, NULL, exit_now, &b);
        pthread_barrier_wait(&b);
        execl(argv[0], argv[0], "exit3", (char *)NULL);
        return 99;
    }
    if (!strcmp(mode, "gadget")) {
        /* The stub's `syscall; int3` (sentry/platform/stub.py, GADGET): the call is served
         * by the Sentry like any other (getpid: the sandbox's pid, not the host's), then
         * int3 raises SIGTRAP. */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_trap;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGTRAP, &sa, NULL);
        unsigned long gadget = strtoul(argv[2], NULL, 0);
        __asm__ volatile("mov $39, %%eax\n\tjmp *%0" : : "r"(gadget) : "rax", "memory");
        return 98;
    }
    if (!strcmp(mode, "int80_mprotect")) {
        snprintf(unlink_path, sizeof unlink_path, "%s", argv[2]);
        volatile char *p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                -1, 0);
        p[100] = 42;
        say("int80_mprotect", int80_as_syscall(10, (long)p, 4096, PROT_READ, 0, 0, 0));
        say("int80_mprotect.readable", p[100] == 42);
        return 0;
    }
    if (!strcmp(mode, "vsyscall")) {
        vsyscalls();
        return 0;
    }
    return 2;
}
