/* Job control and reparenting, run natively and in the sandbox with outputs compared.
 * Only the top process prints (children report through exit codes and pipes), and
 * nothing printed depends on timing or host pids. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile long *shm;

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static void wait_change(volatile long *c) {
    long v = *c;
    for (int i = 0; i < 200000 && *c == v; i++) usleep(100);
}

static void status_line(const char *what, int st) {
    if (WIFSTOPPED(st)) say("%s: stopped by %d\n", what, WSTOPSIG(st));
    else if (WIFCONTINUED(st)) say("%s: continued (%#x)\n", what, st);
    else if (WIFSIGNALED(st)) say("%s: killed by %d\n", what, WTERMSIG(st));
    else if (WIFEXITED(st)) say("%s: exited %d\n", what, WEXITSTATUS(st));
    else say("%s: status %#x\n", what, st);
}

static void proc_state(const char *what, pid_t p) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", p);
    FILE *f = fopen(path, "r");
    if (!f) { say("%s: no %s\n", what, "status"); return; }
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "State:", 6)) say("%s: %s", what, line);
    fclose(f);
}

static void drain_sigchld(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGCHLD);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&s, NULL, &zero) > 0) {}
}

static void *spin_thread(void *arg) {
    volatile long *c = arg;
    for (;;) (*c)++;
    return NULL;
}

/* 1: stop and continue children in user code, in syscalls and with two threads */
static void test_stop_continue(void) {
    pid_t a = fork();
    if (!a) for (;;) shm[0]++;
    pid_t b = fork();
    if (!b) for (;;) { getppid(); shm[1]++; }
    pid_t c = fork();
    if (!c) {
        pthread_t th;
        pthread_create(&th, NULL, spin_thread, (void *)&shm[3]);
        for (;;) shm[2]++;
    }
    for (int i = 0; i < 4; i++) wait_change(&shm[i]);
    int st;
    kill(a, SIGSTOP);
    kill(b, SIGSTOP);
    kill(c, SIGSTOP);
    waitpid(a, &st, WUNTRACED); status_line("spinner", st);
    waitpid(b, &st, WUNTRACED); status_line("syscall loop", st);
    waitpid(c, &st, WUNTRACED); status_line("two threads", st);
    say("wait without WUNTRACED while stopped: %d\n", waitpid(a, &st, WNOHANG));
    long v[4];
    for (int i = 0; i < 4; i++) v[i] = shm[i];
    usleep(50000);
    for (int i = 0; i < 4; i++) say("counter %d still while stopped: %d\n", i, shm[i] == v[i]);
    proc_state("stopped child", a);
    kill(a, SIGCONT);
    kill(b, SIGCONT);
    kill(c, SIGCONT);
    waitpid(a, &st, WCONTINUED); status_line("spinner", st);
    waitpid(b, &st, WCONTINUED); status_line("syscall loop", st);
    waitpid(c, &st, WCONTINUED); status_line("two threads", st);
    say("continued reported once: %d\n", waitpid(a, &st, WCONTINUED | WNOHANG));
    for (int i = 0; i < 4; i++) {
        wait_change(&shm[i]);
        say("counter %d moves after SIGCONT: %d\n", i, shm[i] != v[i]);
    }
    kill(a, SIGKILL);
    waitpid(a, &st, 0); status_line("spinner after SIGKILL", st);
    kill(b, SIGSTOP);
    waitpid(b, &st, WUNTRACED);
    kill(b, SIGKILL);
    waitpid(b, &st, 0); status_line("stopped syscall loop after SIGKILL", st);
    kill(c, SIGSTOP);
    waitpid(c, &st, WUNTRACED);
    kill(c, SIGTERM);  /* a stopped process takes it only once continued */
    usleep(20000);
    say("SIGTERM left pending while stopped: %d\n", waitpid(c, &st, WNOHANG));
    kill(c, SIGCONT);
    waitpid(c, &st, 0); status_line("stopped threads after SIGTERM and SIGCONT", st);
}

