"""Likelihood-matrix throughput, (particle x structure) pairs per second, adenylate kinase.

Ours (cryoensemble.inference._likelihood_matrix, white and marginal likelihoods) against the same
computation written with cryoJAX 0.6.0 (GaussianWhiteNoiseModel.log_likelihood, vmapped), run in
the peers' environment (.venv-peers) by ``benchmarks/peers/cryojax_likelihood.py`` in the same
run. Then the peak memory (ru_maxrss) of a lazily generated dataset with 10 structures at two
particle counts, to show that memory does not grow with the number of particles.

usage: python benchmarks/bench_likelihood.py [--box 128] [--pixel 1.2] [--particles 256] [--local]
(--local: also the local pose-marginalised likelihood, cryoensemble.posesearch, at its default
neighbourhood and at a cheaper one; pairs/s against the known-pose marginal path)
(pin the cores with taskset to compare on equal terms; timings are medians of --repeats runs)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from cryoensemble.imaging import AbstractParticles, ImagingConfig, ParticleBatch
from cryoensemble.inference import LikelihoodConfig, likelihood_matrix
from cryoensemble.optics import CTFParams
from cryoensemble.pose import random_rotations
from cryoensemble.posesearch import (
    LocalPoseConfig,
    local_marginal_log_likelihood_matrix,
    prepare_reference,
)
from cryoensemble.scattering import gaussian_atoms
from cryoensemble.structure import read_structure, write_pdb

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "cryoensemble" / "data"
PEERS = ROOT / ".venv-peers" / "bin" / "python"


class SyntheticDataset(AbstractParticles):
    """n particles with random poses/CTFs and noise images generated batch by batch (lazy)."""

    def __init__(self, n, box, pixel_size, seed=0):
        self.n, self.box_size, self.pixel_size, self.seed = n, box, pixel_size, seed
        self.star_path = "synthetic"

    def __len__(self):
        return self.n

    def batch(self, idx, pad_to=None):
        idx = np.asarray(idx)
        b = len(idx) if pad_to is None else max(pad_to, len(idx))
        key = jax.random.key(self.seed + int(idx[0]))
        k1, k2, k3 = jax.random.split(key, 3)
        return ParticleBatch(
            images=jax.random.normal(k1, (b, self.box_size, self.box_size)),
            rotations=random_rotations(k2, b),
            shifts=2.0 * jax.random.normal(k3, (b, 2)),
            ctf=CTFParams(
                defocus_u=jnp.linspace(8000.0, 20000.0, b),
                defocus_v=jnp.linspace(8100.0, 20100.0, b),
            ),
            indices=jnp.zeros(b, jnp.int32),
            valid=jnp.ones(b),
        )


def atoms_and_pdbs(tmp: Path):
    atoms, pdbs = [], []
    for k in ("open", "closed"):
        m = read_structure(DATA / f"adk_{k}.pdb")
        com = m.center_of_mass()
        atoms.append(gaussian_atoms(m, selection="heavy", center=com))
        h = m.heavy_atoms()
        write_pdb(h.with_positions(h.positions - com), tmp / f"adk_{k}_heavy.pdb")
        pdbs.append(tmp / f"adk_{k}_heavy.pdb")
    return atoms, pdbs


def ours(atoms, box, px, n, batch, repeats, kind):
    config = ImagingConfig.for_atoms(atoms[0], box, px)
    ds = SyntheticDataset(n, box, px)
    opts = LikelihoodConfig(kind=kind, sigma=1.0)
    run = lambda: likelihood_matrix(ds, atoms, config, options=opts, batch_size=batch)
    t0 = time.perf_counter()
    run()
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {
        "code": f"cryoensemble ({kind})",
        "pairs_per_s": n * len(atoms) / statistics.median(times),
        "times_s": times,
        "compile_s": compile_s,
    }


def local(atoms, box, px, n, batch, repeats, label, **settings):
    """The local pose-marginalised likelihood (maps prepared once, outside the timing)."""
    ds = SyntheticDataset(n, box, px)
    cfg = LocalPoseConfig(particle_batch=batch, **settings)
    projs = [prepare_reference(a, box, px, cfg.search_config()) for a in atoms]
    run = lambda: local_marginal_log_likelihood_matrix(ds, projs, cfg)
    t0 = time.perf_counter()
    run()
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {
        "code": f"local poses {label} ({cfg.n_rotations} rot)",
        "pairs_per_s": n * len(atoms) / statistics.median(times),
        "times_s": times,
        "compile_s": compile_s,
    }


def peak_memory(atoms, box, px, n, batch):
    """Run 10 structures over n particles in a child process; return its ru_maxrss in MB."""
    code = f"""
