"""cffi build script for the platform's hot loop (`sentry.platform._hotloop`).

Why C: every application syscall costs a resume (PTRACE_SETREGS + PTRACE_SYSEMU) and a wait
(waitpid, a short sleep in sigtimedwait, PTRACE_GETREGS). Done from Python that is five
foreign calls with their argument conversion; `hot_step` does it in one. Built at install time
(setup.py's cffi_modules); without it the platform falls back to ctypes (libc.py).

`hot_run` is the fast path for syscalls whose answer is a per-task value (getppid, getuid
...): after the Sentry answered one, the same call is answered again in C, with the same
value, until a different stop comes or a budget runs out. It is sound because no Python
runs while it loops: nothing the Sentry would answer differently can change meanwhile.
The C is in `sentry/platform/hotloop.c` (this file holds its cdef), compiled with -Wall -Werror; not named
`_hotloop.c`: run as a script, cffi writes its generated wrapper to `sentry/platform/_hotloop.c`.
"""

import os

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    long hot_resume(int pid, void *regs, int request, int sig);
    long hot_wait(int pid, void *regs, long timeout_ns);
    long hot_step(int pid, void *regs, unsigned long rax, long timeout_ns);
    long hot_run(int pid, void *regs, unsigned long rax, long timeout_ns,
                 unsigned long nr, unsigned long val, long budget, long *answered);
    long hot_deadline_start(int sig);
    long hot_deadline_stop(void);
    #define HOT_NOT_YET ...
    long sc_setup(int lfd);
    void sc_load_notif(void *regs, const void *notif);
    long sc_wait(int tid, void *regs, int lfd, void *notif, long timeout_ns);
    long sc_recv(int lfd, void *notif);
    long sc_reply(int lfd, unsigned long long id, unsigned long rax);
    long sc_resume(int tid, void *regs, int sig);
    long sc_step(int tid, void *regs, int lfd, void *notif, int in_notif,
                 unsigned long rax, long timeout_ns);
    long sc_run(int tid, void *regs, int lfd, void *notif, int in_notif, unsigned long rax,
                long timeout_ns, unsigned long nr, unsigned long val, long budget,
                long *answered);
    #define HOT_NOTIF ...
    #define HOT_NOTIF_OTHER ...
    long mem_read(int pid, unsigned long addr, char *buf, unsigned long n);
    long mem_write(int pid, unsigned long addr, const char *buf, unsigned long n);
    long mem_cstring(int pid, unsigned long addr, char *buf, long first, long limit);
    long sc_in_place(int tid, void *app, unsigned long nr, const unsigned long *a,
                     int *sigs, long *out);
    #define SC_NOT_IN_PLACE ...
    #define SC_GONE ...
    #define SC_ASTRAY ...
    #define SC_SIGS ...
    long sio_send(int pid, const void *iov, long cnt, int whole, int fd, int flags,
                  const void *name, unsigned int namelen, const void *control,
                  unsigned long controllen);
    long sio_recv(int pid, const void *iov, long cnt, int fd, int flags, void *name,
                  void *control, long *io);
    long sio_poll(int fd, int events);
    #define SIO_CAP ...
    """
)
ffibuilder.set_source(
    "sentry.platform._hotloop",
    '#include "hotloop.c"',
    include_dirs=[os.path.dirname(os.path.abspath(__file__))],
    extra_compile_args=["-Wall", "-Werror"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
