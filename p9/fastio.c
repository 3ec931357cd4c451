/* p9._fastio: p9's loops in C: sequential reads and metadata (see p9/_fastio_build.py for why).
 * Built by cffi at install time (setup.py's cffi_modules) with -Wall -Werror. */
#ifndef _GNU_SOURCE  /* Python.h (included first by cffi) defines it already */
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
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

/* Receive the next requests into in[0:*len] for a loop that answered all it had: 0, or
 * P9F_EOF, P9F_EMPTY (nothing came within spin_ns; between polls the CPU is yielded, so a
 * client on this CPU runs meanwhile), or -errno. */
static long receive(int sock, uint8_t *in, size_t incap, long spin_ns, size_t *len) {
    long deadline = spin_ns ? now_ns() + spin_ns : 0;
    for (;;) {
        ssize_t r = recv(sock, in, incap, MSG_DONTWAIT);
        if (r > 0) {
            *len = (size_t)r;
            return 0;
        }
        if (r == 0) return P9F_EOF;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        if (!spin_ns || now_ns() >= deadline) return P9F_EMPTY;
        sched_yield();
    }
}

/* Hand in[pos:len] back to Python (moved to the front: *have bytes) and return st. */
static long hand_back(uint8_t *in, size_t pos, size_t len, size_t *have, long st) {
    memmove(in, in + pos, len - pos);
    *have = len - pos;
    return st;
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
            return hand_back(in, pos, len, have, st);  /* P9F_PARTIAL or P9F_MORE */
        }
        if (pos < len)  /* something else (or a partial frame): Python's */
            return hand_back(in, pos, len, have, P9F_MORE);
        if (*served >= budget) return P9F_BUDGET;
        pos = 0;
        st = receive(sock, in, incap, spin_ns, &len);
        if (st) return st;
    }
}


/* --- the metadata loop: Twalk, Twalkgetattr, Tgetattr, Tclunk (see p9/_cmeta.py) -------- */

