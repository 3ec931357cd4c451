"""`runpsc do`: real programs in the full topology (gofer process + Sentry), compared with
native runs of the same command (stdout and exit status).

The Must-run list of issue 7 for dynamically linked Debian binaries, plus what `runpsc do`
promises: the caller's cwd and environment, --cwd/--env, exit status and 128+signal, the
overlay keeping writes away from the host, writable and read-only volumes, --strace, and a
visible report of an unsupported syscall.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sentry.progs.harness import build
from tests.support import need_binary, need_root

ROOT = Path(__file__).resolve().parents[2]


def runpsc(*args: str, cwd: str | None = None, env: dict | None = None,
           input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the runpsc CLI as a user would (a separate process), capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        cwd=cwd or str(ROOT),
        env=env,
        input=input,
        capture_output=True,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def native(*argv: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), cwd=cwd or str(ROOT), capture_output=True,
                          stdin=subprocess.DEVNULL)


def same(argv: list[str], *, cwd: str | None = None, sort: bool = False) -> None:
    """The command's stdout and status in the sandbox equal its native run's."""
    want = native(*argv, cwd=cwd)
    got = runpsc("do", "--", *argv, cwd=cwd)
    w, g = want.stdout, got.stdout
    if sort:
        w, g = sorted(w.splitlines()), sorted(g.splitlines())
    assert (g, got.returncode) == (w, want.returncode), got.stderr.decode(errors="replace")


@pytest.mark.parametrize("argv", [
    ["/bin/echo", "hello", "sandbox"],
    ["ls", "-la", "/usr/bin"],
    ["cat", "/etc/os-release", "/etc/passwd"],
    ["sort", "/etc/passwd"],
    ["sha256sum", "/bin/ls", "/etc/passwd"],
    ["grep", "-rn", "root", "/etc/passwd", "/etc/group"],
    ["/usr/bin/python3", "-S", "-c", "print(sum(range(10**6)))"],
    ["/usr/bin/python3", "-c", "import json, os; print(json.dumps(sorted(os.listdir('/'))))"],
    ["tar", "cf", "-", "-C", "/usr/share/doc", "coreutils", "gzip"],
    ["gzip", "-c", "-n", "-9", "/etc/services"],
    ["sed", "-n", "s/tcp/TCP/p;20q", "/etc/services"],
    ["awk", "-F:", "{ print $1, $3 }", "/etc/passwd"],
    ["stat", "-c", "%n %s %a %U %G %F %Y", "/etc/passwd", "/usr/bin", "/bin/sh"],
    ["du", "-s", "--apparent-size", "/usr/share/doc/coreutils"],
    ["diff", "/etc/passwd", "/etc/group"],
    ["dd", "if=/etc/services", "bs=100", "skip=3", "count=2", "status=none"],
])
def test_programs_match_native(argv):
    same(argv)


def test_df_shows_the_sandbox_mounts():
    got = runpsc("do", "--tmpfs", "/tmp", "--", "df", "-a", "-T")
    assert got.returncode == 0, got.stderr
    rows = {line.split()[-1]: line.split()[1] for line in got.stdout.decode().splitlines()[1:]}
    assert rows.get("/tmp") == "tmpfs" and rows.get("/") == "overlay", rows
    assert rows.get("/proc") == "proc" and "/dev" in rows


def test_host_tmp_is_seen_through_the_overlay(tmp_path):
    """The caller's cwd under /tmp and a program there are the host's (the overlay's lower
    layer); writes there stay in the sandbox's memory."""
    build(tmp_path, "nullderef")
    (tmp_path / "data.txt").write_text("from the host\n")
    script = "pwd; cat data.txt; echo new > data.txt; echo made > made.txt; cat data.txt made.txt"
    got = runpsc("do", "--", "sh", "-c", script, cwd=str(tmp_path))
    want = native("sh", "-c", "pwd; cat data.txt", cwd=str(tmp_path))
    assert got.returncode == 0, got.stderr
    assert got.stdout == want.stdout + b"new\nmade\n"
    assert b"working directory" not in got.stderr
    assert (tmp_path / "data.txt").read_text() == "from the host\n"
    assert not (tmp_path / "made.txt").exists()
    got = runpsc("do", "--", str(tmp_path / "nullderef"))
    assert (got.stdout, got.returncode) == (b"before\n", 128 + 11)


