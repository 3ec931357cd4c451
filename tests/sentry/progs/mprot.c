/* Permissions of file mappings across mprotect (issue 19, finding 1): every open mode x
   MAP_SHARED/MAP_PRIVATE x mmap protection x mprotect protection on DIR/mprot-file, as root
   or, with a uid argument, as that user after the setup. A shared mapping of a file opened
   without write access may never become writable (EACCES), so the file never changes
   through it; a writable one writes through (msync). Prints one line per case.
   mprot DIR [UID] */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIZE 4096

static const char *prot_name(int p) {
    static const char *names[] = {"---", "r--", "-w-", "rw-", "--x", "r-x", "-wx", "rwx"};
    return names[p & 7];
}

static const char *err(long r) { return r < 0 ? strerror(errno) : "ok"; }

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    static char path[4096], orig[SIZE];
    mkdir(argv[1], 0755);
    if (chmod(argv[1], 0755) < 0)
        return perror("chmod"), 1;
    snprintf(path, sizeof path, "%s/mprot-file", argv[1]);
    /* O_TRUNC on an overlay file of the lower layer copies it up */
    int restore = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (restore < 0)
        return perror("open"), 1;
    memset(orig, 'a', SIZE);
    if (pwrite(restore, orig, SIZE, 0) != SIZE || fchmod(restore, 0644) < 0 ||
        fchown(restore, 0, 0) < 0)
        return perror("setup"), 1;
    if (argc > 2) {
        uid_t uid = (uid_t)atoi(argv[2]);
        if (setgid(uid) < 0 || setuid(uid) < 0)
            return perror("setuid"), 1;
    }
    printf("uid %d\n", (int)geteuid());
    static const int modes[] = {O_RDONLY, O_WRONLY, O_RDWR};
    static const char *mode_names[] = {"O_RDONLY", "O_WRONLY", "O_RDWR"};
    static const int shares[] = {MAP_SHARED, MAP_PRIVATE};
    static const int prots[] = {PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE};
    static const int mprots[] = {PROT_NONE, PROT_READ, PROT_WRITE, PROT_READ | PROT_WRITE,
                                 PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE | PROT_EXEC};
    for (int m = 0; m < 3; m++) {
        int fd = open(path, modes[m]);
        if (fd < 0) {
            printf("open %s: %s\n", mode_names[m], strerror(errno));
            continue;
        }
        for (int s = 0; s < 2; s++)
            for (unsigned p = 0; p < sizeof prots / sizeof *prots; p++) {
                const char *share = shares[s] == MAP_SHARED ? "shared" : "private";
                char *a = mmap(NULL, SIZE, prots[p], shares[s], fd, 0);
                if (a == MAP_FAILED) {
                    printf("%s %s mmap %s: %s\n", mode_names[m], share, prot_name(prots[p]),
                           strerror(errno));
                    continue;
                }
                munmap(a, SIZE);
                for (unsigned q = 0; q < sizeof mprots / sizeof *mprots; q++) {
                    pwrite(restore, orig, SIZE, 0);
                    a = mmap(NULL, SIZE, prots[p], shares[s], fd, 0);
                    long r = mprotect(a, SIZE, mprots[q]);
                    const char *e = err(r);
                    int wrote = 0;
                    if (r == 0 && mprots[q] & PROT_WRITE) {
                        a[0] = 'X';
                        a[SIZE - 1] = 'Y';
                        wrote = msync(a, SIZE, MS_SYNC) == 0;
                    }
                    munmap(a, SIZE);
                    char now[2] = {0, 0};
                    pread(restore, &now[0], 1, 0);
                    pread(restore, &now[1], 1, SIZE - 1);
                    printf("%s %s mmap %s mprotect %s: %s%s file %.2s\n", mode_names[m], share,
                           prot_name(prots[p]), prot_name(mprots[q]), e,
                           wrote ? " wrote" : "", now);
                }
            }
        close(fd);
    }
    unlink(path);
    return 0;
}
