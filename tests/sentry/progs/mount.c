/* mount(2) and umount2(2): tmpfs with options, remount read-only, bind mounts (read-only
 * too), propagation flags, EBUSY (mounts below; an open file, a mapping, a cwd on it) and
 * MNT_DETACH, and the errors (ENODEV, ENOENT, ENOTDIR,
 * EINVAL, EPERM as an unprivileged user), the caller's IPC namespace's mqueue filesystem,
 * rbind against bind, MS_MOVE and its errors, pivot_root and its errors.
 * Natively it runs in private mount and IPC namespaces; argv[1] is an empty scratch
 * directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *label, long r) {
    if (r < 0)
        printf("%s = -1 %s\n", label, strerrorname_np(errno));
    else
        printf("%s = %ld\n", label, r);
}
#define S(label, ...) do { errno = 0; report(label, syscall(__VA_ARGS__)); } while (0)

static void touch(const char *label, const char *path) {
    errno = 0;
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    report(label, fd);
    if (fd >= 0)
        close(fd);
}

static void fsinfo(const char *path, int sized) {
    struct statfs sf;
    struct stat st;
    if (statfs(path, &sf) == 0 && stat(path, &st) == 0)
        printf("  %s: type %lx bytes %ld ro %d mode %o\n", path, (long)sf.f_type,
               sized ? (long)sf.f_blocks * sf.f_bsize : -1L, !!(sf.f_flags & ST_RDONLY),
               st.st_mode);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc != 2 || chdir(argv[1]) < 0)
        return 2;
    mkdir("m", 0755);
    mkdir("a", 0755);
    mkdir("b", 0755);
    touch("a/x", "a/x");
    S("mount tmpfs", SYS_mount, "none", "m", "tmpfs", 0, "size=1m,mode=0700");
    fsinfo("m", 1);
    touch("create in tmpfs", "m/f");
    S("umount", SYS_umount2, "m", 0);
    struct stat st;
    errno = 0;
    report("file gone", stat("m/f", &st));
    S("mount unknown type", SYS_mount, "none", "m", "nosuchfs", 0, NULL);
    S("mount on missing", SYS_mount, "none", "nothere", "tmpfs", 0, NULL);
    S("mount on a file", SYS_mount, "none", "a/x", "tmpfs", 0, NULL);
    S("mount bad size", SYS_mount, "none", "m", "tmpfs", 0, "size=lots");

    S("mount tmpfs again", SYS_mount, "none", "m", "tmpfs", MS_NOSUID, NULL);
    S("remount ro", SYS_mount, NULL, "m", NULL, MS_REMOUNT | MS_RDONLY, NULL);
    fsinfo("m", 0);  /* a default size depends on the machine's memory */
    touch("create on ro", "m/g");
    S("remount rw", SYS_mount, NULL, "m", NULL, MS_REMOUNT, NULL);
    touch("create on rw", "m/g");
    S("remount not a mount point", SYS_mount, NULL, "a", NULL, MS_REMOUNT, NULL);
    S("private", SYS_mount, NULL, "m", NULL, MS_PRIVATE, NULL);
    S("rshared", SYS_mount, NULL, "m", NULL, MS_SHARED | MS_REC, NULL);
    S("private not a mount point", SYS_mount, NULL, "a", NULL, MS_PRIVATE, NULL);
    S("shared|private", SYS_mount, NULL, "m", NULL, MS_SHARED | MS_PRIVATE, NULL);
    mkdir("m/inner", 0755);
    S("nested mount", SYS_mount, "none", "m/inner", "tmpfs", 0, NULL);
    S("umount busy", SYS_umount2, "m", 0);
    S("umount detach", SYS_umount2, "m", MNT_DETACH);
    errno = 0;
    report("inner gone", stat("m/inner", &st));
    /* in use: an open file, a working directory, a mapping on the mount itself */
    S("mount tmpfs to hold", SYS_mount, "none", "m", "tmpfs", 0, NULL);
    int held = open("m/held", O_RDWR | O_CREAT, 0644);
    S("umount with an open file", SYS_umount2, "m", 0);
    ftruncate(held, 4096);
    void *map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, held, 0);
    close(held);
    S("umount with a mapping", SYS_umount2, "m", 0);
    munmap(map, 4096);
    chdir("m");
    S("umount with the cwd on it", SYS_umount2, ".", 0);
    chdir("..");
    S("umount no longer held", SYS_umount2, "m", 0);
    S("mount tmpfs to detach", SYS_mount, "none", "m", "tmpfs", 0, NULL);
    held = open("m/held", O_RDWR | O_CREAT, 0644);
    S("umount detach with an open file", SYS_umount2, "m", MNT_DETACH);
    errno = 0;
    report("write to the detached file", write(held, "x", 1));
    close(held);

    S("bind", SYS_mount, "a", "b", NULL, MS_BIND, NULL);
    errno = 0;
    report("see through bind", stat("b/x", &st));
    S("bind remount ro", SYS_mount, NULL, "b", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
    touch("write through ro bind", "b/y");
    touch("write at source", "a/y");
    S("umount bind", SYS_umount2, "b", 0);
    S("bind missing source", SYS_mount, "nothere", "b", NULL, MS_BIND, NULL);
    S("bind dir on file", SYS_mount, "a", "a/x", NULL, MS_BIND, NULL);

    S("mount mqueue", SYS_mount, "none", "m", "mqueue", 0, NULL);
    fsinfo("m", 0);
    errno = 0;
    mqd_t q = mq_open("/mount-test", O_CREAT | O_RDWR, 0600, NULL);
    report("mq_open", q < 0 ? -1 : 0);
    errno = 0;
    report("the queue is a file there", stat("m/mount-test", &st));
    printf("  its mode %o size %ld\n", st.st_mode, (long)st.st_size);
    errno = 0;
    report("unlink it there", unlink("m/mount-test"));
    errno = 0;
    report("mq_unlink after", mq_unlink("/mount-test"));
    S("umount mqueue", SYS_umount2, "m", 0);

    /* bind sees only the one mount, rbind the mounts below too */
    mkdir("a/sub", 0755);
    S("mount on a/sub", SYS_mount, "none", "a/sub", "tmpfs", 0, NULL);
    touch("create a/sub/t", "a/sub/t");
    S("bind a b", SYS_mount, "a", "b", NULL, MS_BIND, NULL);
    errno = 0;
    report("bind: b/sub/t", stat("b/sub/t", &st));
    S("umount bind", SYS_umount2, "b", 0);
    S("rbind a b", SYS_mount, "a", "b", NULL, MS_BIND | MS_REC, NULL);
    errno = 0;
    report("rbind: b/sub/t", stat("b/sub/t", &st));
    S("umount rbind busy", SYS_umount2, "b", 0);
    S("umount rbind detach", SYS_umount2, "b", MNT_DETACH);
    /* move a mount (with what is mounted on it) elsewhere */
    mkdir("c", 0755);
    S("move a/sub to c", SYS_mount, "a/sub", "c", NULL, MS_MOVE, NULL);
    errno = 0;
    report("moved: c/t", stat("c/t", &st));
    errno = 0;
    report("moved: a/sub/t", stat("a/sub/t", &st));
    S("move not a mount root", SYS_mount, "a", "b", NULL, MS_MOVE, NULL);
    mkdir("c/in", 0755);
    S("move into itself", SYS_mount, "c", "c/in", NULL, MS_MOVE, NULL);
    S("move missing", SYS_mount, "nothere", "b", NULL, MS_MOVE, NULL);
    S("umount moved", SYS_umount2, "c", 0);
    rmdir("c");
    rmdir("a/sub");

    /* pivot_root in a mount namespace of a child's own: a tmpfs becomes the root, the old
       root goes below it; then the errors */
    pid_t pc = fork();
    if (pc == 0) {
        unshare(CLONE_NEWNS);
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
        char here[4096];
        getcwd(here, sizeof here);
        mkdir("nr", 0755);
        mount("none", "nr", "tmpfs", 0, NULL);
        mkdir("nr/old", 0755);
        S("pivot: not a mount point", SYS_pivot_root, "nr/old", "nr/old");
        touch("pivot: a file in the new root", "nr/hello");
        mount("none", "b", "tmpfs", 0, NULL);
        S("pivot: put_old not below new_root", SYS_pivot_root, "nr", "b");
        S("pivot: new_root on the root's mount", SYS_pivot_root, "/", "nr/old");
        S("pivot_root", SYS_pivot_root, "nr", "nr/old");
        char cwd[4096] = "?", old_here[4200];
        getcwd(cwd, sizeof cwd);
        snprintf(old_here, sizeof old_here, "/old%s", here);
        printf("  cwd kept (not the root), now named below /old %d\n", !strcmp(cwd, old_here));
        S("chdir /", SYS_chdir, "/");
        errno = 0;
        report("  /hello", stat("/hello", &st));
        snprintf(old_here, sizeof old_here, "/old%s/a/x", here);
        errno = 0;
        report("  the old root's files below /old", stat(old_here, &st));
        S("umount2 /old detach", SYS_umount2, "/old", MNT_DETACH);
        errno = 0;
        report("  /old now empty", stat(old_here, &st));
        _exit(0);
    }
    waitpid(pc, NULL, 0);
    rmdir("nr");

    S("umount not a mount point", SYS_umount2, "a", 0);
    S("umount bad flags", SYS_umount2, "a", 0x10);
    S("umount expire|detach", SYS_umount2, "a", MNT_EXPIRE | MNT_DETACH);
    S("umount missing", SYS_umount2, "nothere", 0);
    S("mount bad target pointer", SYS_mount, "none", (void *)8, "tmpfs", 0, NULL);

    pid_t c = fork();
    if (c == 0) {
        setgid(65534);
        setuid(65534);
        S("unprivileged mount", SYS_mount, "none", "m", "tmpfs", 0, NULL);
        S("unprivileged umount", SYS_umount2, "/", 0);
        S("unprivileged umount bad flags", SYS_umount2, "/", 0x10);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    return 0;
}
