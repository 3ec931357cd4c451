"""Under `runpsc do`, compared with native runs: the capability model as libcap's capsh and
util-linux's setpriv see and change it (bounding set, inheritable and ambient sets kept
across a uid change and an execve), and `unshare --uts --ipc --mount --fork` giving a
shell a host name, System V key space and mount table of its own (natively inside an
outer `unshare`, so the host is untouched), the IPC sysctls and /proc/mounts reading the
caller's namespaces, and `unshare -fp --mount-proc`."""

from __future__ import annotations

import subprocess

from tests.runtime.test_do import runpsc
from tests.support import need_binary, need_root

# The bounding set loses cap_sys_resource first where the whole set is kept: a host root
# (a container's) may lack it, and the sandbox's root has every capability.
CAPS = ("setpriv --bounding-set -all,+chown,+kill,+setpcap,+setuid,+setgid,+fowner "
        "--inh-caps=-all -- capsh --print; "
        "setpriv --bounding-set -all -- sh -c 'grep Cap /proc/self/status'; "
        "setpriv --bounding-set -sys_resource --inh-caps +kill --ambient-caps +kill "
        "--reuid 1000 --regid 1000 --clear-groups -- sh -c 'grep Cap /proc/self/status; id -u'")

NAMESPACES = """hostname outer
ipcmk -Q >/dev/null
unshare --uts --ipc --mount --fork sh -c 'hostname x; hostname; \
echo queues $(ipcs -q | grep -c ^0x); mount -t tmpfs none /mnt && echo hi > /mnt/f && \
cat /mnt/f; echo mounts $(grep -c " /mnt " /proc/self/mounts)'
echo status $?
hostname
echo queues $(ipcs -q | grep -c ^0x)
echo mounts $(grep -c " /mnt " /proc/self/mounts)
test -e /mnt/f && echo leaked || echo not seen
echo 100 > /proc/sys/kernel/msgmni
unshare --ipc sh -c 'cat /proc/sys/kernel/msgmni /proc/sys/fs/mqueue/queues_max; \
echo 7 > /proc/sys/kernel/msgmni; cat /proc/sys/kernel/msgmni'
cat /proc/sys/kernel/msgmni
unshare --mount sh -c 'mount -t tmpfs none /mnt; echo inner $(grep -c " /mnt " /proc/mounts)'
echo outer $(grep -c " /mnt " /proc/mounts)
"""


def test_capsh_and_setpriv_match_native():
    need_root()
    need_binary("capsh", "libcap2-bin")
    need_binary("setpriv", "util-linux")
    want = subprocess.run(["sh", "-c", CAPS], capture_output=True, stdin=subprocess.DEVNULL)
    assert want.returncode == 0, want.stderr
    assert b"Current: cap_chown,cap_fowner,cap_kill,cap_setgid,cap_setuid,cap_setpcap=ep\n" \
        in want.stdout, want.stdout  # a sane oracle
    got = runpsc("do", "--", "sh", "-c", CAPS)
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr.decode(errors="replace")


def test_unshare_uts_ipc_mount_matches_native():
    need_root()
    unshare = need_binary("unshare", "util-linux")
    need_binary("ipcmk", "util-linux")
    want = subprocess.run([unshare, "--uts", "--ipc", "--mount", "sh", "-c", NAMESPACES],
                          capture_output=True, stdin=subprocess.DEVNULL)
    assert want.returncode == 0, want.stderr
    assert want.stdout.startswith(b"x\nqueues 0\nhi\nmounts 1\nstatus 0\nouter\nqueues 1\n")
    got = runpsc("do", "--", "sh", "-c", NAMESPACES)
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr.decode(errors="replace")


# ps pads its columns after /proc/sys/kernel/pid_max, which differs between a container's
# /proc and a fresh one: compare the fields, not the padding.
PIDNS = """unshare -fp --mount-proc sh -c 'echo $$ $PPID; ps | sed "s/^ *//; s/  */ /g"; \
ps -o pid,ppid,pgid,sid,comm | sed "s/^ *//; s/  */ /g"; ls -d /proc/[0-9]*; \
sh -c "echo child \\$\\$ \\$PPID"; kill -TERM $$; echo init survives its own SIGTERM'
echo status $?
unshare -fp sh -c 'sleep 1000 & exit 3'
echo status $?
"""


def test_unshare_pid_namespace_matches_native():
    """`unshare -fp --mount-proc`: the shell is pid 1 of its namespace, ps and /proc show
    its processes only, by their numbers there; a background job ends with the init."""
    need_root()
    need_binary("unshare", "util-linux")
    need_binary("ps", "procps")
    want = subprocess.run(["sh", "-c", PIDNS], capture_output=True, stdin=subprocess.DEVNULL)
    assert want.returncode == 0, want.stderr
    assert want.stdout.startswith(b"1 0\nPID TTY TIME CMD\n1 ? 00:00:00 sh\n"), want.stdout
    got = runpsc("do", "--", "sh", "-c", PIDNS)
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr.decode(errors="replace")
