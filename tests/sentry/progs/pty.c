/* Pseudo-terminals as a program sees them: ptmx and pts, the line discipline, termios and
 * window-size ioctls, controlling terminals, signals from the terminal and hang-up. Prints
 * one line per check; run natively and in the sandbox, the outputs must match. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void show(const char *what, long r) {
    if (r < 0) printf("%s = -1 %s\n", what, strerrorname_np(errno));
    else printf("%s = %ld\n", what, r);
    fflush(stdout);
}

static void dump(const char *what, const char *buf, long n) {
    printf("%s = %ld \"", what, n);
    for (long i = 0; i < n; i++) {
        unsigned char c = buf[i];
        if (c >= 32 && c < 127 && c != '\\') putchar(c); else printf("\\x%02x", c);
    }
    printf("\"\n");
    fflush(stdout);
}

static int newpty(int *slave) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) || unlockpt(m)) { perror("openpt"); exit(1); }
    *slave = open(ptsname(m), O_RDWR | O_NOCTTY);
    return m;
}

static void rd(const char *what, int fd) {
    char buf[256];
    long n = read(fd, buf, sizeof buf);
    if (n < 0) show(what, n); else dump(what, buf, n);
}

/* Linux hands typed bytes to the line discipline asynchronously: wait (looking again every
 * millisecond) until `n` bytes are readable, so no check depends on when that happens. */
static void waitin(int fd, int n) {
    int k;
    for (;;) {
        if (ioctl(fd, FIONREAD, &k) < 0 || k >= n) return;
        usleep(1000);
    }
}

/* read exactly `n` bytes (the echo of one write may come in pieces) */
static void rdn(const char *what, int fd, int n) {
    char buf[256];
    int got = 0;
    while (got < n) {
        long r = read(fd, buf + got, n - got);
        if (r <= 0) { show(what, r); return; }
        got += r;
    }
    dump(what, buf, got);
}

static volatile sig_atomic_t got;
static void on_sig(int s) { got = s; }

