"""Process-local syscalls answered by the Sentry, compared with Linux where the answer does
not depend on the host (ids, limits, names, argument errors, time moving forward)."""

from .platform_helpers import build_c, native, run

PROGRAM = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/times.h>
#include <sys/personality.h>
#include <time.h>
#include <unistd.h>
#include <asm/prctl.h>
#define SHOW(what, expr) do { long _r = (long)(expr); \
    printf("%s %ld %d\n", what, _r < 0 ? -1L : _r, _r < 0 ? errno : 0); errno = 0; } while (0)
int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    uid_t r, e, s;
    SHOW("getresuid", getresuid(&r, &e, &s));
    printf("ids_consistent %d\n", r == getuid() && e == geteuid());
    SHOW("getgroups_neg", syscall(SYS_getgroups, -1, NULL));
    struct rlimit rl;
    SHOW("getrlimit_stack", getrlimit(RLIMIT_STACK, &rl));
    SHOW("getrlimit_bad", syscall(SYS_getrlimit, 99, &rl));
    SHOW("prlimit_other", prlimit(999999, RLIMIT_NOFILE, NULL, &rl));
    struct rlimit lower = {64, 64};
    SHOW("setrlimit_core", setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0}));
    SHOW("getrlimit_core", getrlimit(RLIMIT_CORE, &rl));
    printf("core %lu %lu\n", (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max);
    SHOW("setrlimit_inverted", setrlimit(RLIMIT_CORE, &(struct rlimit){10, 5}));
    (void)lower;
    char name[16] = {0};
    SHOW("set_name", prctl(PR_SET_NAME, "sandboxed-name-too-long"));
    SHOW("get_name", prctl(PR_GET_NAME, name));
    printf("name %s\n", name);
    SHOW("dumpable", prctl(PR_GET_DUMPABLE));
    SHOW("nnp_set", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    SHOW("nnp_get", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    SHOW("prctl_bad", prctl(-5));
    unsigned char rnd[64];
    SHOW("getrandom", getrandom(rnd, sizeof rnd, 0));
    SHOW("getrandom_badflags", getrandom(rnd, 8, GRND_RANDOM | GRND_INSECURE));
    struct timespec a, b;
    SHOW("clock_bad", syscall(SYS_clock_gettime, 12345, &a));
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &a);
    struct timespec req = {0, 2000000};
    SHOW("nanosleep", nanosleep(&req, NULL));
    SHOW("nanosleep_bad", nanosleep(&(struct timespec){0, 2000000000}, NULL));
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &b);
    printf("slept %d\n", (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) >= 2000000);
    struct timeval tv;
    SHOW("gettimeofday", syscall(SYS_gettimeofday, &tv, NULL));
    printf("time_sane %d\n", labs(tv.tv_sec - (long)syscall(SYS_time, NULL)) <= 1);
    SHOW("sched_yield", sched_yield());
    cpu_set_t set;
    SHOW("affinity_small", syscall(SYS_sched_getaffinity, 0, 1, &set));
    printf("affinity_has_cpu %d\n", sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0);
    struct rusage ru;
    SHOW("getrusage", getrusage(RUSAGE_SELF, &ru));
    SHOW("getrusage_bad", getrusage(7, &ru));
    struct sysinfo si;
    SHOW("sysinfo", sysinfo(&si));
    printf("sysinfo_ram %d\n", si.totalram > 0 && si.mem_unit > 0);
    struct utsname u;
    SHOW("uname", uname(&u));
    printf("uname %s %s\n", u.sysname, u.machine);
    unsigned long fs;
    SHOW("arch_get_fs", syscall(SYS_arch_prctl, ARCH_GET_FS, &fs));
    printf("fs_nonzero %d\n", fs != 0);
    SHOW("arch_bad", syscall(SYS_arch_prctl, 0x9999, 0));
    SHOW("robust_bad", syscall(SYS_set_robust_list, 0, 7));
    SHOW("getppid_is_parent", getppid() >= 0);
    struct tms tm;
    SHOW("times_positive", times(&tm) > 0);
    unsigned int c, n;
    SHOW("getcpu", syscall(SYS_getcpu, &c, &n, NULL));
    SHOW("getpriority", syscall(SYS_getpriority, PRIO_PROCESS, 0));
    SHOW("setpriority", setpriority(PRIO_PROCESS, 0, 5));
    SHOW("getpriority_after", syscall(SYS_getpriority, PRIO_PROCESS, 0));
    SHOW("getpriority_bad", syscall(SYS_getpriority, 9, 0));
    SHOW("sched_getscheduler", sched_getscheduler(0));
    SHOW("sched_getscheduler_nopid", sched_getscheduler(999999));
    SHOW("prio_max_fifo", sched_get_priority_max(SCHED_FIFO));
    SHOW("prio_min_other", sched_get_priority_min(SCHED_OTHER));
    SHOW("prio_max_bad", sched_get_priority_max(77));
    struct sched_param sp;
    SHOW("sched_getparam", sched_getparam(0, &sp));
    printf("param %d\n", sp.sched_priority);
    cpu_set_t none;
    CPU_ZERO(&none);
    SHOW("setaffinity_empty", sched_setaffinity(0, sizeof none, &none));
    SHOW("setaffinity_same", sched_setaffinity(0, sizeof set, &set));
    SHOW("personality", personality(0xffffffff));
    return 0;
}
"""


async def test_process_syscalls_match_linux(tmp_path):
    prog = build_c(tmp_path, "proc", PROGRAM, "-static")
    st, out = native([prog])
    status, got, _, k = await run([prog])
    assert status == st == 0, k.events
    assert got.decode().splitlines() == out.decode().splitlines()


async def test_sandbox_ids_and_uname(tmp_path):
    src = r"""
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/times.h>
#include <sys/personality.h>
#include <unistd.h>
int main(void) {
    struct utsname u; uname(&u);
    printf("%ld %ld %ld %s %s\n", syscall(SYS_getpid), syscall(SYS_gettid),
           syscall(SYS_getppid), u.nodename, u.release);
    return 0;
}
"""
    prog = build_c(tmp_path, "ids", src, "-static")
    status, got, _, _ = await run([prog])
    assert status == 0
    assert got == b"1 1 0 runpsc 6.1.0-runpsc\n"


CAPS = r"""
#include <errno.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    printf("start uid=%d euid=%d\n", getuid(), geteuid());
    printf("seteuid %d\n", seteuid(1000));
    printf("back_to_root %d\n", seteuid(0));             /* saved uid 0: allowed */
    printf("setresuid %d\n", setresuid(1000, 1000, 1000));
    printf("ids %d %d\n", getuid(), geteuid());
    errno = 0;
    printf("regain %d", setuid(0));                       /* privileges are gone */
    printf(" %d\n", errno);
    printf("setgroups %d %d\n", (int)syscall(SYS_setgroups, 0, NULL), errno);
    errno = 0;
    printf("setreuid_bad %d", setreuid(-1, 0));
    printf(" %d\n", errno);
    errno = 0;
    printf("setuid_same %d", setuid(1000));
    printf(" %d\n", errno);
    errno = 0;
    printf("setresgid_bad %d", setresgid(5, 5, 5));
    printf(" %d\n", errno);
    return 0;
}
"""


async def test_leaving_root_drops_privileges(tmp_path):
    import os

    if os.geteuid() != 0:
        from tests.support import missing

        missing("root", "the native comparison starts as uid 0")
    prog = build_c(tmp_path, "caps", CAPS, "-static")
    st, out = native([prog])
    status, got, _, _ = await run([prog])
    assert (status, got) == (st, out)
    assert b"regain -1 1\n" in got and b"setgroups -1 1" in got
