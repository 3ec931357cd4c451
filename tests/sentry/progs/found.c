/* Three things found while testing, compared with Linux: waitpid completes when the child's
 * exit is what sent the SIGCHLD (a handler without SA_RESTART); reads and writes that run
 * into unmapped memory return the bytes copied before the fault; ftruncate, fchmod and
 * fstatfs on the inherited stdio answer for the underlying file or pipe.
 * Run with stdin a pipe and stderr a regular file, both writable by the caller. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

static volatile int handled;
static void on_chld(int sig) { handled++; }

static void waits(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_chld;  /* no SA_RESTART */
    sigaction(SIGCHLD, &sa, NULL);
    int ok = 0, eintr = 0, other = 0;
    for (int i = 0; i < 30; i++) {
        int go[2];
        pipe(go);
        pid_t c = fork();
        if (c == 0) {
            char b;
            read(go[0], &b, 1);  /* exit only once the parent is (about to be) waiting */
            _exit(i & 0x7f);
        }
        close(go[0]);
        write(go[1], "x", 1);
        close(go[1]);
        int st = -1;
        pid_t r = waitpid(c, &st, 0);
        if (r == c && WIFEXITED(st) && WEXITSTATUS(st) == (i & 0x7f))
            ok++;
        else if (r < 0 && errno == EINTR)
            eintr++;
        else
            other++;
        if (r < 0)
            waitpid(c, &st, 0);
    }
    printf("waitpid: ok %d eintr %d other %d handled %s\n", ok, eintr, other,
           handled == 30 ? "all" : "some");
    /* waitid reports the child the same way */
    pid_t c = fork();
    if (c == 0)
        _exit(3);
    siginfo_t si = {0};
    long r = waitid(P_PID, c, &si, WEXITED);
    printf("waitid: %ld status %d code %d\n", r, si.si_status, si.si_code);
    signal(SIGCHLD, SIG_DFL);
}

static void faults(void) {
    /* one writable page followed by an unmapped one */
    char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(p + 4096, 4096);
    int z = open("/dev/zero", O_RDONLY);
    show("read /dev/zero 2GiB", read(z, p, 1UL << 31));
    show("read /dev/zero at hole", read(z, p + 4096, 10));
    show("read /dev/zero 8KiB", read(z, p, 8192));
    show("pread /dev/zero", pread(z, p + 100, 8192, 0));
    struct iovec iov[2] = {{p, 4096}, {p + 4096, 4096}};
    show("readv /dev/zero", readv(z, iov, 2));
    struct iovec iov2[2] = {{p + 4000, 96}, {p + 4096, 1}};
    show("readv second bad", readv(z, iov2, 2));
    close(z);

    char path[] = "/tmp/found-XXXXXX";
    int f = mkstemp(path);
    unlink(path);
    memset(p, 'a', 4096);
    show("write file 2GiB", write(f, p, 1UL << 31));
    show("pwrite file", pwrite(f, p + 10, 8192, 4096));
    show("writev file", writev(f, iov, 2));
    show("write at hole", write(f, p + 4096, 1));
    struct stat st;
    fstat(f, &st);
    printf("size %ld\n", (long)st.st_size);
    lseek(f, 0, SEEK_SET);
    show("read file", read(f, p + 2048, 8192));
    printf("offset %ld\n", (long)lseek(f, 0, SEEK_CUR));
    show("pread file", pread(f, p + 4095, 100, 0));
    lseek(f, 0, SEEK_END);
    show("read at EOF into hole", read(f, p + 4096, 10));
    close(f);

    int q[2];
    pipe(q);
    show("write pipe", write(q[1], p, 8192));
    show("read pipe", read(q[0], p + 1024, 8192));
    show("read pipe rest", read(q[0], p, 8192));
    write(q[1], "xyz", 3);
    show("read pipe into hole", read(q[0], p + 4096, 3));
    show("read pipe after", read(q[0], p, 10));
    close(q[0]);
    close(q[1]);
}

static void stdio(void) {
    struct stat st;
    struct statfs sf;
    /* stdin: a pipe */
    show("ftruncate pipe", ftruncate(0, 0));
    show("fchmod pipe", fchmod(0, 0640));
    fstat(0, &st);
    printf("pipe mode %o\n", st.st_mode);
    show("fstatfs pipe", fstatfs(0, &sf));
    printf("pipe fs %lx bsize %ld\n", (long)sf.f_type, (long)sf.f_bsize);
    /* stderr: a regular file */
    write(2, "abcdef", 6);
    show("ftruncate file", ftruncate(2, 3));
    fstat(2, &st);
    printf("file size %ld\n", (long)st.st_size);
    show("ftruncate file negative", ftruncate(2, -1));
    show("fchmod file", fchmod(2, 0604));
    fstat(2, &st);
    printf("file mode %o\n", st.st_mode);
    show("fstatfs file", fstatfs(2, &sf));
    printf("file fs %lx\n", (long)sf.f_type);
    show("fstatfs bad buffer", fstatfs(2, (void *)8));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    waits();
    faults();
    stdio();
    return 0;
}
