/* sendfile, copy_file_range and splice between files of two directories (argv[1], argv[2]),
 * in each direction and within each: the data must arrive whole, and copy_file_range
 * between two filesystems answers EXDEV. Run natively on two filesystems and in the
 * sandbox on each pair of tmpfs, overlay and gofer directories: the outputs must match. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

#define SIZE 100000
static char data[SIZE], back[SIZE + 1];

static const char *check(const char *path) {
    int fd = open(path, O_RDONLY);
    long n = read(fd, back, sizeof back);
    close(fd);
    return n == SIZE && memcmp(back, data, SIZE) == 0 ? "same" : "DIFFERENT";
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc != 3)
        return 2;
    for (int i = 0; i < SIZE; i++)
        data[i] = 'a' + (i * 7) % 26;
    const char *dirs[2] = {argv[1], argv[2]};
    for (int a = 0; a < 2; a++) {
        for (int b = 0; b < 2; b++) {
            char src[512], dst[512];
            snprintf(src, sizeof src, "%s/src%d%d", dirs[a], a, b);
            int s = open(src, O_RDWR | O_CREAT | O_TRUNC, 0644);
            write(s, data, SIZE);
            printf("-- %d to %d\n", a, b);

            snprintf(dst, sizeof dst, "%s/sendfile%d%d", dirs[b], a, b);
            int d = open(dst, O_RDWR | O_CREAT | O_TRUNC, 0644);
            off_t off = 0;
            long done = 0, n;
            while (done < SIZE && (n = sendfile(d, s, &off, SIZE - done)) > 0)
                done += n;
            close(d);
            printf("sendfile %ld %s\n", done, check(dst));

            snprintf(dst, sizeof dst, "%s/cfr%d%d", dirs[b], a, b);
            d = open(dst, O_RDWR | O_CREAT | O_TRUNC, 0644);
            loff_t in = 0, out = 0;
            done = 0;
            errno = 0;
            while (done < SIZE && (n = copy_file_range(s, &in, d, &out, SIZE - done, 0)) > 0)
                done += n;
            close(d);
            if (done)
                printf("copy_file_range %ld %s\n", done, check(dst));
            else
                printf("copy_file_range %s\n", strerrorname_np(errno));

            snprintf(dst, sizeof dst, "%s/splice%d%d", dirs[b], a, b);
            d = open(dst, O_RDWR | O_CREAT | O_TRUNC, 0644);
            int p[2];
            pipe(p);
            in = 0;
            done = 0;
            while (done < SIZE) {
                n = splice(s, &in, p[1], NULL, SIZE - done, 0);
                if (n <= 0)
                    break;
                while (n > 0) {
                    long m = splice(p[0], NULL, d, NULL, n, 0);
                    if (m <= 0)
                        break;
                    n -= m;
                    done += m;
                }
            }
            close(p[0]);
            close(p[1]);
            close(d);
            printf("splice %ld %s\n", done, check(dst));
            close(s);
        }
    }
    return 0;
}
