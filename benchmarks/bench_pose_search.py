"""Pose-search throughput (particles/s) at a stated final angular resolution, and peak memory.

Adenylate kinase (open, all atoms) particles simulated at SNR 0.1 with random poses, shifts and
CTFs; the search runs the Hopf grid of --base-level (global, all rotations x all shifts by FFT
cross-correlation) then --n-refine local levels (8 children of --candidates cells each). The time
excludes compilation (a first batch is searched before timing); both the wall time and the
process CPU time (``time.process_time``, all threads: robust on a shared machine) are reported.
Frequency marching: --coarse-box (default 32; 0 = off) and --band-limit (A). Peak RSS (ru_maxrss) of the
process and, on a GPU, the device's peak bytes in use.

usage: python benchmarks/bench_pose_search.py [--box 128] [--pixel 1.2] [--particles 64]
       [--base-level 2] [--n-refine 2] [--candidates 8] [--structures 1] [--coarse-box 32]
       [--band-limit A] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from cryoensemble.imaging import ImagingConfig, simulate_images_jit
from cryoensemble.noise import add_gaussian_noise, snr_noise_sigma
from cryoensemble.optics import CTFParams
from cryoensemble.pose import euler_to_matrix, n_rotations, random_euler_angles, rotation_angle
from cryoensemble.posesearch import PoseSearchConfig, pose_search_arrays
from cryoensemble.scattering import gaussian_atoms
from cryoensemble.structure import read_structure

DATA = Path(__file__).resolve().parents[1] / "src" / "cryoensemble" / "data"


def particles(atoms, n, box, px, seed=0, snr=0.1):
    rng = np.random.default_rng(seed)
    rot, tilt, psi = random_euler_angles(jax.random.key(seed), n)
    r = euler_to_matrix(rot, tilt, psi)
    du = rng.uniform(8000, 20000, n).astype(np.float32)
    ctf = CTFParams(defocus_u=du, defocus_v=du + 200.0, defocus_angle=rng.uniform(0, 180, n))
    shifts = jnp.asarray((rng.normal(size=(n, 2)) * 2).astype(np.float32))
    clean = simulate_images_jit(atoms, r, shifts, ctf, ImagingConfig.for_atoms(atoms, box, px))
    sigma = snr_noise_sigma(clean, snr)
    return np.asarray(add_gaussian_noise(jax.random.key(seed + 1), clean, sigma)), ctf, r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--pixel", type=float, default=1.2)
    ap.add_argument("--particles", type=int, default=64)
    ap.add_argument("--base-level", type=int, default=2)
    ap.add_argument("--n-refine", type=int, default=2)
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--structures", type=int, default=1)
    ap.add_argument("--pad-factor", type=float, default=2.0)
    ap.add_argument("--particle-batch", type=int, default=None)
    ap.add_argument("--rotation-chunk", type=int, default=None)
    ap.add_argument("--coarse-box", type=int, default=32)
    ap.add_argument("--band-limit", type=float, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()

    m = read_structure(DATA / "adk_open.pdb")
    atoms = gaussian_atoms(m, selection="all", center=m.center_of_mass())
    cfg = PoseSearchConfig(
        base_level=a.base_level,
        n_refine=a.n_refine,
        n_candidates=a.candidates,
        pad_factor=a.pad_factor,
        particle_batch=a.particle_batch,
        rotation_chunk=a.rotation_chunk,
        coarse_box=a.coarse_box or None,
        band_limit=a.band_limit,
    )
    pb, chunk = cfg.batch_sizes()
    images, ctf, r_true = particles(atoms, a.particles, a.box, a.pixel)
    structures = [atoms] * a.structures
    # warm-up: one batch compiles everything
    first = jax.tree.map(lambda x: jnp.broadcast_to(x, (a.particles,))[:pb], ctf)
    pose_search_arrays(images[:pb], first, a.pixel, structures, cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    res = pose_search_arrays(images, ctf, a.pixel, structures, cfg)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    err = np.asarray(rotation_angle(jnp.asarray(res.rotations[:, 0]), r_true))
    out = {
        "device": str(jax.devices()[0]),
        "box": a.box,
        "pixel_size": a.pixel,
        "particles": a.particles,
        "structures": a.structures,
        "base_level": a.base_level,
        "base_rotations": n_rotations(a.base_level),
        "coarse_resolution_deg": 60.0 / 2**a.base_level,
        "final_resolution_deg": cfg.final_resolution,
        "candidates": a.candidates,
        "n_shifts": res.info["n_shifts"],
        "pad_factor": a.pad_factor,
        "level_boxes": res.info["level_boxes"],
        "level_template_grids": res.info["level_template_grids"],
        "particle_batch": pb,
        "rotation_chunk": chunk,
        "elapsed_s": elapsed,
        "particles_per_s": a.particles * a.structures / elapsed,
        "cpu_s": cpu,
        "cpu_s_per_particle": cpu / (a.particles * a.structures),
        "median_angular_error_deg": float(np.median(err)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
    if stats:
        out["device_peak_mb"] = stats.get("peak_bytes_in_use", 0) / 2**20
    print(json.dumps(out, indent=2))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
