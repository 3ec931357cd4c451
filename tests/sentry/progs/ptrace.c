/* ptrace(2) between a tracer and its children, run natively and in the sandbox: the
 * output (no pids or addresses, only relations) must be the same.
 * Cases: TRACEME + raise(SIGSTOP), syscall stops with TRACESYSGOOD, registers
 * (GETREGS/SETREGS/GETREGSET/PEEKUSER), memory (PEEKDATA/POKEDATA, process_vm_readv),
 * changing and skipping a syscall at entry, changing rax at exit, EVENT_EXIT, signal
 * stops with GETSIGINFO and injection, SEIZE + INTERRUPT + fork/exec events, group stop
 * and LISTEN, ATTACH/DETACH, KILL, TracerPid, a traced thread (CLONE event, its own
 * stops and exit), a clone3 fork, the errors; PEEKSIGINFO of the thread's and the
 * process's queues, SECCOMP_GET_FILTER, the debug registers through PEEKUSER/POKEUSER
 * (what Linux checks; no breakpoint is enabled), PTRACE_SYSEMU (an entry stop, the call
 * not made, no exit stop unless resumed with PTRACE_SYSCALL), and Yama's PR_SET_PTRACER
 * (each result printed as whether it is what the ptrace_scope this system shows says:
 * the sandbox shows scope 1, a host without Yama none); a group stop of a process whose
 * two threads are traced, each reporting its own stop. */
#define _GNU_SOURCE
#include <elf.h>
#include <linux/sched.h>
#include <pthread.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *fmt, ...) {
    char b[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    write(1, b, n);
}

static const char *err(long r) { return r < 0 ? strerror(errno) : "ok"; }

volatile long marker = 0x1122334455667788L;
volatile long poked = 0;
volatile int usr1, usr2;

static void on_usr1(int s) { (void)s; usr1++; }
static void on_usr2(int s) { (void)s; usr2++; }

static int wait_for(pid_t pid, const char *what) {
    int st;
    pid_t got = waitpid(pid, &st, __WALL);
    if (got != pid) {
        say("%s: waitpid %s\n", what, err(got));
        return -1;
    }
    if (WIFSTOPPED(st))
        say("%s: stopped sig=%d event=%d status=%#x\n", what, WSTOPSIG(st), st >> 16, st);
    else if (WIFEXITED(st))
        say("%s: exited %d\n", what, WEXITSTATUS(st));
    else
        say("%s: killed sig=%d\n", what, WTERMSIG(st));
    return st;
}

/* geteuid with a known r12: the tracer sees every register at the entry stop */
static long marked_geteuid(void) {
    long ret;
    register long r12 asm("r12") = 0x1234abcd;
    asm volatile("syscall" : "=a"(ret) : "0"((long)SYS_geteuid), "r"(r12) : "rcx", "r11", "memory");
    return ret;
}

/* case 1: syscall stops, registers, memory, events of one child */
static void child_syscalls(void) {
    ptrace(PTRACE_TRACEME, 0, 0, 0);
    long again = ptrace(PTRACE_TRACEME, 0, 0, 0);
    say("child: second TRACEME %s\n", err(again));
    marker = 0x4242;
    raise(SIGSTOP);
    long a = syscall(SYS_getpid);   /* changed to getppid at entry */
    say("child: getpid gave getppid: %d\n", a == getppid());
    long b = syscall(SYS_gettid);   /* skipped: rax 42 */
    say("child: skipped gettid gave %ld\n", b);
    long c = syscall(SYS_getuid);   /* rax changed at exit */
    say("child: getuid gave %ld\n", c);
    marked_geteuid();
    say("child: poked %#lx\n", poked);
    exit(3);
}

