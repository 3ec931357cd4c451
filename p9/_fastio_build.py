"""cffi build script for p9's loops in C (`p9._fastio`): sequential reads, and metadata.

Why C: a client with one Tread in flight (diodcat, a program reading a file through the
Sentry) waits for each reply; per request the Python server costs ~20 µs of interpreter
on top of the three system calls (receive, pread, send) that diod, in C, pays alone.
`p9f_serve_reads` answers a run of Treads for one fid entirely in C: it answers the one
the server already decoded, then those already received after it, then keeps receiving,
and answers every following request that is a well-formed Tread of the same fid, until
something else arrives (handed back to Python), the socket would block (after an optional
short spin), a reply cannot be sent whole within 2 ms (`send_whole`), or a budget runs out.
No Python runs meanwhile, so the fid cannot change under it.
`p9f_serve_meta` does the same for runs of one-name Twalks, Tgetattrs and Tclunks, over the
fid table described in p9/_cmeta.py.
Both loops, when the socket is empty, spin for the next request with sched_yield() between
polls: a client on the same CPU then runs at once (a bare spin kept it off the CPU until the
spin ran out: on one CPU, diodls went from 8,000 to 16,000-19,000 names/s with the yield).
Built at install time (setup.py's cffi_modules); without it the server uses its Python
paths (p9/_server.py), with the same answers.
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

    struct p9f_cfid {
        uint32_t fid, parent, mode;
        int32_t fd;
        uint64_t qpath, dev;
        uint16_t namelen;
        uint8_t qtype;
        uint8_t name[256];
    };
    struct p9f_meta {
        uint64_t tab[16384];
        uint64_t xdev[64];
        uint64_t xresolve[64];
        struct p9f_cfid c[16];
        uint32_t nc;
        uint8_t out[256];
    };
    long p9f_serve_meta(int sock, struct p9f_meta *mt, uint32_t cred, uint32_t room,
                        uint8_t *in, size_t inlen, size_t incap, size_t *have,
                        size_t *sent, size_t *total, long spin_ns, long budget, long *served);
    """
)
ffibuilder.set_source(
    "p9._fastio",
    r"""
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
            sched_yield();
        }
        len = (size_t)r;
    }
}


/* --- the metadata loop: Twalk of one name, Tgetattr, Tclunk (see p9/_cmeta.py) ----------- */

struct p9f_cfid {
    uint32_t fid, parent, mode;
    int32_t fd;           /* -1: the slot is free */
    uint64_t qpath, dev;
    uint16_t namelen;
    uint8_t qtype;
    uint8_t name[256];
};
#define P9F_NTAB 16384    /* fids below this are tracked in tab */
#define P9F_NC 16         /* fids C may own at once */
struct p9f_meta {
    /* tab[fid]: bits 0-1 state: 0 free, 1 Python's, 2 C's (slot in bits 2+),
     * 3 Python's and a walk source: fd in bits 2-23, credential token in bits 24-31,
     * export index (into xdev/xresolve) in bits 32-37. */
    uint64_t tab[P9F_NTAB];
    uint64_t xdev[64];
    uint64_t xresolve[64];
    struct p9f_cfid c[P9F_NC];
    uint32_t nc;
    uint8_t out[256];
};

struct p9f_open_how { uint64_t flags, mode, resolve; };

static void put16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, v >> 32); }

static uint8_t qtype_of(uint32_t mode) {
    return S_ISDIR(mode) ? 0x80 : S_ISLNK(mode) ? 0x02 : 0;
}

static size_t rlerror(uint8_t *out, uint16_t tag, int err) {
    put32(out, 11); out[4] = 7; put16(out + 5, tag); put32(out + 7, (uint32_t)err);
    return 11;
}

#define DECLINE ((size_t)0)

/* One frame: the reply's length in mt->out, or DECLINE (Python answers it). */
static size_t meta_one(struct p9f_meta *mt, const uint8_t *f, uint32_t size,
                       uint32_t cred, uint32_t room) {
    uint8_t *out = mt->out;
    uint16_t tag = f[5] | f[6] << 8;
    uint32_t fid = get32(f + 7);
    struct stat st;
    if (fid >= P9F_NTAB) return DECLINE;
    uint64_t v = mt->tab[fid];
    if (f[4] == 120 && size == 11) {  /* Tclunk of a fid C owns */
        if ((v & 3) != 2) return DECLINE;
        struct p9f_cfid *c = &mt->c[v >> 2];
        close(c->fd);
        c->fd = -1;
        mt->nc--;
        mt->tab[fid] = 0;
        put32(out, 7); out[4] = 121; put16(out + 5, tag);
        return 7;
    }
    if (f[4] == 24 && size == 19) {  /* Tgetattr of the basic fields, of a fid C owns */
        if ((v & 3) != 2 || (get64(f + 11) & 0x800)) return DECLINE;
        struct p9f_cfid *c = &mt->c[v >> 2];
        if (fstat(c->fd, &st) < 0) return rlerror(out, tag, errno);
        if ((uint64_t)st.st_dev != c->dev || st.st_atim.tv_sec < 0 || st.st_mtim.tv_sec < 0
            || st.st_ctim.tv_sec < 0)
            return DECLINE;
        uint8_t *p = out;
        put32(p, 160); p[4] = 25; put16(p + 5, tag);
        put64(p + 7, 0x7FF);
        p[15] = qtype_of(st.st_mode); put32(p + 16, 0); put64(p + 20, (uint64_t)st.st_ino);
        put32(p + 28, st.st_mode); put32(p + 32, st.st_uid); put32(p + 36, st.st_gid);
        put64(p + 40, st.st_nlink); put64(p + 48, st.st_rdev); put64(p + 56, st.st_size);
        put64(p + 64, st.st_blksize); put64(p + 72, st.st_blocks);
        put64(p + 80, st.st_atim.tv_sec); put64(p + 88, st.st_atim.tv_nsec);
        put64(p + 96, st.st_mtim.tv_sec); put64(p + 104, st.st_mtim.tv_nsec);
        put64(p + 112, st.st_ctim.tv_sec); put64(p + 120, st.st_ctim.tv_nsec);
        memset(p + 128, 0, 32);  /* btime, gen, data_version: not asked */
        return 160;
    }
    if (f[4] != 110 || size < 19 || get32(f + 15) != (1u | (uint32_t)(size - 19) << 16))
        return DECLINE;  /* not a Twalk of exactly one name filling the frame */
    /* Twalk of one name from a walk source to a free fid. */
    uint32_t newfid = get32(f + 11), len = size - 19;
    const uint8_t *name = f + 19;
    if ((v & 3) != 3 || newfid >= P9F_NTAB || mt->tab[newfid] || newfid == fid) return DECLINE;
    if (len == 0 || len > 255 || memchr(name, '/', len) || memchr(name, 0, len)
        || (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.'))))
        return DECLINE;
    uint32_t tok = (v >> 24) & 0xFF;
    if ((tok && tok != cred) || mt->nc >= room || mt->nc >= P9F_NC) return DECLINE;
    unsigned slot = 0;
    while (mt->c[slot].fd >= 0) slot++;
    unsigned x = (v >> 32) & 0x3F;
    struct p9f_cfid *c = &mt->c[slot];
    char z[256];
    memcpy(z, name, len);
    z[len] = 0;
    struct p9f_open_how how = {O_PATH | O_NOFOLLOW | O_CLOEXEC, 0, mt->xresolve[x]};
    long fd = syscall(SYS_openat2, (int)((v >> 2) & 0x3FFFFF), z, &how, sizeof how);
    if (fd < 0) return rlerror(out, tag, errno == EXDEV ? ENOENT : errno);
    if (fstat((int)fd, &st) < 0) {
        int e = errno;
        close((int)fd);
        return rlerror(out, tag, e);
    }
    if ((uint64_t)st.st_dev != mt->xdev[x]) { close((int)fd); return DECLINE; }
    c->fid = newfid; c->parent = fid; c->mode = st.st_mode; c->fd = (int32_t)fd;
    c->qpath = st.st_ino; c->dev = st.st_dev; c->qtype = qtype_of(st.st_mode);
    c->namelen = (uint16_t)len;
    memcpy(c->name, name, len);
    mt->nc++;
    mt->tab[newfid] = 2 | (uint64_t)slot << 2;
    put32(out, 22); out[4] = 111; put16(out + 5, tag); put16(out + 7, 1);
    out[9] = c->qtype; put32(out + 10, 0); put64(out + 14, c->qpath);
    return 22;
}

long p9f_serve_meta(int sock, struct p9f_meta *mt, uint32_t cred, uint32_t room,
                    uint8_t *in, size_t inlen, size_t incap, size_t *have,
                    size_t *sent, size_t *total, long spin_ns, long budget, long *served) {
    size_t pos = 0, len = inlen;
    *have = 0;
    *served = 0;
    for (;;) {
        while (len - pos >= 7 && *served < budget) {
            uint32_t size = get32(in + pos);
            if (size < 7 || size > 7 + 12 + 255 || len - pos < size) break;
            size_t n = meta_one(mt, in + pos, size, cred, room);
            if (n == DECLINE) break;
            pos += size;
            ++*served;
            long st = send_whole(sock, mt->out, n, sent, total);
            if (st < 0) return st;
            if (st) {  /* P9F_PARTIAL: the rest of mt->out goes through Python */
                memmove(in, in + pos, len - pos);
                *have = len - pos;
                return st;
            }
        }
        if (pos < len) {  /* a frame not ours, or not whole yet: Python's */
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
            sched_yield();
        }
        len = (size_t)r;
    }
}
""",
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
