/* The capability model, run as root: the sets are first brought to a known state (bounding,
 * permitted and effective = KNOWN, nothing inheritable or ambient, so a host root missing
 * some capability answers the same), then each scenario runs in a child of its own:
 * capset's rules and errors, privileged operations failing once their capability leaves
 * the effective set (chown, DAC override, fowner, kill, setuid, sethostname, mount,
 * setrlimit) and working again once it is back, access(2) judging with the permitted set,
 * the bounding set, the ambient set, securebits and keepcaps, the uid-change rules, and
 * execve's transitions (root, SECBIT_NOROOT, a non-root exec keeping its ambient set).
 * usage: caps DIR (a scratch directory); caps show (what an exec'd copy prints). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIT(c) (1ULL << (c))
static const unsigned long long KNOWN =
    BIT(CAP_CHOWN) | BIT(CAP_DAC_OVERRIDE) | BIT(CAP_DAC_READ_SEARCH) | BIT(CAP_FOWNER) |
    BIT(CAP_FSETID) | BIT(CAP_KILL) | BIT(CAP_SETGID) | BIT(CAP_SETUID) | BIT(CAP_SETPCAP) |
    BIT(CAP_SYS_ADMIN) | BIT(CAP_MKNOD);
static const char *dir;
static const char *self;

static void res(const char *what, long r) {
    if (r < 0)
        printf("%s = -1 %s\n", what, strerror(errno));
    else
        printf("%s = %ld\n", what, r);
    fflush(stdout);
}

static int get(unsigned long long *e, unsigned long long *p, unsigned long long *i) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0)
        return -1;
    *e = d[0].effective | (unsigned long long)d[1].effective << 32;
    *p = d[0].permitted | (unsigned long long)d[1].permitted << 32;
    *i = d[0].inheritable | (unsigned long long)d[1].inheritable << 32;
    return 0;
}

static long set(unsigned long long e, unsigned long long p, unsigned long long i) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{e, p, i}, {e >> 32, p >> 32, i >> 32}};
    return syscall(SYS_capset, &h, d);
}

static void show(const char *when) {
    unsigned long long e = 0, p = 0, i = 0, b = 0, a = 0;
    get(&e, &p, &i);
    for (int c = 0; c <= CAP_LAST_CAP; c++) {
        if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1)
            b |= BIT(c);
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1)
            a |= BIT(c);
    }
    printf("%s: uid %d euid %d eff %llx prm %llx inh %llx bnd %llx amb %llx sec %x keep %d\n",
           when, getuid(), geteuid(), e, p, i, b, a, prctl(PR_GET_SECUREBITS, 0, 0, 0, 0),
           prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0));
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Cap", 3))
            printf("  %s", line);
    if (f)
        fclose(f);
    fflush(stdout);
}

static void drop_eff(unsigned long long caps) {
    unsigned long long e, p, i;
    get(&e, &p, &i);
    res("  capset drop effective", set(e & ~caps, p, i));
}

static void raise_eff(unsigned long long caps) {
    unsigned long long e, p, i;
    get(&e, &p, &i);
    res("  capset raise effective", set(e | caps, p, i));
}

static void reexec(void) {
    fflush(stdout);
    execl(self, self, "show", (char *)0);
    perror("execl");
    _exit(127);
}

static char path[512];
static const char *file(const char *name) {
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static void scenario_capset(void) {
    unsigned long long e, p, i;
    get(&e, &p, &i);
    res("capset same", set(e, p, i));
    res("capset permitted grows", set(e, p | BIT(CAP_SYS_PTRACE), i));
    res("capset effective above permitted", set(p | BIT(CAP_NET_ADMIN), p, i));
    res("capset inheritable above bounding", set(e, p, BIT(CAP_NET_RAW)));
    res("capset inheritable within permitted", set(e, p, BIT(CAP_CHOWN)));
    res("capset bits past the last cap", set(e | BIT(50), p | BIT(50), i));
    show("after capset");
    struct __user_cap_header_struct h = {0x12345678, 0};
    struct __user_cap_data_struct d[2];
    res("capset bad version", syscall(SYS_capset, &h, d));
    printf("  version written back %x\n", h.version);
    h.version = _LINUX_CAPABILITY_VERSION_3;
    h.pid = getppid();
    res("capset other pid", syscall(SYS_capset, &h, d));
    h.pid = 0;
    res("capset bad data", syscall(SYS_capset, &h, (void *)8));
    res("capget bad data", syscall(SYS_capget, &h, (void *)8));
    res("capget null data", syscall(SYS_capget, &h, NULL));
    res("capset drop permitted", set(e & ~BIT(CAP_KILL), p & ~BIT(CAP_KILL), 0));
    res("capset take it back", set(e, p, 0));
}

static void scenario_privileges(void) {
    const char *f = file("owned");
    close(open(f, O_CREAT | O_WRONLY, 0600));
    res("chown to 1000", chown(f, 1000, 1000));
    drop_eff(BIT(CAP_CHOWN));
    res("chown without CAP_CHOWN", chown(f, 0, 0));
    raise_eff(BIT(CAP_CHOWN));
    res("chown with CAP_CHOWN again", chown(f, 2000, 2000));
    res("open 0600 of uid 2000", open(f, O_RDONLY) >= 0 ? 0 : -1);
    drop_eff(BIT(CAP_DAC_OVERRIDE));
    res("open without DAC_OVERRIDE (read search left)", open(f, O_RDONLY) >= 0 ? 0 : -1);
    res("open for write without DAC_OVERRIDE", open(f, O_WRONLY) >= 0 ? 0 : -1);
    drop_eff(BIT(CAP_DAC_READ_SEARCH));
    res("open without either", open(f, O_RDONLY) >= 0 ? 0 : -1);
    res("access R_OK (real root: permitted counts)", access(f, R_OK));
    res("faccessat AT_EACCESS R_OK", faccessat(AT_FDCWD, f, R_OK, AT_EACCESS));
    res("chmod of uid 2000's file", chmod(f, 0640));
    drop_eff(BIT(CAP_FOWNER));
    res("chmod without CAP_FOWNER", chmod(f, 0644));
    res("utimes now without CAP_FOWNER", utimes(f, NULL));
    raise_eff(BIT(CAP_FOWNER) | BIT(CAP_DAC_OVERRIDE) | BIT(CAP_DAC_READ_SEARCH));

    int sync[2];
    pipe(sync);
    pid_t victim = fork();
    if (victim == 0) {
        setresuid(3000, 3000, 3000);
        close(sync[0]);
        write(sync[1], "x", 1);
        for (;;)
            pause();
    }
    char c;
    close(sync[1]);
    read(sync[0], &c, 1);
    res("kill 0 of uid 3000's process", kill(victim, 0));
    drop_eff(BIT(CAP_KILL));
    res("kill 0 without CAP_KILL", kill(victim, 0));
    res("kill TERM without CAP_KILL", kill(victim, SIGTERM));
    raise_eff(BIT(CAP_KILL));
    res("kill KILL with CAP_KILL", kill(victim, SIGKILL));
    waitpid(victim, NULL, 0);

    drop_eff(BIT(CAP_SYS_ADMIN));
    char host[65] = {0};
    gethostname(host, sizeof host - 1);
    res("sethostname without CAP_SYS_ADMIN", sethostname(host, strlen(host)));
    res("mount tmpfs without CAP_SYS_ADMIN", mount("none", dir, "tmpfs", 0, NULL));
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_max += 1;
    res("raise hard RLIMIT_NOFILE without CAP_SYS_RESOURCE", setrlimit(RLIMIT_NOFILE, &rl));
    drop_eff(BIT(CAP_SETGID));
    res("setgroups without CAP_SETGID", setgroups(0, NULL));
    res("setgid 5 without CAP_SETGID", setgid(5));
    drop_eff(BIT(CAP_SETUID));
    res("setuid 5 without CAP_SETUID", setuid(5));
    res("setresuid 0 0 0 without CAP_SETUID", setresuid(0, 0, 0));
    show("after drops");
    unlink(f);
}

static void scenario_bounding(void) {
    res("capbset_read CHOWN", prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0));
    res("capbset_drop CHOWN", prctl(PR_CAPBSET_DROP, CAP_CHOWN, 0, 0, 0));
    res("capbset_read CHOWN", prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0));
    res("capbset_drop CHOWN again", prctl(PR_CAPBSET_DROP, CAP_CHOWN, 0, 0, 0));
    res("capbset_drop 41", prctl(PR_CAPBSET_DROP, 41, 0, 0, 0));
    res("capbset_drop -1", prctl(PR_CAPBSET_DROP, -1L, 0, 0, 0));
    unsigned long long e, p, i;
    get(&e, &p, &i);
    res("capset inheritable CHOWN (not in bounding, but permitted)", set(e, p, BIT(CAP_CHOWN)));
    res("capset inheritable CHOWN|KILL", set(e, p, BIT(CAP_CHOWN) | BIT(CAP_KILL)));
    res("capset inheritable KILL", set(e, p, BIT(CAP_KILL)));
    show("bounding without CHOWN");
    drop_eff(BIT(CAP_SETPCAP));
    res("capbset_drop KILL without SETPCAP", prctl(PR_CAPBSET_DROP, CAP_KILL, 0, 0, 0));
    res("capbset_drop 41 without SETPCAP", prctl(PR_CAPBSET_DROP, 41, 0, 0, 0));
    res("capset inheritable FOWNER without SETPCAP (permitted)", set(e & ~BIT(CAP_SETPCAP), p,
                                                                    BIT(CAP_FOWNER)));
    reexec();  /* root: permitted = bounding | inheritable, effective = permitted */
}

