"""link(2): link counts, EEXIST, EPERM on directories, following symlinks."""

from os import O_CREAT, O_WRONLY

CASES = {
    "hardlink_counts": [
        ("open", "f", O_CREAT | O_WRONLY, 0o644),
        ("write", 0, b"abc"),
        ("link", "f", "g"),
        ("stat", "f"),
        ("stat", "g"),
        ("link", "f", "g"),
        ("unlink", "f"),
        ("stat", "g"),
        ("fstat", 0),
        ("unlink", "g"),
        ("fstat", 0),
        ("link", "nope", "h"),
    ],
    "link_directory": [
        ("mkdir", "d", 0o755),
        ("link", "d", "e"),
        ("link", "d/", "e"),
    ],
    "link_symlink_follow": [
        ("open", "f", O_CREAT | O_WRONLY, 0o644),
        ("symlink", "f", "l"),
        ("link", "l", "nofollow", False),
        ("lstat", "nofollow"),
        ("link", "l", "follow", True),
        ("lstat", "follow"),
        ("stat", "f"),
        ("link", "f", "new/"),
        ("link", "f/", "x"),
    ],
}
