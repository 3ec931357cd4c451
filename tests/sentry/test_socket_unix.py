"""AF_UNIX sockets served by the Sentry, compared with Linux: C programs in progs/ run
natively and in the sandbox must print the same thing."""

from pathlib import Path

import pytest

from .platform_helpers import build_c, native, run_vfs

PROGS = Path(__file__).resolve().parent / "progs"


async def compare_prog(tmp_path: Path, name: str) -> tuple[bytes, object]:
    prog = build_c(tmp_path, name, (PROGS / f"{name}.c").read_text(), "-static", "-w")
    st, out = native([prog])
    assert st == 0, out
    status, got, k, _ = await run_vfs([f"/{name}"], {f"/{name}": prog, "/tmp/.keep": b""})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    bad = [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]
    assert not bad
    return got, k


@pytest.mark.parametrize("name", ["unix_basic"])
async def test_unix_matches_linux(tmp_path, name):
    await compare_prog(tmp_path, name)
