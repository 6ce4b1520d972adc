"""End-to-end throughput and memory of ``cryoensemble simulate``, and cryoJAX's loop for comparison.

    .venv/bin/python benchmarks/bench_simulate.py [--n 5000] [--memory [--memory-n 100000]]
                                                  [--no-cryojax] [--json result.json]

Case: adenylate kinase (bundled adk_open.pdb, all 3341 atoms), 128 x 128 at 1.2 A, 300 kV,
defaults of ``cryoensemble simulate`` (gaussian noise at SNR 0.1, CTF on a 2x padded box),
no gallery. Each run is a separate process, so its peak RSS (``ru_maxrss``) is its own.

* cryoensemble: ``cryoensemble.workflows.simulate.run`` (what the command runs: temporary
  folder, streaming writes of MRC stacks, STAR, ground truth, config, provenance, rename).
  Time = from resolving the config to the last file written (summary.json's elapsed_s),
  compilation included.
* cryoJAX 0.6.0 (``benchmarks/peers/cryojax_simulate.py`` in ``.venv-peers``): the same particles
  (read from cryoensemble's STAR), its own vmap/jit loop, same noise level definition, writing
  the same files with mrcfile and starfile; time from volume loading to the last file closed.
* ``--memory``: a ``--memory-n`` (default 100,000) particle run of cryoensemble alone, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
PEER_SCRIPT = ROOT / "benchmarks" / "peers" / "cryojax_simulate.py"
PDB = ROOT / "src" / "cryoensemble" / "data" / "adk_open.pdb"


def child(n: int, out: str) -> None:
    """Run in a fresh process: one cryoensemble simulation, print a JSON line."""
    from cryoensemble.parallel import configure_host_devices

    configure_host_devices()  # every CPU core a JAX device, as the command line does (before JAX)
    from cryoensemble.workflows.simulate import load_config, run

    t0 = time.perf_counter()
    cfg = load_config(n_particles=n, gallery=False, structures=[PDB])
    summary = run(cfg, Path(out))
    wall = time.perf_counter() - t0
    import jax

    print(
        json.dumps(
            {
                "n_particles": n,
                "elapsed_s": summary.elapsed_s,
                "images_per_s": summary.images_per_s,
                "wall_s_including_rename": wall,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "devices": jax.device_count(),
                "stacks": len(summary.stacks),
            }
        )
    )


def run_ours(n: int, folder: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), str(folder / "ours")]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_cryojax(folder: Path) -> dict:
    cmd = [str(PEER_PYTHON), str(PEER_SCRIPT), "--star", str(folder / "ours" / "particles.star")]
    cmd += ["--pdb", str(PDB), "--out", str(folder / "cryojax"), "--snr", "0.1"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="particles of the throughput run")
    ap.add_argument("--memory", action="store_true", help="also run the large memory run")
    ap.add_argument("--memory-n", type=int, default=100_000)
    ap.add_argument("--no-cryojax", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", nargs=2, metavar=("N", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(int(args.child[0]), args.child[1])
        return

    result: dict = {"case": "ADK 128x128 1.2 A, gaussian noise SNR 0.1", "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench_simulate_") as tmp:
        folder = Path(tmp)
        result["cryoensemble"] = run_ours(args.n, folder)
        print(f"cryoensemble: {result['cryoensemble']}", flush=True)
        if not args.no_cryojax and PEER_PYTHON.exists():
            result["cryojax"] = run_cryojax(folder)
            print(f"cryojax:      {result['cryojax']}", flush=True)
            result["ratio_cryoensemble_over_cryojax"] = (
                result["cryoensemble"]["images_per_s"] / result["cryojax"]["images_per_s"]
            )
    if args.memory:
        with tempfile.TemporaryDirectory(prefix="bench_simulate_mem_") as tmp:
            result["memory_run"] = run_ours(args.memory_n, Path(tmp))
            print(f"memory run:   {result['memory_run']}", flush=True)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