/* bad arguments at a stop: bad pointers, offsets, notes, registers, requests */
static void bad_args(pid_t pid) {
    long r = ptrace(PTRACE_GETREGS, pid, 0, (void *)8);
    say("getregs to a bad pointer %s\n", err(r));
    r = ptrace(PTRACE_SETREGS, pid, 0, (void *)8);
    say("setregs from a bad pointer %s\n", err(r));
    r = ptrace(PTRACE_GETSIGINFO, pid, 0, (void *)8);
    say("getsiginfo to a bad pointer %s\n", err(r));
    errno = 0;
    ptrace(PTRACE_PEEKUSER, pid, (void *)3, 0);
    say("peekuser unaligned %s\n", strerror(errno));
    errno = 0;
    ptrace(PTRACE_PEEKUSER, pid, (void *)4096, 0);
    say("peekuser past struct user %s\n", strerror(errno));
    errno = 0;
    ptrace(PTRACE_PEEKDATA, pid, (void *)8, 0);
    say("peekdata unmapped %s\n", strerror(errno));
    r = ptrace(PTRACE_POKEDATA, pid, (void *)8, 1);
    say("pokedata unmapped %s\n", err(r));
    char buf[16];
    struct iovec io = {buf, sizeof buf};
    r = ptrace(PTRACE_GETREGSET, pid, (void *)0x999, &io);
    say("getregset unknown note %s\n", err(r));
    r = ptrace(PTRACE_POKEUSER, pid, (void *)offsetof(struct user, regs.cs), 0x1234);
    say("pokeuser cs %s\n", err(r));
    r = ptrace(PTRACE_POKEUSER, pid, (void *)offsetof(struct user, regs.fs_base), 1UL << 63);
    say("pokeuser fs_base %s\n", err(r));
    r = ptrace(0x4300, pid, 0, 0);
    say("unknown request %s\n", err(r));
}

static void case_syscalls(void) {
    pid_t pid = fork();
    if (pid == 0)
        child_syscalls();
    wait_for(pid, "traceme");
    siginfo_t si;
    long r = ptrace(PTRACE_GETSIGINFO, pid, 0, &si);
    say("getsiginfo %s signo=%d code=%d pid_is_child=%d\n", err(r), si.si_signo, si.si_code,
        si.si_pid == pid);
    errno = 0;
    long word = ptrace(PTRACE_PEEKDATA, pid, (void *)&marker, 0);
    say("peekdata %s %#lx\n", err(errno ? -1 : 0), word);
    long local = 0;
    struct iovec lv = {&local, sizeof local}, rv = {(void *)&marker, sizeof marker};
    long got = process_vm_readv(pid, &lv, 1, &rv, 1, 0);
    say("process_vm_readv %ld %#lx\n", got, local);
    r = ptrace(PTRACE_POKEDATA, pid, (void *)&poked, (void *)0xabcdefL);
    say("pokedata %s\n", err(r));
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    int tracer = -1;
    char state = '?';
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "TracerPid:", 10))
            tracer = atoi(line + 10);
        if (!strncmp(line, "State:", 6))
            state = line[7];
    }
    if (f)
        fclose(f);
    say("status: tracer is me %d, state %c\n", tracer == getpid(), state);
    bad_args(pid);
    r = ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXIT);
    say("setoptions %s\n", err(r));
    r = ptrace(PTRACE_SETOPTIONS, pid, 0, 0x80000000);
    say("setoptions bad %s\n", err(r));
    int n = 0, entry = 1;
    for (;;) {
        r = ptrace(PTRACE_SYSCALL, pid, 0, 0);
        int st;
        if (waitpid(pid, &st, 0) != pid)
            break;
        if (!WIFSTOPPED(st)) {
            say("syscalls: ended %#x\n", st);
            break;
        }
        if (WSTOPSIG(st) != (SIGTRAP | 0x80)) {
            say("syscalls: stop sig=%d event=%d\n", WSTOPSIG(st), st >> 16);
            if (st >> 16 == PTRACE_EVENT_EXIT) {
                unsigned long msg;
                ptrace(PTRACE_GETEVENTMSG, pid, 0, &msg);
                say("exit event msg %#lx\n", msg);
                ptrace(PTRACE_CONT, pid, 0, 0);
                wait_for(pid, "after exit event");
                break;
            }
            continue;
        }
        struct user_regs_struct regs, rs2;
        ptrace(PTRACE_GETREGS, pid, 0, &regs);
        struct iovec io = {&rs2, sizeof rs2};
        ptrace(PTRACE_GETREGSET, pid, (void *)NT_PRSTATUS, &io);
        errno = 0;
        long orig = ptrace(PTRACE_PEEKUSER, pid, (void *)offsetof(struct user, regs.orig_rax), 0);
        int same = !memcmp(&regs, &rs2, sizeof regs) && io.iov_len == sizeof regs &&
                   orig == (long)regs.orig_rax;
        long nr = regs.orig_rax;
        if (n == 0) {  /* what GETSIGINFO says at a syscall stop */
            siginfo_t ssi;
            ptrace(PTRACE_GETSIGINFO, pid, 0, &ssi);
            say("syscall stop siginfo signo=%d code=%#x from tracee %d\n", ssi.si_signo,
                ssi.si_code, ssi.si_pid == pid);
        }
        if (entry) {
            /* what `syscall` leaves: rcx = rip, r11 = rflags (every register is current) */
            say("entry %ld rax=%ld same=%d current=%d\n", nr, (long)regs.rax, same,
                regs.rcx == regs.rip && regs.r11 == regs.eflags);
            if (nr == SYS_geteuid)
                say("geteuid entry r12=%#llx\n", regs.r12);
            if (nr == SYS_getpid) {
                regs.orig_rax = SYS_getppid;
                ptrace(PTRACE_SETREGS, pid, 0, &regs);
            } else if (nr == SYS_gettid) {
                regs.orig_rax = -1;
                regs.rax = 42;
                ptrace(PTRACE_SETREGS, pid, 0, &regs);
            }
        } else {
            int show = nr == SYS_write || nr == SYS_getuid || nr == -1;
            say("exit %ld rax=%ld same=%d\n", nr, show ? (long)regs.rax : 0L, same);
            if (nr == SYS_getuid) {
                regs.rax = 777;
                ptrace(PTRACE_SETREGS, pid, 0, &regs);
            }
        }
        entry = !entry;
        if (++n > 200)
            break;
    }
}

