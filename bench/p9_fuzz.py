#!/usr/bin/env python3
"""The 9P fuzzers' long run: the codec, then the gofer's server on its C and Python paths,
each for as long as asked, with tests/p9/fuzz9p.py's random requests (a seeded
random.Random instead of hypothesis, for speed) and the same checks as the tests
(tests/p9/test_fuzz_codec.py, tests/gofer/test_fuzz_9p.py).

- codec: streams of 1-8 random frames (valid and malformed, cut anywhere) through
  FrameDecoder; an input is one frame.
- server: sessions of 1-60 requests on fresh connections to an in-process gofer over a
  socketpair, alternating the C loops and pure Python (as RUNPSC_NO_CFFI) every round of
  --sessions connections; each round has a fresh export and checks afterwards that no
  descriptor is left and nothing was made outside the export. An input is one request.

Prints inputs, inputs/s, violations (a crash: an exception other than the protocol error,
a wrong or missing reply, an internal error logged), hangs (a request or its flush
unanswered within --timeout), the peak RSS and descriptors at the end against the start.

    .venv/bin/python bench/p9_fuzz.py [--codec-seconds 120] [--server-seconds 480]
                                      [--seed 1] [--sessions 200] [--timeout 30]

Not a test: run it as root (the gofer switches identities), for as long as wanted.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import p9._cloops as cloops_mod  # noqa: E402
from gofer.host import Export  # noqa: E402
from gofer.serve import GoferOptions, serve_stream  # noqa: E402
from tests.gofer.helpers import gofer_fs, open_fds  # noqa: E402
from tests.p9.fuzz9p import (  # noqa: E402
    ErrorLog,
    RandomChooser,
    Violation,
    check_codec,
    check_tree,
    make_export,
    request,
    run_sequence,
    sequence,
)

#: The gofer's settings, without the spin: polling an empty socket between requests (with
#: sched_yield) was a quarter of the time, and only the timing of a wait depends on it.
OPTIONS = GoferOptions(spin_us=0)


class Tally:
    def __init__(self, name: str) -> None:
        self.name = name
        self.inputs = self.violations = self.hangs = 0
        self.seconds = 0.0
        self.first: list[str] = []

    def fail(self, what: str, seed: int) -> None:
        if "no answer within" in what:
            self.hangs += 1
        else:
            self.violations += 1
        if len(self.first) < 5:
            self.first.append(f"seed {seed}: {what[:400]}")

    def line(self) -> str:
        rate = self.inputs / self.seconds if self.seconds else 0
        return (f"{self.name}: {self.inputs} inputs in {self.seconds:.0f} s ({rate:.0f}/s), "
                f"violations {self.violations}, hangs {self.hangs}")


def fuzz_codec(seconds: float, seed: int, tally: Tally) -> None:
    ch = RandomChooser(seed)
    end = time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < end:
        for _ in range(200):
            frames = [request(ch, allow_fatal=False).frame for _ in range(ch.int(1, 8))]
            cuts = sorted(ch.int(0, sum(map(len, frames))) for _ in range(ch.int(0, 6)))
            try:
                check_codec(frames, cuts)
            except Violation as e:
                tally.fail(str(e), seed)
            tally.inputs += len(frames)
            blob = ch.bytes(300)
            try:
                check_codec([blob], [], raw=True)
            except Violation as e:
                tally.fail(str(e), seed)
            tally.inputs += 1
    tally.seconds += time.monotonic() - start


async def server_round(seed: int, sessions: int, timeout: float, tally: Tally) -> None:
    root = tempfile.mkdtemp(prefix="p9-fuzz-")
    try:
        exp = make_export(root)
        fds = open_fds()
        with ErrorLog() as log:
            async with gofer_fs([Export("e", exp)]) as (fs, _nursery):
                for i in range(sessions):
                    ch = RandomChooser(seed * 100_003 + i)
                    reqs = sequence(ch, ch.int(1, 60))
                    try:
                        tally.inputs += await run_sequence(
                            lambda s: serve_stream(s, fs, OPTIONS), reqs, timeout, 0.02)
                    except Violation as e:
                        tally.fail(str(e), seed * 100_003 + i)
        for r in log.records:
            tally.fail(f"logged: {r.getMessage()}", seed)
        if open_fds() != fds:
            tally.fail(f"descriptors {fds} -> {open_fds()}", seed)
        try:
            check_tree(root)
        except Violation as e:
            tally.fail(str(e), seed)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec-seconds", type=float, default=120)
    ap.add_argument("--server-seconds", type=float, default=480)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    fds0 = open_fds()
    codec = Tally("codec")
    fuzz_codec(args.codec_seconds, args.seed, codec)
    print(codec.line(), flush=True)
    paths = {"c": Tally("server, C loops"), "python": Tally("server, Python")}
    fastio = cloops_mod._fastio
    if fastio is None:
        print("p9._fastio is not built: the C path is not fuzzed", flush=True)
    end = time.monotonic() + args.server_seconds
    seed = args.seed
    while time.monotonic() < end:
        for name, lib in (("c", fastio), ("python", None)):
            if name == "c" and lib is None:
                continue
            cloops_mod._fastio = lib
            t0 = time.monotonic()
            trio.run(server_round, seed, args.sessions, args.timeout, paths[name])
            paths[name].seconds += time.monotonic() - t0
        seed += 1
    cloops_mod._fastio = fastio
    for t in (codec, *paths.values()):
        print(t.line())
        for f in t.first:
            print("   ", f)
    total = codec.inputs + sum(t.inputs for t in paths.values())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"total: {total} inputs; peak RSS {rss // 1024} MiB; descriptors {fds0} at the "
          f"start, {open_fds()} at the end")
    bad = sum(t.violations + t.hangs for t in (codec, *paths.values()))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