import resource, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import bench_likelihood as b
from cryoensemble.imaging import ImagingConfig
from cryoensemble.inference import LikelihoodConfig, likelihood_matrix
import tempfile, pathlib
atoms, _ = b.atoms_and_pdbs(pathlib.Path(tempfile.mkdtemp()))
atoms = [atoms[i % 2] for i in range(10)]
config = ImagingConfig.for_atoms(atoms[0], {box}, {px})
L = likelihood_matrix(b.SyntheticDataset({n}, {box}, {px}), atoms, config,
                      options=LikelihoodConfig(kind="marginal"), batch_size={batch})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--pixel", type=float, default=1.2)
    ap.add_argument("--particles", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--memory", action="store_true", help="also measure peak memory (10 structures)"
    )
    ap.add_argument("--local", action="store_true", help="also the local pose marginal")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    atoms, pdbs = atoms_and_pdbs(tmp)
    results = [
        ours(atoms, args.box, args.pixel, args.particles, args.batch, args.repeats, "white"),
        ours(atoms, args.box, args.pixel, args.particles, args.batch, args.repeats, "marginal"),
    ]
    if args.local:
        common = (atoms, args.box, args.pixel, args.particles, args.batch, args.repeats)
        results.append(local(*common, "default"))
        cheap = dict(pad_factor=1.0, band_limit=6.0)
        results.append(local(*common, "pad 1, 6 A", **cheap))
        results.append(local(*common, "pad 1, 6 A, 1 px", shift_step=1.0, **cheap))
        results.append(
            local(*common, "pad 1, 6 A, 1 px", rotation_steps=1, shift_step=1.0, **cheap)
        )
        known = results[1]["pairs_per_s"]
        for r in results[2:]:
            print(f"cost {r['code']} / known-pose marginal: {known / r['pairs_per_s']:.1f}x")
    if PEERS.exists():
        cmd = [
            str(PEERS),
            str(ROOT / "benchmarks" / "peers" / "cryojax_likelihood.py"),
            *map(str, pdbs),
            "--box",
            str(args.box),
            "--pixel",
            str(args.pixel),
            "--particles",
            str(args.particles),
            "--batch",
            str(args.batch),
            "--repeats",
            str(args.repeats),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode == 0:
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        else:
            print("cryoJAX run failed:\n" + out.stderr[-2000:])
    for r in results:
        print(
            f"{r['code']:28s} {r['pairs_per_s']:10.1f} pairs/s   (runs {', '.join(f'{t:.2f}' for t in r['times_s'])} s; compile {r['compile_s']:.1f} s)"
        )
    cj = [r for r in results if r["code"] == "cryojax"]
    if cj:
        for r in results[:2]:
            print(f"ratio {r['code']} / cryoJAX: {r['pairs_per_s'] / cj[0]['pairs_per_s']:.2f}x")
    if args.memory:
        for n in (args.batch * 2, args.batch * 8):
            mb = peak_memory(atoms, args.box, args.pixel, n, args.batch)
            print(
                f"peak RSS, {n} particles x 10 structures, {args.box}^2, batch {args.batch}: {mb:.0f} MB"
            )
    print(
        f"this process ru_maxrss: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
