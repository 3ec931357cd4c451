/* Dereference NULL: Linux kills the process with SIGSEGV. */
#include <stdio.h>
int main(void) {
    printf("before\n");
    fflush(stdout);
    *(volatile int *)0 = 42;
    printf("after\n");
    return 0;
}
