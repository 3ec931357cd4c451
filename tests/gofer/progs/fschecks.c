/* Filesystem checks a kernel client of the gofer is judged by, run in DIR and compared with
 * the same run on a local filesystem: one line per check, "LABEL RESULT [ATTRS]", RESULT 0 or
 * an errno name, ATTRS what stat says (mode uid gid size nlink rdev) — nothing that differs
 * between two correct filesystems (inode numbers, times, block counts).
 *
 * usage: fschecks DIR MEMBER_UID MEMBER_GID MEMBER_GROUP OTHER_UID OTHER_GID
 *   MEMBER_UID (primary group MEMBER_GID) is a user in MEMBER_GROUP, OTHER_UID one in no group
 *   of the test's; the gofer resolves users' groups from its own host's database, so both must
 *   exist there as given. Run as root: root's checks, then each user's in a child. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static void res(const char *label, int rc)
{
    printf("%s %s\n", label, rc < 0 ? strerrorname_np(errno) : "0");
}

static void st(const char *label, const char *path)
{
    struct stat s;
    if (lstat(path, &s) < 0) {
        printf("%s stat %s\n", label, strerrorname_np(errno));
        return;
    }
    printf("%s stat mode=%o uid=%u gid=%u size=%lld nlink=%lu rdev=%u,%u\n", label, s.st_mode,
           s.st_uid, s.st_gid, S_ISREG(s.st_mode) || S_ISLNK(s.st_mode) ? (long long)s.st_size : 0,
           (unsigned long)s.st_nlink, major(s.st_rdev), minor(s.st_rdev));
}

/* A file written in odd-sized pieces, fsync'd, read back whole: its checksum each way. */
static void write_read(const char *label, const char *path)
{
    unsigned w = 0, r = 0;
    char buf[7001];
    int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0644);
    if (fd < 0) {
        res(label, -1);
        return;
    }
    for (int i = 0; i < 40; i++) {
        for (size_t j = 0; j < sizeof buf; j++) {
            buf[j] = (char)(i * 31 + j * 7);
            w = w * 33 + (unsigned char)buf[j];
        }
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) {
            res(label, -1);
            close(fd);
            return;
        }
    }
    if (fsync(fd) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        res(label, -1);
        close(fd);
        return;
    }
    ssize_t n;
    long total = 0;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t j = 0; j < n; j++)
            r = r * 33 + (unsigned char)buf[j];
        total += n;
    }
    close(fd);
    printf("%s %s bytes=%ld same=%d\n", label, n < 0 ? strerrorname_np(errno) : "0", total, w == r);
}

/* open(O_CREAT, MODE) for reading and writing, write, then ftruncate that descriptor. */
static void create_ftruncate(const char *label, const char *path, mode_t mode, off_t size)
{
    int fd = open(path, O_CREAT | O_EXCL | O_RDWR, mode);
    if (fd < 0) {
        res(label, -1);
        return;
    }
    int rc = write(fd, "0123456789", 10) == 10 ? ftruncate(fd, size) : -1;
    res(label, rc);
    close(fd);
    st(label, path);
}

static void create(const char *label, const char *path, mode_t mode)
{
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, mode);
    res(label, fd);
    if (fd >= 0)
        close(fd);
    st(label, path);
}

static void xattrs(const char *label, const char *path, const char *name)
{
    char l[64], v[64], list[256];
    snprintf(l, sizeof l, "%s-set", label);
    res(l, setxattr(path, name, "value-1", 7, XATTR_CREATE));
    snprintf(l, sizeof l, "%s-create-again", label);
    res(l, setxattr(path, name, "value-2", 7, XATTR_CREATE));
    snprintf(l, sizeof l, "%s-replace", label);
    res(l, setxattr(path, name, "value-22", 8, XATTR_REPLACE));
    ssize_t n = getxattr(path, name, v, sizeof v);
    printf("%s-get %s %.*s\n", label, n < 0 ? strerrorname_np(errno) : "0", n < 0 ? 0 : (int)n, v);
    n = listxattr(path, list, sizeof list);
    int found = 0;
    for (ssize_t i = 0; i < n; i += strlen(list + i) + 1)
        found |= strcmp(list + i, name) == 0;
    printf("%s-list %s listed=%d\n", label, n < 0 ? strerrorname_np(errno) : "0", found);
    snprintf(l, sizeof l, "%s-remove", label);
    res(l, removexattr(path, name));
    n = getxattr(path, name, v, sizeof v);
    printf("%s-get-removed %s\n", label, n < 0 ? strerrorname_np(errno) : "0");
}

