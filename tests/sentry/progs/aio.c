/* Linux AIO: io_setup, io_submit (pread, pwrite, preadv, pwritev, fsync; an eventfd
 * signalled per completion with IOCB_FLAG_RESFD; RWF_HIPRI/DSYNC/SYNC/APPEND/NOWAIT; poll
 * requests, completed at once or later, cancelled, left at io_destroy), io_getevents,
 * io_pgetevents, io_cancel, io_destroy, with their errors. argv[1] is a scratch directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static void report(const char *label, long r) {
    if (r < 0)
        printf("%s = -1 %s\n", label, strerrorname_np(errno));
    else
        printf("%s = %ld\n", label, r);
}
#define S(label, ...) do { errno = 0; report(label, syscall(__VA_ARGS__)); } while (0)
#define BAD ((void *)8)

static void prep(struct iocb *cb, int op, int fd, void *buf, size_t n, long off, uint64_t data) {
    memset(cb, 0, sizeof *cb);
    cb->aio_lio_opcode = op;
    cb->aio_fildes = fd;
    cb->aio_buf = (uintptr_t)buf;
    cb->aio_nbytes = n;
    cb->aio_offset = off;
    cb->aio_data = data;
}

static void show_events(const char *label, aio_context_t ctx, long min, long nr,
                        struct timespec *ts) {
    struct io_event ev[8];
    errno = 0;
    long r = syscall(SYS_io_getevents, ctx, min, nr, ev, ts);
    report(label, r);
    /* Linux reports completions in the order they completed, which for a batch of native
       requests (an fsync among reads) is not the order of submission: print by data. */
    for (long i = 1; i < r; i++)
        for (long j = i; j > 0 && ev[j - 1].data > ev[j].data; j--) {
            struct io_event tmp = ev[j];
            ev[j] = ev[j - 1];
            ev[j - 1] = tmp;
        }
    for (long i = 0; i < r; i++)
        printf("  data %lu res %ld\n", (unsigned long)ev[i].data, (long)ev[i].res);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc != 2 || chdir(argv[1]) < 0)
        return 2;
    aio_context_t ctx = 0, other = 5;
    S("setup 0", SYS_io_setup, 0, &ctx);
    S("setup nonzero ctx", SYS_io_setup, 8, &other);
    S("setup bad ctxp", SYS_io_setup, 8, BAD);
    S("setup", SYS_io_setup, 4, &ctx);
    printf("  ctx set %d\n", ctx != 0);
    int fd = open("f", O_RDWR | O_CREAT | O_TRUNC, 0644);
    int wo = open("f", O_WRONLY);
    char rbuf[16] = {0}, a[4] = {0}, b[8] = {0};
    struct iocb w, r, s, v, rv;
    struct iovec wiov[2] = {{"ABC", 3}, {"DEFG", 4}};
    struct iovec riov[2] = {{a, 3}, {b, 4}};
    prep(&w, IOCB_CMD_PWRITE, fd, "hello world", 11, 0, 1);
    prep(&r, IOCB_CMD_PREAD, fd, rbuf, 5, 6, 2);
    prep(&s, IOCB_CMD_FSYNC, fd, NULL, 0, 0, 3);
    prep(&v, IOCB_CMD_PWRITEV, fd, wiov, 2, 20, 4);
    prep(&rv, IOCB_CMD_PREADV, fd, riov, 2, 20, 5);
    struct iocb *list[5] = {&w, &r, &s, &v, &rv};
    S("submit 4", SYS_io_submit, ctx, 4, list);
    show_events("getevents", ctx, 4, 8, NULL);
    printf("  read [%s]\n", rbuf);
    S("submit more than asked for", SYS_io_submit, ctx, 1, &list[4]);
    show_events("getevents", ctx, 1, 8, NULL);
    printf("  readv [%s][%s]\n", a, b);
    struct timespec zero = {0, 0};
    show_events("getevents none, zero timeout", ctx, 1, 8, &zero);
    show_events("getevents min > nr", ctx, 3, 2, NULL);
    S("getevents bad timeout", SYS_io_getevents, ctx, 1, 8, rbuf, BAD);
    S("submit 0", SYS_io_submit, ctx, 0, list);
    S("submit bad ctx", SYS_io_submit, 12345, 1, list);
    S("submit bad array", SYS_io_submit, ctx, 1, BAD);
    struct iocb *badp[1] = {BAD};
    S("submit bad iocb", SYS_io_submit, ctx, 1, badp);
    struct iocb x;
    struct iocb *one[2] = {&x, &w};
    prep(&x, IOCB_CMD_PREAD, fd, rbuf, 5, 0, 9);
    x.aio_reserved2 = 1;
    S("submit reserved2", SYS_io_submit, ctx, 1, one);
    prep(&x, IOCB_CMD_PREAD, 999, rbuf, 5, 0, 9);
    S("submit bad fd", SYS_io_submit, ctx, 1, one);
    prep(&x, IOCB_CMD_NOOP, fd, rbuf, 5, 0, 9);
    S("submit noop", SYS_io_submit, ctx, 1, one);
    prep(&x, IOCB_CMD_PREAD, wo, rbuf, 5, 0, 9);
    S("submit read on write-only", SYS_io_submit, ctx, 1, one);
    prep(&x, IOCB_CMD_FSYNC, fd, rbuf, 0, 0, 9);
    S("submit fsync with buffer", SYS_io_submit, ctx, 1, one);
    prep(&x, IOCB_CMD_PREAD, fd, rbuf, 5, 0, 9);
    x.aio_rw_flags = 0x40000000;
    S("submit unknown rw flag", SYS_io_submit, ctx, 1, one);
    prep(&x, IOCB_CMD_PREAD, wo, rbuf, 5, 0, 9);
    x.aio_rw_flags = 0x40000000;
    S("submit unknown rw flag, read on write-only", SYS_io_submit, ctx, 1, one);
    prep(&x, IOCB_CMD_PWRITE, fd, "s", 1, 40, 15);
    x.aio_rw_flags = RWF_DSYNC;
    S("submit pwrite RWF_DSYNC", SYS_io_submit, ctx, 1, one);
    prep(&x, IOCB_CMD_PREAD, fd, rbuf, 1, 40, 16);
    x.aio_rw_flags = RWF_HIPRI | RWF_SYNC;
    S("submit pread RWF_HIPRI|RWF_SYNC", SYS_io_submit, ctx, 1, one);
    show_events("getevents (rw flags)", ctx, 2, 8, NULL);
    prep(&x, IOCB_CMD_PREAD, fd, BAD, 5, 0, 10);
    prep(&w, IOCB_CMD_PWRITE, 999, "x", 1, 0, 11);
    S("submit two, second fails", SYS_io_submit, ctx, 2, one);
    show_events("getevents (EFAULT in the result)", ctx, 1, 8, NULL);
    prep(&x, IOCB_CMD_PREAD, fd, rbuf, 5, 0, 12);
    S("submit for cancel", SYS_io_submit, ctx, 1, one);
    struct io_event ev;
    S("cancel completed", SYS_io_cancel, ctx, &x, &ev);
    S("getevents into bad buffer", SYS_io_getevents, ctx, 1, 8, BAD, NULL);
    struct {
        const sigset_t *mask;
        size_t size;
    } usig = {NULL, 8};
    sigset_t set;
    sigemptyset(&set);
    usig.mask = &set;
    struct io_event evs[4];
    S("pgetevents", SYS_io_pgetevents, ctx, 1, 4, evs, NULL, &usig);
    usig.size = 4;
    S("pgetevents bad sigset size", SYS_io_pgetevents, ctx, 0, 4, evs, &zero, &usig);
    int efd = eventfd(0, EFD_NONBLOCK);
    prep(&x, IOCB_CMD_PREAD, fd, rbuf, 5, 0, 13);
    prep(&w, IOCB_CMD_PWRITE, fd, "z", 1, 30, 14);
    x.aio_flags = w.aio_flags = IOCB_FLAG_RESFD;
    x.aio_resfd = w.aio_resfd = efd;
    S("submit two with an eventfd", SYS_io_submit, ctx, 2, one);
    uint64_t count = 0;
    errno = 0;
    report("eventfd read", read(efd, &count, sizeof count));
    printf("  eventfd count %lu\n", (unsigned long)count);
    show_events("getevents (eventfd requests)", ctx, 2, 8, NULL);
    x.aio_resfd = fd;
    S("submit resfd not an eventfd", SYS_io_submit, ctx, 1, one);
    x.aio_resfd = 999;
    S("submit resfd not open", SYS_io_submit, ctx, 1, one);
    x.aio_fildes = 999;
    S("submit bad fd and bad resfd", SYS_io_submit, ctx, 1, one);
    /* RWF_APPEND, RWF_NOWAIT (a tmpfs file has no FMODE_NOWAIT; a pipe does) */
    int ap[2];
    pipe(ap);
    prep(&x, IOCB_CMD_PWRITE, fd, "END", 3, 0, 20);
    x.aio_rw_flags = RWF_APPEND;
    S("submit pwrite RWF_APPEND", SYS_io_submit, ctx, 1, one);
    show_events("getevents (append)", ctx, 1, 8, NULL);
    off_t end = lseek(fd, 0, SEEK_END);
    memset(rbuf, 0, sizeof rbuf);
    pread(fd, rbuf, 3, end - 3);
    printf("  size %ld tail [%s]\n", (long)end, rbuf);
    prep(&x, IOCB_CMD_PREAD, fd, rbuf, 3, 0, 21);
    x.aio_rw_flags = RWF_NOWAIT;
    S("submit pread RWF_NOWAIT on a tmpfs file", SYS_io_submit, ctx, 1, one);
    prep(&x, IOCB_CMD_PREAD, ap[0], rbuf, 3, 0, 22);
    x.aio_rw_flags = RWF_NOWAIT;
    S("submit pread RWF_NOWAIT on an empty pipe", SYS_io_submit, ctx, 1, one);
    show_events("getevents (nowait)", ctx, 1, 8, NULL);
    prep(&x, IOCB_CMD_PWRITE, ap[1], "p", 1, 0, 23);
    x.aio_rw_flags = RWF_NOWAIT;
    S("submit pwrite RWF_NOWAIT on a pipe", SYS_io_submit, ctx, 1, one);
    show_events("getevents (nowait write)", ctx, 1, 8, NULL);
    prep(&x, IOCB_CMD_PREAD, ap[0], rbuf, 3, 0, 24);
    x.aio_rw_flags = RWF_NOWAIT;
    S("submit pread RWF_NOWAIT on a ready pipe", SYS_io_submit, ctx, 1, one);
    show_events("getevents (nowait read)", ctx, 1, 8, NULL);
    /* IOCB_CMD_POLL: at once when ready, else when it becomes so; io_cancel */
    prep(&x, IOCB_CMD_POLL, ap[0], (void *)(uintptr_t)POLLIN, 0, 0, 25);
    S("submit poll on an empty pipe", SYS_io_submit, ctx, 1, one);
    show_events("getevents poll not ready, zero timeout", ctx, 1, 8, &zero);
    write(ap[1], "q", 1);
    show_events("getevents (poll woken)", ctx, 1, 8, NULL);
    prep(&x, IOCB_CMD_POLL, ap[1], (void *)(uintptr_t)(POLLOUT | POLLIN), 0, 0, 26);
    S("submit poll ready at once", SYS_io_submit, ctx, 1, one);
    show_events("getevents (poll at once)", ctx, 1, 8, NULL);
    prep(&x, IOCB_CMD_POLL, ap[0], (void *)(uintptr_t)0x10000, 0, 0, 27);
    S("submit poll events past 16 bits", SYS_io_submit, ctx, 1, one);
    prep(&x, IOCB_CMD_POLL, ap[0], (void *)(uintptr_t)POLLIN, 1, 0, 27);
    S("submit poll with nbytes", SYS_io_submit, ctx, 1, one);
    read(ap[0], rbuf, sizeof rbuf);
    prep(&x, IOCB_CMD_POLL, ap[0], (void *)(uintptr_t)POLLIN, 0, 0, 28);
    S("submit poll for cancel", SYS_io_submit, ctx, 1, one);
    S("cancel poll", SYS_io_cancel, ctx, &x, &ev);
    show_events("getevents (cancelled poll)", ctx, 1, 8, NULL);
    S("cancel poll again", SYS_io_cancel, ctx, &x, &ev);
    prep(&x, IOCB_CMD_POLL, ap[0], (void *)(uintptr_t)POLLIN, 0, 0, 29);
    S("submit poll left at destroy", SYS_io_submit, ctx, 1, one);
    S("destroy bad", SYS_io_destroy, 12345);
    S("destroy", SYS_io_destroy, ctx);
    S("submit after destroy", SYS_io_submit, ctx, 1, one);
    S("getevents after destroy", SYS_io_getevents, ctx, 0, 1, evs, &zero);
    return 0;
}
