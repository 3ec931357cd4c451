/* A fixed sequence of file syscalls, traced natively by strace and by runpsc --strace. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char b[64];
    struct stat st;
    int p[2];
    if (argc < 2 || chdir(argv[1]) < 0)
        return 2;
    int fd = open("f", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write(fd, "hello\n\tworld\0\001", 14);
    close(fd);
    fd = openat(AT_FDCWD, "f", O_RDONLY | O_CLOEXEC);
    read(fd, b, sizeof b);
    pread(fd, b, 3, 2);
    fstat(fd, &st);
    lseek(fd, 1, SEEK_END);
    close(fd);
    mkdir("d", 0750);
    rename("f", "d/g");
    unlink("missing");
    access("d/g", R_OK | W_OK);
    symlink("d/g", "l");
    readlink("l", b, sizeof b);
    pipe2(p, O_CLOEXEC | O_NONBLOCK);
    dup2(p[0], 10);
    fcntl(10, F_GETFD);
    read(p[0], b, 1);
    rmdir("d");
    syscall(SYS_getcwd, b, 2);
    return 0;
}