/* What every caller does in directory D (plain or set-gid) under its own prefix P. */
static void makes(const char *d, const char *p)
{
    char a[256], b[256], l[64];
#define PATH(buf, name) snprintf(buf, sizeof buf, "%s/%s-%s", d, p, name)
#define LABEL(name) (snprintf(l, sizeof l, "%s-%s/%s", d, p, name), l)
    PATH(a, "f");
    create(LABEL("create-2755"), a, 02755);
    PATH(a, "f6");
    create(LABEL("create-6644"), a, 06644);
    PATH(a, "d");
    res(LABEL("mkdir"), mkdir(a, 0755));
    st(l, a);
    PATH(a, "d/f");
    create(LABEL("create-in-new-dir"), a, 02711);
    PATH(a, "l");
    res(LABEL("symlink"), symlink("target", a));
    st(l, a);
    PATH(a, "p");
    res(LABEL("mkfifo"), mknod(a, S_IFIFO | 0644, 0));
    st(l, a);
    PATH(a, "chr");
    res(LABEL("mknod-c"), mknod(a, S_IFCHR | 0666, makedev(1, 3)));
    st(l, a);
    PATH(a, "blk");
    res(LABEL("mknod-b"), mknod(a, S_IFBLK | 0600, makedev(7, 200)));
    st(l, a);
    PATH(a, "t0");
    create_ftruncate(LABEL("ftruncate-mode0"), a, 0, 3);
    res(LABEL("truncate-mode0-by-name"), truncate(a, 1));
    PATH(a, "t4");
    create_ftruncate(LABEL("ftruncate-mode444"), a, 0444, 0);
    PATH(a, "data");
    write_read(LABEL("write-read"), a);
    PATH(b, "moved");
    res(LABEL("rename"), rename(a, b));
    st(l, b);
    res(LABEL("renamed-away"), access(a, F_OK));
    PATH(a, "hard");
    res(LABEL("link"), link(b, a));
    st(l, b);
    res(LABEL("chmod"), chmod(b, 0640));
    st(l, a);
    PATH(a, "sym");
    res(LABEL("symlink-rel"), symlink(strrchr(b, '/') + 1, a));
    char t[256];
    ssize_t n = readlink(a, t, sizeof t);
    printf("%s %s %.*s\n", LABEL("readlink"), n < 0 ? strerrorname_np(errno) : "0", n < 0 ? 0 : (int)n, t);
    res(LABEL("stat-through-symlink"), access(a, R_OK));
    res(LABEL("unlink"), unlink(b));
    PATH(a, "hard");
    st(LABEL("unlink"), a);
    PATH(a, "d");
    res(LABEL("rmdir-nonempty"), rmdir(a));
    PATH(a, "x");
    create(LABEL("xattr-file"), a, 0644);
    xattrs(LABEL("xattr-user"), a, "user.check");
}

static int sub(uid_t uid, gid_t gid, gid_t fsgid, const gid_t *groups, int ngroups, const char *p)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* fsgid set while still root: a user may not take a supplementary group as fsgid
         * itself, and setresuid leaves it alone (newgrp's effect on what creates carry). */
        if (setgroups(ngroups, groups) < 0 || setresgid(gid, gid, gid) < 0 ||
            (setfsgid(fsgid), setfsgid(-1) != (int)fsgid) || setresuid(uid, uid, uid) < 0) {
            perror("dropping to the user");
            _exit(1);
        }
        makes("plain", p);
        makes("sg", p);
        res("not-owner-chmod-root-file", chmod("plain/root-f", 0777));
        res("not-owner-unlink-in-sticky", unlink("sticky/root-f"));
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    return status;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: fschecks DIR MEMBER_UID MEMBER_GID MEMBER_GROUP OTHER_UID OTHER_GID\n");
        return 2;
    }
    uid_t member = atoi(argv[2]), other = atoi(argv[5]);
    gid_t member_gid = atoi(argv[3]), group = atoi(argv[4]), other_gid = atoi(argv[6]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    umask(0);
    if (chdir(argv[1]) < 0) {
        perror(argv[1]);
        return 2;
    }
    /* The tree: a set-gid directory of MEMBER_GROUP, a plain and a sticky one, all writable. */
    res("setup-mkdir-sg", mkdir("sg", 0777));
    res("setup-chown-sg", chown("sg", 0, group));
    res("setup-chmod-sg", chmod("sg", 02777));
    st("setup-sg", "sg");
    res("setup-mkdir-plain", mkdir("plain", 0777));
    res("setup-mkdir-sticky", mkdir("sticky", 01777));
    create("setup-sticky-file", "sticky/root-f", 0666);

    makes("plain", "root");
    makes("sg", "root");
    setfsgid(4321); /* root whose fsgid (what a create carries) is another group */
    makes("plain", "root4321");
    makes("sg", "root4321");
    setfsgid(0);
    xattrs("plain-root-xattr-trusted", "plain/root-x", "trusted.check");

    gid_t groups[1] = {group};
    printf("member %d\n", sub(member, member_gid, member_gid, groups, 1, "member"));
    printf("newgrp %d\n", sub(member, member_gid, group, groups, 1, "newgrp"));
    printf("other %d\n", sub(other, other_gid, other_gid, NULL, 0, "other"));
    printf("done\n");
    return 0;
}
