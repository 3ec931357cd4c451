"""CPython's own regression tests, run natively and inside `runpsc do`, compared per test.

Each module of `MODULES` runs as `/usr/bin/python3 regrtest_marks.py MODULE -v` (Debian's
interpreter and its libpython3.11-testsuite) twice: natively, and in a fresh sandbox. A
test that passes natively (ok, or an expected failure) and does not pass in the sandbox is
a *difference*; every difference must be listed, with its reason, in
`known_differences.txt`, and every listed test must still differ (so the list stays
honest). `docs/cpython-tests.md` is rendered from that list and `MODULES`.

    .venv/bin/python -m tests.compat.cpython                  # the CI modules
    .venv/bin/python -m tests.compat.cpython --all            # every module (by hand)
    .venv/bin/python -m tests.compat.cpython test_signal --logs /tmp/cpy   # keep the output
    .venv/bin/python -m tests.compat.cpython --docs           # rewrite docs/cpython-tests.md
    .venv/bin/python -m tests.compat.cpython --docs --check   # exit 1 if it is stale
    .venv/bin/python -m tests.compat.cpython --all --prune    # drop listed tests that pass

A run that outlives its module's budget is killed with everything it started (the whole
sandbox: runpsc, its gofers and stubs) and reported as a timeout; the tests it had not
finished count as not passed.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MARKS = HERE / "regrtest_marks.py"
KNOWN = HERE / "known_differences.txt"
RECORD = HERE / "last_counts.txt"
DOC = ROOT / "docs" / "cpython-tests.md"
PYTHON = "/usr/bin/python3"
#: Where Debian's libpython3.11-testsuite puts the tests.
TESTSUITE = Path("/usr/lib/python3.11/test/regrtest.py")
#: The same environment natively and in the sandbox (runpsc hands its own to the program).
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/root",
       "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": "/tmp"}
#: Statuses that count as passing.
PASSED = frozenset({"ok", "xfail"})
#: A reason starting so marks a difference that comes and goes: the test may pass.
FLAKY = "flaky:"

_MARK = re.compile(rb"^@@cpython-test (\S+) (.+)$", re.M)
_RANK = {"ok": 0, "xfail": 0, "skipped": 1, "xpass": 2, "FAIL": 3, "ERROR": 4}


@dataclass(frozen=True)
class Module:
    """One regrtest module (or one file of a package such as test_asyncio)."""

    name: str
    #: Seconds one run (native or sandboxed) may take before it is killed.
    budget: float
    #: Run by the test suite (CI); the others by hand.
    ci: bool
    #: Extra regrtest arguments (`-m PATTERN` selects a subset).
    args: tuple[str, ...] = ()

    @property
    def prefix(self) -> str:
        """Test ids of this module start with this."""
        return f"test.{self.name}."


MODULES: tuple[Module, ...] = (
    Module("test_os", 240, True),
    Module("test_posix", 120, True),
    Module("test_fcntl", 60, True),
    Module("test_mmap", 60, True),
    Module("test_resource", 60, True),
    Module("test_time", 120, True),
    Module("test_select", 60, True),
    Module("test_epoll", 60, True),
    Module("test_threading", 240, True),
    Module("test_signal", 300, False),
    Module("test_subprocess", 600, False),
    # test_above_fd_setsize makes 32k socketpairs (RLIMIT_NOFILE's hard limit): seconds
    # natively, longer than any budget in the sandbox.
    Module("test_selectors", 300, False, ("-i", "*test_above_fd_setsize")),
    # AF_VSOCK tests wait for ever natively on a host with a vsock device and no peer.
    Module("test_socket", 600, False, ("-i", "*VSOCK*")),
    # test_asyncio's subset: the event loops, sockets, streams, subprocesses and unix
    # events (about a minute natively); the rest is pure-Python scheduling.
    Module("test_asyncio.test_events", 600, False),
    Module("test_asyncio.test_selector_events", 120, False),
    Module("test_asyncio.test_sock_lowlevel", 300, False),
    Module("test_asyncio.test_streams", 300, False),
    Module("test_asyncio.test_subprocess", 300, False),
    Module("test_asyncio.test_unix_events", 300, False),
    # Without `-u network` regrtest runs only test_ssl's local cases.
    Module("test_ssl", 300, False),
)


def module(name: str) -> Module:
    for m in MODULES:
        if m.name == name:
            return m
    raise KeyError(f"no module {name!r} in MODULES")


@dataclass
class Run:
    """One run of one module: the worst status seen for each test id, and how it ended."""

    outcomes: dict[str, str]
    #: "done", "timeout (Ns)" or "exit N" when the runner itself failed.
    ended: str
    seconds: float
    output: bytes = b""

    @property
    def passed(self) -> set[str]:
        return {t for t, s in self.outcomes.items() if s in PASSED}

    def why(self, test: str) -> str:
        """What the verbose output says of `test`: a failure's exception line or a
        skip's reason (a hint for the reason to list)."""
        name = re.escape(test.rsplit(".", 1)[-1] + f" ({test})")
        text = self.output.decode(errors="replace")
        m = re.search(rf"^(?:ERROR|FAIL): {name}(?: \([^\n]*\))?\n(?:[^-\n][^\n]*\n)?-+\n"
                      r"(.*?)\n\n", text, re.M | re.S)
        if m:  # the exception's first line: the first unindented one after the frames
            lines = m.group(1).splitlines()
            last_frame = max((i for i, line in enumerate(lines) if line.startswith(" ")),
                             default=-1)
            return lines[last_frame + 1] if last_frame + 1 < len(lines) else lines[-1]
        m = re.search(rf"{name}(?:\n[^\n]*)? \.\.\. .*?skipped (.*)$", text, re.M)
        if m:
            return f"skipped: {m.group(1)}"
        # a module whose import failed runs none of its tests
        m = re.search(r"crashed -- Traceback \(most recent call last\):\n(?:[ \t].*\n)*(.+)",
                      text)
        return f"the module crashed: {m.group(1)}" if m else ""