/* case 2: signal-delivery stops, GETSIGINFO, injection and suppression */
static void case_signals(void) {
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGUSR1, on_usr1);
        signal(SIGUSR2, on_usr2);
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        kill(getpid(), SIGUSR1);  /* the tracer delivers SIGUSR2 instead */
        kill(getpid(), SIGUSR1);  /* suppressed */
        say("child: usr1=%d usr2=%d\n", usr1, usr2);
        kill(getpid(), SIGTERM);  /* delivered: ends the child */
        exit(0);
    }
    wait_for(pid, "sig stop");
    ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACEEXIT);
    ptrace(PTRACE_CONT, pid, 0, 0);
    wait_for(pid, "sig first");
    siginfo_t si;
    ptrace(PTRACE_GETSIGINFO, pid, 0, &si);
    say("siginfo signo=%d code=%d from child %d\n", si.si_signo, si.si_code, si.si_pid == pid);
    ptrace(PTRACE_CONT, pid, 0, SIGUSR2);
    wait_for(pid, "sig second");
    ptrace(PTRACE_CONT, pid, 0, 0);
    wait_for(pid, "sig third");
    long r = ptrace(PTRACE_CONT, pid, 0, 99);
    say("cont bad signal %s\n", err(r));
    ptrace(PTRACE_CONT, pid, 0, SIGTERM);
    wait_for(pid, "sig exit event");
    unsigned long msg = 0;
    ptrace(PTRACE_GETEVENTMSG, pid, 0, &msg);
    say("exit event msg %#lx\n", msg);
    ptrace(PTRACE_CONT, pid, 0, 0);
    wait_for(pid, "sig end");
}

