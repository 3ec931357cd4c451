#!/usr/bin/env bash
# Idempotent set-up for a Debian 12 machine run as root: the system packages the tests use,
# and a virtual environment (.venv) with runpsc and its dev and fuse extras installed.
# A second run only checks, so it is fast and harmless.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(busybox-static diod nfs-ganesha nfs-ganesha-vfs libfuse3-dev fuse3 pkg-config
              strace gcc libc6-dev attr python3-venv python3-dev make sqlite3 postgresql
              inotify-tools slirp4netns iproute2 net-tools netcat-openbsd socat curl nginx-light
              redis-server redis-tools iperf3 less bsdutils tmux procps)

# The OCI runtime's proof: containerd (its ctr and runc shim), Docker (dockerd and its
# client, started by the tests with their own data root) and runc to compare with.
APT_PACKAGES+=(containerd runc docker.io)

# CPython's own test modules, run natively and in the sandbox by tests/compat.
APT_PACKAGES+=(libpython3.11-testsuite)
# mkfs.ext4 and loop mounts (tests/runtime/test_input_errors.py), unshare -fp --mount-proc.
APT_PACKAGES+=(e2fsprogs util-linux mount)
# capsh --print inside the sandbox against the native run (tests/runtime/test_caps_ns_cmd.py).
APT_PACKAGES+=(libcap2-bin)
# The Linux kernel's 9P client against `runpsc gofer serve` (tests/gofer/test_v9fs_guest.py):
# a guest under TCG (no KVM needed) booted from Debian's kernel, fetched below.
APT_PACKAGES+=(qemu-system-x86)
# gdb -batch inside the sandbox against the native run (tests/runtime/test_ptrace_tools.py).
APT_PACKAGES+=(gdb)
# newuidmap/newgidmap: a rootless Sentry's user namespace maps a subordinate id of its caller's
# (runtime/confine.py), which it runs as once locked in.
APT_PACKAGES+=(uidmap)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The unprivileged user scripts/test.sh runs the rootless tests as (uid 4321), with a
# subordinate id range (/etc/subuid, /etc/subgid) as Debian's useradd gives a new user.
if ! getent passwd 4321 >/dev/null; then
    getent group 4321 >/dev/null || groupadd --gid 4321 runpsc-ci
    useradd --uid 4321 --gid 4321 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin runpsc-ci
fi
user=$(getent passwd 4321 | cut -d: -f1)
grep -q "^\($user\|4321\):" /etc/subuid 2>/dev/null || usermod --add-subuids 1000000-1065535 "$user"
grep -q "^\($user\|4321\):" /etc/subgid 2>/dev/null || usermod --add-subgids 1000000-1065535 "$user"

# Debian's kernel for that guest: the package is downloaded (not installed) into .cache/kernel
# and only what the guest boots is kept: vmlinuz, the 9P client's and the NIC's modules.
kernel_of() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'; }
kernel_pkg=$(kernel_of)
if [ -z "$kernel_pkg" ]; then  # a machine whose package lists were never fetched
    apt-get update -q
    kernel_pkg=$(kernel_of)
fi
if [ -n "$kernel_pkg" ] && [ ! -f ".cache/kernel/$kernel_pkg/9pnet_fd.ko" ]; then
    echo "setup: fetching $kernel_pkg for the v9fs guest"
    rm -rf ".cache/kernel/$kernel_pkg" && mkdir -p ".cache/kernel/$kernel_pkg/x"
    (cd ".cache/kernel/$kernel_pkg" && apt-get download -q "$kernel_pkg" 2>&1 | grep -v unsandboxed || true)
    dpkg-deb --fsys-tarfile ".cache/kernel/$kernel_pkg/"*.deb | tar -x -C ".cache/kernel/$kernel_pkg/x" \
        --wildcards './boot/vmlinuz-*' '*/net/9p/9pnet.ko' '*/net/9p/9pnet_fd.ko' '*/fs/9p/9p.ko' '*/fs/netfs/netfs.ko' \
        '*/fs/fscache/fscache.ko' '*/e1000/e1000.ko'
    mv ".cache/kernel/$kernel_pkg/x/boot/vmlinuz-"* ".cache/kernel/$kernel_pkg/vmlinuz"
    find ".cache/kernel/$kernel_pkg/x" -name '*.ko' -exec mv {} ".cache/kernel/$kernel_pkg/" \;
    rm -rf ".cache/kernel/$kernel_pkg/x" ".cache/kernel/$kernel_pkg/"*.deb
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PY" -m venv .venv
fi
# Reinstall only when what the install builds from changed since the last install: the
# project's declaration and its cffi extensions (build scripts and C, built at install time).
stamp=.venv/.runpsc-installed
want=$(cat pyproject.toml setup.py MANIFEST.in sentry/platform/_hotloop_build.py sentry/platform/hotloop.c \
             p9/_fastio_build.py p9/fastio.c | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing runpsc[dev,fuse] into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev,fuse]'
    echo "$want" > "$stamp"
fi
# Bytecode for our own packages: the editable install compiles nothing, and where
# PYTHONDONTWRITEBYTECODE=1 is set every `runpsc` start would recompile all of them (about
# 180 ms more for `runpsc do /bin/true`, whose budget is 250 ms). Python checks each .pyc
# against its source's mtime and size, so a stale one is recompiled, never used; only stale
# or missing files are rewritten here.
.venv/bin/python -m compileall -q -j 0 p9 gofer vfs sentry runtime conformance
