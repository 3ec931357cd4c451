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
The C is in `p9/fastio.c` (this file holds its cdef), compiled with -Wall -Werror; not named
`_fastio.c`: run as a script, cffi writes its generated wrapper to `p9/_fastio.c`.
"""

import os

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
        int32_t up[3];
        uint64_t qpath, dev;
        uint16_t namelen;
        uint8_t nnames, qtype;
        uint8_t names[1024];
    };
    struct p9f_meta {
        uint64_t tab[16384];
        uint64_t xdev[64];
        uint64_t xresolve[64];
        struct p9f_cfid c[16];
        uint32_t nc;
        uint32_t walkgetattr;
        uint8_t out[256];
    };
    long p9f_serve_meta(int sock, struct p9f_meta *mt, uint32_t cred, uint32_t room,
                        uint8_t *in, size_t inlen, size_t incap, size_t *have,
                        size_t *sent, size_t *total, long spin_ns, long budget, long *served);
    """
)
ffibuilder.set_source(
    "p9._fastio",
    '#include "fastio.c"',
    include_dirs=[os.path.dirname(os.path.abspath(__file__))],
    extra_compile_args=["-Wall", "-Werror"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