/* 2: a child stops itself; the parent's SIGCHLD says CLD_STOPPED / CLD_CONTINUED */
static void test_sigchld(void) {
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    pid_t c = fork();
    if (!c) {
        raise(SIGSTOP);
        _exit(7);
    }
    siginfo_t si;
    sigwaitinfo(&chld, &si);
    say("SIGCHLD: code %d status %d from child %d\n", si.si_code, si.si_status, si.si_pid == c);
    int st;
    waitpid(c, &st, WUNTRACED); status_line("self-stopped", st);
    kill(c, SIGCONT);
    sigwaitinfo(&chld, &si);
    say("SIGCHLD: code %d status %d from child %d\n", si.si_code, si.si_status, si.si_pid == c);
    waitpid(c, &st, 0); status_line("self-stopped", st);
    drain_sigchld();

    /* SA_NOCLDSTOP: no SIGCHLD for stop or continue, still one for the kill */
    struct sigaction sa = {0}, osa;
    sa.sa_handler = SIG_DFL;
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, &osa);
    c = fork();
    if (!c) for (;;) pause();
    sigset_t p;
    kill(c, SIGSTOP);
    waitpid(c, &st, WUNTRACED);
    sigpending(&p);
    say("SA_NOCLDSTOP: SIGCHLD after stop %d\n", sigismember(&p, SIGCHLD));
    kill(c, SIGCONT);
    waitpid(c, &st, WCONTINUED);
    sigpending(&p);
    say("SA_NOCLDSTOP: SIGCHLD after continue %d\n", sigismember(&p, SIGCHLD));
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    sigpending(&p);
    say("SA_NOCLDSTOP: SIGCHLD after kill %d\n", sigismember(&p, SIGCHLD));
    drain_sigchld();
    sigaction(SIGCHLD, &osa, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

/* 3: waitid with WSTOPPED, WCONTINUED and WNOWAIT */
static void test_waitid(void) {
    pid_t c = fork();
    if (!c) for (;;) pause();
    siginfo_t si;
    kill(c, SIGSTOP);
    for (int i = 0; i < 2; i++) {
        memset(&si, 0, sizeof si);
        int r = waitid(P_PID, c, &si, WSTOPPED | (i ? 0 : WNOWAIT));
        say("waitid%s: %d signo %d code %d status %d pid %d\n", i ? "" : " WNOWAIT", r,
            si.si_signo, si.si_code, si.si_status, si.si_pid == c);
    }
    memset(&si, 0, sizeof si);
    say("waitid again: %d pid %d\n", waitid(P_PID, c, &si, WSTOPPED | WNOHANG), si.si_pid);
    kill(c, SIGCONT);
    for (int i = 0; i < 2; i++) {
        memset(&si, 0, sizeof si);
        int r = waitid(P_PID, c, &si, WCONTINUED | (i ? 0 : WNOWAIT));
        say("waitid%s: %d signo %d code %d status %d pid %d\n", i ? "" : " WNOWAIT", r,
            si.si_signo, si.si_code, si.si_status, si.si_pid == c);
    }
    memset(&si, 0, sizeof si);
    say("waitid again: %d pid %d\n", waitid(P_ALL, 0, &si, WCONTINUED | WNOHANG), si.si_pid);
    kill(c, SIGKILL);
    memset(&si, 0, sizeof si);
    int r = waitid(P_PID, c, &si, WEXITED);
    say("waitid: %d code %d status %d\n", r, si.si_code, si.si_status);
    drain_sigchld();
}

/* 4: SIGCONT discards pending stop signals, a stop signal discards a pending SIGCONT */
static void test_pending_discard(void) {
    int go[2], res[2];
    pipe(go);
    pipe(res);
    pid_t c = fork();
    if (!c) {
        sigset_t s, p;
        sigemptyset(&s);
        sigaddset(&s, SIGTSTP);
        sigaddset(&s, SIGCONT);
        sigprocmask(SIG_BLOCK, &s, NULL);
        char ch = 'r';
        write(res[1], &ch, 1);
        for (int i = 0; i < 2; i++) {
            read(go[0], &ch, 1);
            sigpending(&p);
            ch = '0' + sigismember(&p, SIGTSTP) + 2 * sigismember(&p, SIGCONT);
            write(res[1], &ch, 1);
        }
        _exit(0);
    }
    char ch;
    read(res[0], &ch, 1);
    kill(c, SIGTSTP);
    kill(c, SIGCONT);
    write(go[1], "g", 1);
    read(res[0], &ch, 1);
    say("TSTP then CONT, both blocked: pending TSTP %d CONT %d\n", (ch - '0') & 1,
        (ch - '0') >> 1);
    kill(c, SIGTSTP);
    write(go[1], "g", 1);
    read(res[0], &ch, 1);
    say("then TSTP: pending TSTP %d CONT %d\n", (ch - '0') & 1, (ch - '0') >> 1);
    int st;
    waitpid(c, &st, 0);
    status_line("blocked-signals child", st);
    close(go[0]); close(go[1]); close(res[0]); close(res[1]);
    drain_sigchld();
}

static int read_timeout(int fd, char *ch) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) return 0;
    return read(fd, ch, 1) == 1;
}

