#!/usr/bin/env bash
# Creates .venv-peers: the peer programs the benchmarks compare against, in their own environment
# (never dependencies of cryoensemble). Run from the repository root.
set -euo pipefail
python3 -m venv .venv-peers
.venv-peers/bin/pip install -q --upgrade pip
.venv-peers/bin/pip install -q "cryojax==0.6.0" mrcfile starfile
echo "peer environment ready: .venv-peers (cryojax $(.venv-peers/bin/python -c 'import cryojax; print(cryojax.__version__)'))"
