#!/usr/bin/env python3
"""Generate sentry/kernel/_ptrace_names.py: python-ptrace's x86_64 syscall name table, as
a plain dict (never edit that file by hand).

    scripts/gen_ptrace_names.py            # rewrite sentry/kernel/_ptrace_names.py
    scripts/gen_ptrace_names.py --check    # exit 1 if it differs from python-ptrace's

Why a copy: importing `ptrace.syscall.linux.x86_64` first runs python-ptrace's package
`__init__`s, which load its whole debugger (argument decoders, ctypes bindings, logging):
5-10 ms of every `runpsc do`, for a dict (bench/RESULTS.md). tests/sentry/test_ptrace_names.py
runs `--check`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "sentry" / "kernel" / "_ptrace_names.py"


def render() -> str:
    from ptrace.syscall.linux.x86_64 import SYSCALL_NAMES

    rows = "".join(f"    {nr}: {name!r},\n" for nr, name in sorted(SYSCALL_NAMES.items()))
    return ('"""python-ptrace\'s x86_64 syscall names (`ptrace.syscall.linux.x86_64`), copied by\n'
            'scripts/gen_ptrace_names.py (do not edit): importing python-ptrace costs `runpsc do`\n'
            '5-10 ms."""\n\n'
            f"SYSCALL_NAMES: dict[int, str] = {{\n{rows}}}\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = ap.parse_args()
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run scripts/gen_ptrace_names.py",
                  file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
