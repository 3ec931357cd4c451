"""`runpsc do` on a terminal: the sandbox gets a pty of its own (devpts in the Sentry).

Every test drives a real pty with pexpect, as a user at a terminal would, and where the
outcome is the shell's or the program's own, runs the same keystrokes against native bash
and compares what was observed. No test sleeps: each key is sent after something on the
screen says the program is ready for it (generous pexpect timeouts).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import termios
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import missing, native_child_setup, need_binary

try:
    import pexpect
except ImportError:  # a dev extra (pyproject.toml): under CI its absence fails
    pexpect = None


@pytest.fixture(autouse=True)
def _pexpect() -> None:
    if pexpect is None:
        missing("pexpect", "pip install -e '.[dev]' (or run scripts/setup.sh)")


ROOT = Path(__file__).resolve().parents[2]
PROMPT = r"PROMPT\$ "
TIMEOUT = 60
ENV = {"PATH": "/usr/bin:/bin", "PS1": "PROMPT$ ", "TERM": "xterm", "HOME": "/root",
       "LANG": "C", "INPUTRC": "/dev/null"}
#: Prints "ready" once started, "cont" whenever continued and "foreground" whenever it gets
#: the terminal back (it looks every 50 ms: what it reports never depends on when).
#: (The words are split in the source so that the echoed command line never matches them.)
JOB = ("python3 -c 'import os, signal, time\n"
       "signal.signal(signal.SIGCONT, lambda *a: os.write(1, b\"co\" b\"nt\\n\"))\n"
       "os.write(1, b\"rea\" b\"dy\\n\"); was = True\n"
       "while True:\n"
       "    now = os.tcgetpgrp(0) == os.getpgrp()\n"
       "    if now and not was: os.write(1, b\"fore\" b\"ground\\n\")\n"
       "    was = now; time.sleep(0.05)'")



def _spawn(argv: list[str], rows: int = 24, cols: int = 80) -> pexpect.spawn:
    return pexpect.spawn(argv[0], argv[1:], cwd=str(ROOT), env=ENV, timeout=TIMEOUT,
                         dimensions=(rows, cols), preexec_fn=native_child_setup)


def runpsc_argv(*cmd: str) -> list[str]:
    return [sys.executable, "-m", "runtime.cli", "do", "--", *cmd]


def _session(sid: int) -> list[int]:
    """The pids of session `sid` (what a test's terminal started, its jobs included)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[3]) == sid:
                out.append(int(entry))
    return out


def _finish(child: pexpect.spawn) -> None:
    """End the session and make sure nothing of it runs on (a job left in the background
    of a native shell included)."""
    for pid in _session(child.pid):
        if pid != child.pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    child.close(force=True)


def _both(child: pexpect.spawn, *patterns: str) -> None:
    """Wait for each of `patterns`, in whatever order they come (a background job and the
    shell's prompt write independently)."""
    left = list(patterns)
    while left:
        left.pop(child.expect(left))


@pytest.fixture(params=["native", "sandbox"])
def bash(request: pytest.FixtureRequest) -> Iterator[Callable[..., pexpect.spawn]]:
    """Start an interactive bash (native, or in the sandbox), at its first prompt."""
    need_binary("bash")
    made: list[pexpect.spawn] = []

    def start(rows: int = 24, cols: int = 80) -> pexpect.spawn:
        cmd = ["bash", "--norc", "--noprofile", "-i"]
        argv = cmd if request.param == "native" else runpsc_argv(*cmd)
        child = _spawn(argv, rows, cols)
        made.append(child)
        child.expect(PROMPT)
        return child

    yield start
    for child in made:
        _finish(child)


def _lines(child: pexpect.spawn, command: str) -> str:
    """Run `command` at the prompt; what it printed, between two markers the shell prints
    (the echoed command line, wrapped or redrawn, never matches them; $? is kept)."""
    child.sendline(f'__s=$?; echo BE""GIN; (exit $__s); {command}; echo FI""NISH')
    child.expect(r"BEGIN\r\n(.*?)FINISH\r\n")
    out = child.match.group(1).decode(errors="replace").replace("\r\n", "\n")
    child.expect(PROMPT)
    return re.sub(r"\x1b\[\?2004[hl]\r?", "", out)  # bash's bracketed-paste switches


# -- what a shell on the sandbox's terminal sees ------------------------------------------------


def test_tty_names_a_pts_and_ttyname_agrees(bash):
    child = bash()
    tty = _lines(child, "tty")
    assert re.fullmatch(r"/dev/pts/\d+\n", tty)
    out = _lines(child, "python3 -c 'import os; print(os.ttyname(0) == os.readlink("
                        "\"/proc/self/fd/0\"), os.isatty(1), os.tcgetpgrp(0) == os.getpgrp())'")
    assert out == "True True True\n"
    # /proc/PID/stat's tty_nr and tpgid: what ps shows
    out = _lines(child, "ps -o tty=,tpgid= -p $$")
    ps = re.search(r"(pts/\d+) +(\d+)\n", out)
    assert ps and ps.group(1) == tty.strip()[5:], out


def test_stty_size_follows_a_window_resize(bash):
    child = bash(24, 80)
    assert _lines(child, "stty size") == "24 80\n"
    child.setwinsize(30, 100)
    # the shell waits for the size to arrive (SIGWINCH → TIOCSWINSZ), then reports it; the
    # prompt may be drawn again meanwhile (readline's SIGWINCH), so look for the report
    child.sendline('until [ "$(stty size)" = "30 100" ]; do :; done; echo "size $(stty size)"')
    child.expect(r"size (\d+ \d+)\r\n")
    assert child.match.group(1) == b"30 100"


def test_line_editing_arrows_ctrl_a_ctrl_e_history(bash):
    child = bash()
    child.send("cho abc\x01e\x05d\r")  # ^A to the start, ^E to the end
    child.expect("abcd\r\n")
    child.expect(PROMPT)
    child.send("echo xz\x1b[Dy\r")  # left arrow
    child.expect("xyz\r\n")
    child.expect(PROMPT)
    child.send("\x1b[A\x1b[A\r")  # history: two lines up
    child.expect("abcd\r\n")
    child.expect(PROMPT)


def _job_control(child: pexpect.spawn) -> list[str]:
    seen = []
    child.sendline(JOB)
    child.expect("ready")
    child.sendcontrol("c")  # the foreground job dies, the shell stays
    child.expect(PROMPT)
    seen.append(_lines(child, "echo status $?"))
    child.sendline(JOB)
    child.expect("ready")
    child.sendcontrol("z")
    child.expect(r"\[1\]\+\s+Stopped")
    child.expect(PROMPT)
    seen.append(re.sub(r"\s+", " ", _lines(child, "jobs")))
    child.sendline("bg")
    _both(child, "cont", PROMPT)
    seen.append(re.sub(r"\s+", " ", _lines(child, "jobs")))
    child.sendline("fg")
    child.expect("foreground")
    child.sendcontrol("c")
    child.expect(PROMPT)
    seen.append(_lines(child, "echo status $?"))
    seen.append(_lines(child, "jobs; echo done"))
    return seen


def test_job_control_ctrl_c_ctrl_z_jobs_bg_fg_matches_native(bash):
    seen = _job_control(bash())
    assert seen[0] == "status 130\n"
    assert seen[1].startswith("[1]+ Stopped python3")
    assert seen[2].startswith("[1]+ Running python3")
    assert seen[3] == "status 130\n"
    assert seen[4] == "done\n"


def test_cat_reads_lines_until_ctrl_d(bash):
    child = bash()
    child.sendline("cat")
    child.sendline("hello")
    child.expect("hello\r\nhello\r\n")
    child.send("par")
    child.sendcontrol("d")  # ends a partial line: cat gets it without a newline
    child.expect("parpar")
    child.sendcontrol("d")  # on an empty line: end of file
    child.expect(PROMPT)
    assert _lines(child, "echo status $?") == "status 0\n"


def test_background_read_stops_the_job_with_sigttin(bash):
    child = bash()
    child.sendline("cat &")
    child.expect(PROMPT)
    out = _lines(child, "wait; jobs")
    assert re.sub(r"\s+", " ", out).endswith("[1]+ Stopped cat ")  # by SIGTTIN
    child.sendline("fg")
    child.expect("cat")
    child.sendline("back")
    child.expect("back\r\nback\r\n")
    child.sendcontrol("d")
    child.expect(PROMPT)
    # a change of settings from the background: SIGTTOU; in the foreground it completes
    child.sendline("stty -echoctl &")
    child.expect(PROMPT)
    out = _lines(child, "wait; jobs")
    assert re.sub(r"\s+", " ", out).endswith("[1]+ Stopped stty -echoctl ")
    child.sendline("fg")
    child.expect(PROMPT)
    assert _lines(child, "echo status $?") == "status 0\n"  # the stopped ioctl restarted


def test_python_input_interactive(bash):
    child = bash()
    child.sendline("python3 -q")
    child.expect(">>> ")
    child.sendline("x = input('name? ')")
    child.expect(r"name\? ")
    child.sendline("bob")
    child.expect(">>> ")
    child.sendline("print('hi', x)")
    child.expect("hi bob\r\n")
    child.expect(">>> ")
    child.sendcontrol("d")
    child.expect(PROMPT)


def test_vi_writes_what_was_typed(bash, tmp_path):
    need_binary("busybox", "busybox-static")
    child = bash()
    child.sendline(f"mkdir -p {tmp_path} && cd {tmp_path} && busybox vi v.txt")
    child.expect(r"- v\.txt")  # the status line: command mode
    child.send("i")
    child.expect(r"I v\.txt")  # insert mode
    child.send("hello from vi")
    child.expect("hello from vi")
    child.send("\x1b")
    child.expect(r"- v\.txt")  # back in command mode once ESC stood alone
    child.send(":wq\r")
    child.expect(PROMPT)
    assert _lines(child, "cat v.txt") == "hello from vi\n"


def test_less_pages_and_quits(bash, tmp_path):
    need_binary("less")
    child = bash(24, 80)
    child.sendline(f"mkdir -p {tmp_path}; seq 1 200 > {tmp_path}/s; less {tmp_path}/s")
    child.expect(r"23\r\n")  # the first screen: 23 lines and the prompt line
    child.send(" ")
    child.expect(r"46\r\n")
    child.send("q")
    child.expect(PROMPT)
    assert _lines(child, "echo status $?") == "status 0\n"


def test_programs_open_their_own_ptys(bash):
    need_binary("script", "bsdutils")
    child = bash()
    out = _lines(child, "script -qc 'tty; echo in-script' /dev/null")
    assert re.fullmatch(r"/dev/pts/\d+\nin-script\n", out), out
    out = _lines(child, "python3 -c 'import os, pty; pid, fd = pty.fork()\n"
                        "if pid == 0: os.execvp(\"sh\", [\"sh\", \"-c\", \"tty; stty size\"])\n"
                        "import sys; sys.stdout.write(os.read(fd, 100).decode()); "
                        "os.waitpid(pid, 0)'")
    assert re.match(r"/dev/pts/\d+\r?\n", out), out


# -- the caller's terminal ------------------------------------------------------------------------


def _settings(fd: int) -> list:
    return termios.tcgetattr(fd)


def test_caller_terminal_restored_after_sigkill_of_runpsc():
    """`runpsc do` puts the caller's terminal in raw mode; SIGKILL of runpsc while bash
    runs leaves it as it was (the guardian restores the saved settings)."""
    need_binary("bash")
    child = _spawn(runpsc_argv("bash", "--norc", "--noprofile", "-i"))
    try:
        # the pty as pexpect made it: what runpsc found (the master reads the same termios)
        before = _settings(child.child_fd)
        assert before[3] & termios.ICANON
        child.expect(PROMPT)
        raw = _settings(child.child_fd)
        assert not raw[3] & (termios.ICANON | termios.ECHO | termios.ISIG)
        os.kill(child.pid, signal.SIGKILL)
        child.expect(pexpect.EOF)  # every holder of the terminal is gone, the guardian too
        assert _settings(child.child_fd) == before
    finally:
        child.close(force=True)


def test_caller_terminal_restored_after_normal_exit():
    need_binary("bash")
    child = _spawn(runpsc_argv("bash", "--norc", "--noprofile", "-i"))
    try:
        before = _settings(child.child_fd)
        child.expect(PROMPT)
        child.sendline("exit 7")
        child.expect(pexpect.EOF)
        assert _settings(child.child_fd) == before
        child.close()
        assert child.exitstatus == 7
    finally:
        child.close(force=True)


def test_without_a_terminal_stdio_stays_the_hosts():
    """Pipes stay pipes: no pty when none of stdin, stdout, stderr is a terminal."""
    import subprocess

    got = subprocess.run(runpsc_argv("sh", "-c", "tty; readlink /proc/self/fd/1"),
                         cwd=str(ROOT), capture_output=True, stdin=subprocess.DEVNULL,
                         timeout=TIMEOUT)
    lines = got.stdout.decode().splitlines()
    assert lines[0] == "not a tty"
    assert lines[1].startswith("pipe:")
