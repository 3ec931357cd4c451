"""The filesystems behind the VFS: tmpfs, devfs, pipefs, procfs/sysfs, host fds, overlay,
goferfs. Each module holds one filesystem and its open-file classes; goferfs, the largest,
is a package of its parts."""
