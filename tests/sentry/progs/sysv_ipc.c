/* System V IPC against Linux: shared memory (shared across fork and between unrelated
 * attaches, IPC_RMID while attached, SHM_RDONLY, maps), semaphores (atomic arrays, blocking
 * woken by another process, SEM_UNDO at exit (a thread's own without CLONE_SYSVSEM), EINTR,
 * EIDRM, counts) and message queues
 * (types, MSG_EXCEPT, MSG_NOERROR, MSG_COPY, full queues), with their errors. Run in a fresh
 * IPC namespace natively, so ids match the sandbox's. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int undo_semid, undo_pipe, undo_go;

static int undo_thread(void *arg) {  /* a raw thread: no CLONE_SYSVSEM */
    (void)arg;
    struct sembuf up = {1, 1, SEM_UNDO};
    syscall(SYS_semop, undo_semid, &up, 1);
    syscall(SYS_write, undo_pipe, "x", 1);
    char c;
    syscall(SYS_read, undo_go, &c, 1);  /* exits once main has looked */
    syscall(SYS_exit, 0);
    return 0;
}

static void *undo_pthread(void *arg) {
    struct sembuf up = {1, 1, SEM_UNDO};
    semop(undo_semid, &up, 1);
    return arg;
}

#define BAD ((void *)16)
#define R(label, expr) do { errno = 0; long r_ = (long)(expr); \
    printf("%s = %ld%s%s\n", label, r_, r_ < 0 ? " " : "", r_ < 0 ? strerrorname_np(errno) : ""); \
} while (0)

/* R, printed after waiting for `pid`: what another process prints meanwhile comes first. */
#define R_AFTER(label, expr, what, pid) do { errno = 0; long r_ = (long)(expr); int e_ = errno; \
    wait_child_quiet(pid); \
    printf("%s = %ld%s%s\n", label, r_, r_ < 0 ? " " : "", r_ < 0 ? strerrorname_np(e_) : ""); \
    printf("%s: exit 0\n", what); } while (0)

union semun { int val; struct semid_ds *buf; unsigned short *array; struct seminfo *__buf; };

static void wait_child(const char *what, pid_t pid) {
    int st;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st)) printf("%s: exit %d\n", what, WEXITSTATUS(st));
    else printf("%s: signal %d\n", what, WTERMSIG(st));
}

static void wait_child_quiet(pid_t pid) {
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st)) printf("child %d failed: status %x\n", 0, st);
}

static void show_maps(void) {
    char line[512];
    FILE *f = fopen("/proc/self/maps", "r");
    while (fgets(line, sizeof line, f)) {
        char *s = strstr(line, "SYSV");
        if (s) printf("maps: %s", strchr(line, ' ') + 1);
    }
    fclose(f);
}

static void show_sysvipc(const char *name) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/sysvipc/%s", name);
    FILE *f = fopen(path, "r");
    if (!f) { printf("%s: %s\n", path, strerrorname_np(errno)); return; }
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (n++ == 0) { printf("%s header: %s", name, line); continue; }
        int key, id, perms; unsigned long a, b;
        sscanf(line, "%d %d %o %lu %lu", &key, &id, &perms, &a, &b);
        printf("%s row: key %d id %d perms %o %lu", name, key, id, perms, a);
        if (!strcmp(name, "msg")) printf(" %lu", b);  /* qnum (the others: a pid, a uid) */
        printf("\n");
    }
    fclose(f);
}

static void on_usr1(int s) { (void)s; }

