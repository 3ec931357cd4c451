/* sentry.platform._hotloop: the platform's hot loop (see sentry/platform/_hotloop_build.py for why).
 * Built by cffi at install time (setup.py's cffi_modules) with -Wall -Werror. */
#ifndef _GNU_SOURCE  /* Python.h (included first by cffi) defines it already */
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HOT_NOT_YET (-1000000)

/* The wait's deadline timer. sigtimedwait(timeout) arms and cancels an hrtimer on every
   call; on a VM each costs a trip to the hypervisor (measured: a C SYSEMU loop waiting
   that way takes ~9 us per syscall instead of ~5.5). Instead one POSIX timer, directed at
   the loop's thread with a signal it keeps blocked, is armed lazily: a wait arms it for
   its deadline only when it is not armed already, and leaves it armed when the stop comes
   first; a wait that gets the timer's signal before its own deadline re-arms it for that
   deadline. So a busy loop arms it at most once per timeout; an idle Sentry only gets
   the timer's 10 ms backstop ticks (on a signal already pending: nothing runs). */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif
static timer_t deadline_timer;
static int deadline_sig;    /* 0: no timer; waits use sigtimedwait's timeout */
static int deadline_armed;  /* armed, and its signal not yet taken */

static struct sigaction deadline_old_action;

/* The timer's signal is meant to stay blocked and be taken by sigwaitinfo; should it ever
   be delivered (someone unblocked it), this makes it harmless instead of fatal. */
static void deadline_noop(int sig) { (void)sig; }

static long hot_deadline_start(int sig) {
    struct sigevent ev;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = deadline_noop;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = sig;
    ev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
    if (deadline_sig) return -EBUSY;
    if (sigaction(sig, &sa, &deadline_old_action) < 0) return -errno;
    if (timer_create(CLOCK_MONOTONIC, &ev, &deadline_timer) < 0) {
        long err = -errno;
        sigaction(sig, &deadline_old_action, NULL);
        return err;
    }
    deadline_sig = sig;
    deadline_armed = 0;
    return 0;
}

/* Delete the timer and take a signal it left pending; the caller may then unblock it. */
static long hot_deadline_stop(void) {
    sigset_t set;
    struct timespec zero = {0, 0};
    if (!deadline_sig) return 0;
    timer_delete(deadline_timer);
    sigemptyset(&set);
    sigaddset(&set, deadline_sig);
    while (sigtimedwait(&set, NULL, &zero) > 0) {}
    sigaction(deadline_sig, &deadline_old_action, NULL);
    deadline_sig = 0;
    deadline_armed = 0;
    return 0;
}

static int deadline_arm(const struct timespec *at) {
    struct itimerspec it;
    memset(&it, 0, sizeof it);
    it.it_value = *at;
    it.it_interval.tv_nsec = 10000000;  /* then every 10 ms: a backstop, so no wait can
                                           sleep for good if `deadline_armed` were wrong */
    if (timer_settime(deadline_timer, TIMER_ABSTIME, &it, NULL) < 0) return -errno;
    deadline_armed = 1;
    return 0;
}

static long wait_with_deadline(int pid, void *regs, long timeout_ns, sigset_t *set) {
    struct timespec deadline, now;
    siginfo_t si;
    int status;
    long err;
    pid_t r;
    sigaddset(set, deadline_sig);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ns / 1000000000L;
    deadline.tv_nsec += timeout_ns % 1000000000L;
    if (deadline.tv_nsec >= 1000000000L) { deadline.tv_nsec -= 1000000000L; deadline.tv_sec++; }
    if (!deadline_armed && (err = deadline_arm(&deadline)) < 0) return err;
    for (;;) {
        int got = sigwaitinfo(set, &si);
        if (got == deadline_sig) deadline_armed = 0;  /* taken: whatever comes next */
        r = waitpid(pid, &status, WNOHANG | __WALL);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) return -errno;
        if (got == deadline_sig) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > deadline.tv_sec
                || (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec))
                return HOT_NOT_YET;
            if ((err = deadline_arm(&deadline)) < 0) return err;
        }
        /* SIGCHLD for another child, or a handler ran (EINTR): sleep on */
    }
    if (WIFSTOPPED(status) && ptrace(PTRACE_GETREGS, pid, 0, regs) < 0) return -errno;
    return status;
}

