/* O_ASYNC on files without fasync: F_SETFL does not keep it, FIOASYNC is ENOTTY; on a
 * pipe (which has one) both work. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

static void t(const char *what, int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
    int kept = !!(fcntl(fd, F_GETFL) & O_ASYNC);
    int on = 1;
    errno = 0;
    int r = ioctl(fd, FIOASYNC, &on);
    printf("%s: setfl kept %d fioasync %d %s\n", what, kept, r,
           r < 0 ? strerrorname_np(errno) : "");
}

int main(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    int fd = open("/tmp/fasync-none", O_CREAT | O_RDWR, 0600);
    t("regular", fd);
    unlink("/tmp/fasync-none");
    t("dir", open("/tmp", O_RDONLY | O_DIRECTORY));
    t("devnull", open("/dev/null", O_RDONLY));
    t("eventfd", eventfd(0, 0));
    t("timerfd", timerfd_create(CLOCK_MONOTONIC, 0));
    t("signalfd", signalfd(-1, &s, 0));
    int p[2];
    pipe(p);
    t("pipe", p[0]);
    return 0;
}
