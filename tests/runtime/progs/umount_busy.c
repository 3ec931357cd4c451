/* umount_busy MOUNTPOINT: with the working directory on MOUNTPOINT's filesystem and a file
 * open there, detach the mount (umount2 MNT_DETACH) and keep using both: Linux keeps a lazily
 * unmounted filesystem alive for what still refers to it. Prints one line per step. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%s %ld %s\n", what, r, r < 0 ? strerror(errno) : "");
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    struct stat st;
    if (chdir(argv[1]) != 0)
        return 3;
    int fd = open("kept", O_CREAT | O_RDWR | O_TRUNC, 0644);
    show("open-before", fd >= 0 ? 0 : -1);
    show("write-before", write(fd, "abc", 3));
    show("umount-detach", umount2(argv[1], MNT_DETACH));
    show("stat-dot", stat(".", &st) == 0 ? (long)S_ISDIR(st.st_mode) : -1);
    show("write-after", write(fd, "def", 3));
    show("pread-after", pread(fd, (char[8]){0}, 8, 0));
    int fd2 = open("new", O_CREAT | O_RDWR, 0600);
    show("create-after", fd2 >= 0 ? 0 : -1);
    show("mkdir-after", mkdir("sub", 0755));
    show("rename-after", rename("new", "sub/new"));
    show("stat-moved", stat("sub/new", &st) == 0 ? (long)st.st_size : -1);
    DIR *d = opendir(".");
    int n = 0;
    while (d && readdir(d))
        n++;
    show("entries", n);
    show("unlink-after", unlink("sub/new"));
    show("rmdir-after", rmdir("sub"));
    show("umount-again", umount2(argv[1], MNT_DETACH));
    return 0;
}
