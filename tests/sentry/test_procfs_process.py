"""/proc/PID from the Sentry (sentry/procfs/process.py), read by ps, pgrep, pkill, pstree,
pmap, df, findmnt and mount inside `runpsc do`: each lists the sandbox's processes and
mounts only, with sane columns, in the layout of its native run; /proc/self/maps shows what
the program itself mapped."""

from __future__ import annotations

import re

from tests.runtime.test_do import native, runpsc


def sh(script: str, *options: str) -> str:
    got = runpsc("do", "--memory", "1G", *options, "--", "sh", "-c", script)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    return got.stdout.decode()


def test_ps_aux_lists_the_sandbox_s_processes():
    out = sh("sleep 30 & ps aux; kill $!")
    header, *rows = out.splitlines()
    assert header.split() == native("ps", "aux").stdout.decode().splitlines()[0].split()
    cols = [r.split(None, 10) for r in rows]
    assert [c[1] for c in cols] == ["1", "2", "3"], out  # pid 1 is the shell
    assert [c[10] for c in cols] == ["sh -c sleep 30 & ps aux; kill $!"[:len(cols[0][10])],
                                     "sleep 30", "ps aux"], out  # cut to 80 columns
    for user, _pid, cpu, mem, vsz, rss, tty, stat, start, tm, _ in cols:
        assert user == "root" and tty == "?"
        assert float(cpu) >= 0 and 0 <= float(mem) < 5, out
        assert int(vsz) > 1000 and 0 < int(rss) < int(vsz), out
        assert stat[0] in "RS" and re.fullmatch(r"\d\d:\d\d", start) and ":" in tm
    assert cols[0][7] == "Ss" and cols[2][7].startswith("R"), out  # session leader


def test_ps_ef_pgrep_pkill_and_pstree():
    out = sh("sleep 30 & ps -ef; echo; pgrep -l sleep; pstree -p; pkill sleep; wait $!; "
             "echo status $?")
    ef, rest = out.split("\n\n", 1)
    header, *rows = ef.splitlines()
    assert header.split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    ppids = {r.split()[1]: r.split()[2] for r in rows}
    assert ppids == {"1": "0", "2": "1", "3": "1"}, ef
    lines = rest.splitlines()
    assert lines[0] == "2 sleep"
    assert re.fullmatch(r"sh\(1\)-[+-]-.*", lines[1]) and "sleep(2)" in rest, rest
    assert lines[-1] == "status 143"  # SIGTERM


def test_pmap_and_maps_show_what_the_program_mapped():
    script = r"""
import ctypes, mmap, os
with open('/tmp/data', 'wb') as f:
    f.write(b'x' * 3 * 4096)
fd = os.open('/tmp/data', os.O_RDONLY)
m = mmap.mmap(fd, 2 * 4096, mmap.MAP_SHARED, mmap.PROT_READ, offset=4096)
a = mmap.mmap(-1, 5 * 4096, mmap.MAP_PRIVATE)
anon = ctypes.addressof(ctypes.c_char.from_buffer(a))
ino = os.fstat(fd).st_ino
for line in open('/proc/self/maps'):
    rng, perms, off, dev, inode, *name = line.split()
    lo, hi = (int(x, 16) for x in rng.split('-'))
    if name == ['/tmp/data']:
        print('file', hi - lo, perms, int(off, 16), int(inode) == ino)
    if lo <= anon < hi:
        print('anon', hi - lo >= 5 * 4096, perms, name)
"""
    out = sh(f"python3 -c \"{script}\"")
    assert "file 8192 r--s 4096 True" in out, out
    assert "anon True rw-p" in out, out
    got = sh("pmap -x $$")
    want = native("sh", "-c", "pmap -x $$").stdout.decode()

    def names(text: str) -> set[str]:
        return {line.split()[-1] for line in text.splitlines()[2:-2]}

    assert {"dash", "libc.so.6", "ld-linux-x86-64.so.2", "]"} <= names(got) & names(want)
    total = got.splitlines()[-1].split()
    assert total[:2] == ["total", "kB"] and int(total[2]) > int(total[3]) > 0, got