static void test_shm(void) {
    R("shmget size 0", shmget(IPC_PRIVATE, 0, 0600));
    int id = shmget(IPC_PRIVATE, 10000, 0640);
    printf("private id %d\n", id);
    int kid = shmget(0x1234, 5000, IPC_CREAT | IPC_EXCL | 0600);
    printf("keyed id %d\n", kid);
    R("shmget excl again", shmget(0x1234, 5000, IPC_CREAT | IPC_EXCL | 0600));
    R("shmget same key", shmget(0x1234, 100, 0));
    R("shmget larger", shmget(0x1234, 6000, 0));
    R("shmget missing", shmget(0x4321, 100, 0));
    R("shmat bad id", (long)shmat(12345, 0, 0));
    R("shmat negative", (long)shmat(-1, 0, 0));
    char *p = shmat(id, 0, 0);
    strcpy(p, "parent wrote");
    struct shmid_ds ds;
    shmctl(id, IPC_STAT, &ds);
    printf("stat: segsz %zu nattch %lu mode %o cpid-ok %d lpid-ok %d uid %d cuid %d key %d\n",
           ds.shm_segsz, ds.shm_nattch, ds.shm_perm.mode, ds.shm_cpid == getpid(),
           ds.shm_lpid == getpid(), ds.shm_perm.uid, ds.shm_perm.cuid, ds.shm_perm.__key);
    show_maps();
    R("shmctl stat EFAULT", shmctl(id, IPC_STAT, BAD));
    R("shmctl bad cmd", shmctl(id, 99, &ds));
    pid_t pid = fork();
    if (pid == 0) {
        struct shmid_ds c;
        shmctl(id, IPC_STAT, &c);
        printf("child sees '%s' nattch %lu\n", p, c.shm_nattch);
        char *q = shmat(id, 0, 0);
        shmctl(id, IPC_STAT, &c);
        printf("child second attach sees '%s' nattch %lu lpid-child %d\n", q, c.shm_nattch,
               c.shm_lpid == getpid());
        strcpy(q + 100, "child wrote");
        strcpy(p + 200, "child wrote via inherited");
        R("child shmdt", shmdt(q));
        R("child shmdt again", shmdt(q));
        fflush(stdout);
        _exit(0);
    }
    wait_child("shm child", pid);
    shmctl(id, IPC_STAT, &ds);
    printf("parent sees '%s' '%s' nattch %lu\n", p + 100, p + 200, ds.shm_nattch);
    /* read-only attach: reading works, writing is SIGSEGV */
    char *ro = shmat(id, 0, SHM_RDONLY);
    printf("ro sees '%s'\n", ro);
    fflush(stdout);
    pid = fork();
    if (pid == 0) { ro[0] = 'x'; _exit(0); }
    wait_child("ro write", pid);
    shmdt(ro);
    /* addresses */
    R("shmat unaligned", (long)shmat(id, p + 1, 0));
    char *area = mmap(0, 65536, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *rnd = shmat(id, area + 4097, SHM_RND | SHM_REMAP);
    printf("shmat SHM_RND at %s: '%s'\n", rnd == area + 4096 ? "rounded" : "elsewhere", rnd);
    R("shmat over a mapping", (long)shmat(id, rnd, 0));
    R("shmat SHM_REMAP without addr", (long)shmat(id, 0, SHM_REMAP));
    shmdt(rnd);
    munmap(area, 65536);
    R("shmdt unaligned", shmdt(p + 1));
    R("shmdt not attached", shmdt(p + 4096));
    R("shmdt inside", shmdt(p + 8192));
    /* removal while attached */
    char *k = shmat(kid, 0, 0);
    strcpy(k, "keyed");
    R("rmid keyed", shmctl(kid, IPC_RMID, 0));
    shmctl(kid, IPC_STAT, &ds);
    printf("after rmid: mode %o key %d nattch %lu still '%s'\n", ds.shm_perm.mode,
           ds.shm_perm.__key, ds.shm_nattch, k);
    R("shmget removed key", shmget(0x1234, 100, 0));
    show_maps();
    R("shmat removed but attached", (long)(shmat(kid, 0, 0) != (void *)-1));
    show_sysvipc("shm");
    struct shminfo info;
    int maxidx = shmctl(0, IPC_INFO, (struct shmid_ds *)&info);
    printf("IPC_INFO %d: shmmax %lu shmmin %lu shmmni %lu shmseg %lu shmall %lu\n", maxidx,
           info.shmmax, info.shmmin, info.shmmni, info.shmseg, info.shmall);
    struct shm_info si;
    maxidx = shmctl(0, SHM_INFO, (struct shmid_ds *)&si);
    printf("SHM_INFO %d: used %d tot %lu\n", maxidx, si.used_ids, si.shm_tot);
    R("SHM_STAT 0", shmctl(0, SHM_STAT, &ds));
    R("SHM_STAT 5", shmctl(5, SHM_STAT, &ds));
    shmdt(k);
    shmdt(k);  /* the second attach, at another address: leaves it attached */
    R("stat after detach", shmctl(kid, IPC_STAT, &ds));
    /* another uid */
    pid = fork();
    if (pid == 0) {
        setgid(1000); setuid(1000);
        R("other uid shmat", (long)shmat(id, 0, 0));
        R("other uid shmget", shmget(IPC_PRIVATE, 10, 0600) >= 0);
        R("other uid stat", shmctl(id, IPC_STAT, &ds));
        R("other uid rmid", shmctl(id, IPC_RMID, 0));
        fflush(stdout);
        _exit(0);
    }
    wait_child("shm other uid", pid);
    struct shmid_ds set = {0};
    set.shm_perm.uid = 1000; set.shm_perm.gid = 1000; set.shm_perm.mode = 0604;
    R("IPC_SET", shmctl(id, IPC_SET, &set));
    shmctl(id, IPC_STAT, &ds);
    printf("after set: uid %d gid %d cuid %d mode %o\n", ds.shm_perm.uid, ds.shm_perm.gid,
           ds.shm_perm.cuid, ds.shm_perm.mode);
    pid = fork();
    if (pid == 0) {
        setgid(1000); setuid(1000);
        char *q = shmat(id, 0, SHM_RDONLY);
        printf("owner uid reads '%s'\n", q == (void *)-1 ? strerrorname_np(errno) : q);
        R("owner uid rmid", shmctl(id, IPC_RMID, 0));
        fflush(stdout);
        _exit(0);
    }
    wait_child("shm owner", pid);
    shmctl(id, IPC_STAT, &ds);
    printf("dest bit %d\n", !!(ds.shm_perm.mode & SHM_DEST));
    shmdt(p);
    R("stat after last detach", shmctl(id, IPC_STAT, &ds));
    show_sysvipc("shm");
}

static int semid;

static int ncnt(int n) { return semctl(semid, n, GETNCNT); }
static int zcnt(int n) { return semctl(semid, n, GETZCNT); }

static void test_sem(void) {
    R("semget 0 sems", semget(IPC_PRIVATE, 0, 0600));
    R("semget too many", semget(IPC_PRIVATE, 40000, 0600));
    semid = semget(0x5151, 3, IPC_CREAT | 0600);
    printf("semid %d\n", semid);
    R("semget more than set", semget(0x5151, 4, 0));
    R("semget fewer", semget(0x5151, 2, 0) == semid);
    unsigned short vals[3] = {1, 0, 5}, got[3];
    union semun a = {.array = vals};
    R("SETALL", semctl(semid, 0, SETALL, a));
    a.array = got;
    R("GETALL", semctl(semid, 0, GETALL, a));
    printf("values %d %d %d\n", got[0], got[1], got[2]);
    R("GETVAL 2", semctl(semid, 2, GETVAL));
    R("GETPID ok", semctl(semid, 2, GETPID) == getpid());
    R("GETVAL bad semnum", semctl(semid, 3, GETVAL));
    a.val = 40000;
    R("SETVAL range", semctl(semid, 0, SETVAL, a));
    a.val = -1;
    R("SETVAL negative", semctl(semid, 0, SETVAL, a));
    a.array = BAD;
    R("GETALL EFAULT", semctl(semid, 0, GETALL, a));
    R("bad cmd", semctl(semid, 0, 77));
    struct sembuf op[2] = {{0, -1, IPC_NOWAIT}, {1, -1, IPC_NOWAIT}};
    R("semop all-or-nothing", semop(semid, op, 2));
    R("GETVAL 0 unchanged", semctl(semid, 0, GETVAL));
    R("semop 0 ops", semop(semid, op, 0));
    static struct sembuf many[501];
    R("semop E2BIG", semop(semid, many, 501));
    struct sembuf big = {7, 1, 0};
    R("semop EFBIG", semop(semid, &big, 1));
    R("semop EFAULT", semop(semid, BAD, 1));
    struct sembuf over = {2, 32767, 0};
    R("semop ERANGE", semop(semid, &over, 1));
    struct sembuf z = {2, 0, IPC_NOWAIT};
    R("wait-for-zero nowait", semop(semid, &z, 1));
    struct timespec ts = {0, 1000000};
    struct sembuf dec1 = {1, -1, 0};
    R("semtimedop timeout", semtimedop(semid, &dec1, 1, &ts));
    ts.tv_nsec = -5;
    R("semtimedop bad timeout", semtimedop(semid, &dec1, 1, &ts));
    /* a blocked P woken by another process's V */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct sembuf d[2] = {{1, -1, 0}, {0, -1, 0}};
        R("child P(1,0)", semop(semid, d, 2));
        fflush(stdout);
        _exit(0);
    }
    while (ncnt(1) != 1) usleep(1000);
    printf("ncnt %d %d %d zcnt %d\n", ncnt(0), ncnt(1), ncnt(2), zcnt(1));
    struct sembuf v = {1, 1, 0};
    R_AFTER("V(1)", semop(semid, &v, 1), "sem child", pid);
    a.array = got;
    semctl(semid, 0, GETALL, a);
    printf("values %d %d %d\n", got[0], got[1], got[2]);
    R("GETPID is child", semctl(semid, 1, GETPID) == pid);
    /* wait-for-zero */
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        struct sembuf w = {2, 0, 0};
        R("child waited for zero", semop(semid, &w, 1));
        fflush(stdout);
        _exit(0);
    }
    while (zcnt(2) != 1) usleep(1000);
    printf("zcnt(2) %d\n", zcnt(2));
    struct sembuf dec5 = {2, -5, 0};
    R_AFTER("sem 2 to zero", semop(semid, &dec5, 1), "zero child", pid);
    /* SEM_UNDO undone at exit */
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        struct sembuf u[2] = {{2, 3, SEM_UNDO}, {1, 2, SEM_UNDO}};
        semop(semid, u, 2);
        printf("child after undo ops: %d %d\n", semctl(semid, 1, GETVAL),
               semctl(semid, 2, GETVAL));
        struct sembuf u2 = {2, -1, SEM_UNDO};
        semop(semid, &u2, 1);
        fflush(stdout);
        _exit(0);
    }
    wait_child("undo child", pid);
    printf("after undo: %d %d pid-is-child %d\n", semctl(semid, 1, GETVAL),
           semctl(semid, 2, GETVAL), semctl(semid, 2, GETPID) == pid);
    /* clamp: undo of a +1 after someone took it */
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        struct sembuf u = {1, 1, SEM_UNDO};
        semop(semid, &u, 1);
        struct sembuf take = {1, -1, 0};
        semop(semid, &take, 1);
        _exit(0);
    }
    wait_child("clamp child", pid);
    R("clamped at 0", semctl(semid, 1, GETVAL));
    /* SEM_UNDO and threads: one made without CLONE_SYSVSEM has a list of its own, undone
       when it exits; a pthread (glibc passes CLONE_SYSVSEM) shares the process's */
    {
        static char stack[65536];
        int tp[2], go[2];
        pipe(tp);
        pipe(go);
        undo_semid = semid;
        undo_pipe = tp[1];
        undo_go = go[0];
        clone(undo_thread, stack + sizeof stack,
              CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD, NULL);
        char c;
        read(tp[0], &c, 1);
        printf("thread with its own list: %d\n", semctl(semid, 1, GETVAL));
        write(go[1], "x", 1);
        struct sembuf z = {1, 0, 0};
        R("wait for the thread's undo", semop(semid, &z, 1));
        pthread_t pt;
        pthread_create(&pt, NULL, undo_pthread, NULL);
        pthread_join(pt, NULL);
        printf("after a pthread: %d\n", semctl(semid, 1, GETVAL));
        struct sembuf back = {1, -1, SEM_UNDO};
        R("take it back in the shared list", semop(semid, &back, 1));
        close(tp[0]);
        close(tp[1]);
        close(go[0]);
        close(go[1]);
    }
    /* EINTR: never restarted, even with SA_RESTART */
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, 0);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        R("child semop interrupted", semop(semid, &dec1, 1));
        fflush(stdout);
        _exit(0);
    }
    while (ncnt(1) != 1) usleep(1000);
    kill(pid, SIGUSR1);
    wait_child("eintr child", pid);
    /* EIDRM */
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        R("child semop on removed set", semop(semid, &dec1, 1));
        fflush(stdout);
        _exit(0);
    }
    while (ncnt(1) != 1) usleep(1000);
    struct semid_ds ds;
    a.buf = &ds;
    R("IPC_STAT", semctl(semid, 0, IPC_STAT, a));
    printf("nsems %lu mode %o key %d otime-set %d\n", ds.sem_nsems, ds.sem_perm.mode,
           ds.sem_perm.__key, ds.sem_otime != 0);
    show_sysvipc("sem");
    struct seminfo info;
    a.__buf = &info;
    int maxidx = semctl(0, 0, IPC_INFO, a);
    printf("IPC_INFO %d: semmni %d semmsl %d semmns %d semopm %d semvmx %d semaem %d "
           "semusz %d\n", maxidx, info.semmni, info.semmsl, info.semmns, info.semopm,
           info.semvmx, info.semaem, info.semusz);
    maxidx = semctl(0, 0, SEM_INFO, a);
    printf("SEM_INFO %d: semusz %d semaem %d\n", maxidx, info.semusz, info.semaem);
    /* another uid */
    fflush(stdout);
    pid_t other = fork();
    if (other == 0) {
        setgid(1000); setuid(1000);
        R("other uid GETVAL", semctl(semid, 0, GETVAL));
        R("other uid semop", semop(semid, &v, 1));
        R("other uid rmid", semctl(semid, 0, IPC_RMID));
        R("other uid semget", semget(0x5151, 1, 0));
        fflush(stdout);
        _exit(0);
    }
    wait_child("sem other uid", other);
    R_AFTER("IPC_RMID", semctl(semid, 0, IPC_RMID), "eidrm child", pid);
    R("GETVAL removed", semctl(semid, 0, GETVAL));
    show_sysvipc("sem");
}

