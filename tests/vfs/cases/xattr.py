"""Extended attributes in the user namespace."""

from os import O_CREAT, O_WRONLY

CASES = {
    "user_xattrs": [
        ("open", "f", O_CREAT | O_WRONLY, 0o644),
        ("getxattr", "f", b"user.a"),
        ("setxattr", "f", b"user.a", b"1"),
        ("getxattr", "f", b"user.a"),
        ("setxattr", "f", b"user.a", b"2", 1),
        ("setxattr", "f", b"user.b", b"2", 2),
        ("setxattr", "f", b"user.b", b"", 1),
        ("listxattr", "f"),
        ("removexattr", "f", b"user.a"),
        ("removexattr", "f", b"user.a"),
        ("listxattr", "f"),
        ("setxattr", "f", b"bogus.a", b"1"),
        ("symlink", "f", "l"),
        ("setxattr", "l", b"user.x", b"1"),
    ],
}
