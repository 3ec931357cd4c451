"""/proc/PID's magic links (sentry/procfs/links.py, vfs.Filesystem.jump_link): fd/N, cwd,
root, exe and ns/* open the very file, whatever path names it (a pipe, a file unlinked
while open, a host descriptor), readlink keeps Linux's text, and another uid's links are
EACCES; the same script natively and inside `runpsc do`, and bash's `<(...)`,
/dev/stdin and /dev/stdout as a user types them."""

from __future__ import annotations

import subprocess
import sys

from tests.runtime.test_do import runpsc
from tests.support import native_child_setup

LINKS = r"""
import errno, os, re, select, shutil, stat, sys, tempfile

D = tempfile.mkdtemp(prefix="links")
lines = []

def say(*args):
    lines.append(" ".join(map(str, args)).replace(D, "$D"))

def attempt(f):
    try:
        return f()
    except OSError as e:
        return errno.errorcode[e.errno]

def kind(p):
    return re.sub(r"\[\d+\]", "[N]", os.readlink(p))

# stdin: a pipe from outside, reopened; its stat is the pipe's
say("stdin", stat.S_ISFIFO(os.stat("/dev/stdin").st_mode), kind("/proc/self/fd/0"),
      open("/dev/stdin", "rb").read())
# a pipe of our own: the reopened read end reads what the write end wrote
r, w = os.pipe()
os.write(w, b"through the pipe")
fd = os.open(f"/proc/self/fd/{r}", os.O_RDONLY)
say("pipe", kind(f"/proc/self/fd/{r}"), os.read(fd, 100),
      os.fstat(fd).st_ino == os.fstat(r).st_ino)
wfd = os.open(f"/dev/fd/{w}", os.O_WRONLY)
os.write(wfd, b"second writer")
os.close(w)
os.close(wfd)
say("pipe eof", os.read(r, 100), os.read(fd, 100))
os.close(fd)
os.close(r)
# a file unlinked while open: reachable through fd/N, its own offset, "(deleted)"
os.chdir(D)
f = os.open("gone", os.O_RDWR | os.O_CREAT, 0o640)
os.write(f, b"still here")
os.unlink("gone")
say("deleted", os.readlink(f"/proc/self/fd/{f}"), os.lseek(f, 0, os.SEEK_CUR))
g = os.open(f"/proc/self/fd/{f}", os.O_RDONLY)
say("reopened", os.read(g, 5), os.read(g, 100), os.lseek(f, 0, os.SEEK_CUR),
      oct(os.fstat(g).st_mode), os.fstat(g).st_nlink)
say("create", attempt(lambda: os.close(os.open(f"/proc/self/fd/{f}",
                                                 os.O_WRONLY | os.O_CREAT, 0o600)) or "ok"),
      attempt(lambda: os.open(f"/proc/self/fd/{f}", os.O_WRONLY | os.O_CREAT | os.O_EXCL)),
      attempt(lambda: os.open(f"/proc/self/fd/{f}/", os.O_RDONLY)),
      attempt(lambda: os.open(f"/proc/self/fd/{f}", os.O_RDONLY | os.O_NOFOLLOW)))
os.close(g)
# O_TRUNC through the link truncates the file
t = os.open(f"/proc/self/fd/{f}", os.O_WRONLY | os.O_TRUNC)
say("truncated", os.fstat(f).st_size)
os.close(t)
os.close(f)
# a directory: cwd, and fd/N of an open directory, as paths to walk through
os.mkdir("sub")
open("sub/file", "w").write("in sub")
d = os.open("sub", os.O_RDONLY | os.O_DIRECTORY)
say("dir", os.readlink("/proc/self/cwd"), os.listdir("/proc/self/cwd"),
      open(f"/proc/self/fd/{d}/file").read(), os.readlink(f"/proc/self/fd/{d}"))
os.rename("sub", "moved")
say("moved", os.readlink(f"/proc/self/fd/{d}"), open(f"/proc/self/fd/{d}/file").read())
os.close(d)
say("root", os.readlink("/proc/self/root"), os.path.isdir("/proc/self/root" + D))
# exe: the running program, whatever its name
say("exe", os.path.samestat(os.stat("/proc/self/exe"), os.stat(sys.executable)),
      attempt(lambda: len(open("/proc/self/exe", "rb").read(4))))
# ns/*: readlink "mnt:[N]", and it opens (a file on nsfs)
ns = os.open("/proc/self/ns/mnt", os.O_RDONLY)
say("ns", re.sub(r"\d+", "N", os.readlink("/proc/self/ns/mnt")),
      stat.S_ISREG(os.fstat(ns).st_mode),
      os.fstat(ns).st_ino == int(os.readlink("/proc/self/ns/mnt")[5:-1]))
os.close(ns)
# an anonymous inode cannot be reopened
ep = select.epoll()
say("epoll", kind(f"/proc/self/fd/{ep.fileno()}"),
      attempt(lambda: os.open(f"/proc/self/fd/{ep.fileno()}", os.O_RDONLY)))
ep.close()
# another uid's links need ptrace access: EACCES for nobody, the parent's own are open
parent = os.getpid()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.setgid(65534)
    os.setuid(65534)
    out = [attempt(lambda: os.readlink(f"/proc/{parent}/cwd")),
           attempt(lambda: os.listdir(f"/proc/{parent}/cwd")),
           attempt(lambda: os.readlink(f"/proc/{parent}/exe")),
           attempt(lambda: os.readlink(f"/proc/{parent}/root")),
           attempt(lambda: os.readlink(f"/proc/{parent}/fd/0")),
           attempt(lambda: os.readlink(f"/proc/{parent}/ns/mnt")),
           os.readlink("/proc/self/cwd")]
    os.write(w, repr(out).encode())
    os._exit(0)
os.close(w)
say("other uid", os.read(r, 1000).decode())
os.waitpid(pid, 0)
os.chdir("/")
shutil.rmtree(D)
print("\n".join(lines))
"""