#define P9F_NAMES 4       /* names per walk C takes (a Twalk may have 16) */
struct p9f_cfid {
    uint32_t fid, parent, mode;
    int32_t fd;           /* the file's O_PATH descriptor; -1: the slot is free */
    int32_t up[3];        /* the directories a walk of several names went through */
    uint64_t qpath, dev;
    uint16_t namelen;     /* names: nnames times len[1] name[len], namelen bytes */
    uint8_t nnames, qtype;
    uint8_t names[P9F_NAMES * 256];
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
    uint32_t walkgetattr; /* the dialect has Twalkgetattr */
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

static void put_qid(uint8_t *p, uint8_t qtype, uint64_t qpath) {
    p[0] = qtype; put32(p + 1, 0); put64(p + 5, qpath);
}

static void close_all(const int *fds, int n) {
    for (int i = 0; i < n; i++) close(fds[i]);
}

#define DECLINE ((size_t)0)

static size_t meta_getattr(struct p9f_meta *mt, const uint8_t *f, uint16_t tag, uint64_t v) {
    uint8_t *p = mt->out;
    struct stat st;
    if ((v & 3) != 2 || (get64(f + 11) & 0x800)) return DECLINE;  /* btime: Python's */
    struct p9f_cfid *c = &mt->c[v >> 2];
    if (fstat(c->fd, &st) < 0) return rlerror(p, tag, errno);
    if ((uint64_t)st.st_dev != c->dev || st.st_atim.tv_sec < 0 || st.st_mtim.tv_sec < 0
        || st.st_ctim.tv_sec < 0)
        return DECLINE;
    put32(p, 160); p[4] = 25; put16(p + 5, tag);
    put64(p + 7, 0x7FF);
    put_qid(p + 15, qtype_of(st.st_mode), (uint64_t)st.st_ino);
    put32(p + 28, st.st_mode); put32(p + 32, st.st_uid); put32(p + 36, st.st_gid);
    put64(p + 40, st.st_nlink); put64(p + 48, st.st_rdev); put64(p + 56, st.st_size);
    put64(p + 64, st.st_blksize); put64(p + 72, st.st_blocks);
    put64(p + 80, st.st_atim.tv_sec); put64(p + 88, st.st_atim.tv_nsec);
    put64(p + 96, st.st_mtim.tv_sec); put64(p + 104, st.st_mtim.tv_nsec);
    put64(p + 112, st.st_ctim.tv_sec); put64(p + 120, st.st_ctim.tv_nsec);
    memset(p + 128, 0, 32);  /* btime, gen, data_version: not asked */
    return 160;
}

/* Twalk (110) or Twalkgetattr (126) of 1..P9F_NAMES names from a walk source to a free fid:
 * what the gofer's walk does, name by name (openat2 beneath the directory, fstat for the
 * qid); for Twalkgetattr then statx of the last, as its getattr with btime does. */
static size_t meta_walk(struct p9f_meta *mt, const uint8_t *f, uint32_t size, uint16_t tag,
                        uint32_t fid, uint64_t v, uint32_t cred, uint32_t room) {
    uint8_t *out = mt->out;
    int getattr = f[4] == 126;
    uint32_t newfid = get32(f + 11);
    unsigned n = f[15] | f[16] << 8;
    const uint8_t *name[P9F_NAMES];
    unsigned len[P9F_NAMES];
    /* (newfid == fid is caught by tab[newfid], nonzero for the walk source itself) */
    if ((v & 3) != 3 || newfid >= P9F_NTAB || mt->tab[newfid]
        || n == 0 || n > P9F_NAMES || (getattr && !mt->walkgetattr))
        return DECLINE;
    uint32_t at = 17;
    for (unsigned i = 0; i < n; i++) {  /* each name one plain component, filling the frame */
        if (at + 2 > size) return DECLINE;
        len[i] = f[at] | f[at + 1] << 8;
        name[i] = f + at + 2;
        at += 2 + len[i];
        if (at > size || len[i] == 0 || len[i] > 255 || memchr(name[i], '/', len[i])
            || memchr(name[i], 0, len[i])
            || (name[i][0] == '.' && (len[i] == 1 || (len[i] == 2 && name[i][1] == '.'))))
            return DECLINE;
    }
    if (at != size) return DECLINE;
    uint32_t tok = (v >> 24) & 0xFF;
    if ((tok && tok != cred) || mt->nc >= room || mt->nc >= P9F_NC) return DECLINE;
    unsigned x = (v >> 32) & 0x3F;
    int fds[P9F_NAMES];
    uint8_t qt[P9F_NAMES];
    uint64_t qp[P9F_NAMES];
    struct stat st;
    unsigned k;
    int dir = (int)((v >> 2) & 0x3FFFFF);
    for (k = 0; k < n; k++) {
        char z[256];
        memcpy(z, name[k], len[k]);
        z[len[k]] = 0;
        struct p9f_open_how how = {O_PATH | O_NOFOLLOW | O_CLOEXEC, 0, mt->xresolve[x]};
        long fd = syscall(SYS_openat2, k ? fds[k - 1] : dir, z, &how, sizeof how);
        if (fd < 0) {
            int e = errno;
            close_all(fds, k);
            if (k == 0) return rlerror(out, tag, e == EXDEV ? ENOENT : e);
            break;  /* walked part of the way: the qids so far, no new fid */
        }
        fds[k] = (int)fd;
        if (fstat(fds[k], &st) < 0) {
            int e = errno;
            close_all(fds, k + 1);
            return rlerror(out, tag, e);
        }
        if ((uint64_t)st.st_dev != mt->xdev[x]) { close_all(fds, k + 1); return DECLINE; }
        qt[k] = qtype_of(st.st_mode);
        qp[k] = st.st_ino;
    }
    size_t head = getattr ? 7 + 8 + 132 : 7;
    size_t total = head + 2 + 13 * (size_t)k;
    memset(out, 0, head);
    put32(out, (uint32_t)total); out[4] = getattr ? 127 : 111; put16(out + 5, tag);
    put16(out + head, (uint16_t)k);
    for (unsigned i = 0; i < k; i++) put_qid(out + head + 2 + 13 * i, qt[i], qp[i]);
    if (k < n) return total;  /* Rwalk / Rwalkgetattr (valid 0) of the qids walked */
    if (getattr) {
        struct statx sx;
        if (statx(fds[n - 1], "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW,
                  STATX_BASIC_STATS | STATX_BTIME, &sx) < 0) {
            int e = errno;
            close_all(fds, n);
            return rlerror(out, tag, e);
        }
        if (makedev(sx.stx_dev_major, sx.stx_dev_minor) != mt->xdev[x]
            || sx.stx_atime.tv_sec < 0 || sx.stx_mtime.tv_sec < 0 || sx.stx_ctime.tv_sec < 0
            || sx.stx_btime.tv_sec < 0) {
            close_all(fds, n);
            return DECLINE;
        }
        int bt = (sx.stx_mask & STATX_BTIME) != 0;
        uint8_t *p = out + 7;
        put64(p, 0x7FF | (bt ? 0x800 : 0));
        put32(p + 8, sx.stx_mode); put32(p + 12, sx.stx_uid); put32(p + 16, sx.stx_gid);
        put64(p + 20, sx.stx_nlink);
        put64(p + 28, makedev(sx.stx_rdev_major, sx.stx_rdev_minor));
        put64(p + 36, sx.stx_size); put64(p + 44, sx.stx_blksize); put64(p + 52, sx.stx_blocks);
        put64(p + 60, sx.stx_atime.tv_sec); put64(p + 68, sx.stx_atime.tv_nsec);
        put64(p + 76, sx.stx_mtime.tv_sec); put64(p + 84, sx.stx_mtime.tv_nsec);
        put64(p + 92, sx.stx_ctime.tv_sec); put64(p + 100, sx.stx_ctime.tv_nsec);
        if (bt) { put64(p + 108, sx.stx_btime.tv_sec); put64(p + 116, sx.stx_btime.tv_nsec); }
        /* gen, data_version and an absent btime stay 0 */
    }
    unsigned slot = 0;
    while (mt->c[slot].fd >= 0) slot++;
    struct p9f_cfid *c = &mt->c[slot];
    c->fid = newfid; c->parent = fid; c->mode = st.st_mode; c->fd = fds[n - 1];
    for (unsigned i = 0; i + 1 < n; i++) c->up[i] = fds[i];
    c->qpath = qp[n - 1]; c->dev = st.st_dev; c->qtype = qt[n - 1];
    c->nnames = (uint8_t)n;
    c->namelen = 0;
    for (unsigned i = 0; i < n; i++) {
        c->names[c->namelen++] = (uint8_t)len[i];
        memcpy(c->names + c->namelen, name[i], len[i]);
        c->namelen += len[i];
    }
    mt->nc++;
    mt->tab[newfid] = 2 | (uint64_t)slot << 2;
    return total;
}

/* One frame: the reply's length in mt->out, or DECLINE (Python answers it). */
static size_t meta_one(struct p9f_meta *mt, const uint8_t *f, uint32_t size,
                       uint32_t cred, uint32_t room) {
    uint16_t tag = f[5] | f[6] << 8;
    uint32_t fid = get32(f + 7);
    if (fid >= P9F_NTAB) return DECLINE;
    uint64_t v = mt->tab[fid];
    if (f[4] == 120 && size == 11) {  /* Tclunk of a fid C owns */
        if ((v & 3) != 2) return DECLINE;
        struct p9f_cfid *c = &mt->c[v >> 2];
        close(c->fd);
        for (unsigned i = 0; i + 1 < c->nnames; i++) close(c->up[i]);
        c->fd = -1;
        mt->nc--;
        mt->tab[fid] = 0;
        put32(mt->out, 7); mt->out[4] = 121; put16(mt->out + 5, tag);
        return 7;
    }
    if (f[4] == 24 && size == 19) return meta_getattr(mt, f, tag, v);
    if ((f[4] == 110 || f[4] == 126) && size >= 17) return meta_walk(mt, f, size, tag, fid, v, cred, room);
    return DECLINE;
}

long p9f_serve_meta(int sock, struct p9f_meta *mt, uint32_t cred, uint32_t room,
                    uint8_t *in, size_t inlen, size_t incap, size_t *have,
                    size_t *sent, size_t *total, long spin_ns, long budget, long *served) {
    size_t pos = 0, len = inlen;
    long st;
    *have = 0;
    *served = 0;
    for (;;) {
        while (len - pos >= 7 && *served < budget) {
            uint32_t size = get32(in + pos);
            if (size < 7 || size > 17 + P9F_NAMES * 257 || len - pos < size) break;
            size_t n = meta_one(mt, in + pos, size, cred, room);
            if (n == DECLINE) break;
            pos += size;
            ++*served;
            st = send_whole(sock, mt->out, n, sent, total);
            if (st < 0) return st;
            if (st)  /* P9F_PARTIAL: the rest of mt->out goes through Python */
                return hand_back(in, pos, len, have, st);
        }
        if (pos < len)  /* a frame not ours, or not whole yet: Python's */
            return hand_back(in, pos, len, have, P9F_MORE);
        if (*served >= budget) return P9F_BUDGET;
        pos = 0;
        st = receive(sock, in, incap, spin_ns, &len);
        if (st) return st;
    }
}