struct msg { long mtype; char text[64]; };

static void test_msg(void) {
    int q = msgget(0x7777, IPC_CREAT | 0600);
    printf("msqid %d\n", q);
    struct msg m;
    for (int i = 1; i <= 4; i++) {
        m.mtype = i % 3 + 1;
        snprintf(m.text, sizeof m.text, "message %d type %ld", i, m.mtype);
        msgsnd(q, &m, strlen(m.text) + 1, 0);
    }
    m.mtype = 0;
    R("msgsnd type 0", msgsnd(q, &m, 4, 0));
    R("msgsnd too big", msgsnd(q, &m, 9000, 0));
    R("msgsnd EFAULT", msgsnd(q, BAD, 4, 0));
    R("msgsnd bad id", msgsnd(12345, &m, 4, 0));
    struct msqid_ds ds;
    msgctl(q, IPC_STAT, &ds);
    printf("qnum %lu cbytes %lu qbytes %lu lspid-ok %d\n", ds.msg_qnum, ds.__msg_cbytes,
           ds.msg_qbytes, ds.msg_lspid == getpid());
    show_sysvipc("msg");
    long n = msgrcv(q, &m, sizeof m.text, 0, MSG_COPY | IPC_NOWAIT);
    printf("copy 0: %ld '%s' type %ld\n", n, m.text, m.mtype);
    n = msgrcv(q, &m, sizeof m.text, 2, MSG_COPY | IPC_NOWAIT);
    printf("copy 2: %ld '%s' type %ld\n", n, m.text, m.mtype);
    R("copy 9", msgrcv(q, &m, sizeof m.text, 9, MSG_COPY | IPC_NOWAIT));
    R("copy without nowait", msgrcv(q, &m, sizeof m.text, 0, MSG_COPY));
    R("copy with except", msgrcv(q, &m, sizeof m.text, 0, MSG_COPY | MSG_EXCEPT | IPC_NOWAIT));
    R("E2BIG", msgrcv(q, &m, 5, 3, 0));
    n = msgrcv(q, &m, 5, 3, MSG_NOERROR);
    printf("noerror: %ld '%.5s' type %ld\n", n, m.text, m.mtype);
    n = msgrcv(q, &m, sizeof m.text, 2, MSG_EXCEPT);
    printf("except 2: %ld '%s'\n", n, m.text);
    n = msgrcv(q, &m, sizeof m.text, -3, 0);
    printf("lowest <= 3: %ld '%s'\n", n, m.text);
    n = msgrcv(q, &m, sizeof m.text, 0, 0);
    printf("first: %ld '%s'\n", n, m.text);
    R("empty nowait", msgrcv(q, &m, sizeof m.text, 0, IPC_NOWAIT));
    R("negative size", msgrcv(q, &m, -1, 0, IPC_NOWAIT));
    m.mtype = 5; strcpy(m.text, "x");
    msgsnd(q, &m, 2, 0);
    R("msgrcv EFAULT", msgrcv(q, BAD, 10, 0, IPC_NOWAIT));
    R("lost after EFAULT", msgrcv(q, &m, sizeof m.text, 0, IPC_NOWAIT));
    /* a full queue */
    msgctl(q, IPC_STAT, &ds);
    ds.msg_qbytes = 20;
    R("IPC_SET qbytes 20", msgctl(q, IPC_SET, &ds));
    m.mtype = 1;
    R("fill 16", msgsnd(q, &m, 16, IPC_NOWAIT));
    R("full", msgsnd(q, &m, 16, IPC_NOWAIT));
    /* blocked sender woken by a receiver in another process */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct msg c = {3, "from child"};
        R("child blocked send", msgsnd(q, &c, 11, 0));
        fflush(stdout);
        _exit(0);
    }
    /* wait until the child blocks: no state shows it, so take the message only after
     * the child has had every chance; the child's send completes either way */
    n = msgrcv(q, &m, sizeof m.text, 1, 0);
    int st;
    waitpid(pid, &st, 0);  /* the child's line first, whichever ran first */
    printf("took %ld, sender child exit %d\n", n, WEXITSTATUS(st));
    n = msgrcv(q, &m, sizeof m.text, 0, 0);
    printf("got '%s' type %ld\n", m.text, m.mtype);
    /* blocked receiver woken by a send, and EIDRM */
    int said[2];
    pipe(said);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        struct msg c;
        long k = msgrcv(q, &c, sizeof c.text, 8, 0);
        printf("child received %ld '%s'\n", k, c.text);
        fflush(stdout);
        write(said[1], "x", 1);
        /* EIDRM if it slept before the removal, EINVAL if it came after: no state shows
         * a sleeping receiver, so either is right */
        errno = 0;
        long r = msgrcv(q, &c, sizeof c.text, 0, 0);
        /* the parent prints this line after its own: two processes printing race */
        char line[128];
        int len = snprintf(line, sizeof line, "child on removed queue: %ld %s\n", r,
                           errno == EIDRM || errno == EINVAL ? "EIDRM-or-EINVAL"
                                                             : strerrorname_np(errno));
        write(said[1], line, len);
        _exit(0);
    }
    m.mtype = 8; strcpy(m.text, "eight");
    msgsnd(q, &m, 6, 0);
    char x;
    read(said[0], &x, 1);
    usleep(20000);  /* likely asleep in msgrcv by now; either outcome prints the same */
    R("msgctl rmid", msgctl(q, IPC_RMID, 0));
    char line[128];
    ssize_t got = read(said[0], line, sizeof line);
    printf("%.*s", (int)(got > 0 ? got : 0), line);
    wait_child("receiver child", pid);
    R("stat removed", msgctl(q, IPC_STAT, &ds));
    struct msginfo info;
    int maxidx = msgctl(0, IPC_INFO, (struct msqid_ds *)&info);
    printf("IPC_INFO %d: msgmax %d msgmnb %d msgmni %d msgpool %d msgssz %d msgseg %d\n",
           maxidx, info.msgmax, info.msgmnb, info.msgmni, info.msgpool, info.msgssz,
           info.msgseg);
    int q2 = msgget(IPC_PRIVATE, 0600);
    m.mtype = 1;
    msgsnd(q2, &m, 10, 0);
    msgsnd(q2, &m, 7, 0);
    maxidx = msgctl(0, MSG_INFO, (struct msqid_ds *)&info);
    printf("MSG_INFO %d: pool %d map %d tql %d\n", maxidx, info.msgpool, info.msgmap,
           info.msgtql);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        setgid(1000); setuid(1000);
        R("other uid msgsnd", msgsnd(q2, &m, 1, 0));
        R("other uid msgrcv", msgrcv(q2, &m, 10, 0, 0));
        R("other uid IPC_SET", msgctl(q2, IPC_SET, &ds));
        fflush(stdout);
        _exit(0);
    }
    wait_child("msg other uid", pid);
    msgctl(q2, IPC_STAT, &ds);
    ds.msg_qbytes = 100;
    R("root lowers qbytes", msgctl(q2, IPC_SET, &ds));
    msgctl(q2, IPC_STAT, &ds);
    printf("qbytes %lu qnum %lu\n", ds.msg_qbytes, ds.msg_qnum);
    msgctl(q2, IPC_RMID, 0);
}

