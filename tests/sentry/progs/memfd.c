/* memfd_create and file seals: flags, names, fstat, /proc/self/fd, shared mappings seen
 * through another mapping and by a child, every seal (SEAL, SHRINK, GROW, WRITE,
 * FUTURE_WRITE, EXEC) against write, ftruncate, fallocate, mmap and chmod, EBUSY while a
 * shared writable mapping exists, and errors. Same output natively and in the sandbox. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#define MFD_EXEC 0x0010U
#endif
#define BAD ((void *)8)

static void show(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

static void link_of(int fd) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    long n = readlink(path, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("  link %s\n", buf);
}

static void seal_ops(int fd, const char *label) {
    printf(" %s: seals %#x\n", label, fcntl(fd, F_GET_SEALS));
    show("  pwrite inside", pwrite(fd, "zz", 2, 0));
    show("  pwrite past end", pwrite(fd, "zz", 2, 8192));
    show("  ftruncate smaller", ftruncate(fd, 100));
    show("  ftruncate same", ftruncate(fd, 4096));
    show("  ftruncate larger", ftruncate(fd, 8192));
    show("  fallocate grow", fallocate(fd, 0, 0, 16384));
    show("  fallocate keep", fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 16384));
    show("  punch hole", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 10));
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    show("  mmap shared rw", p == MAP_FAILED ? -1 : 0);
    if (p != MAP_FAILED)
        munmap(p, 4096);
    p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    show("  mmap shared ro", p == MAP_FAILED ? -1 : 0);
    if (p != MAP_FAILED)
        munmap(p, 4096);
    p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    show("  mmap private rw", p == MAP_FAILED ? -1 : 0);
    if (p != MAP_FAILED)
        munmap(p, 4096);
    struct stat st;
    fstat(fd, &st);
    printf("  size %ld\n", (long)st.st_size);
}

static int sealable(unsigned seals) {
    int fd = memfd_create("sealed", MFD_ALLOW_SEALING);
    ftruncate(fd, 4096);
    show(" add seals", fcntl(fd, F_ADD_SEALS, seals));
    return fd;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int fd = memfd_create("hello", 0);
    show("memfd_create", fd >= 0);
    struct stat st;
    fstat(fd, &st);
    printf("  mode %o nlink %ld size %ld\n", st.st_mode, (long)st.st_nlink, (long)st.st_size);
    printf("  fl %#x fd %d\n", fcntl(fd, F_GETFL) & ~0100000, fcntl(fd, F_GETFD));
    link_of(fd);
    printf("  seals %#x\n", fcntl(fd, F_GET_SEALS));
    show("  add seal without ALLOW_SEALING", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    show("  write", write(fd, "hello world", 11));
    lseek(fd, 0, SEEK_SET);
    char buf[64] = {0};
    show("  read", read(fd, buf, sizeof buf));
    printf("  data %s\n", buf);

    /* shared mappings: two views of the same pages, and a child's writes */
    ftruncate(fd, 8192);
    char *a = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *b = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
    strcpy(a + 4096, "via mapping a");
    printf("  b sees: %s\n", b + 4096);
    pid_t c = fork();
    if (c == 0) {
        strcpy(a, "from the child");
        _exit(0);
    }
    waitpid(c, NULL, 0);
    printf("  after child: %s\n", b);
    memset(buf, 0, sizeof buf);
    pread(fd, buf, 20, 4096);
    printf("  pread sees: %s\n", buf);
    pwrite(fd, "PWRITE", 6, 0);
    printf("  mapping sees pwrite: %.14s\n", a);
    munmap(b, 8192);

    munmap(a, 8192);
    close(fd);

    printf("== seals\n");
    fd = memfd_create("s", MFD_ALLOW_SEALING | MFD_CLOEXEC);
    printf("  seals %#x cloexec %d\n", fcntl(fd, F_GET_SEALS), fcntl(fd, F_GETFD));
    ftruncate(fd, 4096);
    show("  add bad seal bit", fcntl(fd, F_ADD_SEALS, 0x40));
    char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    show("  SEAL_WRITE while mapped shared rw", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    munmap(m, 4096);
    m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    show("  SEAL_WRITE while mapped private", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    munmap(m, 4096);
    seal_ops(fd, "WRITE");
    close(fd);
    /* a read-only shared mapping blocks F_SEAL_WRITE too (it may become writable) */
    fd = memfd_create("ro", MFD_ALLOW_SEALING);
    ftruncate(fd, 4096);
    m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    show("  SEAL_WRITE while mapped shared ro", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    munmap(m, 4096);
    fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE);
    m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    show("  mprotect rw of a shared map after FUTURE_WRITE", mprotect(m, 4096, PROT_READ | PROT_WRITE));
    munmap(m, 4096);
    m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    show("  mprotect rw of a private map", mprotect(m, 4096, PROT_READ | PROT_WRITE));
    munmap(m, 4096);
    close(fd);
    close(sealable(F_SEAL_SHRINK));
    fd = sealable(F_SEAL_SHRINK);
    seal_ops(fd, "SHRINK");
    close(fd);
    fd = sealable(F_SEAL_GROW);
    seal_ops(fd, "GROW");
    close(fd);
    fd = sealable(F_SEAL_FUTURE_WRITE);
    seal_ops(fd, "FUTURE_WRITE");
    close(fd);
    fd = sealable(F_SEAL_SEAL);
    show("  add after SEAL", fcntl(fd, F_ADD_SEALS, F_SEAL_GROW));
    show("  add nothing after SEAL", fcntl(fd, F_ADD_SEALS, 0));
    close(fd);
    fd = sealable(F_SEAL_EXEC);
    printf("  EXEC on 0777 file gives seals %#x\n", fcntl(fd, F_GET_SEALS));
    show("  chmod 0666", fchmod(fd, 0666));
    show("  chmod 0777", fchmod(fd, 0777));
    close(fd);
    fd = memfd_create("noexec", MFD_NOEXEC_SEAL);
    fstat(fd, &st);
    printf(" NOEXEC_SEAL: mode %o seals %#x\n", st.st_mode, fcntl(fd, F_GET_SEALS));
    show("  chmod +x", fchmod(fd, 0755));
    show("  chmod 0600", fchmod(fd, 0600));
    show("  add GROW", fcntl(fd, F_ADD_SEALS, F_SEAL_GROW));
    close(fd);
    int p[2];
    pipe(p);
    show(" F_GET_SEALS on a pipe", fcntl(p[0], F_GET_SEALS));
    show(" F_ADD_SEALS on a pipe", fcntl(p[1], F_ADD_SEALS, F_SEAL_GROW));

    printf("== errors\n");
    show(" bad flags", memfd_create("x", 0x100));
    show(" HUGETLB|bad", memfd_create("x", 0x100 | 4));
    show(" EXEC|NOEXEC_SEAL", memfd_create("x", MFD_EXEC | MFD_NOEXEC_SEAL));
    show(" bad name pointer", syscall(SYS_memfd_create, BAD, 0));
    show(" bad name and flags", syscall(SYS_memfd_create, BAD, 0x100));
    char name[300];
    memset(name, 'n', sizeof name);
    name[249] = 0;
    fd = memfd_create(name, 0);
    show(" 249-byte name", fd >= 0);
    link_of(fd);
    close(fd);
    name[249] = 'n';
    name[250] = 0;
    show(" 250-byte name", memfd_create(name, 0));
    return 0;
}
