"""The confined gofer: after gofer.serve.prepare() an injected attempt to reach the host fails,
while serving the exports still works (through the same code the CLI runs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from gofer.confine import ALLOWED_IOCTLS, ALLOWED_SYSCALLS, build_filter, syscall_numbers
from tests.gofer.helpers import AS_NOBODY, NOBODY, need_confinement, need_rootless

# Runs in a child: prepare (open export, bind a unix listener, confine), then inject.
_CHILD = r"""
import ctypes, errno, json, os, socket, sys
import trio
import p9
from gofer.host import Export
from gofer.ident import IdentityPolicy
from gofer.serve import GoferOptions, Listen, prepare, serve_stream

export, sock = sys.argv[1], sys.argv[2]
fs, socks = prepare([Export("e", export)], [Listen("unix", sock)],
                    policy=IdentityPolicy.build(), confine=True)
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "ALLOWED"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
libc = ctypes.CDLL(None, use_errno=True)
def raw(*a):
    if libc.syscall(*a) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
attempt("open_etc_passwd", lambda: open("/etc/shadow", "rb"))
attempt("open_export_by_path", lambda: open(export + "/inside", "rb"))
attempt("open_proc_1_root", lambda: os.open("/proc/1/root/etc/hostname", os.O_RDONLY))
attempt("listdir_root", lambda: out.__setitem__("root_entries", sorted(os.listdir("/"))))
attempt("socket_inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
attempt("connect_unix", lambda: socket.socket(socket.AF_UNIX).connect("/x"))
attempt("mount", lambda: raw(165, b"none", b"/", b"tmpfs", 0, None))
attempt("unshare", lambda: raw(272, 0x20000))
attempt("chroot", lambda: raw(161, b"/fd"))
attempt("execve", lambda: os.execv("/bin/sh", ["sh"]))
attempt("fork", lambda: os.fork())
attempt("ptrace", lambda: raw(101, 16, 1, 0, 0))
attempt("open_by_handle_at", lambda: raw(304, 3, 0, 0))
attempt("mknod_dev", lambda: os.mknod("mem", 0o20666, os.makedev(1, 1), dir_fd=fs.exports["e"].root_fd))
attempt("setuid_real", lambda: os.setresuid(1000, 1000, 1000))
attempt("ioctl_tiocsti", lambda: raw(16, 0, 0x5412, ctypes.c_char_p(b"x")))
attempt("ioctl_fionread", lambda: raw(16, socks[0].fileno(), 0x541B, ctypes.byref(ctypes.c_int())))
attempt("fd_dotdot_escape", lambda: os.listdir(os.open("../../1", os.O_RDONLY, dir_fd=fs.exports["e"].procfd.dirfd)))

async def main():
    a, b = p9.socketpair()
    async with trio.open_nursery() as n:
        n.start_soon(serve_stream, b, fs, GoferOptions())
        async with p9.open_client(a) as c:
            root = await c.attach(b"e")
            out["served"] = (await p9.PathFS(root).read_file("inside")).decode()
            await p9.PathFS(root).write_file("written", b"from confined")
            await root.clunk()
        n.cancel_scope.cancel()
trio.run(main)
print(json.dumps(out))
"""


def _confined_child(exp: Path, sock: Path, prefix: Sequence[str] = ()) -> dict:
    """Run _CHILD (prepare, confine, inject, serve) on `exp`; its findings."""
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run(
        [*prefix, sys.executable, "-c", _CHILD, str(exp), str(sock)],
        capture_output=True, text=True, cwd=root, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _assert_confined(out: dict, exp: Path) -> None:
    assert out["served"] == "inside data"
    assert (exp / "written").read_bytes() == b"from confined"
    # the only things in the confined root: our own fd directory and the user-db copies
    assert out["root_entries"] == ["etc", "fd"]
    assert out["open_etc_passwd"] == "ENOENT"
    assert out["open_export_by_path"] == "ENOENT"
    assert out["open_proc_1_root"] == "ENOENT"
    for denied in ("socket_inet", "mount", "unshare", "chroot", "execve", "ptrace",
                   "open_by_handle_at", "mknod_dev", "setuid_real", "ioctl_tiocsti", "fork"):
        assert out[denied] in ("EPERM", "EROFS", "EACCES"), (denied, out[denied])
    assert out["connect_unix"] in ("EPERM", "ENOENT")
    assert out["ioctl_fionread"] != "EPERM"  # reaches the kernel (EINVAL on a listener)
    assert out["fd_dotdot_escape"] in ("ENOENT", "ENOTDIR")


def test_confined_gofer_cannot_reach_the_host(tmp_path: Path) -> None:
    need_confinement()
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "inside").write_bytes(b"inside data")
    _assert_confined(_confined_child(exp, tmp_path / "sock"), exp)


def test_rootless_confined_gofer_cannot_reach_the_host() -> None:
    """The same walls for an unprivileged user, built inside a user namespace of its own."""
    need_rootless()
    base = Path(tempfile.mkdtemp(prefix="gofer-rootless-"))
    try:
        os.chmod(base, 0o755)
        exp = base / "exp"
        exp.mkdir()
        (exp / "inside").write_bytes(b"inside data")
        for p in (base, exp, exp / "inside"):
            os.chown(p, NOBODY, NOBODY)
        out = _confined_child(exp, base / "sock", AS_NOBODY)
        _assert_confined(out, exp)
        assert os.stat(exp / "written").st_uid == NOBODY
    finally:
        shutil.rmtree(base)


def test_seccomp_filter_shape() -> None:
    nrs = syscall_numbers(ALLOWED_SYSCALLS)
    assert len(nrs) == len(set(nrs))
    for forbidden in ("execve", "mount", "ptrace", "open_by_handle_at", "socket", "connect",
                      "unshare", "setns", "bpf", "kexec_load", "init_module", "chroot",
                      "pivot_root", "setuid", "process_vm_writev", "clone", "clone3", "fork",
                      "vfork"):
        assert syscall_numbers([forbidden])[0] not in nrs
    prog = build_filter(nrs)
    ioctl_block = 1 + len(ALLOWED_IOCTLS) + 2
    assert len(prog) % 8 == 0 and len(prog) // 8 == 7 + ioctl_block + 2 * (len(nrs) - 1) + 1


def test_no_confine_flag_serves_without_namespace(tmp_path: Path) -> None:
    """--no-confine keeps the host visible (for debugging): the gofer still serves."""
    from tests.gofer.helpers import gofer_process

    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "f").write_bytes(b"x")
    sock = tmp_path / "s"
    with gofer_process(["--export", f"e={exp}", "--listen", f"unix:{sock}", "--no-confine"]) as p:
        assert os.readlink(f"/proc/{p.pid}/root") == "/"
        assert sock.exists()


async def test_confined_cli_gofer_serves_fifos_on_worker_threads(tmp_path: Path) -> None:
    """A FIFO is opened and read on a worker thread, which the confined process creates
    under its seccomp filter and in its own mount namespace."""
    import trio

    import p9
    from tests.gofer.helpers import gofer_process

    need_confinement()
    exp = tmp_path / "exp"
    exp.mkdir()
    os.mkfifo(exp / "fifo")
    sock = tmp_path / "s"
    with gofer_process(["--export", f"e={exp}", "--listen", f"unix:{sock}"]) as proc:
        assert os.readlink(f"/proc/{proc.pid}/root") != "/" or os.stat(
            f"/proc/{proc.pid}/root").st_ino != os.stat("/").st_ino

        def writer() -> None:
            with open(exp / "fifo", "wb") as w:
                w.write(b"through the fifo")

        async with p9.open_client(await p9.connect_unix(str(sock))) as c:
            root = await c.attach(b"e")
            f = await root.walk([b"fifo"])
            async with trio.open_nursery() as n:
                n.start_soon(trio.to_thread.run_sync, writer)
                await f.open(os.O_RDONLY)
                data = await f.read(0, 100)
            assert data == b"through the fifo"
            await f.clunk()
            await root.clunk()


def test_readme_lists_exactly_the_allowed_syscalls() -> None:
    readme = (Path(__file__).resolve().parents[2] / "gofer" / "README.md").read_text()
    block = readme.split("<!-- syscalls:begin -->")[1].split("<!-- syscalls:end -->")[0]
    listed = [s.strip() for s in block.replace("\n", " ").split(",") if s.strip()]
    assert listed == sorted(ALLOWED_SYSCALLS)
    assert f"({len(ALLOWED_SYSCALLS)}, `gofer.confine.ALLOWED_SYSCALLS`" in readme
