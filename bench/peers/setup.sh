#!/usr/bin/env bash
# The peers' virtual environment: jax (XLA on the CPU) and torch, from PyPI. Opt-in, not CI.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
python3 -m venv "$here/.venv-peers"
"$here/.venv-peers/bin/pip" install -q --upgrade pip
"$here/.venv-peers/bin/pip" install -q numpy "jax[cpu]" torch
echo "peers ready: $here/.venv-peers/bin/python bench/peers/run_peers.py --threads 1 2"
