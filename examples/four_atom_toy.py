"""Four-atom toy: a rectangle of four Gaussian atoms with K = 3 metastable side lengths.

The model: atoms at the corners (+-a/2, +-b/2, 0) of a rectangle; harmonic bonds keep the short
side a = 25 A, harmonic terms on cos(angle) keep the four right angles, and a triple-well
potential on the long sides gives K = 3 metastable states b = 40, 55, 70 A. Particles (32 x 32
pixels of 4 A, CTF, SNR 0.1, uniform random poses) are simulated from the three states with
populations 0.5 / 0.3 / 0.2; the ensemble optimizer runs with M = K, K + 1 and K - 1 walkers from
wrong starts, using the toy energy as the Langevin prior (a user energy).

    python examples/four_atom_toy.py --out toy_out [--particles 3000] [--iterations 30]

prints, per run, the final side length of every walker, its RMSD to each state, the weights
(posterior mean and 90 % interval), and writes loss / weights / RMSD plots per run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from cryoensemble.ensemble import LangevinConfig, LangevinProjector
from cryoensemble.imaging import ArrayParticles, ImagingConfig, simulate_images_jit
from cryoensemble.optics import CTFParams
from cryoensemble.pose import random_rotations
from cryoensemble.scattering import GaussianAtoms
from cryoensemble.workflows.optimize import (
    EnsembleOptimizer,
    EnsembleOptimizerConfig,
    plot_history,
)

SHORT_SIDE = 25.0  # A
STATES = (40.0, 55.0, 70.0)  # long side of the K = 3 metastable states, A
POPULATIONS = (0.5, 0.3, 0.2)
ATOM_SIGMA = 2.0  # A, width of every Gaussian atom
BOND_K = 50.0  # kJ/mol/A^2
ANGLE_K = 500.0  # kJ/mol (on cos^2 of each corner angle)
WELL_DEPTH = 10.0  # kJ/mol
WELL_WIDTH = 3.0  # A

#: default starting long sides of the walkers, per M (none of them on a state)
STARTS = {2: (46.0, 62.0), 3: (46.0, 50.0, 62.0), 4: (46.0, 50.0, 58.0, 62.0)}


def rectangle(b: float, a: float = SHORT_SIDE) -> np.ndarray:
    """Corners (4, 3) A of an a x b rectangle centred at the origin in the z = 0 plane."""
    return np.array(
        [[-a / 2, -b / 2, 0], [a / 2, -b / 2, 0], [a / 2, b / 2, 0], [-a / 2, b / 2, 0]], float
    )


def long_side(x) -> float:
    """Mean length (A) of the two long sides (1-2 and 3-0) of a rectangle's corners."""
    x = np.asarray(x)
    return float(0.5 * (np.linalg.norm(x[2] - x[1]) + np.linalg.norm(x[0] - x[3])))


def toy_energy(x):
    """The toy prior U(x) in kJ/mol of the corners x (4, 3) A (JAX): bonds, right angles and the
    triple well on the long sides. Usable as ``user_energy: four_atom_toy:toy_energy``."""
    d = lambda i, j: jnp.sqrt(jnp.sum((x[i] - x[j]) ** 2) + 1e-12)
    e = 0.5 * BOND_K * ((d(0, 1) - SHORT_SIDE) ** 2 + (d(2, 3) - SHORT_SIDE) ** 2)
    states = jnp.asarray(STATES)
    for i, j in ((1, 2), (3, 0)):
        e = e - WELL_DEPTH * jnp.sum(jnp.exp(-0.5 * ((d(i, j) - states) / WELL_WIDTH) ** 2))
    for c in range(4):
        u = x[(c + 1) % 4] - x[c]
        v = x[(c - 1) % 4] - x[c]
        cos = jnp.dot(u, v) / (jnp.linalg.norm(u) * jnp.linalg.norm(v) + 1e-12)
        e = e + 0.5 * ANGLE_K * cos**2
    return e


def toy_atoms(positions):
    """Gaussian atoms (one component each, width ATOM_SIGMA) at ``positions`` (n, 3) A."""
    n = len(positions)
    return GaussianAtoms(
        jnp.asarray(positions, jnp.float32),
        jnp.full((n, 1), 1000.0, jnp.float32),
        jnp.full((n, 1), ATOM_SIGMA**2, jnp.float32),
    )


