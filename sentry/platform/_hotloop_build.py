"""cffi build script for the platform's hot loop (`sentry.platform._hotloop`).

Why C: every application syscall costs a resume (PTRACE_SETREGS + PTRACE_SYSEMU) and a wait
(waitpid, a short sleep in sigtimedwait, PTRACE_GETREGS). Done from Python that is five
foreign calls with their argument conversion; `hot_step` does it in one. Built at install time
(setup.py's cffi_modules); without it the platform falls back to ctypes (libc.py).
"""

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    long hot_resume(int pid, void *regs, int request, int sig);
    long hot_wait(int pid, void *regs, long timeout_ns);
    long hot_step(int pid, void *regs, unsigned long rax, long timeout_ns);
    #define HOT_NOT_YET ...
    """
)
ffibuilder.set_source(
    "sentry.platform._hotloop",
    r"""
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>

#define HOT_NOT_YET (-1000000)

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
""",
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