def run_both(tmp_path, script: str) -> tuple[str, str]:
    path = tmp_path / "links.py"
    path.write_text(script)
    native = subprocess.run([sys.executable, "-S", str(path)], capture_output=True,
                            input=b"from outside", preexec_fn=native_child_setup,
                            timeout=60, cwd="/")
    got = runpsc("do", "--volume", f"{tmp_path}:/t:ro", "--cwd", "/", "--", "python3", "-S",
                 "/t/links.py", input=b"from outside")
    assert native.returncode == 0, native.stderr
    assert got.returncode == 0, got.stderr
    return native.stdout.decode(), got.stdout.decode()


def test_magic_links_open_the_very_file_as_on_linux(tmp_path):
    want, got = run_both(tmp_path, LINKS)
    assert got == want
    assert "stdin True pipe:[N] b'from outside'" in got
    assert "pipe pipe:[N] b'through the pipe' True" in got
    assert "pipe eof b'second writer' b''" in got
    assert "deleted $D/gone (deleted) 10" in got
    assert "reopened b'still' b' here' 10" in got
    assert "create ok EEXIST ENOTDIR ELOOP" in got and "truncated 0" in got
    assert "moved $D/moved in sub" in got
    assert "epoll anon_inode:[eventpoll] ENXIO" in got
    assert "other uid ['EACCES', 'EACCES', 'EACCES', 'EACCES', 'EACCES', 'EACCES'" in got


BASH = r"""
echo from-stdin | cat /dev/stdin
cat <(echo process substitution)
diff <(printf 'a\nb\n') <(printf 'a\nc\n'); echo "diff $?"
while read -r line; do echo "read $line"; done < <(printf 'one\ntwo\n')
echo to-stdout > /dev/stdout
echo to-stderr > /dev/stderr
exec 3< <(echo fd three); cat /dev/fd/3
ls -l /proc/self/fd/ | awk 'NR>1 {print $9, $10, $11}' | sed 's/[0-9][0-9]*/N/g'
"""


def test_bash_process_substitution_and_dev_stdin():
    native = subprocess.run(["bash", "-c", BASH], capture_output=True, timeout=60,
                            stdin=subprocess.DEVNULL, preexec_fn=native_child_setup)
    got = runpsc("do", "--", "bash", "-c", BASH)
    assert got.returncode == native.returncode == 0, got.stderr
    assert got.stdout.decode() == native.stdout.decode()
    assert b"to-stderr" in got.stderr
    assert b"process substitution" in got.stdout and b"read two" in got.stdout


STDIN_FILE = r"""
import os
first = os.read(0, 3)
again = open("/dev/stdin", "rb")           # a new description: its own offset, from 0
whole = again.read()
again.seek(2)
tail = again.read(4)
rest = os.read(0, 100)                     # the first description's offset is untouched
print(first, whole, tail, rest, os.lseek(0, 0, os.SEEK_CUR), again.tell())
"""


def test_dev_stdin_reopens_a_root_only_file_with_its_own_offset(tmp_path):
    """stdin a regular file only root may open (0600): the confined Sentry runs under an id
    of its own, yet /dev/stdin opens it for the root program, as a new description."""
    data = tmp_path / "in"
    data.write_bytes(b"0123456789")
    data.chmod(0o600)
    script = tmp_path / "s.py"
    script.write_text(STDIN_FILE)
    with open(data, "rb") as f:
        native = subprocess.run([sys.executable, "-S", str(script)], stdin=f,
                                capture_output=True, timeout=60,
                                preexec_fn=native_child_setup)
    with open(data, "rb") as f:
        got = subprocess.run([sys.executable, "-m", "runtime.cli", "do", "--volume",
                              f"{tmp_path}:/t:ro", "--", "python3", "-S", "/t/s.py"],
                             stdin=f, capture_output=True, timeout=120)
    assert native.returncode == 0, native.stderr
    assert got.returncode == 0, got.stderr
    assert got.stdout == native.stdout
    assert b"b'012' b'0123456789' b'2345' b'3456789' 10 6" in got.stdout
