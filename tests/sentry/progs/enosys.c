/* Call syscalls the sandbox does not implement (and one no kernel has): ENOSYS, not death. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    long r = syscall(SYS_kexec_file_load, -1, -1, 0, 0, 0);
    printf("kexec_file_load = %ld %s\n", r, r < 0 ? strerrorname_np(errno) : "");
    r = syscall(1000, 1, 2, 3);
    printf("syscall 1000 = %ld %s\n", r, r < 0 ? strerrorname_np(errno) : "");
    return 7;
}
