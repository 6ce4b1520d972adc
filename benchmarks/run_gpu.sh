#!/usr/bin/env bash
# GPU figures for the imaging benchmark (ours and cryoJAX 0.6.0 on the same card, one run).
# Usage on a machine with a CUDA JAX: benchmarks/run_gpu.sh OUT_DIR [WHEEL_DIR]
# WHEEL_DIR optionally holds wheels of packages missing there (gemmi, mrcfile, cryojax, ...).
set -uo pipefail
out=${1:?output folder}; wheels=${2:-}
mkdir -p "$out"
if [ -n "$wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$wheels"/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import jax; print(jax.__version__, jax.devices())" | tee -a "$out/gpu.txt"
for b in 512 4096; do
  timeout 200 python3 benchmarks/bench_imaging.py --worker --batch $b --repeats 5 --out "$out/ours_$b.json" \
    || echo "ours batch $b failed"
  cat "$out/ours_$b.json" 2>/dev/null; echo
done
timeout 240 python3 benchmarks/peers/cryojax_imaging.py --pdb src/cryoensemble/data/adk_open.pdb \
  --batch 512 --repeats 5 --out "$out/cryojax_512.json" || echo "cryoJAX failed"
cat "$out/cryojax_512.json" 2>/dev/null; echo