/* 5: SIGTSTP stops a process whose group is not orphaned, and is discarded in an
 * orphaned group (SIGSTOP still stops it) */
static void test_orphaned_tstp(void) {
    pid_t s = fork();
    if (!s) {
        setsid();
        int code = 0, st, rdy[2], in[2], out[2];
        char ch;
        pipe(rdy);
        pid_t j = fork();
        if (!j) {
            setpgid(0, 0);
            write(rdy[1], "r", 1);
            for (;;) pause();
        }
        setpgid(j, j);
        read(rdy[0], &ch, 1);
        kill(j, SIGTSTP);
        waitpid(j, &st, WUNTRACED);
        if (WIFSTOPPED(st) && WSTOPSIG(st) == SIGTSTP) code |= 1;
        kill(j, SIGKILL);
        waitpid(j, &st, 0);
        pipe(in);
        pipe(out);
        pid_t k = fork();
        if (!k) {
            setsid();
            write(rdy[1], "r", 1);
            for (;;) {
                if (read(in[0], &ch, 1) != 1) _exit(1);
                write(out[1], &ch, 1);
            }
        }
        read(rdy[0], &ch, 1);
        kill(k, SIGTSTP);
        write(in[1], "x", 1);
        if (read_timeout(out[0], &ch) && ch == 'x') code |= 2;
        kill(k, SIGSTOP);
        waitpid(k, &st, WUNTRACED);
        if (WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP) code |= 4;
        kill(k, SIGKILL);
        waitpid(k, &st, 0);
        _exit(code);
    }
    int st;
    waitpid(s, &st, 0);
    int code = WEXITSTATUS(st);
    say("TSTP in a group with a link to the session: stopped %d\n", code & 1);
    say("TSTP in an orphaned group: ignored %d, SIGSTOP stops %d\n", (code >> 1) & 1,
        (code >> 2) & 1);
}

/* 6: a stopped reader does not take data; its read restarts once continued; a SIGCONT
 * handler runs after the continue */
static int conts;
static void on_cont(int sig) { conts++; }

static void test_stopped_reader(void) {
    int in[2], out[2];
    pipe(in);
    pipe(out);
    pid_t c = fork();
    if (!c) {
        signal(SIGCONT, on_cont);
        char buf[16];
        for (;;) {
            ssize_t n = read(in[0], buf, sizeof buf);
            if (n < 0) { buf[0] = 'E'; n = 1; }
            if (n == 0) _exit(0);
            buf[0] += conts;
            write(out[1], buf, n);
        }
    }
    char ch = 0;
    write(in[1], "a", 1);
    read(out[0], &ch, 1);
    say("echo: %c\n", ch);
    int st;
    kill(c, SIGSTOP);
    waitpid(c, &st, WUNTRACED);
    write(in[1], "b", 1);
    usleep(50000);
    struct pollfd p = {in[0], POLLIN, 0};
    say("data left in the pipe while the reader is stopped: %d\n",
        poll(&p, 1, 0) == 1 && (p.revents & POLLIN));
    kill(c, SIGCONT);
    read(out[0], &ch, 1);
    say("after SIGCONT (handler ran once: b -> c): %c\n", ch);
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    close(in[0]); close(in[1]); close(out[0]); close(out[1]);
    drain_sigchld();
}

