#!/usr/bin/env bash
# The main job: set up, then run real programs in a runpsc sandbox (`runpsc do`): the host's
# root is served read-only by a gofer process under a writable in-memory overlay, and every
# syscall of the program is served by the Sentry. `scripts/demo.sh CMD ARGS...` runs your own
# command in the sandbox instead.
set -euo pipefail
# Stay in the caller's directory: `runpsc do` starts the program where it was started.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/setup.sh" >&2
runpsc="$ROOT/.venv/bin/runpsc"
if [ "$#" -gt 0 ]; then
    exec "$runpsc" do -- "$@"
fi
echo "== runpsc do -- ls -la /usr"
"$runpsc" do -- ls -la /usr
echo "== runpsc do -- uname -a   (the Sentry's answer, not the host's)"
"$runpsc" do -- uname -a
echo "== runpsc do -- python3: writes go to the overlay, never to the host"
"$runpsc" do -- /usr/bin/python3 -S -c '
import os
open("/etc/written-in-sandbox", "w").write("hello\n")
print("pid", os.getpid(), "sees /etc/written-in-sandbox:", os.path.exists("/etc/written-in-sandbox"))
'
echo "host sees /etc/written-in-sandbox: $([ -e /etc/written-in-sandbox ] && echo True || echo False)"