def parse(stderr: bytes) -> dict[str, str]:
    """Test id -> worst status from the marks (a test with a failed subtest fails)."""
    out: dict[str, str] = {}
    for status, test in _MARK.findall(stderr):
        st, tid = status.decode(), test.decode(errors="replace").strip()
        if tid not in out or _RANK.get(st, 4) > _RANK.get(out[tid], 4):
            out[tid] = st
    return out


#: Where the sandbox sees this folder (a read-only volume): the checkout may live anywhere
#: on the host, /tmp included, which the sandbox's runs get as a tmpfs of their own.
INSIDE = "/compat"


def _command(m: Module, sandboxed: bool) -> list[str]:
    if not sandboxed:
        return [PYTHON, str(MARKS), m.name, "-v", *m.args]
    args = [a.replace(str(HERE), INSIDE) for a in m.args]
    inner = [PYTHON, f"{INSIDE}/{MARKS.name}", m.name, "-v", *args]
    return [sys.executable, "-m", "runtime.cli", "do", "--tmpfs", "/tmp", "--cwd", "/tmp",
            f"--volume={HERE}:{INSIDE}:ro", "--", *inner]


def _family(pid: int) -> set[int]:
    from tests.leftovers import descendants

    return descendants(pid)


def _kill_all(proc: subprocess.Popen) -> None:
    """Kill `proc`, its process group and every process below it, and wait for them."""
    family = _family(proc.pid)
    for kill in (lambda: os.killpg(proc.pid, signal.SIGKILL),
                 *(lambda p=p: os.kill(p, signal.SIGKILL) for p in family)):
        try:
            kill()
        except ProcessLookupError:
            pass
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in family):
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """`pid` exists and is not a zombie (a zombie is its parent's to reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def run(m: Module, *, sandboxed: bool) -> Run:
    """Run module `m` once, natively or in a fresh sandbox, within its budget."""
    from tests.support import native_child_setup

    with tempfile.TemporaryDirectory(prefix="runpsc-cpython-") as cwd, \
            tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(
            _command(m, sandboxed), cwd=str(ROOT) if sandboxed else cwd, env=ENV,
            stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            preexec_fn=native_child_setup, start_new_session=True)
        try:
            code = proc.wait(timeout=m.budget)
            ended = "done" if code in (0, 2) else f"exit {code}"
        except subprocess.TimeoutExpired:
            _kill_all(proc)
            ended = f"timeout ({m.budget:.0f}s)"
        else:
            _kill_all(proc)  # what the tests started and left running, if anything
        seconds = time.monotonic() - start
        err.seek(0)
        out.seek(0)
        stderr = err.read()
        return Run(parse(stderr), ended, seconds, out.read() + b"\n---- stderr ----\n" + stderr)


# ---- the known differences -------------------------------------------------------------

@dataclass
class Known:
    """known_differences.txt: `TEST_ID  REASON` per line; `#` starts a comment line."""

    reasons: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = KNOWN) -> Known:
        reasons: dict[str, str] = {}
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            tid, _, reason = line.partition(" ")
            if not reason.strip():
                raise ValueError(f"{path.name}:{n}: {tid} has no reason")
            if tid in reasons:
                raise ValueError(f"{path.name}:{n}: {tid} is listed twice")
            reasons[tid] = reason.strip()
        return cls(reasons)

    def of(self, m: Module) -> dict[str, str]:
        return {t: r for t, r in self.reasons.items() if t.startswith(m.prefix)}


@dataclass
class Comparison:
    """What one module's two runs say against the known differences."""

    module: Module
    native: Run
    sandbox: Run
    known: dict[str, str]

    @property
    def differences(self) -> dict[str, str]:
        """Tests passing natively and not in the sandbox -> their sandbox status."""
        return {t: self.sandbox.outcomes.get(t, "not run")
                for t in sorted(self.native.passed - self.sandbox.passed)}

    @property
    def unlisted(self) -> dict[str, str]:
        return {t: s for t, s in self.differences.items() if t not in self.known}

    @property
    def stale(self) -> list[str]:
        """Listed (and not flaky) but passing in the sandbox, or no longer passing natively."""
        return sorted(t for t, r in self.known.items()
                      if t not in self.differences and not r.startswith(FLAKY))

    def counts(self) -> tuple[int, int, int]:
        return len(self.native.passed), len(self.sandbox.passed), len(self.differences)

    def report(self) -> str:
        n, s, d = self.counts()
        lines = [f"{self.module.name}: native {n} passed ({self.native.ended}, "
                 f"{self.native.seconds:.0f}s), sandbox {s} passed ({self.sandbox.ended}, "
                 f"{self.sandbox.seconds:.0f}s), {d} differences"]
        lines += [f"  NOT LISTED {t}  [{st}] {self.sandbox.why(t)}"
                  for t, st in self.unlisted.items()]
        lines += [f"  STALE {t}  (listed, but passes in the sandbox or fails natively)"
                  for t in self.stale]
        return "\n".join(lines)


