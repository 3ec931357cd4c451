"""The gofer as a drop-in for diod under the Linux kernel's own 9P client (v9fs): a QEMU guest
(TCG, no KVM needed) boots Debian's kernel (fetched into .cache/kernel by scripts/setup.sh)
with a busybox initramfs the test builds, mounts `runpsc gofer serve --listen tcp:...` over
QEMU's user-mode network (the guest reaches the host's loopback at 10.0.2.2) with
`trans=tcp,version=9p2000.L,access=user`, and runs tests/gofer/progs/fschecks.c as root and as
two users, on the 9P mount and on a tmpfs of the same guest; the two reports must agree. One
boot runs everything; the serial console carries the reports back.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gofer.helpers import NOBODY, confine_args, gofer_process
from tests.p9.conftest import free_port
from tests.support import missing, need_binary, need_root

REPO = Path(__file__).resolve().parents[2]
PROGS = Path(__file__).resolve().parent / "progs"
#: Loaded in this order (each after what it depends on).
MODULES = ("netfs", "fscache", "9pnet", "9pnet_fd", "9p", "e1000")


def kernel() -> Path:
    """The directory with Debian's vmlinuz and the guest's modules (scripts/setup.sh)."""
    found = sorted((REPO / ".cache" / "kernel").glob("linux-image-*/9pnet_fd.ko"))
    if not found:
        missing("Debian's kernel for the v9fs guest", "run scripts/setup.sh (it fetches "
                "linux-image-*-amd64 into .cache/kernel)")
    return found[-1].parent


def cpio(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc cpio archive (what the kernel unpacks as an initramfs) of (path, mode, data);
    a symlink's data is its target."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], 1):
        raw = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0)
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + raw
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def init_script(port: int, ids: list[int]) -> bytes:
    """The guest's /init: modules, network, the mounts, the checks, power off."""
    args = " ".join(map(str, ids))
    opts = f"trans=tcp,port={port},version=9p2000.L,access=user"
    return f"""#!/bin/sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in {" ".join(MODULES)}; do insmod /lib/$m.ko || echo "=== insmod $m failed"; done
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
mkdir -p /mnt/local /mnt/9p /mnt/nodev
mount -t tmpfs tmpfs /mnt/local && chmod 755 /mnt/local
mount -t 9p -o {opts},aname=mknod 10.0.2.2 /mnt/9p || {{ dmesg | tail -5; echo "=== mount failed"; }}
mount -t 9p -o {opts},aname=nodev 10.0.2.2 /mnt/nodev || echo "=== mount failed"
echo "=== local"; /fschecks /mnt/local {args}
echo "=== 9p"; /fschecks /mnt/9p {args}
echo "=== nodev"
mknod /mnt/nodev/c c 1 3; echo "mknod-c $?"
mknod /mnt/nodev/b b 7 200; echo "mknod-b $?"
mknod /mnt/nodev/p p; echo "mkfifo $?"
ls /mnt/nodev
echo "=== end"
umount /mnt/9p /mnt/nodev
poweroff -f
""".encode()


def sections(console: str) -> dict[str, list[str]]:
    """The console's lines between `=== NAME` markers, by NAME."""
    out: dict[str, list[str]] = {}
    cur: list[str] | None = None
    for line in console.replace("\r", "").splitlines():
        if line.startswith("=== "):
            cur = out.setdefault(line[4:].strip(), [])
        elif cur is not None and line and not line.startswith("["):  # not kernel messages
            cur.append(line)
    return out