def test_status_stat_statm_agree():
    out = sh("cat /proc/self/status /proc/self/stat /proc/self/statm; cat /proc/self/limits")
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("nonvoluntary"))
    status, rest = "\n".join(lines[:at + 1]), "\n".join(lines[at + 1:])
    fields = dict(line.split(":\t", 1) for line in status.splitlines())
    with open("/proc/self/status") as f:
        linux = [line.split(":")[0] for line in f]
    missing = [k for k in linux if k not in fields and not k.startswith(("Mems", "x86",
                                                                        "untag", "Kthread"))]
    assert not missing, missing
    stat = rest.splitlines()[0]
    pid, comm, state, *nums = stat.split()
    assert len(stat.split()) == 52 and comm == "(cat)" and pid == fields["Pid"]
    assert int(nums[19]) == int(fields["VmSize"].split()[0]) * 1024  # vsize
    statm = rest.splitlines()[1].split()
    assert int(statm[0]) * 4 == int(fields["VmSize"].split()[0])
    assert rest.splitlines()[2] == native("cat", "/proc/self/limits").stdout.decode(
        ).splitlines()[0]


def test_df_findmnt_mount_show_the_sandbox_s_mounts():
    out = sh("df -h; echo; findmnt -n -o TARGET,FSTYPE; echo; mount", "--tmpfs", "/tmp")
    df, findmnt, mount = out.split("\n\n")
    assert df.splitlines()[0].split() == native("df", "-h").stdout.decode().splitlines()[
        0].split()
    targets = {line.split()[-1] for line in df.splitlines()[1:]}
    assert {"/", "/tmp"} <= targets, df
    rows = {tuple(line.split()[-2:]) for line in findmnt.splitlines()}
    assert {("/", "overlay"), ("/proc", "proc"), ("/sys", "sysfs"), ("/tmp", "tmpfs")} <= {
        (t.lstrip("├─└│ "), f) for t, f in rows}, findmnt
    assert "proc on /proc type proc (rw" in mount
    host_sources = {line.split()[0] for line in open("/proc/mounts")} - {
        "proc", "sysfs", "tmpfs", "devtmpfs", "overlay", "none", "devpts", "mqueue"}
    assert not any(s in out for s in host_sources if s.startswith("/")), host_sources


def test_comm_and_oom_score_adj_are_writable():
    out = sh("echo renamed > /proc/$$/comm; cat /proc/$$/comm; "
             "echo -5 > /proc/$$/oom_score_adj; cat /proc/$$/oom_score_adj; "
             "cat /proc/$$/task/$$/comm")
    assert out.splitlines() == ["renamed", "-5", "renamed"]  # the leader's comm


THREADS = r"""
import os, threading, time
t = threading.Thread(target=time.sleep, args=(2,))
t.start()
time.sleep(0.3)
tids = sorted(int(x) for x in os.listdir('/proc/self/task'))
status = dict(line.split(':\t', 1) for line in open('/proc/self/status').read().splitlines())
other = open(f'/proc/self/task/{tids[1]}/stat').read().split()
print(tids == [os.getpid(), tids[1]], status['Threads'], other[0] == str(tids[1]), other[2],
      os.readlink('/proc/thread-self') == f'{os.getpid()}/task/{os.getpid()}')
t.join()
"""


def test_threads_under_task(tmp_path):
    (tmp_path / "threads.py").write_text(THREADS)
    got = runpsc("do", "--volume", f"{tmp_path}:/t:ro", "--", "python3", "-S", "/t/threads.py")
    assert got.returncode == 0, got.stderr
    assert got.stdout == b"True 2 True S True\n"  # the sleeping thread is S


def test_memory_option_parses_sizes():
    from runtime.sandbox import parse_size

    assert parse_size("512M") == 512 << 20 and parse_size("2G") == 2 << 30
    assert parse_size("1GiB") == 1 << 30 and parse_size("1048576") == 1 << 20
    got = runpsc("do", "--memory", "lots", "--", "true")
    assert got.returncode == 2 and b"size 'lots'" in got.stderr
