"""What makes `runpsc do` start quickly must not change what it does.

- `runtime.startup.defer_modules`: a deferred module runs its code on first use, once, in
  the same module object every importer holds; a failing one is retried like a failed import.
- `runtime.codecache`: code compiled through the cache equals what compile() produces,
  including the `__future__` flags inherited from the caller; a changed source or a damaged
  file falls back to compiling.
- The ELF loader (pyelftools' structs only) refuses what Linux refuses, with the same errno.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtime import codecache
from runtime.startup import defer_modules, load_deferred

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


FUTURE_SRC = "from __future__ import annotations\n"
CALLER_SRC = """
def make(source):
    namespace = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    return namespace["f"]

def make_exec(source):
    namespace = {}
    exec(source, namespace)
    return namespace["f"]
"""
#: Valid only where annotations are not evaluated (PEP 563, inherited from the caller).
ANNOTATED = "def f(x: no_such_name) -> int:\n    return 1\n"


def _code_fields(code):
    return (code.co_code, code.co_consts, code.co_names, code.co_flags, code.co_filename)


@pytest.mark.parametrize("future", [False, True])
def test_cached_compile_inherits_the_callers_future_flags(modules_dir, future):
    name = f"rp_caller_{int(future)}"
    (modules_dir / f"{name}.py").write_text((FUTURE_SRC if future else "") + CALLER_SRC)
    caller = __import__(name)
    results = []
    for cached in (False, True):
        ctx = codecache.cached_compiles(str(modules_dir / "none.marshal")) if cached else \
            _nothing()
        with ctx:
            for make in (caller.make, caller.make_exec):
                try:
                    results.append(("ok", make(ANNOTATED).__annotations__))
                except NameError as e:
                    results.append(("NameError", str(e)))
    plain, cached_results = results[:2], results[2:]
    assert cached_results == plain
    assert plain[0][0] == ("ok" if future else "NameError")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_cache_round_trip_gives_the_same_code_and_classes(tmp_path, monkeypatch):
    cache = tmp_path / "codegen.marshal"
    monkeypatch.setattr(codecache, "_entries", {})
    monkeypatch.setattr(codecache, "_recorded", {})
    with codecache.cached_compiles(str(cache)):
        Point = _point_class()
    recorded = codecache._recorded
    assert recorded, "dataclass generation went through the cache"
    cache.write_bytes(__import__("marshal").dumps(recorded))

    monkeypatch.setattr(codecache, "_recorded", None)
    monkeypatch.setattr(codecache, "_entries", None)  # load the file
    compiled = []
    real = codecache._original_compile
    monkeypatch.setattr(codecache, "_original_compile",
                        lambda *a, **k: compiled.append(a[0]) or real(*a, **k))
    with codecache.cached_compiles(str(cache)):
        CachedPoint = _point_class()
    assert compiled == [], "every generated method came from the cache"
    for meth in ("__init__", "__eq__", "__repr__"):
        assert _code_fields(getattr(CachedPoint, meth).__code__) == \
            _code_fields(getattr(Point, meth).__code__)
    assert repr(CachedPoint(1, 2)) == repr(Point(1, 2)) != repr(CachedPoint(1, 3))
    assert CachedPoint(1) == CachedPoint(1, 0) != CachedPoint(2)
    assert __import__("builtins").compile is real and __import__("builtins").exec is \
        codecache._original_exec


def _point_class():
    @dataclasses.dataclass(frozen=True, slots=True)
    class Point:
        x: int
        y: int = 0

    return Point


def test_changed_source_and_damaged_file_fall_back_to_compiling(tmp_path, monkeypatch):
    bad = tmp_path / "bad.marshal"
    bad.write_bytes(b"\x00not marshal data")
    monkeypatch.setattr(codecache, "_entries", None)
    with codecache.cached_compiles(str(bad)):
        code = compile("x = 1 + 2", "<t>", "exec")
    namespace: dict = {}
    exec(code, namespace)
    assert namespace["x"] == 3
    # An entry whose key matches but whose bytes are damaged is compiled instead.
    key = codecache._digest("y = 5", "<t>", "exec", 0, sys.flags.optimize)
    monkeypatch.setattr(codecache, "_entries", {key: b"\xff\xff"})
    with codecache.cached_compiles(str(bad)):
        code = compile("y = 5", "<t>", "exec", dont_inherit=True)
    exec(code, namespace)
    assert namespace["y"] == 5


def test_warm_writes_a_cache_that_runpsc_do_reads(tmp_path):
    """`python -m runtime.codecache`'s work into a temporary file; a second fresh
    interpreter doing `runpsc do`'s imports then compiles only what differs per process."""
    target = str(tmp_path / "codegen.marshal")
    warm = subprocess.run([sys.executable, "-c",
                           f"import runtime.codecache as c; print(c.warm({target!r}))"],
                          capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert warm.returncode == 0, warm.stderr
    use = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import runtime.codecache as c
        from runtime.cmd_do import startup_imports
        counts = [0, 0]
        lookup, compile_ = c._lookup, c._original_compile
        def counting_lookup(*a):
            counts[0] += 1
            return lookup(*a)
        def counting_compile(*a, **k):
            counts[1] += 1
            return compile_(*a, **k)
        c._lookup, c._original_compile = counting_lookup, counting_compile
        with c.cached_compiles({target!r}):
            startup_imports()
        print(*counts)
    """)], capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert use.returncode == 0, use.stderr
    lookups, compiled = map(int, use.stdout.split())
    assert int(warm.stdout) >= lookups > 50  # trio's attrs classes, our dataclasses
    # attrs' generated __hash__ holds a per-process hash: those (and only a few) recompile.
    assert compiled < lookups / 3


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
    """Run `prog` in the sandbox (its /tmp is a fresh tmpfs: the program comes on a volume)."""
    return subprocess.run([sys.executable, "-m", "runtime.cli", "do", "--volume",
                           f"{prog.parent}:/progs:ro", "--", f"/progs/{prog.name}"],
                          capture_output=True, cwd=str(ROOT), timeout=120,
                          stdin=subprocess.DEVNULL)