/* Load regs and resume with `request` (PTRACE_SYSEMU, ...). 0 or -errno. */
static long hot_resume(int pid, void *regs, int request, int sig) {
    if (ptrace(PTRACE_SETREGS, pid, 0, regs) < 0) return -errno;
    if (ptrace((enum __ptrace_request)request, pid, 0, (void *)(long)sig) < 0) return -errno;
    return 0;
}

/* Wait up to timeout_ns for pid's next state change; SIGCHLD must be blocked by the caller.
   Returns the wait status (registers loaded into regs if the thread is stopped),
   HOT_NOT_YET on timeout, or -errno. */
static long hot_wait(int pid, void *regs, long timeout_ns) {
    int status;
    struct timespec deadline, now, left;
    sigset_t set;
    pid_t r;
    if (timeout_ns <= 0) {
        r = waitpid(pid, &status, WNOHANG | __WALL);
        if (r == pid) goto stopped;
        return r < 0 ? -errno : HOT_NOT_YET;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (deadline_sig) return wait_with_deadline(pid, regs, timeout_ns, &set);
    /* Sleep first: the thread has only just been resumed, so it is almost never stopped
       yet, and SIGCHLD (blocked) stays pending if it already is. */
    left.tv_sec = timeout_ns / 1000000000L;
    left.tv_nsec = timeout_ns % 1000000000L;
    deadline.tv_sec = -1;
    for (;;) {
        int got = sigtimedwait(&set, NULL, &left);
        int timed_out = got < 0 && errno == EAGAIN;
        r = waitpid(pid, &status, WNOHANG | __WALL);
        if (r == pid) goto stopped;
        if (r < 0 && errno != EINTR) return -errno;
        if (timed_out) return HOT_NOT_YET;
        /* a SIGCHLD for another child (or a signal handler ran): sleep for the rest */
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (deadline.tv_sec < 0) {
            deadline = now;
            deadline.tv_sec += left.tv_sec;
            deadline.tv_nsec += left.tv_nsec;
            if (deadline.tv_nsec >= 1000000000L) { deadline.tv_nsec -= 1000000000L; deadline.tv_sec++; }
        }
        left.tv_sec = deadline.tv_sec - now.tv_sec;
        left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
        if (left.tv_nsec < 0) { left.tv_nsec += 1000000000L; left.tv_sec--; }
        if (left.tv_sec < 0) return HOT_NOT_YET;
    }
stopped:
    if (WIFSTOPPED(status) && ptrace(PTRACE_GETREGS, pid, 0, regs) < 0) return -errno;
    return status;
}

/* The whole per-syscall round trip: store the result in rax, resume under PTRACE_SYSEMU,
   wait for the next stop (as hot_wait). */
static long hot_step(int pid, void *regs, unsigned long rax, long timeout_ns) {
    ((struct user_regs_struct *)regs)->rax = rax;
    long r = hot_resume(pid, regs, PTRACE_SYSEMU, 0);
    if (r < 0) return r;
    return hot_wait(pid, regs, timeout_ns);
}

#define SYSCALL_STOP ((((SIGTRAP | 0x80) << 8)) | 0x7f)

/* hot_step, then answer every following syscall stop for `nr` with `val` right here, at most
   `budget` of them (*answered says how many). Returns what hot_step returned for the first
   stop not answered here: another syscall, a signal, an exit, HOT_NOT_YET or -errno. */
static long hot_run(int pid, void *regs, unsigned long rax, long timeout_ns,
                    unsigned long nr, unsigned long val, long budget, long *answered) {
    long n = 0, st;
    for (;;) {
        st = hot_step(pid, regs, rax, timeout_ns);
        struct user_regs_struct *r = regs;
        /* only a `syscall` instruction (rcx = rip, r11 = rflags) is the 64-bit call `nr`;
           an int 0x80 with the same eax is another call: the Sentry decides it */
        if (st != SYSCALL_STOP || n >= budget || r->orig_rax != nr
            || r->rcx != r->rip || r->r11 != r->eflags)
            break;
        rax = val;
        n++;
    }
    *answered = n;
    return st;
}

/* ---- the seccomp platform (sentry/platform/usernotif.py) ----------------------------
   Application calls of the notified set arrive as seccomp user notifications on the
   filter's listener fd; every other call is a PTRACE_EVENT_SECCOMP stop, skipped on
   resume (orig_rax = -1, rax = the result) and resumed with PTRACE_CONT. A wait is
   poll() on the listener and on a signalfd for SIGCHLD and the deadline timer's signal
   (both blocked on this thread, as for hot_wait). */
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>

#define HOT_NOTIF (-1000001)        /* a notification of this thread: regs filled */
#define HOT_NOTIF_OTHER (-1000002)  /* one of another thread: in the caller's buffer */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

static int sc_sfd = -1;
static int sc_sfd_sig = -1;  /* the deadline signal in the signalfd's mask (0: none) */

static int sc_signalfd(void) {
    sigset_t set;
    int fd;
    if (sc_sfd >= 0 && sc_sfd_sig == deadline_sig) return sc_sfd;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (deadline_sig) sigaddset(&set, deadline_sig);
    fd = signalfd(sc_sfd, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) return -errno;
    sc_sfd = fd;
    sc_sfd_sig = deadline_sig;
    return fd;
}

/* Ask the kernel to wake the target on this CPU when answered (a synchronous handoff);
   kernels before 6.6 do not know the flag: harmless. */
static long sc_setup(int lfd) {
    if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, 0) < 0)
        return -errno;
    return 0;
}