/* case 3: SEIZE, INTERRUPT of a blocked read, fork and exec events, group stop, LISTEN */
static void case_seize(const char *self) {
    int p[2], q[2];
    pipe(p);
    pipe(q);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(p[1]);
        long n = read(p[0], &c, 1);
        say("child3: read %ld %c\n", n, c);
        write(q[1], "r", 1);
        n = read(p[0], &c, 1);
        say("child3: read %ld %c\n", n, c);
        pid_t g = fork();
        if (g == 0) {
            execl(self, self, "exec-child", (char *)0);
            _exit(127);
        }
        int st;
        waitpid(g, &st, 0);
        say("child3: grandchild exited %d\n", WEXITSTATUS(st));
        exit(4);
    }
    close(p[0]);
    long r = ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_TRACEFORK | PTRACE_O_TRACEEXEC);
    say("seize %s\n", err(r));
    r = ptrace(PTRACE_SEIZE, pid, 0, 0);
    say("seize again %s\n", err(r));
    r = ptrace(PTRACE_GETREGS, pid, 0, &(struct user_regs_struct){0});
    say("getregs while running %s\n", err(r));
    r = ptrace(PTRACE_INTERRUPT, pid, 0, 0);
    say("interrupt %s\n", err(r));
    wait_for(pid, "interrupted");
    ptrace(PTRACE_CONT, pid, 0, 0);
    write(p[1], "a", 1);
    char c;
    read(q[0], &c, 1);
    /* SIGSTOP while it reads again: a signal stop, then the group stop */
    kill(pid, SIGSTOP);
    wait_for(pid, "sigstop");
    ptrace(PTRACE_CONT, pid, 0, SIGSTOP);
    wait_for(pid, "group stop");
    r = ptrace(PTRACE_LISTEN, pid, 0, 0);
    say("listen %s\n", err(r));
    r = ptrace(PTRACE_CONT, pid, 0, 0);
    say("cont while listening %s\n", err(r));
    kill(pid, SIGCONT);
    wait_for(pid, "after sigcont");
    ptrace(PTRACE_CONT, pid, 0, 0);
    wait_for(pid, "sigcont stop");
    ptrace(PTRACE_CONT, pid, 0, 0);
    write(p[1], "b", 1);
    int st = wait_for(pid, "fork event");
    unsigned long g = 0;
    if (st >> 16 == PTRACE_EVENT_FORK)
        ptrace(PTRACE_GETEVENTMSG, pid, 0, &g);
    siginfo_t esi;
    ptrace(PTRACE_GETSIGINFO, pid, 0, &esi);
    say("fork event siginfo signo=%d code=%#x from tracee %d\n", esi.si_signo, esi.si_code,
        esi.si_pid == pid);
    wait_for(g, "grandchild first stop");
    ptrace(PTRACE_CONT, pid, 0, 0);
    ptrace(PTRACE_CONT, g, 0, 0);
    st = wait_for(g, "exec event");
    unsigned long former = 0;
    ptrace(PTRACE_GETEVENTMSG, g, 0, &former);
    say("exec event msg is its pid %d\n", former == g);
    r = ptrace(PTRACE_DETACH, g, 0, 0);
    say("detach grandchild %s\n", err(r));
    st = wait_for(pid, "child3 SIGCHLD");
    ptrace(PTRACE_CONT, pid, 0, WSTOPSIG(st));
    wait_for(pid, "child3 end");
}

/* case 4: ATTACH, DETACH, KILL and the errors */
static void case_attach(void) {
    int p[2], q[2];
    pipe(p);
    pipe(q);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(p[1]);
        long n = read(p[0], &c, 1);
        say("child4: read %ld\n", n);
        write(q[1], "r", 1);
        pause();
        exit(0);
    }
    close(p[0]);
    long r = ptrace(PTRACE_ATTACH, getpid(), 0, 0);
    say("attach self %s\n", err(r));
    errno = 0;
    ptrace(PTRACE_PEEKDATA, pid, (void *)&marker, 0);
    say("peek untraced %s\n", strerror(errno));
    r = ptrace(PTRACE_ATTACH, pid, 0, 0);
    say("attach %s\n", err(r));
    wait_for(pid, "attached");
    r = ptrace(PTRACE_INTERRUPT, pid, 0, 0);
    say("interrupt not seized %s\n", err(r));
    r = ptrace(PTRACE_DETACH, pid, 0, 0);
    say("detach %s\n", err(r));
    r = ptrace(PTRACE_CONT, pid, 0, 0);
    say("cont after detach %s\n", err(r));
    write(p[1], "x", 1);
    char c;
    read(q[0], &c, 1);
    r = ptrace(PTRACE_SEIZE, pid, 0, 0);
    say("seize %s\n", err(r));
    r = ptrace(PTRACE_KILL, pid, 0, 0);
    say("kill %s\n", err(r));
    wait_for(pid, "killed");
    r = ptrace(PTRACE_ATTACH, 99999, 0, 0);
    say("attach missing %s\n", err(r));
    /* another uid may not trace root's processes: its parent, pid 1 */
    pid_t me = getpid();
    pid = fork();
    if (pid == 0) {
        if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
            say("setuid failed\n");
        r = ptrace(PTRACE_ATTACH, me, 0, 0);
        say("uid 65534 attach root parent %s\n", err(r));
        r = ptrace(PTRACE_SEIZE, 1, 0, 0);
        say("uid 65534 seize pid 1 %s\n", err(r));
        _exit(0);
    }
    wait_for(pid, "unprivileged");
}

