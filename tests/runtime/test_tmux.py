"""tmux inside the sandbox, compared with the native run: a server that daemonizes, talks to
its clients over a unix socket, opens a pty per pane through /dev/ptmx and runs the pane's
command on it as a session leader with that pty as its controlling terminal.

Two ways: a detached session driven by tmux commands (no terminal needed), and tmux attached
on the sandbox's own terminal, driven by keystrokes through pexpect as a user would (the pane's
shell, a window resize reaching it, the prefix key detaching). A native tmux server survives
its test unless told to go: each native test kills its server by its socket whatever happens.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.test_do import runpsc
from tests.runtime.test_ipc_programs import _running_with
from tests.runtime.test_terminal import (  # the fixtures: pexpect present, a bash started
    PROMPT,
    _finish,
    _lines,
    _pexpect,  # noqa: F401
    _spawn,
    bash,  # noqa: F401
    pexpect,
    runpsc_argv,
)
from tests.support import need_binary

PROGS = Path(__file__).resolve().parent / "progs"
SANDBOX_SOCKET = "/tmp/tmux-test/s"  # in the sandbox's overlay: never the host's /tmp


@contextlib.contextmanager
def _native_server(path: Path) -> Iterator[str]:
    """A tmux socket path for a native run; the server behind it is killed afterwards."""
    socket = str(path / "s")
    try:
        yield socket
    finally:
        subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=60)


def _detached(prog: str, tmp_path: Path) -> bytes:
    """tests/runtime/progs/`prog` natively and in the sandbox: the same output (returned)."""
    need_binary("tmux", "tmux")
    need_binary("ps", "procps")
    with _native_server(tmp_path) as socket:
        want = subprocess.run(["sh", str(PROGS / prog), socket], cwd=tmp_path,
                              capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    assert want.returncode == 0, want
    got = runpsc("do", f"--volume={PROGS}:/progs:ro", "--cwd=/tmp", "--", "sh", "-c",
                 f"mkdir -p {SANDBOX_SOCKET[:-2]} && exec sh /progs/{prog} {SANDBOX_SOCKET}")
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines(), \
        got.stderr.decode(errors="replace")
    assert got.returncode == want.returncode
    return want.stdout


def test_detached_session_runs_a_command_in_a_pane_matches_native(tmp_path):
    out = _detached("tmux_pane.sh", tmp_path)
    assert b"pane /dev/pts/N\n24 80\npgrp foreground\n" in out, out
    assert out.endswith(b"kill-server 0\nhas-session 1\n"), out


def test_windows_panes_send_keys_pipe_pane_buffers_match_native(tmp_path):
    out = _detached("tmux_windows.sh", tmp_path)
    assert b"through cat\nthrough cat\n$ echo from-bash $((2+3))\nfrom-bash 5\n$\n" in out, out


def test_server_left_running_ends_with_the_sandbox():
    """A tmux server daemonizes (double fork, setsid): it ends with the sandbox's program."""
    need_binary("tmux", "tmux")
    marker = f"sleep {uuid.uuid4().int % 10**9 + 10**9}"
    got = runpsc("do", "--cwd=/tmp", "--", "sh", "-c",
                 f"mkdir -p {SANDBOX_SOCKET[:-2]} && export SHELL=/bin/sh"
                 f" && tmux -S {SANDBOX_SOCKET} -f /dev/null"
                 f" new-session -d '{marker}' && tmux -S {SANDBOX_SOCKET} list-panes"
                 " -F '#{pane_current_command}'")
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    # The pane runs $SHELL -c CMD (the caller's SHELL, pinned here): listed before or after
    # the shell exec's the command, the pane shows either.
    assert got.stdout in (b"sh\n", b"sleep\n")
    assert _running_with(marker) == []


@pytest.fixture
def tmux_socket(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the attached test's server listens: natively a killed-afterwards one."""
    if "sandbox" in request.node.callspec.id:
        yield SANDBOX_SOCKET
        return
    with _native_server(tmp_path) as socket:
        yield socket


def test_attached_on_the_terminal_shell_in_a_pane_resize_detach(
        bash, tmux_socket):  # noqa: F811 (pytest passes the imported fixture)
    """tmux as the client on the sandbox's pty: the pane's interactive shell runs a command,
    a window resize of the caller's terminal reaches the pane (SIGWINCH to the client, which
    tells the server, which sets the pane's size: SIGWINCH to the pane's shell), the prefix
    key (^B d) detaches, and the pane's screen is read back from the outer shell."""
    need_binary("tmux", "tmux")
    child = bash(24, 80)
    _lines(child, f"mkdir -p {Path(tmux_socket).parent}")
    child.sendline(f"tmux -S {tmux_socket} -f /dev/null new-session "
                   "\"PS1='I''N$ ' bash --norc --noprofile -i\"")  # the echo never matches
    child.expect(r"IN\$ ")
    child.sendline("echo $((6*7)); tty; stty size")
    child.expect(r"23 80")  # a status line under the pane
    child.expect(r"IN\$ ")
    child.setwinsize(30, 100)
    child.sendline('until [ "$(stty size)" != "23 80" ]; do :; done; echo "si""ze $(stty size)"')
    child.expect(r"size (\d+ \d+)")
    assert child.match.group(1) == b"29 100"
    child.expect(r"IN\$ ")
    child.sendcontrol("b")
    child.send("d")
    child.expect(r"\[detached \(from session 0\)\]")
    child.expect(PROMPT)
    screen = _lines(child, f"tmux -S {tmux_socket} capture-pane -p | grep -v '^$'")
    assert re.sub(r"/dev/pts/\d+", "/dev/pts/N", screen) == (
        "IN$ echo $((6*7)); tty; stty size\n42\n/dev/pts/N\n23 80\n"
        'IN$ until [ "$(stty size)" != "23 80" ]; do :; done; echo "si""ze $(stty size)"\n'
        "size 29 100\nIN$\n")
    assert _lines(child, f"tmux -S {tmux_socket} kill-server; echo $?") == "0\n"


@pytest.mark.parametrize("where", ["native", "sandbox"])
def test_tmux_as_the_program_on_the_terminal_ends_with_its_last_pane(where, tmp_path):
    """`runpsc do -- tmux new-session CMD` on a terminal: the client is the sandbox's first
    process; when the pane's shell exits, the session and the server end and so does the
    client, with status 0 and "[exited]", as natively."""
    need_binary("tmux", "tmux")
    with contextlib.ExitStack() as stack:
        if where == "native":
            socket = stack.enter_context(_native_server(tmp_path))
        else:
            socket = "/tmp/s"
        cmd = ["tmux", "-S", socket, "-f", "/dev/null", "new-session",
               "PS1='I''N$ ' bash --norc --noprofile -i"]  # the echo never matches
        child = _spawn(cmd if where == "native" else runpsc_argv(*cmd))
        stack.callback(_finish, child)
        child.expect(r"IN\$ ")
        child.sendline("tty; exit 3")
        child.expect(r"\[exited\]")
        child.expect(pexpect.EOF)
        child.close()
        assert (child.exitstatus, child.signalstatus) == (0, None)