/* The registers a notified call tells: number, arguments, rip (rcx and r11 as the
   `syscall` instruction leaves them); the others keep what the last stop loaded. */
static void sc_load_notif(void *regs, const void *notif) {
    struct user_regs_struct *r = regs;
    const struct seccomp_notif *n = notif;
    r->orig_rax = (unsigned long long)(long long)n->data.nr;
    r->rax = (unsigned long long)-ENOSYS;
    r->rdi = n->data.args[0];
    r->rsi = n->data.args[1];
    r->rdx = n->data.args[2];
    r->r10 = n->data.args[3];
    r->r8 = n->data.args[4];
    r->r9 = n->data.args[5];
    r->rip = n->data.instruction_pointer;
    r->rcx = r->rip;
    r->r11 = r->eflags;
}

static int past(const struct timespec *deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec
        || (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* Wait up to timeout_ns for thread tid's next event: a notification on lfd (HOT_NOTIF
   with regs filled when it is tid's, HOT_NOTIF_OTHER when another thread's: then in
   `notif` for the caller to route), or a ptrace stop (its wait status, registers loaded).
   HOT_NOT_YET on timeout; -errno on error. lfd < 0: ptrace stops only. */
static long sc_wait(int tid, void *regs, int lfd, void *notif, long timeout_ns) {
    struct pollfd p[2];
    struct timespec deadline = {0, 0}, left;
    struct seccomp_notif *sn = notif;
    int status, sfd = sc_signalfd();
    long err;
    pid_t r;
    if (sfd < 0) return sfd;
    if (timeout_ns > 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ns / 1000000000L;
        deadline.tv_nsec += timeout_ns % 1000000000L;
        if (deadline.tv_nsec >= 1000000000L) { deadline.tv_nsec -= 1000000000L; deadline.tv_sec++; }
        if (deadline_sig && !deadline_armed && (err = deadline_arm(&deadline)) < 0) return err;
    }
    p[0].fd = lfd;
    p[0].events = POLLIN;
    p[1].fd = sfd;
    p[1].events = POLLIN;
    for (;;) {
        int n, timer_fired = 0;
        p[0].revents = p[1].revents = 0;
        if (timeout_ns <= 0) {
            n = poll(p, 2, 0);
        } else if (deadline_sig) {
            n = poll(p, 2, -1);
        } else {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            left.tv_sec = deadline.tv_sec - now.tv_sec;
            left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
            if (left.tv_nsec < 0) { left.tv_nsec += 1000000000L; left.tv_sec--; }
            if (left.tv_sec < 0) left.tv_sec = left.tv_nsec = 0;
            n = ppoll(p, 2, &left, NULL);
        }
        if (n < 0 && errno != EINTR) return -errno;
        if (n > 0 && (p[0].revents & POLLIN)) {
            memset(sn, 0, sizeof *sn);
            if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, sn) == 0) {
                if ((int)sn->pid == tid) {
                    sc_load_notif(regs, sn);
                    return HOT_NOTIF;
                }
                return HOT_NOTIF_OTHER;
            }
            if (errno != ENOENT && errno != EINTR) return -errno;  /* ENOENT: withdrawn */
        } else if (n > 0 && (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))) {
            p[0].fd = -1;  /* no thread left on the filter: ptrace stops only */
        }
        if (n > 0 && (p[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                if (deadline_sig && (int)si.ssi_signo == deadline_sig) {
                    deadline_armed = 0;
                    timer_fired = 1;
                }
        }
        r = waitpid(tid, &status, WNOHANG | __WALL);
        if (r == tid) {
            if (WIFSTOPPED(status) && ptrace(PTRACE_GETREGS, tid, 0, regs) < 0) return -errno;
            return status;
        }
        if (r < 0 && errno != EINTR) return -errno;
        if (timeout_ns <= 0) return HOT_NOT_YET;
        if ((timer_fired || !deadline_sig) && past(&deadline)) return HOT_NOT_YET;
        if (timer_fired && (err = deadline_arm(&deadline)) < 0) return err;
    }
}

