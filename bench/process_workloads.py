"""Process-heavy workloads (issue 8): wall time natively and under `runpsc do`, with ratio.

- spawn: a C driver that fork+exec+waits /bin/true 200 times,
- bash-cmdsubst: a 1,000-iteration bash loop with command substitution,
- gcc-hello: `gcc -O2` of hello.c (gcc forks cc1, as, collect2, ld),
- and `/bin/true` alone, the fixed cost of starting a sandbox, included in every runpsc row.

Run: .venv/bin/python bench/process_workloads.py [--repeat N]
Each figure is the best of N runs of the whole command. Not a test: figures depend on the
machine and its load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SPAWN_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) { execl("/bin/true", "true", (char *)0); _exit(127); }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "child %d failed: %x\n", i, status);
            return 1;
        }
    }
    printf("%d\n", n);
    return 0;
}
"""

HELLO_C = '#include <stdio.h>\nint main(void) { printf("hello, world\\n"); return 0; }\n'


def timed(argv: list[str], repeat: int, env: dict[str, str] | None = None) -> float:
    """Best wall time of `repeat` runs; a failing run is an error, not a figure."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, env=env)
        elapsed = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"{argv!r} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
        best = min(best, elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best is kept)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="runpsc-bench-") as tmp:
        work = Path(tmp)
        (work / "spawn.c").write_text(SPAWN_C)
        (work / "hello.c").write_text(HELLO_C)
        subprocess.run(["gcc", "-O2", "-o", str(work / "spawn"), str(work / "spawn.c")],
                       check=True)
        out = work / "out"
        out.mkdir()
        loop = "n=0; for i in $(seq 1 1000); do n=$((n+$(echo 1))); done; echo $n"
        # name: (native argv, sandbox argv); the sandbox sees `work` at /w.
        cases = {
            "startup (/bin/true)": (["/bin/true"], ["/bin/true"]),
            "spawn: fork+exec+wait /bin/true x200": ([str(work / "spawn"), "200"],
                                                      ["/w/spawn", "200"]),
            "bash: 1000-iteration $(echo 1) loop": (["bash", "-c", loop],
                                                    ["bash", "-c", loop]),
            "gcc -O2 hello.c": (["gcc", "-O2", "-o", str(out / "h"), str(work / "hello.c")],
                                ["gcc", "-O2", "-o", "/tmp/h", "/w/hello.c"]),
        }
        runpsc = [sys.executable, "-m", "runtime.cli", "do", f"--volume={work}:/w:ro", "--"]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        print(f"{'workload':40} {'native s':>10} {'runpsc s':>10} {'ratio':>8}")
        for name, (native_argv, sandbox_argv) in cases.items():
            n = timed(native_argv, args.repeat)
            s = timed([*runpsc, *sandbox_argv], args.repeat, env=env)
            print(f"{name:40} {n:10.3f} {s:10.3f} {s / n:7.1f}x", flush=True)


if __name__ == "__main__":
    main()