@pytest.fixture
def exports(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Two empty exported directories any user reaches: with and without device nodes."""
    need_root()
    os.chmod(tmp_path, 0o755)
    mk, nodev = tmp_path / "mknod", tmp_path / "nodev"
    for d in (mk, nodev):
        d.mkdir()
        os.chmod(d, 0o755)
    yield mk, nodev


def test_kernel_client_sees_what_a_local_filesystem_shows(tmp_path: Path, exports) -> None:
    qemu = need_binary("qemu-system-x86_64", "qemu-system-x86")
    busybox = "/bin/busybox"
    if not os.access(busybox, os.X_OK):
        need_binary("busybox-not-found", "busybox-static")
    gcc = need_binary("gcc")
    kdir = kernel()
    # Users the gofer knows from this host's database: one in a supplementary group, one
    # in none (the guest takes the same numbers).
    pg = pwd.getpwnam("postgres") if "postgres" in {p.pw_name for p in pwd.getpwall()} else None
    if pg is None:
        missing("a user with a supplementary group", "install postgresql (scripts/setup.sh)")
    group = grp.getgrnam("ssl-cert").gr_gid
    ids = [pg.pw_uid, pg.pw_gid, group, NOBODY, NOBODY]

    checks = tmp_path / "fschecks"
    subprocess.run([gcc, "-static", "-O1", "-w", "-o", str(checks), str(PROGS / "fschecks.c")],
                   check=True, capture_output=True)
    port = free_port()
    files = [("bin", 0o40755, b""), ("proc", 0o40755, b""), ("sys", 0o40755, b""),
             ("dev", 0o40755, b""), ("mnt", 0o40755, b""), ("lib", 0o40755, b""),
             ("bin/busybox", 0o100755, Path(busybox).read_bytes()),
             ("bin/sh", 0o120777, b"busybox"),
             ("init", 0o100755, init_script(port, ids)),
             ("fschecks", 0o100755, checks.read_bytes())]
    files += [(f"lib/{m}.ko", 0o100644, (kdir / f"{m}.ko").read_bytes()) for m in MODULES]
    initrd = tmp_path / "initrd.cpio"
    initrd.write_bytes(cpio(files))

    mk, nodev = exports
    with gofer_process(["--export", f"mknod={mk}:mknod", "--export", f"nodev={nodev}",
                        "--listen", f"tcp:127.0.0.1:{port}", "--trust-client-identity", *confine_args()]):
        start = time.monotonic()
        r = subprocess.run(
            [qemu, "-accel", "tcg", "-m", "256", "-smp", "1", "-nodefaults", "-no-reboot",
             "-display", "none", "-serial", "stdio", "-monitor", "none",
             "-nic", "user,model=e1000", "-kernel", str(kdir / "vmlinuz"), "-initrd", str(initrd),
             "-append", "console=ttyS0 quiet panic=-1 rdinit=/init"],
            capture_output=True, text=True, errors="replace", timeout=600, stdin=subprocess.DEVNULL,
        )
        took = time.monotonic() - start
    print(f"guest boot and checks: {took:.1f} s", file=sys.stderr)
    console = r.stdout
    got = sections(console)
    assert "end" in got, console[-4000:]
    assert not [k for k in got if "failed" in k], console[-4000:]
    local, ninep = got["local"], got["9p"]
    assert local[-1] == "done" and ninep[-1] == "done", console[-4000:]
    assert len(local) == len(ninep)
    diffs = [(a, b) for a, b in zip(local, ninep, strict=True) if a != b]
    # tmpfs has user.* xattrs only from Linux 6.6; this guest's tmpfs refuses them, the
    # export (the host's filesystem) keeps them: there 9P must give what the host does.
    tmpfs_no_user_xattr = [(a, b) for a, b in diffs if "/xattr-user-" in a
                           and a.split(" ", 1)[1] in ("EOPNOTSUPP", "EOPNOTSUPP ", "0 listed=0")]
    # trusted.* needs CAP_SYS_ADMIN, which the confined gofer does not keep (gofer/README.md,
    # "Confinement"): EPERM there, by design.
    trusted = [(a, b) for a, b in diffs if a.startswith("plain-root-xattr-trusted-")]
    assert [b.split(" ", 1)[1] for _, b in trusted][:3] == ["EPERM"] * 3, trusted
    assert [d for d in diffs if d not in tmpfs_no_user_xattr + trusted] == [], "\n".join(map(str, diffs))
    for a, b in tmpfs_no_user_xattr:
        label = a.split()[0]
        want = {"set": "0", "create-again": "EEXIST", "replace": "0", "get": "0 value-22",
                "list": "0 listed=1", "remove": "0", "get-removed": "ENODATA"}
        assert b.split(" ", 1)[1] == want[label.rsplit("/xattr-user-", 1)[1]], b
    # The export without `mknod`: device nodes EPERM and nothing made, a FIFO made.
    assert got["nodev"] == ["mknod: /mnt/nodev/c: Operation not permitted", "mknod-c 1",
                            "mknod: /mnt/nodev/b: Operation not permitted", "mknod-b 1",
                            "mkfifo 0", "p"], got["nodev"]
    assert os.listdir(nodev) == ["p"]
    # What the guest saw is what the host's tree holds: spot-check a device and a group.
    st = os.lstat(mk / "plain" / "root-chr")
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert os.lstat(mk / "sg" / "other-f").st_gid == group
    assert os.lstat(mk / "plain" / "newgrp-f").st_gid == group