/* Take one notification waiting on lfd without sleeping: 1 (in `notif`), 0 none, -EPIPE
   when no thread is left on the filter, -errno. */
static long sc_recv(int lfd, void *notif) {
    struct pollfd p = {lfd, POLLIN, 0};
    for (;;) {
        int n = poll(&p, 1, 0);
        if (n < 0) return errno == EINTR ? 0 : -errno;
        if (n == 0) return 0;
        if (!(p.revents & POLLIN)) return -EPIPE;
        memset(notif, 0, sizeof(struct seccomp_notif));
        if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, notif) == 0) return 1;
        if (errno != ENOENT && errno != EINTR) return -errno;
    }
}

/* Answer notification `id` with rax (the call returns it; never CONTINUE). 0, -ENOENT if
   the thread is no longer waiting (killed), -errno. */
static long sc_reply(int lfd, unsigned long long id, unsigned long rax) {
    struct seccomp_notif_resp resp;
    memset(&resp, 0, sizeof resp);
    resp.id = id;
    resp.val = (long long)rax;
    if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0) return -errno;
    return 0;
}

/* Resume a thread at a ptrace stop under PTRACE_CONT with regs, orig_rax = -1: at a
   PTRACE_EVENT_SECCOMP stop the call is skipped and returns rax; at a signal stop the
   kernel does not restart a call on its own (the Sentry decided). */
static long sc_resume(int tid, void *regs, int sig) {
    struct user_regs_struct *r = regs;
    unsigned long long o = r->orig_rax;
    long e;
    r->orig_rax = (unsigned long long)-1;
    e = hot_resume(tid, regs, PTRACE_CONT, sig);
    r->orig_rax = o;
    return e;
}

