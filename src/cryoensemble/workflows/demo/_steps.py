"""The steps of ``cryoensemble demo``. Each step ``step(out, progress) -> list[str]`` writes into its
own sub-folder of the demo folder and returns lines describing what it found and wrote."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryoensemble.data import bundled
from cryoensemble.pose import superpose_model
from cryoensemble.progress import AbstractProgressMeter
from cryoensemble.structure import read_structure, write_pdb
from cryoensemble.workflows import optimize, simulate

__all__ = ["optimize_step", "simulate_step"]

DATA = bundled("adk_open.pdb").parent


def simulate_step(out: Path, progress: AbstractProgressMeter) -> list[str]:
    """Simulate 1000 particles of the bundled adenylate kinase with the default settings.

    Arguments:
        out: the demo folder (writes ``out / "simulation"``).
        progress: progress meter.
    """
    folder = out / "simulation"
    summary = simulate.run(simulate.load_config(), folder, progress=progress)
    return [
        f"simulation ({summary.n_particles} particles, {summary.images_per_s:.0f} images/s):",
        f"  particles:    {summary.star_path}",
        f"  gallery:      {folder / 'gallery.png'}",
        f"  ground truth: {folder / 'ground_truth.csv'}",
    ]


def _two_states(folder: Path) -> dict[str, Path]:
    """Closed and open adenylate kinase in one frame (open superposed on closed, heavy atoms)."""
    folder.mkdir(parents=True, exist_ok=True)
    closed = read_structure(DATA / "adk_closed.pdb")
    moved, _ = superpose_model(read_structure(DATA / "adk_open.pdb"), closed, "heavy")
    paths = {"closed": folder / "closed.pdb", "open": folder / "open_aligned.pdb"}
    write_pdb(closed, paths["closed"])
    write_pdb(moved, paths["open"])
    return paths


def _recovery(result: optimize.OptimizeResult, counts: list[int]) -> tuple[int, list[str]]:
    """The walker that opened and the lines reporting its path to the open state."""
    rmsd = np.array([h["rmsd"] for h in result.history])  # (T, M, [open, closed])
    opener = int(np.argmin(rmsd[-1, :, 0]))
    s = result.reweight.summary
    lines = [
        f"optimize demo: {counts[1]} open / {counts[0]} closed particles; both walkers start "
        "from closed",
        "iteration  Calpha RMSD of the opening walker to open (A)",
        *(f"{t + 1:9d}  {rmsd[t, opener, 0]:.2f}" for t in range(len(rmsd))),
        f"weights: opening walker {s['mean'][opener]:.3f} [{s['lower'][opener]:.3f}, "
        f"{s['upper'][opener]:.3f}] (true open fraction {counts[1] / sum(counts):.3f})",
    ]
    return opener, lines


def optimize_step(
    out: Path, progress: AbstractProgressMeter, n_particles: int = 400, iterations: int = 25
) -> list[str]:
    """Ensemble optimisation from the wrong start.

    Simulates a two-state adenylate kinase dataset (open / closed, 0.7 / 0.3, 64 x 64 pixels at
    2.4 A, SNR 0.1, CTF, known poses), then optimises two walkers both started from the closed
    state under the elastic-network Langevin prior, and reports the Calpha RMSD of the opening
    walker to the open state per iteration and the recovered weights. About a minute on 2 CPU
    cores, compilation included.

    Arguments:
        out: the demo folder (writes ``out / "optimize"``).
        progress: progress meter.
        n_particles: particles simulated.
        iterations: outer iterations of the optimiser.
    """
    root = out / "optimize"
    paths = _two_states(root / "inputs")
    sim = simulate.run(
        simulate.load_config(
            structures=[paths["closed"], paths["open"]],
            weights=[0.3, 0.7],
            n_particles=n_particles,
            box_size=64,
            pixel_size=2.4,
            snr=0.1,
            center="first",
            seed=0,
            gallery=False,
        ),
        root / "simulation",
        progress=progress,
    )
    config = optimize.load_optimize_config(
        walkers=[str(paths["closed"]), str(paths["closed"])],
        particles=str(sim.star_path),
        reference=str(paths["closed"]),
        ground_truth=[str(paths["open"]), str(paths["closed"])],
        iterations=iterations,
        inner_steps=5,
        batch_size=100,
        step_size=0.5,
        seed=0,
        n_samples=1000,
        burn_in=200,
    )
    run = root / "run"
    result = optimize.run(config, run, overwrite=True, progress=progress, command="demo optimize")
    counts = sim.particles_per_structure
    opener, lines = _recovery(result, counts)
    rmsd = [h["rmsd"][opener][0] for h in (result.history[0], result.history[-1])]
    return lines + [
        f"ensemble optimisation (walker {opener} opened: Calpha RMSD to open "
        f"{rmsd[0]:.2f} -> {rmsd[1]:.2f} A; weight {result.weights[opener]:.3f} "
        f"for an open fraction {counts[1] / sum(counts):.3f}):",
        f"  walkers:      {run / 'walker_0.pdb'}, {run / 'walker_1.pdb'}",
        f"  weights:      {run / 'weights.json'}",
        f"  plots:        {run / 'rmsd.png'}, {run / 'loss.png'}, {run / 'weights.png'}",
        f"  trajectories: {run / 'walkers_traj_0.pdb'}, {run / 'walkers_traj_1.pdb'}",
        f"  particles:    {sim.star_path}",
    ]