/* 7: orphans go to the nearest living subreaper; the parent-death signal; a reparented
 * zombie can be waited for; an exit that orphans a group with a stopped member sends it
 * SIGHUP and SIGCONT */
static int hup_fd = -1;
static void on_usr1(int sig) { write(hup_fd, "d", 1); }
static void on_hup(int sig) { write(hup_fd, "h", 1); }

static void test_subreaper(void) {
    int pipefd[2];
    pipe(pipefd);
    pid_t r = fork();
    if (!r) {  /* r is the subreaper (not pid 1 in the sandbox, unlike the test itself) */
        int code = 0, st, v = -1;
        char ch;
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        prctl(PR_GET_CHILD_SUBREAPER, &v);
        if (v == 1) code |= 1;
        pid_t me = getpid();
        pid_t a = fork();
        if (!a) {
            v = -1;
            prctl(PR_GET_CHILD_SUBREAPER, &v);  /* not inherited */
            pid_t b = fork();
            if (!b) {
                sigset_t usr1, none;
                sigemptyset(&usr1);
                sigemptyset(&none);
                sigaddset(&usr1, SIGUSR1);
                sigprocmask(SIG_BLOCK, &usr1, NULL);  /* taken in sigsuspend below */
                hup_fd = pipefd[1];
                signal(SIGUSR1, on_usr1);
                prctl(PR_SET_PDEATHSIG, SIGUSR1);
                write(pipefd[1], "r", 1);
                while (getppid() != me) usleep(1000);
                sigsuspend(&none);
                _exit(42);
            }
            read(pipefd[0], &ch, 1);
            pid_t z = fork();
            if (!z) _exit(43);
            siginfo_t si;
            waitid(P_PID, z, &si, WEXITED | WNOWAIT);  /* z is a zombie, left unreaped */
            _exit(v == 0 ? 5 : 6);
        }
        waitpid(a, &st, 0);
        if (WEXITSTATUS(st) == 5) code |= 2;
        if (read_timeout(pipefd[0], &ch) && ch == 'd') code |= 4;
        /* both orphans are now ours: the zombie (43) and b (42, after its signal) */
        for (int i = 0; i < 2; i++) {
            pid_t w = waitpid(-1, &st, 0);
            if (w > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 43) code |= 8;
            if (w > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 42) code |= 16;
        }
        if (waitpid(-1, &st, WNOHANG) < 0 && errno == ECHILD) code |= 32;
        _exit(code);
    }
    int st;
    waitpid(r, &st, 0);
    int code = WEXITSTATUS(st);
    say("subreaper: get %d, not inherited %d, pdeathsig %d, zombie waited %d, orphan "
        "waited %d, then ECHILD %d\n", code & 1, (code >> 1) & 1, (code >> 2) & 1,
        (code >> 3) & 1, (code >> 4) & 1, (code >> 5) & 1);

    pid_t s = fork();
    if (!s) {
        setsid();
        pid_t pp = fork();
        if (!pp) {
            setpgid(0, 0);
            pid_t q = fork();
            if (!q) {
                hup_fd = pipefd[1];
                signal(SIGHUP, on_hup);
                raise(SIGSTOP);
                _exit(0);
            }
            int qst;
            waitpid(q, &qst, WUNTRACED);
            _exit(WIFSTOPPED(qst) ? 0 : 1);
        }
        int pst;
        char ch = 0;
        waitpid(pp, &pst, 0);
        _exit(read_timeout(pipefd[0], &ch) && ch == 'h' ? 0 : 1);
    }
    waitpid(s, &st, 0);
    say("stopped process in a newly orphaned group got SIGHUP and SIGCONT: %d\n",
        WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(pipefd[0]);
    close(pipefd[1]);
    drain_sigchld();
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    shm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    test_stop_continue();
    test_sigchld();
    test_waitid();
    test_pending_discard();
    test_orphaned_tstp();
    test_stopped_reader();
    test_subreaper();
    say("done\n");
    return 0;
}