/* The seccomp platform's round trip: answer the current call with rax (in_notif: the
   notification in `notif`; else the thread's PTRACE_EVENT_SECCOMP stop), then sc_wait. */
static long sc_step(int tid, void *regs, int lfd, void *notif, int in_notif,
                    unsigned long rax, long timeout_ns) {
    long e;
    if (in_notif) {
        e = sc_reply(lfd, ((struct seccomp_notif *)notif)->id, rax);
        if (e < 0 && e != -ENOENT) return e;  /* ENOENT: killed; its exit stop follows */
    } else {
        ((struct user_regs_struct *)regs)->rax = rax;
        if ((e = sc_resume(tid, regs, 0)) < 0) return e;
    }
    return sc_wait(tid, regs, lfd, notif, timeout_ns);
}

/* sc_step, then answer every following notification of call `nr` (a `syscall`
   instruction's, as every notified call is) with `val` right here, at most `budget` of
   them (*answered says how many): hot_run's fast path for per-task values. Returns what
   sc_step returned for the first event not answered here. */
static long sc_run(int tid, void *regs, int lfd, void *notif, int in_notif, unsigned long rax,
                   long timeout_ns, unsigned long nr, unsigned long val, long budget,
                   long *answered) {
    long n = 0, st;
    for (;;) {
        st = sc_step(tid, regs, lfd, notif, in_notif, rax, timeout_ns);
        if (st != HOT_NOTIF || n >= budget
            || (unsigned long)((struct seccomp_notif *)notif)->data.nr != nr)
            break;
        in_notif = 1;
        rax = val;
        n++;
    }
    *answered = n;
    return st;
}

/* Application memory in one foreign call each (ctypes took ~5 us per copy: the iovecs,
   the buffer and the call's argument conversion), for every handler that reads an
   argument or writes a result. process_vm_readv/writev honour page protections; a copy
   that stops short is -EFAULT, as Linux's copy_{from,to}_user fails. */
static long mem_read(int pid, unsigned long addr, char *buf, unsigned long n) {
    struct iovec local = {buf, n}, remote = {(void *)addr, n};
    ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (got < 0) return -errno;
    return (unsigned long)got == n ? 0 : -EFAULT;
}

static long mem_write(int pid, unsigned long addr, const char *buf, unsigned long n) {
    struct iovec local = {(void *)buf, n}, remote = {(void *)addr, n};
    ssize_t got = process_vm_writev(pid, &local, 1, &remote, 1, 0);
    if (got < 0) return -errno;
    return (unsigned long)got == n ? 0 : -EFAULT;
}

/* The NUL-terminated string at addr (strncpy_from_user): read in chunks that never
   cross a page, the first at most `first` bytes (most paths are short), into buf (room
   for `limit` bytes). Returns its length without the NUL, -EFAULT if a byte before the
   NUL is unreadable, -ENAMETOOLONG if there is no NUL within `limit` bytes. */
static long mem_cstring(int pid, unsigned long addr, char *buf, long first, long limit) {
    long len = 0;
    while (len < limit) {
        long n = 4096 - (long)(addr % 4096), e;
        if (n > limit - len) n = limit - len;
        if (n > first) n = first;
        first = 4096;
        if ((e = mem_read(pid, addr, buf + len, (unsigned long)n)) < 0) return e;
        char *nul = memchr(buf + len, 0, (size_t)n);
        if (nul != NULL) return nul - buf;
        len += n;
        addr += (unsigned long)n;
    }
    return -ENAMETOOLONG;
}

