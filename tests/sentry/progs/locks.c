/* Record locks, OFD locks and flock between two processes, including blocking waits,
 * and close-releases-POSIX-locks. Prints what each side sees; run in an empty directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *who, const char *label, long r) {
    if (r < 0)
        printf("%s %s = -1 %s\n", who, label, strerrorname_np(errno));
    else
        printf("%s %s = %ld\n", who, label, r);
    fflush(stdout);
}
#define CHK(who, label, expr) do { errno = 0; report(who, label, (long)(expr)); } while (0)

static int lk(int fd, int cmd, short type, off_t start, off_t len) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl);
}

int main(int argc, char **argv) {
    int go[2], done[2], bye[2];
    char c;
    if (argc != 2 || chdir(argv[1]) < 0)
        return 2;
    int fd = open("f", O_RDWR | O_CREAT, 0644);
    write(fd, "0123456789", 10);
    pipe(go);
    pipe(done);
    pipe(bye);
    CHK("parent", "setlk wr 0-5", lk(fd, F_SETLK, F_WRLCK, 0, 5));
    CHK("parent", "flock ex", flock(fd, LOCK_EX));
    pid_t pid = fork();
    if (pid == 0) {
        int fd2 = open("f", O_RDWR);
        CHK("child", "setlk wr 0-5", lk(fd2, F_SETLK, F_WRLCK, 0, 5));
        CHK("child", "setlk wr 5-10", lk(fd2, F_SETLK, F_WRLCK, 5, 5));
        struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        CHK("child", "getlk", fcntl(fd2, F_GETLK, &q));
        printf("child getlk type=%d start=%ld len=%ld pid-is-parent=%d\n", q.l_type,
               (long)q.l_start, (long)q.l_len, q.l_pid == getppid());
        CHK("child", "flock ex nb (new description)", flock(fd2, LOCK_EX | LOCK_NB));
        CHK("child", "flock sh nb (inherited description)", flock(fd, LOCK_SH | LOCK_NB));
        write(go[1], "g", 1);
        /* Blocks until the parent closes its fd (which drops its POSIX locks). */
        CHK("child", "setlkw wr 0-5", lk(fd2, F_SETLKW, F_WRLCK, 0, 5));
        CHK("child", "flock ex (new description, waits)", flock(fd2, LOCK_EX));
        write(done[1], "d", 1);
        read(bye[0], &c, 1);
        _exit(0);
    }
    read(go[0], &c, 1);
    CHK("parent", "flock un", flock(fd, LOCK_UN));
    int other = open("f", O_RDONLY);
    printf("parent closes another fd of the file (drops its POSIX locks)\n");
    fflush(stdout);
    close(other);
    read(done[0], &c, 1);
    CHK("parent", "setlk wr 0-5 after child", lk(fd, F_SETLK, F_WRLCK, 0, 5));
    write(bye[1], "b", 1);
    int status;
    waitpid(pid, &status, 0);
    printf("child status %d\n", WEXITSTATUS(status));
    CHK("parent", "setlk wr 0-5 after exit", lk(fd, F_SETLK, F_WRLCK, 0, 5));
    CHK("parent", "flock ex nb after exit", flock(fd, LOCK_EX | LOCK_NB));
    return 0;
}
