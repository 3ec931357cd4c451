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
