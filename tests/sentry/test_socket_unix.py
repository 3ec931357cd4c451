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


@pytest.mark.parametrize("name", ["unix_basic", "unix_scm", "unix_buffers", "unix_badargs", "unix_oob"])
async def test_unix_matches_linux(tmp_path, name):
    await compare_prog(tmp_path, name)


async def test_unix_no_leak(tmp_path):
    """fds passed in cycles through sockets and closed, and 10,000 connect/accept/close
    rounds: afterwards the Sentry holds no socket, no file in flight and no pipe."""
    import gc

    from sentry.socket.unix import UnixSocket, unix_namespace
    from vfs.fs.pipefs import PipeFD

    _, k = await compare_prog(tmp_path, "unix_leak")
    ns = unix_namespace(k)
    assert not ns.sockets and not ns.inflight and not ns.abstract
    made = k.socket_state["sockfs"]._ino() - 1
    assert made > 20000  # the rounds did make their sockets
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, (UnixSocket, PipeFD))]
    assert [o for o in alive if getattr(o, "kernel", k) is k and o.refs > 0] == []
