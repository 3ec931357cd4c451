/* Times and removed directories, as Linux keeps them (run natively and in the sandbox on a
 * fresh directory argv[1]): read and getdents update atime under relatime (not through
 * O_NOATIME); a zero-length write changes no time; getdents of a
 * directory removed while open is ENOENT. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const struct timespec old[2] = {{1000000000, 0}, {1000000000, 0}};

static void age(const char *path) {
    if (utimensat(AT_FDCWD, path, old, 0) != 0) perror("utimensat");
}

static void show(const char *what, const char *path, const struct stat *before) {
    struct stat st;
    if (stat(path, &st) != 0) { perror("stat"); return; }
    printf("%s: atime %s, mtime %s, ctime %s\n", what,
           st.st_atim.tv_sec != before->st_atim.tv_sec || st.st_atim.tv_nsec != before->st_atim.tv_nsec ? "changed" : "same",
           st.st_mtim.tv_sec != before->st_mtim.tv_sec || st.st_mtim.tv_nsec != before->st_mtim.tv_nsec ? "changed" : "same",
           st.st_ctim.tv_sec != before->st_ctim.tv_sec || st.st_ctim.tv_nsec != before->st_ctim.tv_nsec ? "changed" : "same");
}

int main(int argc, char **argv) {
    char buf[64];
    struct stat before;
    if (argc < 2) return 2;
    mkdir(argv[1], 0755);  /* (the sandbox's run gives a name under its /tmp) */
    if (chdir(argv[1]) != 0) { perror("chdir"); return 1; }
    int fd = open("f", O_CREAT | O_RDWR, 0644);
    if (write(fd, "hello", 5) != 5) perror("write");
    close(fd);

    age("f"); stat("f", &before);
    fd = open("f", O_RDONLY);
    if (read(fd, buf, sizeof buf) != 5) perror("read");
    show("read", "f", &before);
    stat("f", &before);
    if (read(fd, buf, sizeof buf) != 0) perror("read at end");
    show("read again (atime now after the change)", "f", &before);
    close(fd);

    age("f"); stat("f", &before);
    fd = open("f", O_RDONLY | O_NOATIME);
    if (fd < 0) perror("open O_NOATIME");
    if (read(fd, buf, sizeof buf) != 5) perror("read");
    show("read through O_NOATIME", "f", &before);
    close(fd);

    age("f"); stat("f", &before);
    fd = open("f", O_WRONLY);
    printf("write of 0 bytes: %zd\n", write(fd, buf, 0));
    printf("pwrite of 0 bytes: %zd\n", pwrite(fd, buf, 0, 100));
    show("zero-length writes", "f", &before);
    close(fd);

    mkdir("d", 0755);
    age("d"); stat("d", &before);
    fd = open("d", O_RDONLY | O_DIRECTORY);
    long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    printf("getdents: %s\n", n > 0 ? "entries" : strerror(errno));
    show("getdents", "d", &before);
    if (rmdir("d") != 0) perror("rmdir");
    lseek(fd, 0, SEEK_SET);
    n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    printf("getdents of the removed directory: %s\n", n < 0 ? strerror(errno) : "entries or end");
    close(fd);
    unlink("f");
    return 0;
}
