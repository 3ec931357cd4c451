"""What /proc/PID counts over a process's life, natively and inside `runpsc do`: waited-for
children's CPU time (stat's cutime/cstime, times(), getrusage(RUSAGE_CHILDREN), wait4's
rusage), VmPeak as the largest size, oom_score_adj over fork, /proc/PID/io's counters,
the program's and interpreter's mappings with the file's offsets and inode, df's figures
(tmpfs half the memory, the root its backing filesystem's), and /proc/TID of a thread
(reachable, not listed) as a thread starts."""

from __future__ import annotations

import os
import subprocess

from tests.runtime.test_do import runpsc
from tests.support import native_child_setup

#: Debian's python, which the sandbox sees at the same path wherever the checkout (and its
#: virtualenv) lives.
PY = "/usr/bin/python3"

CHILDREN = r"""
import os, resource, time

def spin(seconds):  # the CPU clock read once per 20,000 steps: each read is a call the
    s = time.process_time()  # Sentry serves on the Sentry's time, so one per step took ~8 s
    while time.process_time() - s < seconds:
        for _ in range(20000):
            pass

before = os.times()
pid = os.fork()
if pid == 0:
    spin(0.3)
    os._exit(0)
_, status, ru = os.wait4(pid, 0)
after = os.times()
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
f = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
print("wait4 rusage", ru.ru_utime + ru.ru_stime >= 0.25, ru.ru_maxrss > 1000)
print("times children", after.children_user + after.children_system
      - before.children_user - before.children_system >= 0.25)
print("getrusage children", kids.ru_utime + kids.ru_stime >= 0.25, kids.ru_maxrss > 1000)
print("stat cutime+cstime", int(f[13]) + int(f[14]) >= 25)
pid = os.fork()
if pid == 0:
    g = os.fork()
    if g == 0:
        spin(0.3)
        os._exit(0)
    os.waitpid(g, 0)  # the grandchild's time becomes the child's cutime ...
    os._exit(0)
os.waitpid(pid, 0)  # ... and, at this wait, ours
later = os.times()
print("grandchild counted", later.children_user + later.children_system
      - after.children_user - after.children_system >= 0.25)
"""

MEMORY = r"""
import mmap, os

def vm(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

m = mmap.mmap(-1, 200 << 20)
big = vm("VmSize")
m.close()
print("VmPeak kept", vm("VmPeak") >= big > vm("VmSize") + 200000,
      "VmHWM >= VmRSS", vm("VmHWM") >= vm("VmRSS"))
open("/proc/self/oom_score_adj", "w").write("300")
pid = os.fork()
if pid == 0:
    print("child oom_score_adj", open("/proc/self/oom_score_adj").read().strip(), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""

IO = r"""
import os

def io():
    fd = os.open("/proc/self/io", os.O_RDONLY)
    text = os.read(fd, 4096)
    os.close(fd)
    return len(text), {k: int(v) for k, v in (l.split(b": ") for l in text.splitlines())}

path = "/tmp/io-%d" % os.getpid()
with open(path, "wb") as f:
    f.write(b"d" * 3000)
src = os.open(path, os.O_RDONLY)
os.unlink(path)
null = os.open("/dev/null", os.O_WRONLY)
n0, a = io()
for _ in range(3):
    os.read(src, 1000)
os.read(src, 10)  # at EOF: a call, no bytes
os.write(null, b"x" * 500)
os.writev(null, [b"y" * 200, b"z" * 50])
try:
    os.read(99, 1)  # EBADF: not counted
except OSError:
    pass
n1, b = io()
pid = os.fork()
if pid == 0:
    os.write(null, b"c" * 700)
    os._exit(0)
os.waitpid(pid, 0)
n2, c = io()
# the first io() read after its own snapshot counts: one call, n0 bytes
print("calls", b[b"syscr"] - a[b"syscr"], b[b"syscw"] - a[b"syscw"])
print("bytes", b[b"rchar"] - a[b"rchar"] - n0, b[b"wchar"] - a[b"wchar"])
print("reaped child's", c[b"wchar"] - b[b"wchar"], c[b"syscw"] - b[b"syscw"],
      c[b"syscr"] - b[b"syscr"])
"""

MAPS = r"""
import os, sys
exe = os.path.realpath(sys.executable)
interp = None
rows = {}
for line in open("/proc/self/maps"):
    rng, perms, off, dev, ino, *name = line.split()
    if not name or not name[0].startswith("/"):
        continue
    path = name[0]
    if "ld-linux" in path:
        interp = path
    if path in (exe, interp):
        major, minor = (int(x, 16) for x in dev.split(":"))
        st = os.stat(path)
        rows.setdefault(path, []).append(
            (perms, off, int(ino) == st.st_ino, os.makedev(major, minor) == st.st_dev))
