"""/proc/net/unix as a program sees it: its own sockets picked out by inode, sorted."""

import os
import socket
import sys

d = sys.argv[1]
where = os.path.join(d, "pn.sock")
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(where)
listener.listen(2)
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
client.connect(where)
abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
abstract.bind("\0pn-abstract\0x")
p, q = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
unbound = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
socks = [("listener", listener), ("client", client), ("abstract dgram", abstract),
         ("pair0", p), ("pair1", q), ("unbound", unbound)]
inos = {os.fstat(s.fileno()).st_ino: name for name, s in socks}


def rows(wanted: dict[int, str]) -> list[str]:
    """The lines of /proc/net/unix for `wanted` inodes, without address and refcount."""
    out = []
    with open("/proc/net/unix") as f:
        lines = f.read().splitlines()
    for line in lines[1:]:
        col = line.split()
        if int(col[6]) in wanted:
            path = col[7].replace(d, "DIR") if len(col) > 7 else ""
            out.append(" ".join((wanted[int(col[6])], col[2], col[3], col[4], col[5], path)))
    return sorted(out)


with open("/proc/net/unix") as f:
    print(f.readline(), end="")
print("\n".join(rows(inos)))
acc, _ = listener.accept()
print("\n".join(rows({os.fstat(acc.fileno()).st_ino: "accepted"})))
os.unlink(where)
