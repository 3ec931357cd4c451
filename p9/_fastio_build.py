"""cffi build script for p9's sequential-read loop in C (`p9._fastio`).

Why C: a client with one Tread in flight (diodcat, a program reading a file through the
Sentry) waits for each reply; per request the Python server costs ~20 µs of interpreter
on top of the three system calls (receive, pread, send) that diod, in C, pays alone.
`p9f_serve_reads` answers a run of Treads for one fid entirely in C: it answers the one
the server already decoded, then those already received after it, then keeps receiving,
and answers every following request that is a well-formed Tread of the same fid, until
something else arrives (handed back to Python), the socket would block (after an optional
short spin), a reply cannot be sent whole within 2 ms (`send_whole`), or a budget runs out.
No Python runs meanwhile, so the fid cannot change under it. Built at install time
(setup.py's cffi_modules); without it the server uses its Python fast path
(p9/_server.py), with the same answers.
"""

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    long p9f_serve_reads(int sock, int fd, uint32_t fid, uint32_t maxcount,
                         uint16_t tag, uint64_t offset, uint32_t count,
                         uint8_t *in, size_t inlen, size_t incap, size_t *have,
                         uint8_t *out, size_t *sent, size_t *total,
                         long spin_ns, long budget, long *served);
    #define P9F_FAIL ...
    #define P9F_PARTIAL ...
    #define P9F_MORE ...
    #define P9F_EMPTY ...
    #define P9F_EOF ...
    #define P9F_BUDGET ...
    """
)
ffibuilder.set_source(
    "p9._fastio",
    r"""
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define P9F_FAIL 1     /* the given Tread was not answered (pread failed, offset too big) */
#define P9F_PARTIAL 2  /* a reply is partly sent: out[*sent:*total] must still be sent */
#define P9F_MORE 3     /* in[0:*have] holds received bytes that are not ours to answer */
#define P9F_EMPTY 4    /* all answered; the socket has nothing more (after the spin) */
#define P9F_EOF 5      /* the peer closed its side */
#define P9F_BUDGET 6   /* all answered; the budget is spent */

static uint32_t get32(const uint8_t *p) {
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }
static void put32(uint8_t *p, uint32_t v) {
    p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24;
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Send out[0:len]: 0 when whole, P9F_PARTIAL (*sent of *total gone), or -errno.
 *
 * A reply larger than the socket's send buffer (a 1 MiB Rread over TCP, whose buffer holds
 * a few hundred KiB) cannot go in one send. Rather than hand the rest to Python, which
 * waits through trio (an epoll pass and a scheduler pass for every refill, about a fifth of
 * the time of a 1 MiB reply here), wait for room with poll() for at most WAIT_NS, during
 * which the client drains the socket; only a client that stops reading for that long makes
 * the rest go back to Python (P9F_PARTIAL), so it delays other connections by at most that. */
#define WAIT_NS 2000000L
static long send_whole(int sock, const uint8_t *out, size_t len, size_t *sent, size_t *total) {
    size_t done = 0;
    long deadline = 0;
    for (;;) {
        ssize_t s;
        do s = send(sock, out + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (s < 0 && errno == EINTR);
        if (s < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        if (s > 0) done += (size_t)s;
        if (done == len) return 0;
        long now = now_ns();
        if (!deadline) deadline = now + WAIT_NS;
        if (now >= deadline) break;
        struct pollfd p = {.fd = sock, .events = POLLOUT};
        int ms = (int)((deadline - now + 999999) / 1000000);
        if (poll(&p, 1, ms) < 0 && errno != EINTR) return -errno;
    }
    *sent = done;
    *total = len;
    return P9F_PARTIAL;
}

/* Answer one Tread: 0 sent whole, P9F_FAIL (nothing sent), P9F_PARTIAL, or -errno. */
static long answer(int sock, int fd, uint32_t maxcount, uint16_t tag, uint64_t offset,
                   uint32_t count, uint8_t *out, size_t *sent, size_t *total) {
    ssize_t n;
    if (offset > (uint64_t)INT64_MAX) return P9F_FAIL;
    if (count > maxcount) count = maxcount;
    do n = pread(fd, out + 11, count, (off_t)offset); while (n < 0 && errno == EINTR);
    if (n < 0) return P9F_FAIL;
    put32(out, 11 + (uint32_t)n);
    out[4] = 117; /* Rread */
    out[5] = tag; out[6] = tag >> 8;
    put32(out + 7, (uint32_t)n);
    return send_whole(sock, out, 11 + (size_t)n, sent, total);
}

long p9f_serve_reads(int sock, int fd, uint32_t fid, uint32_t maxcount,
                     uint16_t tag, uint64_t offset, uint32_t count,
                     uint8_t *in, size_t inlen, size_t incap, size_t *have,
                     uint8_t *out, size_t *sent, size_t *total,
                     long spin_ns, long budget, long *served) {
    size_t pos = 0, len = inlen;  /* in[0:inlen]: requests already received after this one */
    long st;
    *have = 0;
    *served = 0;
    st = answer(sock, fd, maxcount, tag, offset, count, out, sent, total);
    if (st) {  /* P9F_FAIL: the caller answers it; or PARTIAL; or -errno */
        *have = inlen;  /* the requests after it go back untouched */
        return st;
    }
    *served = 1;
    for (;;) {
        /* The next whole frame in the buffer, if any. */
        if (len - pos >= 23 && get32(in + pos) == 23 && in[pos + 4] == 116
            && get32(in + pos + 7) == fid && get64(in + pos + 11) <= (uint64_t)INT64_MAX
            && *served < budget) {
            const uint8_t *f = in + pos;
            uint16_t t = f[5] | f[6] << 8;
            pos += 23;
            st = answer(sock, fd, maxcount, t, get64(f + 11), get32(f + 19), out, sent, total);
            if (st == P9F_FAIL) {
                pos -= 23;  /* hand the frame back: the generic path reports the error */
                st = P9F_MORE;
            } else if (st == 0) {
                ++*served;
                continue;
            }
            if (st < 0) return st;
            memmove(in, in + pos, len - pos);
            *have = len - pos;
            return st;  /* P9F_PARTIAL or P9F_MORE, leftover input handed back */
        }
        if (pos < len) {  /* something else (or a partial frame): Python's */
            memmove(in, in + pos, len - pos);
            *have = len - pos;
            return P9F_MORE;
        }
        if (*served >= budget) return P9F_BUDGET;
        pos = len = 0;
        ssize_t r;
        long deadline = spin_ns ? now_ns() + spin_ns : 0;
        for (;;) {
            r = recv(sock, in, incap, MSG_DONTWAIT);
            if (r > 0) break;
            if (r == 0) return P9F_EOF;
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
            if (!spin_ns || now_ns() >= deadline) return P9F_EMPTY;
        }
        len = (size_t)r;
    }
}
""",
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