static void scenario_ambient(void) {
    res("ambient raise CHOWN (not inheritable)",
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0));
    unsigned long long e, p, i;
    get(&e, &p, &i);
    res("capset inheritable CHOWN|KILL|FOWNER",
        set(e, p, BIT(CAP_CHOWN) | BIT(CAP_KILL) | BIT(CAP_FOWNER)));
    res("ambient raise CHOWN", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0));
    res("ambient raise KILL", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0));
    res("ambient raise FOWNER", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_FOWNER, 0, 0));
    res("ambient raise SYS_ADMIN (not inheritable)",
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0));
    res("ambient is_set KILL", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_KILL, 0, 0));
    res("ambient lower FOWNER", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, CAP_FOWNER, 0, 0));
    res("capset inheritable CHOWN only", set(e, p, BIT(CAP_CHOWN) | BIT(CAP_FOWNER)));
    res("ambient is_set KILL (gone with inheritable)",
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_KILL, 0, 0));
    res("ambient raise FOWNER", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_FOWNER, 0, 0));
    show("ambient CHOWN|FOWNER");
    res("keepcaps 1", prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
    res("setresuid 1000 (ambient cleared, keepcaps keeps permitted)",
        setresuid(1000, 1000, 1000));
    show("uid 1000 with keepcaps");
    get(&e, &p, &i);
    res("capset effective = permitted", set(p, p, i));
    res("ambient raise CHOWN again", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0));
    show("uid 1000 with ambient CHOWN");
    reexec();  /* not root: permitted = effective = ambient; keepcaps cleared */
}

