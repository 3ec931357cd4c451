"""read, write, seek, getdents on files and directories."""

from os import O_APPEND, O_CREAT, O_DIRECTORY, O_RDONLY, O_RDWR, O_WRONLY

CASES = {
    "read_write_seek": [
        ("open", "f", O_CREAT | O_RDWR, 0o644),
        ("write", 0, b"hello"),
        ("read", 0, 10),
        ("seek", 0, 0, 1),
        ("seek", 0, 1, 0),
        ("read", 0, 2),
        ("write", 0, b"XY"),
        ("pread", 0, 100, 0),
        ("pwrite", 0, b"Z", 10),
        ("pread", 0, 100, 0),
        ("pread", 0, 10, -1),
        ("read", 0, 0),
        ("seek", 0, 0, 7),
        ("fstat", 0),
    ],
    "append": [
        ("open", "f", O_CREAT | O_WRONLY | O_APPEND, 0o644),
        ("write", 0, b"one"),
        ("seek", 0, 0, 0),
        ("write", 0, b"two"),
        ("pwrite", 0, b"3", 0),
        ("open", "f", O_RDONLY),
        ("read", 1, 100),
    ],
    "directory_io": [
        ("mkdir", "d", 0o755),
        ("open", "d", O_RDONLY | O_DIRECTORY),
        ("read", 0, 10),
        ("pread", 0, 10, 0),
        ("seek", 0, 0, 2),
        ("open", "f", O_CREAT | O_WRONLY, 0o644),
        ("getdents", 1),
    ],
    "getdents_types": [
        ("mkdir", "d", 0o755),
        ("mkdir", "d/sub", 0o755),
        ("open", "d/file", O_CREAT | O_WRONLY, 0o644),
        ("symlink", "file", "d/link"),
        ("mknod", "d/fifo", 0o10644),
        ("open", "d", O_RDONLY | O_DIRECTORY),
        ("getdents", 1),
        ("unlink", "d/file"),
        ("getdents", 1),
        ("listdir", "d"),
    ],
    "many_entries": [("mkdir", "d", 0o755)]
    + [("mknod", f"d/entry-with-a-long-name-{i:04d}", 0o100644) for i in range(300)]
    + [("listdir", "d"), ("open", "d", O_RDONLY), ("getdents", 0)],
}

O_TMPFILE, O_NOATIME, O_NONBLOCK = 0o20200000, 0o1000000, 0o4000
SEEK_DATA, SEEK_HOLE = 3, 4

CASES.update({
    "large_unaligned": [
        ("open", "f", O_CREAT | O_RDWR, 0o644),
        ("pwrite", 0, bytes(range(256)) * 300, 60000),
        ("pwrite", 0, b"middle", 65530),
        ("pread", 0, 20, 65525),
        ("pread", 0, 100, 60000 + 256 * 300 - 50),
        ("fstat", 0),
        ("close", 0),
        ("open", "f", O_RDONLY),
        ("pread", 1, 7000, 131000),
        ("fstat", 1),
    ],
    "sparse_seek_data_hole": [
        ("open", "f", O_CREAT | O_RDWR, 0o644),
        ("pwrite", 0, b"x", 1 << 20),
        ("seek", 0, 0, SEEK_DATA),
        ("seek", 0, 0, SEEK_HOLE),
        ("seek", 0, (1 << 20) + 1, SEEK_DATA),
        ("seek", 0, 5 << 20, SEEK_HOLE),
    ],
    "tmpfile": [
        ("mkdir", "d", 0o755),
        ("open", "d", O_TMPFILE | O_RDWR, 0o640),
        ("write", 0, b"anonymous"),
        ("fstat", 0),
        ("listdir", "d"),
        ("linkh", 0, "d/named"),
        ("stat", "d/named"),
        ("open", "d", O_TMPFILE | O_RDONLY, 0o640),
        ("open", "d/named", O_TMPFILE | O_RDWR, 0o640),
    ],
    "fifo_by_path": [
        ("mknod", "p", 0o10644),
        ("open", "p", O_RDONLY | O_NONBLOCK),
        ("open", "p", O_WRONLY | O_NONBLOCK),
        ("write", 1, b"through"),
        ("read", 0, 3),
        ("read", 0, 10),
        ("read", 0, 10),
        ("close", 1),
        ("read", 0, 10),
        ("fstat", 0),
    ],
    "noatime_needs_owner": [
        ("open", "f", O_CREAT | O_WRONLY, 0o666),
        ("open", "f", O_RDONLY | O_NOATIME),
        ("user", 1000, 1000),
        ("open", "f", O_RDONLY | O_NOATIME),
        ("open", "f", O_RDONLY),
        ("root",),
    ],
    "rename_over_open_file": [
        ("open", "a", O_CREAT | O_RDWR, 0o644),
        ("write", 0, b"old contents"),
        ("open", "b", O_CREAT | O_WRONLY, 0o644),
        ("write", 1, b"new"),
        ("close", 1),
        ("rename", "b", "a"),
        ("pread", 0, 100, 0),
        ("open", "a", O_RDONLY),
        ("read", 2, 100),
        ("fstat", 0),
    ],
})

KEEP_SIZE, PUNCH_HOLE = 1, 2

CASES["fallocate"] = [
    ("open", "f", O_CREAT | O_RDWR, 0o644),
    ("write", 0, b"y" * 10000),
    ("fallocate", 0, 0, 0, 20000),
    ("fstat", 0),
    ("fallocate", 0, KEEP_SIZE, 0, 50000),
    ("fstat", 0),
    ("fallocate", 0, PUNCH_HOLE | KEEP_SIZE, 4096, 4096),
    ("pread", 0, 8, 4092),
    ("pread", 0, 4, 8190),
    ("fstat", 0),
    ("fallocate", 0, PUNCH_HOLE, 0, 10),
    ("fallocate", 0, 0, -1, 10),
    ("fallocate", 0, 0, 0, 0),
    ("open", "f", O_RDONLY),
    ("fallocate", 1, 0, 0, 10),
]
