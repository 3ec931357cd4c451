"""An OCI runtime with runc's command line (`runpsc create/start/state/kill/delete ...`).

`spec` reads and checks a bundle's config.json, `state` keeps each container's state
directory under `--root`, `container` is the process that is the container (its Sentry),
`execproxy` the host process that stands for one `exec`'d process, `commands` the click
commands that containerd's runc shim calls. docs/oci.md says how to use it.
"""