/* case 5: a thread of a tracee: PTRACE_EVENT_CLONE, its own stops and exit (__WALL) */
static void *thread_main(void *a) {
    say("thread: running\n");
    return a;
}

static void case_thread(void) {
    pid_t pid = fork();
    if (pid == 0) {
        pthread_t th;
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        pthread_create(&th, 0, thread_main, 0);
        pthread_join(th, 0);
        exit(6);
    }
    wait_for(pid, "thread parent");
    ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACECLONE);
    ptrace(PTRACE_CONT, pid, 0, 0);
    int st = wait_for(pid, "clone event");
    unsigned long tid = 0;
    ptrace(PTRACE_GETEVENTMSG, pid, 0, &tid);
    say("new thread is another task %d\n", tid != 0 && tid != (unsigned long)pid);
    wait_for(tid, "thread first stop");
    siginfo_t si;
    ptrace(PTRACE_GETSIGINFO, tid, 0, &si);
    say("thread stop signo=%d\n", si.si_signo);
    ptrace(PTRACE_CONT, tid, 0, 0);
    wait_for(tid, "thread end");
    ptrace(PTRACE_CONT, pid, 0, 0);
    wait_for(pid, "thread parent end");
    (void)st;
}

/* case 6: a fork made by clone3 (exit_signal SIGCHLD) is PTRACE_EVENT_FORK; the exit of
 * a tracee the tracer did not fork reaches its parent only once the tracer waited, and
 * then as a SIGCHLD that stops the traced parent */
static void case_clone3(void) {
    pid_t pid = fork();
    if (pid == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        struct clone_args ca = {0};
        ca.exit_signal = SIGCHLD;
        long g = syscall(SYS_clone3, &ca, sizeof ca);
        if (g == 0)
            _exit(7);
        int st;
        say("clone3 parent: before its tracer waited: %d\n", waitpid(g, &st, WNOHANG));
        raise(SIGUSR1);
        waitpid(g, &st, 0);
        exit(WEXITSTATUS(st) + 1);
    }
    wait_for(pid, "clone3 parent");
    ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACEFORK | PTRACE_O_TRACECLONE);
    ptrace(PTRACE_CONT, pid, 0, 0);
    wait_for(pid, "clone3 event");
    unsigned long g = 0;
    ptrace(PTRACE_GETEVENTMSG, pid, 0, &g);
    wait_for(g, "clone3 child first stop");
    ptrace(PTRACE_CONT, g, 0, 0);
    siginfo_t si;
    long r = waitid(P_PID, g, &si, WEXITED | WNOWAIT | __WALL);
    say("clone3 child ended %ld code=%d status=%d\n", r, si.si_code, si.si_status);
    ptrace(PTRACE_CONT, pid, 0, 0);
    wait_for(pid, "clone3 parent SIGUSR1");
    ptrace(PTRACE_CONT, pid, 0, 0);
    wait_for(g, "clone3 child end");
    /* reaping g sent its parent pid SIGCHLD, which pid, being traced, does not ignore: it
     * stops for it (whether before or after its waitpid took g), so wait for that stop
     * rather than race it with a PTRACE_CONT */
    int st = wait_for(pid, "clone3 parent SIGCHLD");
    r = ptrace(PTRACE_GETSIGINFO, pid, 0, &si);
    say("clone3 parent SIGCHLD %s code=%d status=%d from_child=%d\n", err(r), si.si_code,
        si.si_status, si.si_pid == (pid_t)g);
    ptrace(PTRACE_CONT, pid, 0, WIFSTOPPED(st) ? WSTOPSIG(st) : 0);
    wait_for(pid, "clone3 parent end");
}


/* case 7: PEEKSIGINFO, SECCOMP_GET_FILTER, debug registers, SYSEMU */
#define DR(n) (offsetof(struct user, u_debugreg) + 8 * (n))
struct peek_args { unsigned long off; unsigned int flags; int nr; };

static void peek(pid_t pid, const char *what, unsigned long off, unsigned flags, int nr,
                 void *buf) {
    struct peek_args a = {off, flags, nr};
    siginfo_t *si = buf;
    long r = ptrace(0x4209, pid, &a, buf);
    say("peeksiginfo %s = %ld %s", what, r, r < 0 ? strerror(errno) : "");
    for (long i = 0; i < r && buf != (void *)8; i++)
        say(" [%d code %d value %d]", si[i].si_signo, si[i].si_code,
            si[i].si_code == SI_QUEUE ? si[i].si_value.sival_int : 0);
    say("\n");
}

