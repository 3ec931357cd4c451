"""Unix sockets bound in a directory DIR (argv[1]): the node's type, mode and listing,
connect through it, rename, link, chmod, unlink, EADDRINUSE, ENOTEMPTY; two nodes are
left bound when the program exits (DIR/left.sock, DIR/sub/left.sock)."""

import errno
import os
import socket
import stat
import sys

D = sys.argv[1]


def p(*a: object) -> None:
    print(*a, flush=True)


def err(fn, *a):  # type: ignore[no-untyped-def]
    try:
        fn(*a)
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]


os.umask(0o022)
path = os.path.join(D, "s.sock")
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(4)
st = os.lstat(path)
p("type sock", stat.S_ISSOCK(st.st_mode), "mode", oct(st.st_mode & 0o7777), "nlink", st.st_nlink,
  "size", st.st_size)
p("listed", sorted(n for n in os.listdir(D) if n.endswith(".sock")))
with os.scandir(D) as it:
    p("scandir sock", [e.name for e in it if e.name.endswith(".sock") and not e.is_file() and not e.is_dir()])
p("bind again", err(socket.socket(socket.AF_UNIX).bind, path))
p("mkdir over it", err(os.mkdir, path))
p("open it", err(os.open, path, os.O_RDONLY))


def echo(where: str) -> None:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(where)
    a, _ = srv.accept()
    c.sendall(b"ping " + where.encode()[-6:])
    p("echo", a.recv(100), "peer", c.getpeername() == path)
    a.close()
    c.close()


echo(path)
os.chmod(path, 0o700)
p("chmod", oct(os.lstat(path).st_mode & 0o7777))
os.rename(path, os.path.join(D, "t.sock"))
p("after rename", sorted(n for n in os.listdir(D) if n.endswith(".sock")),
  err(os.lstat, path))
echo(os.path.join(D, "t.sock"))
os.link(os.path.join(D, "t.sock"), os.path.join(D, "u.sock"))
p("link nlink", os.lstat(os.path.join(D, "u.sock")).st_nlink)
echo(os.path.join(D, "u.sock"))
os.unlink(os.path.join(D, "t.sock"))
os.unlink(os.path.join(D, "u.sock"))
p("after unlink", sorted(n for n in os.listdir(D) if n.endswith(".sock")),
  err(socket.socket(socket.AF_UNIX).connect, os.path.join(D, "u.sock")))
srv.close()

# a datagram socket at a path, and a regular file renamed over a socket's name
dg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
dg.bind(os.path.join(D, "dg.sock"))
snd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
snd.sendto(b"datagram", os.path.join(D, "dg.sock"))
p("dgram", dg.recv(100))
with open(os.path.join(D, "file.txt"), "w") as f:
    f.write("x")
os.rename(os.path.join(D, "file.txt"), os.path.join(D, "dg.sock"))
p("file over socket", stat.S_ISREG(os.lstat(os.path.join(D, "dg.sock")).st_mode),
  err(snd.sendto, b"x", os.path.join(D, "dg.sock")))
os.unlink(os.path.join(D, "dg.sock"))

sub = os.path.join(D, "sub")
os.mkdir(sub)
keep = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
keep.bind(os.path.join(sub, "left.sock"))
p("rmdir non-empty", err(os.rmdir, sub))
left = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
left.bind(os.path.join(D, "left.sock"))
p("left", sorted(os.listdir(sub)), sorted(n for n in os.listdir(D) if n.endswith(".sock")))
p("done")