def simulate_toy(
    n_particles: int = 3000, snr: float = 0.1, seed: int = 0, box: int = 32, pixel: float = 4.0
):
    """Particles of the three states: (ArrayParticles, true state per particle)."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(STATES), size=n_particles, p=POPULATIONS)
    rots = np.asarray(random_rotations(jax.random.PRNGKey(seed), n_particles), np.float32)
    shifts = rng.uniform(-4, 4, size=(n_particles, 2)).astype(np.float32)
    dfu = rng.uniform(8000, 15000, n_particles).astype(np.float32)
    ctf = CTFParams(defocus_u=dfu, defocus_v=dfu, defocus_angle=np.zeros_like(dfu))
    ctf = jax.tree.map(lambda a: np.broadcast_to(np.asarray(a), (n_particles,)), ctf)
    config = ImagingConfig(box_size=box, pixel_size=pixel, half_width=4, chunk_size=64)
    clean = np.zeros((n_particles, box, box), np.float32)
    for k, b in enumerate(STATES):
        idx = np.flatnonzero(labels == k)
        if len(idx) == 0:
            continue
        sub = jax.tree.map(lambda a, idx=idx: jnp.asarray(a[idx]), ctf)
        clean[idx] = np.asarray(
            simulate_images_jit(
                toy_atoms(rectangle(b)),
                jnp.asarray(rots[idx]),
                jnp.asarray(shifts[idx]),
                sub,
                config,
            )
        )
    yy, xx = np.mgrid[:box, :box] - box // 2
    disc = (yy**2 + xx**2) <= (box // 2) ** 2
    sigma = np.sqrt(np.mean(np.var(clean[:, disc], axis=1)) / snr)
    noisy = clean + rng.normal(0, sigma, clean.shape).astype(np.float32)
    return ArrayParticles(noisy, ctf, pixel, rots, shifts), labels


def run_toy(
    n_walkers: int,
    particles=None,
    labels=None,
    iterations: int = 30,
    inner_steps: int = 5,
    batch_size: int = 200,
    step_size: float = 1.0,
    seed: int = 0,
    n_particles: int = 3000,
    starts=None,
    folder=None,
    resume=False,
    stop_after=None,
    refit=True,
    optimizer: str = "normalized",
):
    """Optimize ``n_walkers`` rectangles; returns a dict of the results (and the result object)."""
    if particles is None:
        particles, labels = simulate_toy(n_particles, seed=seed)
    starts = STARTS[n_walkers] if starts is None else starts
    start = np.stack([rectangle(b) for b in starts])
    settings = EnsembleOptimizerConfig(
        iterations=iterations,
        inner_steps=inner_steps,
        batch_size=batch_size,
        step_size=step_size,
        seed=seed,
        align="kabsch",
        optimizer=optimizer,
        learning_rate=0.5,
        n_samples=1000,
        burn_in=200,
    )
    lconf = LangevinConfig(n_steps=100, step=2e-3, k_target=20.0, energy="none")
    projector = LangevinProjector(lconf, user_energy=toy_energy)
    opt = EnsembleOptimizer(
        settings,
        particles,
        toy_atoms(start[0]),
        start,
        np.arange(4),
        projector,
        reference=rectangle(STATES[1]),
        ground_truth=[rectangle(b) for b in STATES],
        ground_truth_names=[f"b{int(b)}" for b in STATES],
        apply_ctf=True,
        pad_factor=1.0,
        chunk_size=64,
    )
    res = opt.run(folder=folder, resume=resume, stop_after=stop_after, refit=refit)
    out = {
        "n_walkers": n_walkers,
        "starts": list(starts),
        "final_long_side": [long_side(p) for p in res.positions],
        "final_rmsd": res.history[-1]["rmsd"],
        "nearest_state": [int(np.argmin(r)) for r in res.history[-1]["rmsd"]],
        "true_fraction": (np.bincount(labels, minlength=3) / len(labels)).tolist()
        if labels is not None
        else None,
        "seconds_per_iteration": float(np.mean([h["seconds"] for h in res.history[1:]]))
        if len(res.history) > 1
        else res.history[0]["seconds"],
    }
    if res.reweight is not None:
        s = res.reweight.summary
        out["weights"] = s["mean"].tolist()
        out["lower"] = s["lower"].tolist()
        out["upper"] = s["upper"].tolist()
        per_state = np.zeros(3)
        for m, k in enumerate(out["nearest_state"]):
            per_state[k] += s["mean"][m]
        out["weight_per_state"] = per_state.tolist()
    return out, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("four_atom_toy_out"))
    ap.add_argument("--particles", type=int, default=3000)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    particles, labels = simulate_toy(args.particles, seed=args.seed)
    frac = np.bincount(labels, minlength=3) / len(labels)
    print(f"states b = {STATES} A, populations {POPULATIONS}, realised {np.round(frac, 4)}")
    summary = {}
    for m in (3, 4, 2):
        t0 = time.perf_counter()
        out, res = run_toy(m, particles, labels, iterations=args.iterations, seed=args.seed)
        out["total_seconds"] = time.perf_counter() - t0
        summary[f"M={m}"] = out
        plot_history(res.history, args.out / f"M{m}", ["b40", "b55", "b70"], res.names)
        print(
            f"\nM = {m} walkers (starts b = {out['starts']} A), {out['total_seconds']:.1f} s, "
            f"{out['seconds_per_iteration']:.3f} s/iteration"
        )
        for w in range(m):
            r = ", ".join(f"{x:.2f}" for x in out["final_rmsd"][w])
            print(
                f"  walker {w}: b = {out['final_long_side'][w]:.2f} A, RMSD to states [{r}] A, "
                f"weight {out['weights'][w]:.3f} [{out['lower'][w]:.3f}, {out['upper'][w]:.3f}]"
            )
        print(
            f"  weight per state {np.round(out['weight_per_state'], 3)} vs realised "
            f"{np.round(frac, 3)}"
        )
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