static void case_more(void) {
    pid_t pid = fork();
    if (pid == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        sigaddset(&set, SIGUSR2);
        sigaddset(&set, SIGRTMIN);
        sigprocmask(SIG_BLOCK, &set, NULL);
        union sigval v = {.sival_int = 11};
        sigqueue(getpid(), SIGRTMIN, v);
        v.sival_int = 12;
        sigqueue(getpid(), SIGRTMIN, v);
        kill(getpid(), SIGUSR1);
        syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR2);
        syscall(SYS_kill, getpid(), SIGSTOP);
        long a = syscall(SYS_getppid);  /* emulated: the tracer's rax */
        long b = syscall(SYS_getpid);   /* emulated: rax left -ENOSYS */
        int e = errno;
        say("child7: emulated getppid %ld, getpid %ld %s\n", a, b, strerror(e));
        _exit(9);
    }
    wait_for(pid, "more stop");
    siginfo_t si[8];
    peek(pid, "shared all", 0, 1, 8, si);
    peek(pid, "shared from 1, 1", 1, 1, 1, si);
    peek(pid, "thread's", 0, 0, 8, si);
    peek(pid, "past the end", 5, 1, 8, si);
    peek(pid, "nr 0", 0, 1, 0, si);
    peek(pid, "bad flags", 0, 2, 1, si);
    peek(pid, "nr < 0", 0, 1, -1, si);
    peek(pid, "to a bad pointer", 0, 1, 1, (void *)8);
    long r = ptrace(0x4209, pid, (void *)8, si);
    say("peeksiginfo bad args pointer %s\n", err(r));
    r = ptrace(0x420c, pid, 0, 0);
    say("seccomp get filter %s\n", err(r));
    for (int i = 0; i < 8; i++) {
        errno = 0;
        long v = ptrace(PTRACE_PEEKUSER, pid, (void *)DR(i), 0);
        say("dr%d %#lx %s\n", i, v, err(errno ? -1 : 0));
    }
    r = ptrace(PTRACE_POKEUSER, pid, (void *)DR(0), (void *)&marker);
    say("poke dr0 a user address %s, reads back %d\n", err(r),
        ptrace(PTRACE_PEEKUSER, pid, (void *)DR(0), 0) == (long)&marker);
    r = ptrace(PTRACE_POKEUSER, pid, (void *)DR(1), (void *)0xffffffff81000000UL);
    say("poke dr1 a kernel address %s\n", err(r));
    r = ptrace(PTRACE_POKEUSER, pid, (void *)DR(2), (void *)((1UL << 47) - 8));
    say("poke dr2 in the last user page %s\n", err(r));
    r = ptrace(PTRACE_POKEUSER, pid, (void *)DR(4), 0);
    say("poke dr4 %s\n", err(r));
    r = ptrace(PTRACE_POKEUSER, pid, (void *)DR(5), (void *)1);
    say("poke dr5 %s\n", err(r));
    r = ptrace(PTRACE_POKEUSER, pid, (void *)DR(6), (void *)0x4001);
    say("poke dr6 %s, reads %#lx\n", err(r), ptrace(PTRACE_PEEKUSER, pid, (void *)DR(6), 0));
    r = ptrace(PTRACE_POKEUSER, pid, (void *)DR(7), (void *)(3UL << 18 | 1));
    say("poke dr7 a 4-byte execute breakpoint %s\n", err(r));
    r = ptrace(PTRACE_POKEUSER, pid, (void *)DR(7), (void *)(2UL << 18 | 2UL << 16 | 4));
    say("poke dr7 an I/O breakpoint %s\n", err(r));
    r = ptrace(PTRACE_POKEUSER, pid, (void *)DR(7), (void *)0x400);
    say("poke dr7 reserved bits %s, reads %#lx\n", err(r),
        ptrace(PTRACE_PEEKUSER, pid, (void *)DR(7), 0));
    r = ptrace(PTRACE_POKEUSER, pid, (void *)DR(7), 0);
    say("poke dr7 0 %s\n", err(r));
    /* SYSEMU: entry stops only, the calls not made */
    ptrace(PTRACE_SYSEMU, pid, 0, 0);
    wait_for(pid, "sysemu first");
    struct user_regs_struct regs;
    ptrace(PTRACE_GETREGS, pid, 0, &regs);
    say("sysemu stop at getppid's entry %d, rax %ld\n", regs.orig_rax == SYS_getppid,
        (long)regs.rax);
    regs.rax = 4242;
    ptrace(PTRACE_SETREGS, pid, 0, &regs);
    ptrace(PTRACE_SYSEMU, pid, 0, 0);
    wait_for(pid, "sysemu second");
    ptrace(PTRACE_GETREGS, pid, 0, &regs);
    say("sysemu next stop at getpid's entry %d\n", regs.orig_rax == SYS_getpid);
    ptrace(PTRACE_SYSCALL, pid, 0, 0);
    wait_for(pid, "sysemu then syscall");
    ptrace(PTRACE_GETREGS, pid, 0, &regs);
    say("stop of getpid %d rax %ld\n", regs.orig_rax == SYS_getpid, (long)regs.rax);
    ptrace(PTRACE_SYSEMU_SINGLESTEP, pid, 0, 0);  /* a trap after one instruction */
    wait_for(pid, "sysemu singlestep");
    ptrace(PTRACE_CONT, pid, 0, 0);
    int st = wait_for(pid, "more next");
    /* the pending signals, once unblocked by nobody: the child exits with them blocked */
    while (WIFSTOPPED(st)) {
        ptrace(PTRACE_CONT, pid, 0, 0);
        st = wait_for(pid, "more next");
    }
}

