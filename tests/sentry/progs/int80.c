/* `int $0x80` from a 64-bit program (issue 19, finding 7). Linux runs the i386 table with
   the i386 argument registers (ebx, ecx, edx ...); the Sentry refuses every such call with
   ENOSYS and never reads it as the 64-bit call of the same number (eax 20 is writev there,
   4 stat, 39 getpid). Each line says which call was made and what came back, so the test
   can check the native answers (the i386 table's) and the sandbox's (ENOSYS) side by side;
   the 64-bit calls in between must give the same answers in both. Static, non-PIE: data
   addresses fit in the 32 bits int 0x80 passes. */
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long int80(long nr, long b, long c, long d) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(b), "c"(c), "d"(d) : "memory");
    return r;
}

static char msg[] = "written by i386 write\n";
static char dir[] = "/nonexistent-int80/x";

int main(void) {
    long pid = syscall(SYS_getpid);
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("getpid by syscall: %s\n", pid > 0 ? "ok" : "failed");
    long r = int80(20, 0, 0, 0);  /* i386 getpid; x86_64 writev(0, NULL, 0) */
    printf("int80 eax=20 (i386 getpid): %s\n", r == pid ? "the pid" : r == -38 ? "ENOSYS" : "other");
    r = int80(4, 1, (long)msg, strlen(msg));  /* i386 write(1, msg, n); x86_64 stat */
    printf("int80 eax=4 (i386 write): %ld\n", r);
    /* a getpid served by the Sentry, then at once int 0x80 with getpid's 64-bit number:
       i386 mkdir(dir) (ENOENT); never the pid from a fast path answering repeats */
    syscall(SYS_getpid);
    r = int80(39, (long)dir, 0755, 0);
    printf("int80 eax=39 (i386 mkdir) after getpid: %s\n", r == pid ? "the pid" : r == -2 ? "ENOENT" : r == -38 ? "ENOSYS" : "other");
    r = int80(0x7fff, 0, 0, 0);  /* no such call in either table */
    printf("int80 eax=0x7fff: %ld\n", r);
    r = int80(1, 7, 0, 0);  /* i386 exit(7): natively the program ends here */
    printf("int80 eax=1 (i386 exit): %ld\n", r);
    printf("getpid by syscall again: %s\n", syscall(SYS_getpid) == pid ? "same" : "different");
    return 0;
}
