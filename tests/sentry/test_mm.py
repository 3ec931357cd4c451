"""Memory syscalls: a C program exercises mmap/munmap/mprotect/mremap/brk/madvise/msync/
mincore and shared tmpfs mappings, and prints what it observes; the sandbox run must print
what Linux prints."""

import shutil
import subprocess

from .platform_helpers import build_c, run_vfs

PROGRAM = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define P 4096
#define SHOW(what, expr) do { long _r = (long)(expr); \
    printf("%s %ld %d\n", what, _r < 0 ? -1L : (_r > 1 ? 1L : _r), _r < 0 ? errno : 0); \
    errno = 0; } while (0)
int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char *a = mmap(0, 4 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("anon %d\n", a != MAP_FAILED);
    memset(a, 'x', 4 * P);
    SHOW("noreplace", mmap(a + P, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == MAP_FAILED ? -1 : 0);
    char *f = mmap(a + P, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("fixed %d %d %c\n", f == a + P, a[P], a[0]);
    SHOW("munmap_mid", munmap(a + 2 * P, P));
    unsigned char vec[4];
    SHOW("mincore_hole", mincore(a, 4 * P, vec));
    SHOW("mincore", mincore(a, P, vec));
    printf("resident %d\n", vec[0] & 1);
    SHOW("mprotect_hole", mprotect(a, 4 * P, PROT_READ));
    SHOW("mprotect", mprotect(a, P, PROT_READ));
    SHOW("write_from_ro", write(1, a, 0));
    SHOW("mprotect_bad", mprotect(a + 1, P, PROT_READ));
    SHOW("munmap_bad", munmap(a + 1, P));
    char *g = mremap(a + 3 * P, P, 8 * P, MREMAP_MAYMOVE);
    printf("mremap %d %c\n", g != MAP_FAILED, g[0]);
    memset(g + P, 'y', 7 * P);
    char *h = mremap(g, 8 * P, 2 * P, 0);
    printf("shrink %d %c %c\n", h == g, h[0], h[P]);
    memset(h, 'z', 2 * P);
    SHOW("dontneed", madvise(h, 2 * P, MADV_DONTNEED));
    printf("zeroed %d\n", h[0] == 0 && h[P] == 0);
    SHOW("madvise_bad", madvise(h, P, 12345));
    char *gd = mmap(0, 4 * P, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
    gd[3 * P] = 1;
    printf("growsdown %d\n", gd != MAP_FAILED);
    char *pop = mmap(0, 2 * P, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    SHOW("mincore_populated", mincore(pop, 2 * P, vec));
    printf("populate %d %d %d\n", pop != MAP_FAILED, vec[0] & 1, vec[1] & 1);
    char *b0 = sbrk(0);
    SHOW("brk_grow", brk(b0 + 3 * P));
    memset(b0, 'b', 3 * P);
    printf("brk_after %d\n", (char *)sbrk(0) == b0 + 3 * P);
    SHOW("brk_shrink", brk(b0 + P));
    SHOW("brk_below", (long)syscall(12, 4096) == (long)sbrk(0));
    SHOW("mmap_len0", mmap(0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? -1 : 0);
    SHOW("mmap_badtype", mmap(0, P, PROT_READ, MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? -1 : 0);
    SHOW("mmap_badfd", mmap(0, P, PROT_READ, MAP_PRIVATE, 99, 0) == MAP_FAILED ? -1 : 0);
    /* file mappings */
    int fd = open(argv[1], O_RDWR);
    char *m = mmap(0, 2 * P, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("file_private %d %.5s %.5s %d\n", m != MAP_FAILED, m, m + P, m[2 * P - 1]);
    char *o = mmap(0, P, PROT_READ, MAP_PRIVATE, fd, P);
    printf("file_offset %.5s\n", o);
    SHOW("file_badoff", mmap(0, P, PROT_READ, MAP_PRIVATE, fd, 100) == MAP_FAILED ? -1 : 0);
    char *s = mmap(0, P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    memcpy(s, "SHARED", 6);
    SHOW("msync", msync(s, P, MS_SYNC));
    char buf[8] = {0};
    pread(fd, buf, 6, 0);
    printf("file_sees %s\n", buf);
    memcpy(s, "UNMAPD", 6);
    SHOW("munmap_shared", munmap(s, P));
    pread(fd, buf, 6, 0);
    printf("file_sees %s\n", buf);
    char *s1 = mmap(0, P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *s2 = mmap(0, 2 * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    memcpy(s1, "TWOMAP", 6);
    printf("second_sees %.6s\n", s2);
    pwrite(fd, "BYFILE", 6, 0);
    printf("mapping_sees %.6s\n", s1);
    char *s3 = mremap(s2, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, a);
    memcpy(s3 + P, "MOVED", 5);
    pread(fd, buf, 5, P);
    printf("moved_shared %d %.5s\n", s3 == a, buf);
    int ro = open(argv[1], O_RDONLY);
    SHOW("shared_rw_on_ro", mmap(0, P, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0) == MAP_FAILED ? -1 : 0);
    SHOW("private_rw_on_ro", mmap(0, P, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0) == MAP_FAILED ? -1 : 0);
    return 0;
}
"""


def _data() -> bytes:
    return b"first" + b"." * 4091 + b"second" + b"," * 4000


async def test_memory_syscalls_match_linux(tmp_path):
    prog = build_c(tmp_path, "mm", PROGRAM, "-static")
    data_path = tmp_path / "data"
    data_path.write_bytes(_data())
    native = subprocess.run([prog, str(data_path)], capture_output=True)
    assert native.returncode == 0, native.stderr
    shutil.copy(prog, tmp_path / "copy")
    status, out, k, _ = await run_vfs(["/mm", "/data"], {"/mm": prog, "/data": _data()})
    assert status == 0, (out, k.events)
    assert out.decode().splitlines() == native.stdout.decode().splitlines()
