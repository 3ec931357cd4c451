"""Dynamically linked glibc programs: the loader maps the program and ld.so (PT_INTERP),
both read through the VFS; ld.so then maps libc with mmap over VFS files."""

import subprocess

from .platform_helpers import build_c, run_vfs
from .test_loader import AUXV


def _closure(prog: str) -> dict[str, str]:
    """The program and every shared object ldd lists, at their host paths."""
    files = {prog: prog}
    for line in subprocess.run(["ldd", prog], capture_output=True, text=True).stdout.splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/"):
            files[path] = path
    return files


async def test_dynamic_ls_matches_native(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for name in ("beta", "alpha", "Gamma", ".hidden"):
        (d / name).write_text(name)
    native = subprocess.run(["/bin/ls", "-1a", str(d)], capture_output=True, env={})
    files = _closure("/bin/ls")
    files.update({f"/d/{n}": n.encode() for n in ("beta", "alpha", "Gamma", ".hidden")})
    status, out, k, _ = await run_vfs(["/bin/ls", "-1a", "/d"], files)
    assert status == native.returncode << 8 == 0
    assert out == native.stdout
    assert not [e for e in k.events if e[0] == "internal-error"]


async def test_dynamic_auxv_matches_native(tmp_path):
    prog = build_c(tmp_path, "auxv", AUXV)
    argv = [prog, "x", "y z"]
    native = subprocess.run(argv, capture_output=True, env={"A": "1"})
    status, out, _, _ = await run_vfs(argv, _closure(prog), env=["A=1"])
    assert status == 3 << 8 == native.returncode << 8
    assert out == native.stdout
