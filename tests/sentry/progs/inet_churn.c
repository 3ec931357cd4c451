/* argv[1] TCP connections over loopback opened, used and closed one after another. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 64) ||
        getsockname(ls, (struct sockaddr *)&a, &l)) { perror("listen"); return 1; }
    int ok = 0;
    for (int i = 0; i < n; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
        int s = accept(ls, NULL, NULL);
        char b = 'x';
        if (s < 0 || write(c, &b, 1) != 1 || read(s, &b, 1) != 1) { perror("io"); return 1; }
        close(s);
        close(c);
        ok++;
    }
    printf("%d connections\n", ok);
    return 0;
}
