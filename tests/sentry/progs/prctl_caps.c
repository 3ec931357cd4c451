/* prctl's capability options as a root process with the default sets sees them (what
 * libcap's initialisation asks, in every PostgreSQL tool among others): the bounding set,
 * the securebits, the ambient set (empty: root's inheritable set is empty, so raising is
 * EPERM), with Linux's EINVAL for a capability past the last one and for stray arguments,
 * EFAULT for the options that write through a bad pointer. Prints one line per call. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BAD ((unsigned long)8)

static void show(const char *what, long r) {
    if (r < 0)
        printf("%s = -1 %s\n", what, strerror(errno));
    else
        printf("%s = %ld\n", what, r);
}

#define P(o, a2, a3, a4, a5) show(#o " " #a2 " " #a3 " " #a4 " " #a5, \
                                  syscall(SYS_prctl, o, a2, a3, a4, a5))

int main(void) {
    P(PR_CAPBSET_READ, 0, 0, 0, 0);
    P(PR_CAPBSET_READ, 40, 0, 0, 0);
    P(PR_CAPBSET_READ, 41, 0, 0, 0);
    P(PR_CAPBSET_READ, -1, 0, 0, 0);
    P(PR_GET_SECUREBITS, 0, 0, 0, 0);
    P(PR_GET_SECUREBITS, 1, 2, 3, 4);
    P(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, 0, 0, 0);
    P(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, 40, 0, 0);
    P(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, 41, 0, 0);
    P(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, -1, 0, 0);
    P(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, 0, 1, 0);
    P(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, 0, 0, 1);
    P(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    P(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 1, 0, 0);
    P(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 1);
    P(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, 5, 0, 0);
    P(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, 41, 0, 0);
    P(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 5, 0, 0);
    P(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 41, 0, 0);
    P(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, 5, 0, 0);
    P(PR_CAP_AMBIENT, 0, 0, 0, 0);
    P(PR_CAP_AMBIENT, 5, 0, 0, 0);
    P(PR_GET_KEEPCAPS, 0, 0, 0, 0);
    P(PR_GET_PDEATHSIG, BAD, 0, 0, 0);
    P(PR_GET_NAME, BAD, 0, 0, 0);
    P(PR_SET_NAME, BAD, 0, 0, 0);
    P(1000, 0, 0, 0, 0);
    return 0;
}