/* The seccomp platform's in-place injection (usernotif.py's `_in_place`) in one call
   instead of ten foreign ones: at the PTRACE_EVENT_SECCOMP stop of an application call
   the Sentry serves, run host call `nr` with arguments a[0..5] in that call's place.
   Only for a call that came by `syscall` (PTRACE_GET_SYSCALL_INFO's arch; an int 0x80
   entry would read `nr` in the i386 table): else SC_NOT_IN_PLACE, nothing done. The
   thread gets the application's registers `app` with the call's number and arguments
   replaced, is resumed with PTRACE_SYSCALL (the host re-runs the filter, whose TRACE lets
   the call run) and waited for at its exit stop; signal stops met meanwhile are
   recorded in sigs[1..] (sigs[0]: how many, at most SC_SIGS) and passed over. Then
   `app` is loaded back. Returns 0 with the call's rax in *out; SC_GONE with the wait
   status in *out (the thread ended); SC_ASTRAY (not stopped at the call's exit: the
   caller kills it); or -errno of a ptrace request. */
#define SC_NOT_IN_PLACE 1
#define SC_GONE 2
#define SC_ASTRAY 3
#define SC_SIGS 31
#ifndef PTRACE_GET_SYSCALL_INFO
#define PTRACE_GET_SYSCALL_INFO 0x420e
#endif
static long sc_in_place(int tid, void *app, unsigned long nr, const unsigned long *a,
                        int *sigs, long *out) {
    struct user_regs_struct *saved = app, r;
    unsigned char info[88];
    unsigned int arch;
    int status;
    long got = ptrace(PTRACE_GET_SYSCALL_INFO, tid, (void *)sizeof info, info);
    if (got < 0) return -errno;
    memcpy(&arch, info + 4, sizeof arch);
    if (got < 8 || info[0] != 3 /* PTRACE_SYSCALL_INFO_SECCOMP */ || arch != 0xC000003E)
        return SC_NOT_IN_PLACE;
    r = *saved;
    r.rax = r.orig_rax = nr;
    r.rdi = a[0]; r.rsi = a[1]; r.rdx = a[2]; r.r10 = a[3]; r.r8 = a[4]; r.r9 = a[5];
    sigs[0] = 0;
    if (ptrace(PTRACE_SETREGS, tid, NULL, &r) < 0) return -errno;
    for (;;) {
        if (ptrace(PTRACE_SYSCALL, tid, NULL, NULL) < 0) return -errno;
        while (waitpid(tid, &status, __WALL) < 0)  /* (SIGCHLD's handler: EINTR) */
            if (errno != EINTR) return -errno;
        if (!WIFSTOPPED(status)) {
            *out = status;
            return SC_GONE;
        }
        if (WSTOPSIG(status) == (SIGTRAP | 0x80)) break;
        if (!(status >> 16) && sigs[0] < SC_SIGS) sigs[++sigs[0]] = WSTOPSIG(status);
    }
    if (ptrace(PTRACE_GETREGS, tid, NULL, &r) < 0) return -errno;
    if (r.orig_rax != nr || r.rip != saved->rip) return SC_ASTRAY;
    *out = (long)r.rax;
    if (ptrace(PTRACE_SETREGS, tid, NULL, saved) < 0) return -errno;
    return 0;
}

/* The data path of sockets the Sentry holds on the host (sentry/socket/hostsocket.py):
   the program's bytes go between its memory and the host socket in one call, through one
   staging buffer (process_vm_readv + sendmsg, recvmsg + process_vm_writev), instead of
   four foreign calls and three Python copies of every chunk. `pid` 0: the iovecs are the
   Sentry's own memory (a write from inside the Sentry: sendfile, splice), used directly.
   The host socket is non-blocking (MSG_DONTWAIT too): -EAGAIN sends the caller to wait. */
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define SIO_CAP (256 * 1024)  /* > any datagram the host takes (IP: 64 KiB) */
static char *sio_buf;

static size_t sio_total(const struct iovec *iov, long cnt) {
    size_t t = 0;
    for (long i = 0; i < cnt; i++) t += iov[i].iov_len;
    return t;
}