def test_tmpfs_option_gives_a_private_empty_directory(tmp_path):
    (tmp_path / "host-file").write_text("x")
    got = runpsc("do", "--tmpfs", "/tmp", "--", "sh", "-c",
                 "ls -A /tmp; stat -c %a /tmp; echo w > /tmp/f && cat /tmp/f")
    assert (got.stdout, got.returncode) == (b"1777\nw\n", 0), got.stderr
    got = runpsc("do", "--tmpfs", str(tmp_path), "--tmpfs", "/var/scratch", "--", "ls", "-A",
                 str(tmp_path), "/var/scratch", "/tmp")
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith(b"/tmp:\n") and f"{tmp_path}:\n\n".encode() in got.stdout
    assert got.stdout.endswith(b"\n/var/scratch:\n")
    assert not os.path.exists("/tmp/f") or open("/tmp/f").read() != "w\n"
    bad = runpsc("do", "--tmpfs", "relative/dir", "--", "true")
    assert bad.returncode == 2 and b"absolute" in bad.stderr


def test_find_matches_native():
    same(["find", "/usr/share/doc/coreutils", "/etc/apt"], sort=True)


def test_exit_status_and_signal(tmp_path):
    assert runpsc("do", "--", "sh", "-c", "exit 3").returncode == 3
    assert runpsc("do", "--", "false").returncode == 1
    build(tmp_path, "nullderef")  # on a volume (test_host_tmp_... runs it from /tmp)
    got = runpsc("do", "--volume", f"{tmp_path}:/progs:ro", "--", "/progs/nullderef")
    assert got.returncode == 128 + 11
    assert got.stdout == b"before\n"


def test_unsupported_syscall_is_reported(tmp_path):
    build(tmp_path, "enosys")
    got = runpsc("do", "--volume", f"{tmp_path}:/progs:ro", "--", "/progs/enosys")
    assert got.returncode == 7
    assert b"kexec_file_load = -1 ENOSYS" in got.stdout
    assert b"unsupported syscall kexec_file_load" in got.stderr


def test_cwd_env_and_stdin():
    got = runpsc("do", "--cwd", "/usr/share", "--env", "GREETING=hi there", "--",
                 "sh", "-c", 'pwd; echo "$GREETING"; read x; echo "got $x"',
                 input=b"line from stdin\n")
    assert got.returncode == 0, got.stderr
    assert got.stdout == b"/usr/share\nhi there\ngot line from stdin\n"
    # By default: the caller's working directory and environment.
    env = dict(os.environ, RUNPSC_TEST_VAR="from-caller")
    got = runpsc("do", "--", "sh", "-c", 'pwd; echo "$RUNPSC_TEST_VAR"', cwd="/usr/lib",
                 env=env)
    assert got.stdout == b"/usr/lib\nfrom-caller\n", got.stderr


def test_writes_stay_in_the_sandbox():
    marker = Path(f"/etc/runpsc-test-must-not-appear-{os.getpid()}")
    script = (f"import os; open({str(marker)!r}, 'w').write('data\\n'); "
              f"print(open({str(marker)!r}).read(), end=''); os.remove('/etc/hostname'); "
              "print('removed')")
    got = runpsc("do", "--", "/usr/bin/python3", "-S", "-c", script)
    assert got.returncode == 0, got.stderr
    assert got.stdout == b"data\nremoved\n"
    assert not marker.exists()
    assert os.path.exists("/etc/hostname")


def test_volumes(tmp_path):
    host = tmp_path / "vol"
    host.mkdir()
    (host / "in.txt").write_text("from the host\n")
    got = runpsc("do", "--volume", f"{host}:/mnt/vol", "--", "/usr/bin/python3", "-S", "-c",
                 "print(open('/mnt/vol/in.txt').read(), end=''); "
                 "open('/mnt/vol/out.txt', 'w').write('written\\n')")
    assert got.returncode == 0, got.stderr
    assert got.stdout == b"from the host\n"
    assert (host / "out.txt").read_text() == "written\n"
    got = runpsc("do", "--volume", f"{host}:/mnt/ro:ro", "--", "/usr/bin/python3", "-S", "-c",
                 "print(open('/mnt/ro/in.txt').read(), end=''); "
                 "open('/mnt/ro/new.txt', 'w').write('no')")
    assert got.stdout == b"from the host\n"
    assert got.returncode != 0
    assert b"Read-only file system" in got.stderr
    assert not (host / "new.txt").exists()