/* case 8: Yama's PR_SET_PTRACER between two processes of uid 65534, neither an ancestor
 * of the other; results printed as whether they are what the shown ptrace_scope says */
static int yama_scope(void) {
    int fd = open("/proc/sys/kernel/yama/ptrace_scope", O_RDONLY);
    char c = '0';
    if (fd < 0)
        return -1;
    read(fd, &c, 1);
    close(fd);
    return c - '0';
}

static void drop_to_nobody(void) {
    if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
        say("setuid failed\n");
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);  /* the uid change made it undumpable */
}

/* A: runs prctl(PR_SET_PTRACER, arg) for each command */
static void yama_tracee(int cmd, int reply) {
    drop_to_nobody();
    int ready = 0;
    write(reply, &ready, sizeof ready);  /* no attach may come before it is nobody's */
    long arg;
    while (read(cmd, &arg, sizeof arg) == sizeof arg && arg != 0x7fffffff) {
        long r = prctl(PR_SET_PTRACER, (unsigned long)arg, 0, 0, 0);
        int e = r < 0 ? errno : 0;
        write(reply, &e, sizeof e);
    }
    _exit(0);
}

static int try_attach(pid_t a) {
    if (ptrace(PTRACE_ATTACH, a, 0, 0) < 0)
        return errno;
    waitpid(a, NULL, 0);
    ptrace(PTRACE_DETACH, a, 0, 0);
    return 0;
}

/* B: for each command attaches to A itself (0) or from a new child of its own (1) */
static void yama_tracer(pid_t a, int cmd, int reply) {
    drop_to_nobody();
    long how;
    while (read(cmd, &how, sizeof how) == sizeof how && how != 2) {
        int e;
        if (how == 0) {
            e = try_attach(a);
        } else {
            int p[2];
            pipe(p);
            pid_t c = fork();
            if (c == 0) {
                e = try_attach(a);
                write(p[1], &e, sizeof e);
                _exit(0);
            }
            read(p[0], &e, sizeof e);
            waitpid(c, NULL, 0);
            close(p[0]);
            close(p[1]);
        }
        write(reply, &e, sizeof e);
    }
    _exit(0);
}

static int ask(int cmd, int reply, long arg) {
    int e;
    write(cmd, &arg, sizeof arg);
    read(reply, &e, sizeof e);
    return e;
}

