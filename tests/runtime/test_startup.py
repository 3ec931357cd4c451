"""What makes `runpsc do` start quickly must not change what it does.

- `runtime.startup.defer_modules`: a deferred module runs its code on first use, once, in
  the same module object every importer holds; a failing one is retried like a failed import.
- `runtime.startup.Startup`: `runpsc do` behaves the same with every measure off, and its
  import lists hold everything a sandbox imports.
- The ELF loader (pyelftools' structs only) refuses what Linux refuses, with the same errno.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtime.startup import MEASURES, OFF_ENV, Startup, defer_modules, load_deferred

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def modules_dir(tmp_path, monkeypatch):
    """A directory on sys.path for throw-away modules; they leave sys.modules afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_deferred_module_runs_once_on_first_use(modules_dir):
    (modules_dir / "rp_counter.py").write_text("runs = []\n")
    (modules_dir / "rp_lazy.py").write_text(
        "import rp_counter\nrp_counter.runs.append(1)\nVALUE = 42\n")
    import rp_counter

    assert defer_modules("rp_lazy") == ["rp_lazy"]
    import rp_lazy  # noqa: I001 - importing again must not run it either
    import rp_lazy as again

    assert rp_counter.runs == []
    assert rp_lazy.__name__ == "rp_lazy"  # what the import system reads: still deferred
    assert rp_counter.runs == []
    assert again.VALUE == 42
    assert rp_counter.runs == [1]
    assert rp_lazy is again is sys.modules["rp_lazy"]
    assert type(rp_lazy) is type(sys)  # a plain module once loaded
    assert rp_lazy.VALUE == 42 and rp_counter.runs == [1]


def test_defer_leaves_imported_and_unknown_modules_alone(modules_dir):
    assert defer_modules("os", "rp_no_such_module", "os.path") == []
    assert sys.modules["os"] is os


def test_failed_deferred_module_is_retried_like_a_failed_import(modules_dir):
    (modules_dir / "rp_broken.py").write_text("raise RuntimeError('boom')\n")
    defer_modules("rp_broken")
    import rp_broken

    with pytest.raises(RuntimeError, match="boom"):
        rp_broken.anything  # noqa: B018
    assert "rp_broken" not in sys.modules
    (modules_dir / "rp_broken.py").write_text("FIXED = True\n")
    import importlib

    importlib.invalidate_caches()
    import rp_broken as fixed  # noqa: F811

    assert fixed.FIXED


def test_load_deferred_loads_everything_still_deferred(modules_dir):
    (modules_dir / "rp_a.py").write_text("A = 1\n")
    (modules_dir / "rp_b.py").write_text("B = 2\n")
    defer_modules("rp_a", "rp_b")
    assert sorted(load_deferred()) == ["rp_a", "rp_b"]
    assert type(sys.modules["rp_a"]) is type(sys) and sys.modules["rp_b"].B == 2


def test_startup_measures_are_named_and_checked():
    assert Startup.from_env({}).off == frozenset()
    assert Startup.from_env({OFF_ENV: "gc,exit"}).off == {"gc", "exit"}
    assert set(MEASURES) == {"gc", "defer", "sonames", "exit"}
    with pytest.raises(ValueError, match="no_such"):
        Startup.from_env({OFF_ENV: "gc,no_such"})


@pytest.mark.parametrize("off", ["", ",".join(MEASURES)])
def test_runpsc_do_is_the_same_with_measures_on_or_off(off):
    """The measures only make the start quicker: the program's exit status and output are
    the same with all of them off (the benchmark's variants, bench/startup_measures.py)."""
    env = {**os.environ, OFF_ENV: off}
    r = subprocess.run([sys.executable, "-m", "runtime.cli", "do", "--", "sh", "-c",
                        "echo hi; exit 3"], capture_output=True, cwd=str(ROOT), timeout=120,
                       stdin=subprocess.DEVNULL, env=env)
    assert (r.returncode, r.stdout) == (3, b"hi\n"), r.stderr


def test_the_start_up_import_list_is_what_a_sandbox_imports():
    """`Startup`'s two lists hold everything `Sandbox.run` imports lazily: after them,
    running a sandbox imports no module of runpsc's own packages."""
    probe = textwrap.dedent("""
        import sys, trio
        from runtime.startup import Startup
        from runtime.sandbox import Sandbox, SandboxConfig
        Startup(off=("exit",)).import_before_fork()
        Startup(off=("exit",)).import_sentry()
        before = set(sys.modules)
        code = trio.run(Sandbox(SandboxConfig(argv=["/bin/true"], env={})).run)
        ours = ("p9", "gofer", "vfs", "sentry", "runtime")
        print(code, sorted(m for m in set(sys.modules) - before if m.split(".")[0] in ours))
    """)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       cwd=str(ROOT), timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(None, 1) == ["0", "[]\n"]


def _elf_with(path: Path, offset: int, value: bytes) -> Path:
    data = bytearray(Path("/bin/true").read_bytes())
    data[offset:offset + len(value)] = value
    path.write_bytes(bytes(data))
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("what,offset,value", [
    ("e_phentsize", 54, (32).to_bytes(2, "little")),
    ("e_phnum", 56, (0).to_bytes(2, "little")),
    ("e_machine", 18, (183).to_bytes(2, "little")),  # EM_AARCH64
])
def test_loader_refuses_what_linux_refuses(tmp_path, what, offset, value):
    prog = _elf_with(tmp_path / f"bad-{what}", offset, value)
    with pytest.raises(OSError) as native:
        subprocess.run([str(prog)], capture_output=True)
    assert native.value.errno == errno.ENOEXEC
    got = _runpsc_do(prog)
    assert got.returncode == 126, got.stderr
    assert os.strerror(errno.ENOEXEC).encode() in got.stderr


@pytest.mark.parametrize("what,offset,value", [
    ("EI_CLASS=ELFCLASS32", 4, b"\x01"),
    ("EI_DATA=ELFDATA2MSB", 5, b"\x02"),
])
def test_loader_ignores_e_ident_class_and_order_as_linux_does(tmp_path, what, offset, value):
    prog = _elf_with(tmp_path / "relabelled", offset, value)
    assert subprocess.run([str(prog)]).returncode == 0
    got = _runpsc_do(prog)
    assert got.returncode == 0, got.stderr


def _runpsc_do(prog: Path) -> subprocess.CompletedProcess:
    """Run `prog` in the sandbox (the program comes on a volume)."""
    return subprocess.run([sys.executable, "-m", "runtime.cli", "do", "--volume",
                           f"{prog.parent}:/progs:ro", "--", f"/progs/{prog.name}"],
                          capture_output=True, cwd=str(ROOT), timeout=120,
                          stdin=subprocess.DEVNULL)