def compare(m: Module, known: Known | None = None) -> Comparison:
    native = run(m, sandboxed=False)
    sandbox = run(m, sandboxed=True)
    return Comparison(m, native, sandbox, (known or Known.load()).of(m))


# ---- counts recorded and the rendered page ---------------------------------------------

def load_counts() -> dict[str, str]:
    """Module -> the line last recorded for it by `--record`."""
    if not RECORD.exists():
        return {}
    return {line.split()[0]: line for line in RECORD.read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def record(comparisons: Iterable[Comparison]) -> None:
    counts = load_counts()
    day = time.strftime("%Y-%m-%d", time.gmtime())
    for c in comparisons:
        n, s, d = c.counts()
        counts[c.module.name] = (f"{c.module.name} {n} {s} {d} {day} "
                                 f"{c.native.seconds:.0f} {c.sandbox.seconds:.0f}")
    RECORD.write_text("# module native-passed sandbox-passed differences date "
                      "native-seconds sandbox-seconds (written by --record)\n"
                      + "\n".join(counts[m.name] for m in MODULES if m.name in counts) + "\n")


def render(known: Known | None = None) -> str:
    """The whole of docs/cpython-tests.md."""
    known = known or Known.load()
    counts = load_counts()
    out = [
        "# CPython's tests inside the sandbox",
        "",
        "<!-- Generated by `python -m tests.compat.cpython --docs` from "
        "tests/compat/cpython.py and tests/compat/known_differences.txt; do not edit. -->",
        "",
        "CPython's own regression tests (Debian's `/usr/bin/python3` with the "
        "`libpython3.11-testsuite` package) run natively and inside `runpsc do`, and their "
        "per-test outcomes are compared (`tests/compat/cpython.py`). A test that passes "
        "natively and not in the sandbox is a difference; each one is listed below with its "
        "reason, and `tests/compat/test_cpython.py` fails on a difference that is not listed "
        "and on a listed test that passes again. \"waits for: X\" names the missing feature "
        "(a syscall family) that the test needs.",
        "",
        "## Modules",
        "",
        "The CI modules run in the test suite (`pytest tests/compat`); the others take "
        "longer and run by hand:",
        "",
        "    .venv/bin/python -m tests.compat.cpython --all           # every module",
        "    .venv/bin/python -m tests.compat.cpython test_signal     # one module",
        "    RUNPSC_CPYTHON_TESTS=all .venv/bin/python -m pytest tests/compat   # all, as a test",
        "    .venv/bin/python -m tests.compat.cpython --all --prune   # once a feature lands",
        "",
        "`--prune` removes the listed tests that pass again; a new difference is added by "
        "hand to `tests/compat/known_differences.txt` with its reason (the report quotes the "
        "sandbox's message for each), then `--docs` renders this page.",
        "",
        "Each run (native or sandboxed) has a budget; a run that outlives it is killed with "
        "its whole sandbox and its unfinished tests count as not passed.",
        "",
        "| module | in CI | budget (s) | native passed | sandbox passed | differences | "
        "measured (native s / sandbox s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in MODULES:
        c = counts.get(m.name, "").split()
        figures = (f"{c[1]} | {c[2]} | {c[3]} | {c[4]} ({c[5]} / {c[6]})" if len(c) >= 7
                   else "| | | not yet run")
        label = m.name + (f" `{' '.join(m.args)}`" if m.args else "")
        out.append(f"| {label} | {'yes' if m.ci else 'no'} | {m.budget:.0f} | {figures} |")
    out += ["", "## Known differences", ""]
    for m in MODULES:
        listed = known.of(m)
        if not listed:
            continue
        out += [f"### {m.name}", "", "| test | reason |", "|---|---|"]
        out += [f"| `{t[len(m.prefix):]}` | {r.replace('|', chr(92) + '|')} |"
                for t, r in sorted(listed.items())]
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.compat.cpython",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help="module names (default: the CI modules)")
    ap.add_argument("--all", action="store_true", help="every module")
    ap.add_argument("--logs", metavar="DIR", help="keep each run's output in DIR")
    ap.add_argument("--record", action="store_true",
                    help="write the counts to tests/compat/last_counts.txt and the docs")
    ap.add_argument("--prune", action="store_true",
                    help="remove from known_differences.txt the listed tests that no longer "
                         "differ (then rewrite the docs)")
    ap.add_argument("--docs", action="store_true", help="rewrite docs/cpython-tests.md")
    ap.add_argument("--check", action="store_true", help="with --docs: exit 1 if stale")
    args = ap.parse_args(argv)
    if args.docs:
        text = render()
        if args.check:
            if DOC.exists() and DOC.read_text() == text:
                return 0
            print(f"{DOC.relative_to(ROOT)} is stale: run python -m tests.compat.cpython --docs",
                  file=sys.stderr)
            return 1
        DOC.write_text(text)
        return 0
    chosen = ([module(n) for n in args.modules] if args.modules
              else [m for m in MODULES if args.all or m.ci])
    known = Known.load()
    comparisons, bad = [], False
    for m in chosen:
        c = compare(m, known)
        comparisons.append(c)
        print(c.report(), flush=True)
        bad |= bool(c.unlisted or c.stale)
        if args.logs:
            os.makedirs(args.logs, exist_ok=True)
            for where, r in (("native", c.native), ("sandbox", c.sandbox)):
                Path(args.logs, f"{m.name}.{where}.log").write_bytes(r.output)
    if args.prune:
        prune({t for c in comparisons for t in c.stale})
        known = Known.load()
    if args.record:
        record(comparisons)
    if args.prune or args.record:
        DOC.write_text(render(known))
    return 1 if bad else 0


def prune(tests: set[str], path: Path = KNOWN) -> None:
    """Remove the lines of `tests` from the known differences, leaving the rest as it is."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line for line in lines if line.split(" ", 1)[0] not in tests)
                    + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