/* Send the first bytes of `iov` (at most SIO_CAP of the program's memory; `whole`: a
   datagram, all of it or EMSGSIZE; a fault in what is sent: EFAULT, nothing sent) with
   `name` and `control`. Returns the bytes the host took, or -errno. */
static long sio_send(int pid, const void *iov, long cnt, int whole, int fd, int flags,
                     const void *name, unsigned int namelen, const void *control,
                     unsigned long controllen) {
    struct msghdr m;
    struct iovec one;
    ssize_t n;
    memset(&m, 0, sizeof m);
    m.msg_name = (void *)name;
    m.msg_namelen = namelen;
    m.msg_control = controllen ? (void *)control : NULL;
    m.msg_controllen = controllen;
    if (pid) {
        size_t want = sio_total(iov, cnt);
        if (want > SIO_CAP) {
            if (whole) return -EMSGSIZE;
            want = SIO_CAP;
        }
        if (!sio_buf && !(sio_buf = malloc(SIO_CAP))) return -ENOMEM;
        one.iov_base = sio_buf;
        one.iov_len = want;
        if (want) {
            n = process_vm_readv(pid, &one, 1, iov, (unsigned long)cnt, 0);
            if (n < 0) return -errno;
            if ((size_t)n != want) return -EFAULT;
            one.iov_len = (size_t)n;
        }
        m.msg_iov = &one;
        m.msg_iovlen = 1;
    } else {
        m.msg_iov = (struct iovec *)iov;
        m.msg_iovlen = (size_t)cnt;
    }
    n = sendmsg(fd, &m, flags | MSG_DONTWAIT);
    return n < 0 ? -errno : (long)n;
}

/* Receive into `iov` (at most SIO_CAP bytes at a time for the program's memory). io[0]
   and io[1] are the room for the sender's name and the control messages on entry, their
   lengths on return; io[2] gets msg_flags, io[3] the bytes copied to the program (or
   -errno if that copy failed at once). Returns the host's count (the datagram's whole
   length with MSG_TRUNC), or -errno. */
static long sio_recv(int pid, const void *iov, long cnt, int fd, int flags, void *name,
                     void *control, long *io) {
    struct msghdr m;
    struct iovec one;
    ssize_t n;
    size_t want = 0;
    memset(&m, 0, sizeof m);
    m.msg_name = io[0] ? name : NULL;
    m.msg_namelen = (socklen_t)io[0];
    m.msg_control = io[1] ? control : NULL;
    m.msg_controllen = (size_t)io[1];
    if (pid) {
        want = sio_total(iov, cnt);
        if (want > SIO_CAP) want = SIO_CAP;
        if (!sio_buf && !(sio_buf = malloc(SIO_CAP))) return -ENOMEM;
        one.iov_base = sio_buf;
        one.iov_len = want;
        m.msg_iov = &one;
        m.msg_iovlen = 1;
    } else {
        m.msg_iov = (struct iovec *)iov;
        m.msg_iovlen = (size_t)cnt;
    }
    n = recvmsg(fd, &m, flags | MSG_DONTWAIT);
    if (n < 0) return -errno;
    io[0] = m.msg_namelen;
    io[1] = (long)m.msg_controllen;
    io[2] = m.msg_flags;
    io[3] = n;
    if (pid) {
        size_t copy = (size_t)n < want ? (size_t)n : want;
        io[3] = 0;
        if (copy) {
            ssize_t w;
            one.iov_len = copy;
            w = process_vm_writev(pid, &one, 1, iov, (unsigned long)cnt, 0);
            io[3] = w < 0 ? -errno : (long)w;
        }
    }
    return (long)n;
}

/* poll(2) of one fd now: its revents, or -errno. */
static long sio_poll(int fd, int events) {
    struct pollfd p = {fd, (short)events, 0};
    int n = poll(&p, 1, 0);
    if (n < 0) return -errno;
    return n ? p.revents : 0;
}
