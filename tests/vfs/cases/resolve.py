"""Path resolution: symlink chains, ELOOP, trailing slashes, ENAMETOOLONG, '.', '..'."""

from os import O_CREAT, O_DIRECTORY, O_PATH, O_RDONLY, O_WRONLY

AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW = 0x1000, 0x100

CASES = {
    "symlink_chain": [
        ("mkdir", "d", 0o755),
        ("open", "d/f", O_CREAT | O_WRONLY, 0o644),
        ("symlink", "d", "l1"),
        ("symlink", "l1", "l2"),
        ("symlink", "l2/f", "l3"),
        ("stat", "l3"),
        ("stat", "l2/f"),
        ("stat", "l2/"),
        ("lstat", "l2"),
        ("lstat", "l2/"),
        ("symlink", "../d/./f", "d/rel"),
        ("stat", "d/rel"),
        ("symlink", "f/", "d/slash"),
        ("stat", "d/slash"),
    ],
    "eloop": [
        ("symlink", "a", "b"),
        ("symlink", "b", "a"),
        ("stat", "a"),
        ("lstat", "a"),
        ("open", "a", O_RDONLY),
        ("open", "a", O_CREAT | O_WRONLY, 0o644),
        ("stat", "a/x"),
        ("symlink", "self/x", "self"),
        ("stat", "self"),
    ],
    "forty_links": [("mkdir", "target", 0o755)]
    + [("symlink", "target" if i == 0 else f"s{i - 1}", f"s{i}") for i in range(41)]
    + [("stat", "s39"), ("stat", "s40"), ("stat", "s38/"), ("stat", "s39/.")],
    "name_too_long": [
        ("open", "x" * 255, O_CREAT | O_WRONLY, 0o644),
        ("open", "x" * 256, O_CREAT | O_WRONLY, 0o644),
        ("stat", "x" * 256),
        ("mkdir", "y" * 256, 0o755),
        ("stat", "a/" * 2047 + "b"),
        ("stat", "./" * 2047 + "x" * 255),
        ("stat", "./" * 2048),
        ("stat", "missing/" + "z" * 256),
    ],
    "dots": [
        ("mkdir", "d", 0o755),
        ("mkdir", "d/e", 0o755),
        ("stat", "d/e/.."),
        ("stat", "d/e/../e/./."),
        ("stat", "d//e//"),
        ("open", "f", O_CREAT | O_WRONLY, 0o644),
        ("stat", "f/."),
        ("stat", "f/.."),
        ("stat", "d/missing/.."),
    ],
    "empty_path": [
        ("mkdir", "d", 0o755),
        ("open", "d", O_PATH | O_DIRECTORY),
        ("statat", 0, "", AT_EMPTY_PATH),
        ("statat", 0, "", 0),
        ("mkdirat", 0, "sub", 0o700),
        ("statat", 0, "sub", 0),
        ("open", "f", O_CREAT | O_WRONLY, 0o644),
        ("statat", 1, "x", 0),
        ("symlink", "d", "l"),
        ("open", "l", O_PATH | O_DIRECTORY | 0o400000),
        ("open", "l", O_PATH | 0o400000),
        ("statat", 3, "", AT_EMPTY_PATH),
    ],
}

CASES["nofollow_directory_combos"] = [
    ("mkdir", "d", 0o755),
    ("symlink", "d", "l"),
    ("open", "l", O_RDONLY | O_DIRECTORY | 0o400000),
    ("open", "l/", O_RDONLY | 0o400000),
    ("open", "l/.", O_RDONLY | 0o400000),
    ("open", "d", O_RDONLY | O_DIRECTORY | 0o400000),
    ("open", "l", O_PATH | O_DIRECTORY | 0o400000),
]
