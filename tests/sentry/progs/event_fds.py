"""os.eventfd, os.memfd_create with seals and a shared mapping, os.pidfd_open with select,
waitid(P_PIDFD) and signal.pidfd_send_signal: run natively and in the sandbox by
tests/sentry/test_eventfds.py (the outputs must match)."""

import fcntl
import mmap
import os
import select
import signal

fd = os.eventfd(0, os.EFD_SEMAPHORE | os.EFD_NONBLOCK)
os.eventfd_write(fd, 3)
print("eventfd", os.eventfd_read(fd), os.eventfd_read(fd), select.select([fd], [fd], [], 0)[0] == [fd])
try:
    os.eventfd_write(fd, 2**64 - 1)
except OSError as e:
    print("eventfd max", e.errno)
m = os.memfd_create("py", os.MFD_ALLOW_SEALING)
os.write(m, b"hello")
mm = mmap.mmap(m, 5, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
mm[0:1] = b"J"
print("memfd", os.pread(m, 5, 0), os.readlink(f"/proc/self/fd/{m}"))
try:
    fcntl.fcntl(m, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)
except OSError as e:
    print("seal while mapped", e.errno)
mm.close()
fcntl.fcntl(m, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK)
print("seals", fcntl.fcntl(m, fcntl.F_GET_SEALS))
for op in (lambda: os.write(m, b"x"), lambda: os.ftruncate(m, 1)):
    try:
        op()
    except PermissionError as e:
        print("sealed", e.errno)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.read(r, 1)
    os._exit(3)
pfd = os.pidfd_open(pid)
print("pidfd before", select.select([pfd], [], [], 0)[0])
os.write(w, b"x")
print("pidfd after", select.select([pfd], [], [], 30)[0] == [pfd])
print("waitid", os.waitid(os.P_PIDFD, pfd, os.WEXITED).si_status)
pid = os.fork()
if pid == 0:
    signal.pause()
    os._exit(0)
pfd = os.pidfd_open(pid)
signal.pidfd_send_signal(pfd, signal.SIGTERM)
print("killed", os.waitpid(pid, 0)[1] & 0x7f)