int main(void) {
    /* a session of our own without a terminal, and not its leader (natively as in the
     * sandbox, where the program is pid 1) */
    int st;
    if (fork()) { wait(&st); return WEXITSTATUS(st); }
    setsid();
    if (fork()) { wait(&st); return WEXITSTATUS(st); }
    int s, m = newpty(&s);
    char name[64];
    unsigned ptn;
    struct termios t;
    struct winsize ws = {30, 100, 0, 0}, ws2;
    int n;

    /* names */
    ioctl(m, TIOCGPTN, &ptn);
    snprintf(name, sizeof name, "/dev/pts/%u", ptn);
    printf("ptsname matches TIOCGPTN: %d\n", strcmp(name, ptsname(m)) == 0);
    printf("ttyname matches: %d\n", ttyname(s) && strcmp(ttyname(s), name) == 0);
    printf("isatty master %d slave %d\n", isatty(m), isatty(s));
    show("TIOCGPTN on the slave", ioctl(s, TIOCGPTN, &ptn));
    int peer = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    printf("TIOCGPTPEER names the slave: %d\n", peer >= 0 && strcmp(ttyname(peer), name) == 0);
    close(peer);
    show("TIOCGPTPEER on the slave", ioctl(s, TIOCGPTPEER, O_RDWR));
    int m2 = posix_openpt(O_RDWR | O_NOCTTY);
    grantpt(m2);
    show("open while locked", open(ptsname(m2), O_RDWR | O_NOCTTY));
    close(m2);

    /* the default settings */
    struct termios t0;
    tcgetattr(s, &t0);
    t = t0;
    printf("iflag %o oflag %o cflag %o lflag %o\n", t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag);
    printf("cc");
    for (int i = 0; i < 17; i++) printf(" %d", t.c_cc[i]);
    printf("\n");

    /* canonical mode: erase, kill, EOF, echo */
    write(m, "abc\x7f" "d\n", 6);
    rd("erase: slave reads", s);
    rdn("erase: echo", m, 9);
    write(m, "xyz\x15q\n", 6);
    rd("kill: slave reads", s);
    rdn("kill: echo", m, 15);
    write(m, "one two\x17three\n", 14);
    rd("werase: slave reads", s);
    rdn("werase: echo", m, 23);
    write(m, "ab\x04", 3);
    rd("EOF after data", s);
    write(m, "\x04", 1);
    rd("EOF alone", s);
    write(m, "\x01x\r", 3);
    rd("ICRNL and a control char", s);
    rdn("ECHOCTL echo", m, 5);
    write(m, "12345\n", 6);
    waitin(s, 6);
    ioctl(s, FIONREAD, &n);
    printf("FIONREAD slave %d\n", n);
    rd("line", s);
    rdn("echo of the line", m, 7);
    write(m, "partial", 7);
    rdn("echo of a partial line", m, 7);
    ioctl(s, FIONREAD, &n);
    printf("FIONREAD of a partial line %d\n", n);
    tcflush(s, TCIFLUSH);
    write(m, "\n", 1);
    rd("after TCIFLUSH", s);
    rdn("echo", m, 2);

    /* output processing */
    write(s, "a\nb", 3);
    waitin(m, 4);
    ioctl(m, FIONREAD, &n);
    printf("FIONREAD master %d\n", n);
    rd("ONLCR", m);
    t.c_oflag &= ~OPOST;
    tcsetattr(s, TCSANOW, &t);
    write(s, "a\nb", 3);
    rdn("no OPOST", m, 3);
    t.c_oflag |= OPOST;

    /* non-canonical: MIN 0 TIME 0 returns at once; typed bytes readable at once */
    cfmakeraw(&t);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    tcsetattr(s, TCSANOW, &t);
    rd("raw, nothing typed", s);
    write(m, "hi\r", 3);
    waitin(s, 3);
    rd("raw", s);
    t.c_cc[VMIN] = 1;
    tcsetattr(s, TCSANOW, &t);
    fcntl(s, F_SETFL, O_NONBLOCK);
    rd("raw MIN 1 nonblocking", s);
    fcntl(s, F_SETFL, 0);
    /* VTIME: MIN 0 waits that long for a first byte; MIN 2 returns what came once the
     * time between bytes ran out */
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 1;
    tcsetattr(s, TCSANOW, &t);
    rd("raw MIN 0 TIME 1, nothing typed", s);
    t.c_cc[VMIN] = 2;
    tcsetattr(s, TCSANOW, &t);
    write(m, "q", 1);
    rd("raw MIN 2 TIME 1, one byte typed", s);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(s, TCSANOW, &t);
    tcgetattr(s, &t);
    printf("raw lflag %o iflag %o\n", t.c_lflag, t.c_iflag);
    /* canonical again: what was typed meanwhile becomes a line */
    write(m, "zz", 2);
    waitin(s, 2);
    t.c_lflag |= ICANON;
    tcsetattr(s, TCSANOW, &t);
    rd("typed raw, read canonical", s);

    /* window size */
    show("TIOCSWINSZ master", ioctl(m, TIOCSWINSZ, &ws));
    ioctl(s, TIOCGWINSZ, &ws2);
    printf("slave winsize %d %d\n", ws2.ws_row, ws2.ws_col);

    /* errors */
    show("TCFLSH bad", ioctl(s, TCFLSH, 7));
    show("TCXONC bad", ioctl(s, TCXONC, 9));
    show("TCGETS bad pointer", ioctl(s, TCGETS, (void *)8));
    show("TIOCGWINSZ bad pointer", ioctl(s, TIOCGWINSZ, (void *)8));
    show("TIOCGPGRP not the ctty", ioctl(s, TIOCGPGRP, &n));
    show("TIOCGSID not the ctty", ioctl(s, TIOCGSID, &n));
    show("TIOCNOTTY not the ctty", ioctl(s, TIOCNOTTY));
    show("TIOCSCTTY not a leader", ioctl(s, TIOCSCTTY, 0));
    show("tcdrain", tcdrain(s));
    show("TCSBRK", ioctl(s, TCSBRK, 1));
    show("unknown request", ioctl(s, 0x54ff, 0));
    show("/dev/tty without a ctty", open("/dev/tty", O_RDWR));

    tcsetattr(s, TCSANOW, &t0);
    /* a session with this terminal: ^C, ^\ and SIGWINCH reach the foreground group */
    int ready[2];
    pipe(ready);
    pid_t c = fork();
    if (c == 0) {
        setsid();
        int fd = open(name, O_RDWR); /* a session leader's first terminal: its ctty */
        signal(SIGINT, on_sig);
        signal(SIGWINCH, on_sig);
        signal(SIGQUIT, on_sig);
        printf("child: pgrp is mine %d sid is mine %d\n", tcgetpgrp(fd) == getpid(),
               tcgetsid(fd) == getpid());
        int tty = open("/dev/tty", O_RDWR);
        printf("child: /dev/tty opens %d\n", tty >= 0);
        fflush(stdout);
        for (int sig = 0; sig < 3; sig++) {
            sigset_t all, old;
            sigfillset(&all);
            sigprocmask(SIG_BLOCK, &all, &old);
            got = 0;
            write(ready[1], "r", 1);
            while (!got) sigsuspend(&old);
            sigprocmask(SIG_SETMASK, &old, NULL);
            printf("child: got signal %d\n", got);
            fflush(stdout);
        }
        /* a background group: SIGTTOU for tcsetattr, SIGTTIN for read */
        pid_t g = fork();
        if (g == 0) {
            setpgid(0, 0);
            struct termios tt;
            tcgetattr(fd, &tt);
            tcsetattr(fd, TCSANOW, &tt);
            _exit(3);
        }
        int st;
        waitpid(g, &st, WUNTRACED);
        printf("child: background tcsetattr stopped by %d\n", WIFSTOPPED(st) ? WSTOPSIG(st) : -1);
        kill(g, SIGKILL);
        waitpid(g, &st, 0);
        g = fork();
        if (g == 0) {
            setpgid(0, 0);
            char b;
            read(fd, &b, 1);
            _exit(3);
        }
        waitpid(g, &st, WUNTRACED);
        printf("child: background read stopped by %d\n", WIFSTOPPED(st) ? WSTOPSIG(st) : -1);
        kill(g, SIGKILL);
        waitpid(g, &st, 0);
        g = fork();
        if (g == 0) {
            setpgid(0, 0);
            signal(SIGTTIN, SIG_IGN);
            char b;
            show("child: background read with SIGTTIN ignored", read(fd, &b, 1));
            signal(SIGTTOU, SIG_IGN);
            struct termios tt;
            tcgetattr(fd, &tt);
            show("child: background tcsetattr with SIGTTOU ignored", tcsetattr(fd, TCSANOW, &tt));
            show("child: TIOCSPGRP to a group of another session", tcsetpgrp(fd, getppid() == 1 ? 1 : 99999));
            _exit(0);
        }
        waitpid(g, &st, 0);
        show("child: TIOCNOTTY", ioctl(fd, TIOCNOTTY));
        show("child: TIOCGPGRP after TIOCNOTTY", ioctl(fd, TIOCGPGRP, &n));
        show("child: TIOCSCTTY takes it back", ioctl(fd, TIOCSCTTY, 0));
        show("child: TIOCSCTTY again", ioctl(fd, TIOCSCTTY, 0));
        _exit(0);
    }
    char b;
    read(ready[0], &b, 1);
    write(m, "\x03", 1);
    read(ready[0], &b, 1);
    ws.ws_row = 40;
    ioctl(m, TIOCSWINSZ, &ws);
    read(ready[0], &b, 1);
    write(m, "\x1c", 1);
    waitpid(c, &st, 0);
    printf("child exit %d\n", WEXITSTATUS(st));
    rd("what the session's terminal echoed", m);

    /* hang-up: closing the master sends SIGHUP to the session leader */
    int s3, m3 = newpty(&s3);
    close(s3);
    c = fork();
    if (c == 0) {
        setsid();
        int fd = open(ptsname(m3), O_RDWR);
        close(m3); /* the parent's close must be the last */
        signal(SIGHUP, on_sig);
        sigset_t all, old;
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, &old);
        write(ready[1], "r", 1);
        while (!got) sigsuspend(&old);
        printf("hung-up child: got signal %d\n", got);
        char buf[8];
        show("hung-up child: read", read(fd, buf, sizeof buf));
        show("hung-up child: write", write(fd, "x", 1));
        show("hung-up child: TCGETS", ioctl(fd, TCGETS, &t));
        show("hung-up child: reopen", open("/dev/tty", O_RDWR));
        _exit(0);
    }
    read(ready[0], &b, 1);
    close(m3);
    waitpid(c, &st, 0);
    printf("hung-up child exit %d\n", WEXITSTATUS(st));

    /* the master after the slave is closed: EIO and POLLHUP */
    close(s);
    struct pollfd p = {m, POLLIN, 0};
    poll(&p, 1, 0);
    printf("master poll after slave close %x\n", p.revents);
    show("master read after slave close", read(m, &b, 1));
    return 0;
}