static void case_yama(void) {
    int scope = yama_scope();
    int ac[2], ar[2], bc[2], br[2];
    pipe(ac);
    pipe(ar);
    pipe(bc);
    pipe(br);
    pid_t a = fork();
    if (a == 0)
        yama_tracee(ac[0], ar[1]);
    int ready;
    read(ar[0], &ready, sizeof ready);
    pid_t b = fork();
    if (b == 0)
        yama_tracer(a, bc[0], br[1]);
    int strict = scope >= 1;  /* scope 1: only descendants and named tracers */
    int e = ask(bc[1], br[0], 0);
    say("yama: unnamed sibling attach as the scope says: %d\n", strict ? e == EPERM : e == 0);
    e = ask(ac[1], ar[0], b);
    say("yama: set_ptracer as the scope says: %d\n", scope < 0 ? e == EINVAL : e == 0);
    say("yama: named sibling attach %s\n", strerror(ask(bc[1], br[0], 0)));
    say("yama: its child's attach %s\n", strerror(ask(bc[1], br[0], 1)));
    say("yama: set_ptracer to no process %s\n", strerror(ask(ac[1], ar[0], 99999999)));
    e = ask(ac[1], ar[0], 0);
    say("yama: set_ptracer 0 as the scope says: %d\n", scope < 0 ? e == EINVAL : e == 0);
    e = ask(bc[1], br[0], 0);
    say("yama: attach after clearing as the scope says: %d\n", strict ? e == EPERM : e == 0);
    e = ask(ac[1], ar[0], -1);
    say("yama: set_ptracer any as the scope says: %d\n", scope < 0 ? e == EINVAL : e == 0);
    say("yama: attach after any %s\n", strerror(ask(bc[1], br[0], 1)));
    long quit = 0x7fffffff, bquit = 2;
    write(ac[1], &quit, sizeof quit);
    write(bc[1], &bquit, sizeof bquit);
    waitpid(a, NULL, 0);
    waitpid(b, NULL, 0);
}

/* case 9: a group stop of a process with two traced threads: the one that took SIGSTOP
 * and the other each report their own stop (PTRACE_EVENT_STOP, seized) */
static int gs_pipe[2], gs_tid[2];

static void *gs_thread(void *a) {
    long tid = syscall(SYS_gettid);
    write(gs_tid[1], &tid, sizeof tid);
    char c;
    read(gs_pipe[0], &c, 1);
    return a;
}

static char proc_state(pid_t pid, long tid) {
    char path[96], line[256], st = '?';
    snprintf(path, sizeof path, "/proc/%d/task/%ld/status", pid, tid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "State:", 6))
            st = line[7];
    if (f)
        fclose(f);
    return st;
}

static void case_group_stop(void) {
    pipe(gs_pipe);
    pipe(gs_tid);
    pid_t pid = fork();
    if (pid == 0) {
        pthread_t th;
        pthread_create(&th, 0, gs_thread, 0);
        char c;
        read(gs_pipe[0], &c, 1);
        pthread_join(th, 0);
        _exit(8);
    }
    long tid;
    read(gs_tid[0], &tid, sizeof tid);
    long r1 = ptrace(PTRACE_SEIZE, pid, 0, 0), r2 = ptrace(PTRACE_SEIZE, tid, 0, 0);
    say("group stop: seize both %s %s\n", err(r1), err(r2));
    kill(pid, SIGSTOP);
    int st;
    pid_t who = waitpid(-1, &st, __WALL);
    say("group stop: first the signal stop of the %s: %#x\n",
        who == pid ? "leader" : who == tid ? "thread" : "?", st);
    ptrace(PTRACE_CONT, who, 0, SIGSTOP);
    int seen[2] = {0, 0}, stv[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        who = waitpid(-1, &st, __WALL);
        int k = who == pid ? 0 : who == tid ? 1 : -1;
        if (k < 0) {
            say("group stop: unexpected %d %#x\n", who, st);
            break;
        }
        seen[k]++;
        stv[k] = st;
    }
    say("group stop: leader reported %d (%#x), thread reported %d (%#x)\n", seen[0], stv[0],
        seen[1], stv[1]);
    say("group stop: states %c %c\n", proc_state(pid, pid), proc_state(pid, tid));
    ptrace(PTRACE_DETACH, tid, 0, 0);
    kill(pid, SIGKILL);
    who = waitpid(pid, &st, __WALL);
    say("group stop: end %s\n", who == pid && WIFSIGNALED(st) ? "killed" : "?");
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "exec-child"))
        return 5;
    case_syscalls();
    case_signals();
    case_seize(argv[0]);
    case_attach();
    case_thread();
    case_clone3();
    case_more();
    case_yama();
    case_group_stop();
    say("done\n");
    return 0;
}