static void show_file(const char *path) {
    char buf[256] = {0};
    FILE *f = fopen(path, "r");
    if (!f) { printf("%s: %s\n", path, strerrorname_np(errno)); return; }
    fgets(buf, sizeof buf, f);
    fclose(f);
    printf("%s: %s", path, buf);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) { printf("open %s: %s\n", path, strerrorname_np(errno)); return; }
    setvbuf(f, 0, _IONBF, 0);
    errno = 0;
    int r = fputs(text, f);
    printf("write '%s' to %s: %s\n", text, path, r < 0 ? strerrorname_np(errno) : "ok");
    fclose(f);
}

static void test_limits(void) {
    const char *names[] = {"shmmax", "shmall", "shmmni", "msgmax", "msgmnb", "msgmni", "sem"};
    char path[64];
    for (int i = 0; i < 7; i++) {
        snprintf(path, sizeof path, "/proc/sys/kernel/%s", names[i]);
        show_file(path);
    }
    write_file("/proc/sys/kernel/msgmax", "100\n");
    show_file("/proc/sys/kernel/msgmax");
    int q = msgget(IPC_PRIVATE, 0600);
    struct msg { long mtype; char text[300]; } m = {1, "x"};
    R("msgsnd 200 over msgmax 100", msgsnd(q, &m, 200, IPC_NOWAIT));
    R("msgsnd 100", msgsnd(q, &m, 100, IPC_NOWAIT));
    msgctl(q, IPC_RMID, 0);
    write_file("/proc/sys/kernel/sem", "250 32000 32 128");
    show_file("/proc/sys/kernel/sem");
    write_file("/proc/sys/kernel/sem", "10");
    show_file("/proc/sys/kernel/sem");
    R("semget over semmsl 10", semget(IPC_PRIVATE, 11, 0600));
    static struct sembuf ops[40];
    int s = semget(IPC_PRIVATE, 1, 0600);
    for (int i = 0; i < 40; i++) ops[i].sem_op = 1;
    R("semop over semopm 32", semop(s, ops, 33));
    R("semop 32 ops", semop(s, ops, 32));
    semctl(s, 0, IPC_RMID);
    write_file("/proc/sys/kernel/shmmax", "abc");
    write_file("/proc/sys/kernel/shmmax", "8192");
    R("shmget over shmmax", shmget(IPC_PRIVATE, 8193, 0600));
    write_file("/proc/sys/kernel/shmmni", "1");
    int a = shmget(IPC_PRIVATE, 100, 0600);
    R("shmget over shmmni", shmget(IPC_PRIVATE, 100, 0600));
    shmctl(a, IPC_RMID, 0);
    write_file("/proc/sys/kernel/shmmni", "-1");
    write_file("/proc/sys/kernel/shmmni", "40000");
    show_file("/proc/sys/kernel/shmmni");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setgid(1000); setuid(1000);
        write_file("/proc/sys/kernel/msgmax", "5");
        _exit(0);
    }
    wait_child("limits other uid", pid);
}

