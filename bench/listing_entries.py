"""The per-entry cost of caching a Treaddirattr listing in GoferFS (`GoferFS.add_listed`):
CPU µs and Python calls (cProfile's count) per listed entry, for one source tree.

An in-process gofer exports `--dir`; its listing with attributes is fetched once, then
given to `add_listed` for `--rounds` fresh parent directories (each entry then becomes a
dentry with its inode, as getdents64 of a directory not listed before does).

    .venv/bin/python bench/listing_entries.py --dir /usr/lib/x86_64-linux-gnu
    .venv/bin/python bench/listing_entries.py --tree /tmp/other-worktree ...
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from typing import Any


async def measure(args: argparse.Namespace) -> tuple[float, float, int]:
    import p9
    from gofer.host import Export
    from tests.gofer.helpers import connect, gofer_fs
    from vfs.dentry import Dentry
    from vfs.fs.goferfs import GoferFS
    from vfs.fs.goferfs.inode import GoferInode

    async with gofer_fs([Export("e", args.dir)]) as (gfs, nursery):
        async with connect(gfs, nursery) as client:
            fs = await GoferFS.attach(client, b"e", policy="exclusive")
            fs.listed_limit = 1 << 30  # (the bound's evictions are not what is measured)
            fid, got, _ = await fs.root.inode.fid.open_dir_attr()  # type: ignore[attr-defined]
            await fid.clunk()
            parents = [Dentry(fs, b"p%d" % i, fs.root, GoferInode(p9.Stat(
                p9.Qid(0x80, 0, (1 << 62) + i), 0x7FF, p9.Attr(mode=0o40755, nlink=2))))
                for i in range(args.rounds)]
            prof = cProfile.Profile() if args.calls else None
            t0 = time.process_time()
            if prof:
                prof.enable()
            for p in parents:
                fs.add_listed(p, 0, fs.generation, got)
            if prof:
                prof.disable()
            cpu = time.process_time() - t0
            calls = 0
            if prof:
                calls = sum(v[1] for v in pstats.Stats(prof).stats.values())  # type: ignore[attr-defined]
            n = len(got) * args.rounds
            await fs.release()
            return cpu / n * 1e6, calls / n, len(got)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", default="/usr/lib/x86_64-linux-gnu")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--tree", help="source tree to measure (default: this one)")
    ap.add_argument("--calls", action="store_true", help="count Python calls (cProfile)")
    args = ap.parse_args()
    tree = os.path.abspath(args.tree or os.path.join(os.path.dirname(__file__), ".."))
    sys.path.insert(0, tree)
    import trio

    r: Any = trio.run(measure, args)
    print(f"{tree}: {r[2]} entries, {r[0]:.2f} µs CPU per entry"
          + (f", {r[1]:.1f} calls per entry" if args.calls else ""))


if __name__ == "__main__":
    main()