static void scenario_securebits(void) {
    res("securebits bad bit", prctl(PR_SET_SECUREBITS, 0x10000, 0, 0, 0));
    res("securebits KEEP_CAPS|LOCKED", prctl(PR_SET_SECUREBITS, 0x30, 0, 0, 0));
    res("get securebits", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
    res("keepcaps 0 once locked", prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0));
    res("keepcaps 2", prctl(PR_SET_KEEPCAPS, 2, 0, 0, 0));
    res("securebits unlock", prctl(PR_SET_SECUREBITS, 0x10, 0, 0, 0));
    res("securebits clear locked bit", prctl(PR_SET_SECUREBITS, 0x20, 0, 0, 0));
    res("securebits add NOROOT", prctl(PR_SET_SECUREBITS, 0x31, 0, 0, 0));
    drop_eff(BIT(CAP_SETPCAP));
    res("securebits without SETPCAP", prctl(PR_SET_SECUREBITS, 0x35, 0, 0, 0));
    show("securebits");
    reexec();  /* NOROOT: root's exec keeps only the ambient set (empty) */
}

static void scenario_setuid(int which) {
    if (which == 0) {
        res("setuid 1000 (no keepcaps)", setuid(1000));
        show("after setuid");
        res("setuid 0 back", setuid(0));
    } else if (which == 1) {
        res("keepcaps 1", prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
        res("setresuid 1000 1000 1000", setresuid(1000, 1000, 1000));
        show("after setresuid with keepcaps");
        reexec();
    } else if (which == 2) {
        res("seteuid 1000", seteuid(1000));
        show("euid 1000");
        res("seteuid 0", seteuid(0));
        show("euid 0 again");
        res("setfsuid 1000", setfsuid(1000));
        show("fsuid 1000");
        res("setfsuid 0", setfsuid(0));
        show("fsuid 0");
    } else {
        res("securebits NO_SETUID_FIXUP", prctl(PR_SET_SECUREBITS, 0x4, 0, 0, 0));
        res("setresuid 1000 1000 1000", setresuid(1000, 1000, 1000));
        show("no fixup");
        reexec();
    }
}

static void run(const char *name, void (*fn)(int), int arg) {
    printf("== %s %d\n", name, arg);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        fn(arg);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    printf("   exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

#define NOARG(f) static void f##_(int a) { (void)a; f(); }
NOARG(scenario_capset)
NOARG(scenario_privileges)
NOARG(scenario_bounding)
NOARG(scenario_ambient)
NOARG(scenario_securebits)

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "show")) {
        show("exec'd");
        return 0;
    }
    if (argc < 2)
        return 2;
    dir = argv[1];
    self = argv[0];
    for (int c = 0; c <= CAP_LAST_CAP; c++)
        if (!(KNOWN & BIT(c)))
            prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
    res("capset KNOWN", set(KNOWN, KNOWN, 0));
    show("start");
    run("capset", scenario_capset_, 0);
    run("privileges", scenario_privileges_, 0);
    run("bounding", scenario_bounding_, 0);
    run("ambient", scenario_ambient_, 0);
    run("securebits", scenario_securebits_, 0);
    for (int w = 0; w < 4; w++)
        run("setuid", scenario_setuid, w);
    return 0;
}