/* Linux's id allocation: cyclic indexes below max(in use * 3/2, 64), the sequence
 * (id >> 15) bumped at each wrap. */
static void test_ids(void) {
    for (int i = 0; i < 70; i++) {
        int id = shmget(IPC_PRIVATE, 10, 0600);
        if (i < 2 || i > 60) printf("shm id %d\n", id);
        shmctl(id, IPC_RMID, 0);
    }
    static int keep[100];
    for (int i = 0; i < 100; i++) keep[i] = semget(IPC_PRIVATE, 1, 0600);
    printf("sem ids %d %d %d\n", keep[0], keep[64], keep[99]);
    for (int i = 0; i < 100; i += 2) semctl(keep[i], 0, IPC_RMID);
    int a = semget(IPC_PRIVATE, 1, 0600);
    int b = semget(IPC_PRIVATE, 1, 0600);
    printf("after holes %d %d\n", a, b);
    R("old id of a reused index", semctl(keep[0], 0, GETVAL));
    struct semid_ds ds;
    union semun u = {.buf = &ds};
    R("SEM_STAT index 0", semctl(0, 0, SEM_STAT, u));
    R("SEM_INFO max index", semctl(0, 0, SEM_INFO, u));
    int q = msgget(IPC_PRIVATE, 0600);
    printf("msg id %d\n", q);
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IOLBF, 0);
    if (argc < 2 || !strcmp(argv[1], "shm")) test_shm();
    if (argc < 2 || !strcmp(argv[1], "sem")) test_sem();
    if (argc < 2 || !strcmp(argv[1], "msg")) test_msg();
    if (argc < 2 || !strcmp(argv[1], "limits")) test_limits();
    if (argc < 2 || !strcmp(argv[1], "ids")) test_ids();
    return 0;
}