@pytest.mark.parametrize("option, second", [("", b"10"), (":exclusive", b"1"),
                                             (":ro,exclusive", b"1")])
def test_volume_policy_after_a_host_change(tmp_path, option, second):
    """A change made on the host while the sandbox runs: a shared volume (the default)
    asks the host again and sees it; an exclusive one keeps what it cached (the sandbox
    said nothing else changes it). The sandbox waits on stdin for the change (no sleeps)."""
    host = tmp_path / "vol"
    host.mkdir()
    (host / "f").write_bytes(b"1")
    script = "ls -l /v >/dev/null; stat -c %s /v/f; read x; stat -c %s /v/f"
    p = subprocess.Popen([sys.executable, "-m", "runtime.cli", "do", "--volume",
                          f"{host}:/v{option}", "--", "sh", "-c", script], cwd=str(ROOT),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout is not None and p.stdin is not None
        first = p.stdout.readline()
        (host / "f").write_bytes(b"0123456789")
        rest, err = p.communicate(b"go\n", timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert (first, rest, p.returncode) == (b"1\n", second + b"\n", 0), err


def test_cp_r_and_diff_r_through_a_volume(tmp_path):
    doc = "/usr/share/doc/coreutils"
    got = runpsc("do", "--volume", f"{tmp_path}:/out", "--", "cp", "-r", doc, "/out/doc")
    assert got.returncode == 0, got.stderr
    assert native("diff", "-r", doc, str(tmp_path / "doc")).returncode == 0
    got = runpsc("do", "--volume", f"{tmp_path}:/out:ro", "--", "diff", "-r", doc, "/out/doc")
    assert (got.returncode, got.stdout) == (0, b""), got.stderr


def test_strace_flag():
    got = runpsc("do", "--strace", "--", "/bin/true")
    assert got.returncode == 0
    lines = got.stderr.decode().splitlines()
    assert any(line.startswith("openat(AT_FDCWD, ") for line in lines), lines[:20]
    assert any(line.startswith("exit_group(0)") and line.endswith("= ?") for line in lines)


def test_bad_usage_is_a_clear_error():
    got = runpsc("do", "--", "/no/such/program")
    assert got.returncode == 127
    assert b"No such file or directory" in got.stderr
    got = runpsc("do", "--volume", "relative:/x", "--", "true")
    assert got.returncode == 2
    assert b"volume" in got.stderr
    got = runpsc("do", "--env", "NOEQUALS", "--", "true")
    assert got.returncode == 2


def test_static_busybox_in_full_topology():
    busybox = need_binary("busybox", "busybox-static")
    same([busybox, "ls", "-la", "/etc/apt"])
    assert shutil.which("sh")


def test_sentry_leaves_host_network_ipc_uts():
    """The runpsc process (the Sentry) runs in its own net/ipc/uts namespaces once booted."""
    need_root()
    p = subprocess.Popen([sys.executable, "-m", "runtime.cli", "do", "--", "cat"],
                         cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        p.stdin.write(b"booted\n")
        p.stdin.flush()
        assert p.stdout.readline() == b"booted\n"  # the program runs: boot is over
        seen = {ns: os.readlink(f"/proc/{p.pid}/ns/{ns}") for ns in ("net", "ipc", "uts")}
        mine = {ns: os.readlink(f"/proc/self/ns/{ns}") for ns in seen}
        assert all(seen[ns] != mine[ns] for ns in seen), (seen, mine)
    finally:
        p.stdin.close()
        assert p.wait(timeout=60) == 0
        p.stdout.close()


SCRIPT = """
set -e
cd "$T"
tar czf doc.tgz -C /usr/share/doc coreutils gzip tar
mkdir out
tar xzf doc.tgz -C out
diff -r /usr/share/doc/coreutils out/coreutils
mkdir copy
cp -r /usr/share/doc/gzip /usr/share/doc/tar "$T/copy"
diff -r /usr/share/doc/tar "$T/copy/tar"
tar tzf doc.tgz | sort | head -5
ls "$T" | sort | tr '\\n' ' '
echo
echo hello | gzip -c | gunzip -c | tr a-z A-Z
"""


@pytest.mark.parametrize("shell", [["/bin/sh"], ["/bin/busybox", "sh"]])
def test_shell_tar_czf_xzf_cp_r_diff_r_in_tmp(tmp_path, shell):
    """Pipelines, tar czf/xzf and cp -r + diff -r inside a private tmpfs /tmp (fork, exec,
    pipes), compared with the same script run natively in a host temporary directory."""
    if shell[0] == "/bin/busybox":
        need_binary("busybox", "busybox-static")
    want = subprocess.run([*shell, "-c", SCRIPT], env=dict(os.environ, T=str(tmp_path)),
                          capture_output=True, stdin=subprocess.DEVNULL)
    assert want.returncode == 0, want.stderr
    got = runpsc("do", "--tmpfs", "/tmp", "--env", "T=/tmp", "--", *shell, "-c", SCRIPT)
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr


def test_strace_of_processes_matches_strace_shapes():
    """--strace with fork/exec/wait shows the lines strace -f shows for the same command."""
    strace = need_binary("strace")
    cmd = ["sh", "-c", "echo a | cat; exit 3"]
    native_trace = subprocess.run([strace, "-f", "-q", *cmd], capture_output=True,
                                  stdin=subprocess.DEVNULL).stderr.decode()
    got = runpsc("do", "--strace", "--", *cmd)
    assert got.returncode == 3
    ours = got.stderr.decode()
    for shape in ("clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD",
                  "[{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = ",
                  'execve("/usr/bin/cat", ["cat"], ',
                  "exit_group(3)", "+++ exited with 3 +++"):
        assert shape in native_trace, shape
        assert shape in ours, shape
    assert "[pid " in ours


def _on_pty(argv: list[str]) -> tuple[int, bytes]:
    """Run argv with a pseudo-terminal (33 rows, 101 columns) as stdin/stdout/stderr."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    try:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        p = subprocess.run(argv, stdin=slave, stdout=slave, stderr=subprocess.DEVNULL,
                           cwd=str(ROOT), timeout=120)
        os.close(slave)
        slave = -1
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the slave side is closed and drained
                break
            if not chunk:
                break
            out += chunk
        return p.returncode, out
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def test_terminal_ioctls_pass_through_a_host_terminal():
    """stty talks to the caller's terminal through the safe ioctl pass-through (TCGETS,
    TIOCGWINSZ, TCSETS) exactly as it does natively."""
    for argv in (["stty", "size"], ["stty", "-a"], ["stty", "-echo", "size"]):
        want = _on_pty(argv)
        got = _on_pty([sys.executable, "-m", "runtime.cli", "do", "--", *argv])
        assert got == want, argv
        if argv == ["stty", "size"]:
            assert (got[0], got[1].strip()) == (0, b"33 101")


def test_proc_self_matches_native():
    """/proc/self and /proc/$$ name the calling process (cwd, comm, the shell's exe, fds)."""
    script = ('readlink /proc/$$/exe /proc/self/cwd; cat /proc/self/comm; '
              'ls /proc/self/fd | head -3; grep -c PPid /proc/self/status')
    same(["sh", "-c", script], cwd="/usr/share")


_FIND_LIBRARY_LOGGED = """
import ctypes.util, sys
original = ctypes.util.find_library
LOG = sys.argv[1]
def logged(name):
    with open(LOG, "a") as log:
        log.write(name + "\\n")
    return original(name)
ctypes.util.find_library = logged
sys.argv = ["runpsc", "do", "--", "/bin/true"]
from runtime.cli import main
main()
"""


def test_do_never_looks_a_library_up_with_ldconfig(tmp_path):
    """Every find_library during `runpsc do`, in its gofers too, is answered without running
    `ldconfig -p` (a fork and exec of a large process, on the path to the program's start)."""
    log = tmp_path / "lookups"
    r = subprocess.run([sys.executable, "-c", _FIND_LIBRARY_LOGGED, str(log)], cwd=str(ROOT),
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert not log.exists(), f"looked up by ldconfig: {log.read_text().split()}"