for path in (exe, interp):
    print(path, rows[path])
"""


THREAD = r"""
import os, threading
out = []

def look():
    tid = threading.get_native_id()
    status = dict(line.split(":\t", 1) for line in open(f"/proc/{tid}/status").read().splitlines())
    out.append((str(tid) in os.listdir("/proc"), status["Pid"] == str(tid),
                status["Tgid"] == str(os.getpid()),
                open(f"/proc/{tid}/stat").read().split()[0] == str(tid),
                sorted(os.listdir(f"/proc/{tid}/task")) == sorted(os.listdir("/proc/self/task")),
                str(tid) in os.listdir("/proc/self/task")))

for _ in range(20):  # each thread looks as soon as it starts
    t = threading.Thread(target=look)
    t.start()
    t.join()
print(set(out))
"""


RSS = r"""
import os, sys
status = {l.split(":")[0]: int(l.split()[1]) for l in open("/proc/self/status")
          if l.startswith(("VmRSS", "RssAnon", "RssFile", "RssShmem"))}
size, resident, shared = map(int, open("/proc/self/statm").read().split()[:3])
exe = os.path.realpath(sys.executable)
text = {}
head = None
for line in open("/proc/self/smaps"):
    parts = line.split()
    if "-" in parts[0] and len(parts) >= 5:
        head = parts if parts[-1] == exe and parts[1] == "r-xp" else None
    elif head is not None and parts[0] in ("Rss:", "Private_Dirty:", "Anonymous:"):
        text[parts[0]] = int(parts[1])
print("parts add up", status["RssAnon"] + status["RssFile"] + status["RssShmem"]
      == status["VmRSS"])
print("file pages", status["RssFile"] > 0, shared * 4 >= status["RssFile"])
print("program text clean", text["Rss:"] > 0, text["Private_Dirty:"], text["Anonymous:"])
"""


def run_both(tmp_path, script: str, *args: str) -> tuple[str, str]:
    path = tmp_path / "script.py"
    path.write_text(script)
    native = subprocess.run([PY, "-S", str(path)], capture_output=True,
                            preexec_fn=native_child_setup, stdin=subprocess.DEVNULL,
                            timeout=60)
    got = runpsc("do", *args, "--volume", f"{tmp_path}:/t:ro", "--", PY, "-S",
                 "/t/script.py")
    assert native.returncode == 0, native.stderr
    assert got.returncode == 0, got.stderr
    return native.stdout.decode(), got.stdout.decode()


def test_children_cpu_time_is_counted_once_waited_for(tmp_path):
    want, got = run_both(tmp_path, CHILDREN)
    assert got == want
    assert got.count("True") == 7 and "False" not in got, got


def test_vm_peak_and_oom_score_adj_over_fork(tmp_path):
    want, got = run_both(tmp_path, MEMORY)
    assert got == want
    assert "VmPeak kept True VmHWM >= VmRSS True" in got
    assert "child oom_score_adj 300" in got


def test_io_counts_calls_and_bytes(tmp_path):
    want, got = run_both(tmp_path, IO)
    assert got == want
    assert "calls 5 2\nbytes 3000 750\nreaped child's 700 1 1\n" in got, got


def test_program_and_interpreter_mappings_show_the_file(tmp_path):
    want, got = run_both(tmp_path, MAPS)
    assert got == want
    lines = got.splitlines()
    assert len(lines) == 2 and "ld-linux" in lines[1], got
    assert "'r-xp'" in got and "False" not in got, got
    assert any("'00000000'" not in part for part in got.split("), (")), got  # offsets


def test_df_shows_tmpfs_as_half_the_memory_and_the_root_s_backing_filesystem():
    got = runpsc("do", "--memory", "2G", "--tmpfs", "/tmp", "--", "df", "-k", "/", "/tmp")
    assert got.returncode == 0, got.stderr
    root, tmp = (line.split() for line in got.stdout.decode().splitlines()[1:])
    assert tmp[1:4] == ["1048576", "0", "1048576"] and tmp[5] == "/tmp", got.stdout
    st = os.statvfs("/")
    assert int(root[1]) == st.f_blocks * st.f_frsize // 1024, (got.stdout, st)
    assert root[5] == "/"


def test_a_thread_s_own_directory_as_it_starts(tmp_path):
    want, got = run_both(tmp_path, THREAD)
    assert got == want == "{(False, True, True, True, True, True)}\n"


def test_resident_set_splits_into_anonymous_and_file_pages(tmp_path):
    want, got = run_both(tmp_path, RSS)
    assert got == want == ("parts add up True\nfile pages True True\n"
                           "program text clean True 0 0\n")
