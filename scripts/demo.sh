#!/usr/bin/env bash
# The main job: set up, then run runpsc. (Until `runpsc do` lands this prints the CLI's help.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
exec .venv/bin/runpsc --help
