"""Peer benchmark: the reference implementation (cryojax-eo 0.3.2) on adenylate kinase.

Setup (its own environment; it pins its own jax/cryojax and pulls openmm, mdtraj)::

    python3 -m venv .venv-eo
    .venv-eo/bin/pip install cryojax-eo==0.3.2
    .venv-eo/bin/python benchmarks/peers/cryojax_eo_adk.py --out /tmp/eo_adk [--iterations 3]

The experiment: 1000 particles 128 x 128 at 1.2 A, 300 kV, defocus 10000-20000 A, SNR 0.1,
open/closed 0.7/0.3 (open first superposed on closed, heavy atoms), both walkers started from
closed, heavy atoms in the likelihood, batch 100, ``--inner-steps`` likelihood steps of
``--step-size`` A, ``--md-steps`` MD steps with bias ``--k`` kJ/mol/nm^2 (the reference's amber14,
CutoffNonPeriodic 1 nm, HBonds, 300 K, 2 fs). The CHARMM-named bundled PDBs are rewritten through
``openmm.app.PDBFile`` (which maps HSD/HN/OT1 ... to PDB names) with a CRYST1 record: the
reference reads the periodic box vectors of the topology and fails without one.

Prints seconds per outer iteration and the split likelihood+gradient / MD projection / rest,
timed by wrapping the reference's ``IterativeEnsembleLikelihoodOptimizer.__call__`` and
``EnsembleSteeredMDSimulator.__call__`` (first iteration, with JAX compilation, reported apart).

Observed (2 CPU cores, 23 GiB, nothing else running, --iterations 2): 373 s per outer iteration
(368 s likelihood+gradient, 4.6 s MD for both walkers), first iteration 382 s with compilation,
peak RSS about 12.6 GB (it vmaps 50 images at once); 943 s in all with the initial MD and the final
weights (0.719 / 0.281). Earlier, on a loaded machine, the first likelihood phase reached 15.8 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "src" / "cryoensemble" / "data"


def prepare_pdbs(folder: Path) -> dict[str, Path]:
    """closed.pdb, open.pdb (superposed on closed) in PDB naming with a 10 nm CRYST1 box."""
    import openmm.app as app
    from openmm import Vec3, unit

    folder.mkdir(parents=True, exist_ok=True)
    closed = app.PDBFile(str(DATA / "adk_closed.pdb"))
    opened = app.PDBFile(str(DATA / "adk_open.pdb"))
    xc = np.asarray(closed.positions.value_in_unit(unit.angstrom))
    xo = np.asarray(opened.positions.value_in_unit(unit.angstrom))
    heavy = np.array([a.element.symbol != "H" for a in closed.topology.atoms()])
    a, b = xo[heavy] - xo[heavy].mean(0), xc[heavy] - xc[heavy].mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1, 1, d]) @ u.T
    xo = (xo - xo[heavy].mean(0)) @ r.T + xc[heavy].mean(0)
    out = {}
    for name, top, x in (("closed", closed.topology, xc), ("open", opened.topology, xo)):
        top.setPeriodicBoxVectors([Vec3(10, 0, 0), Vec3(0, 10, 0), Vec3(0, 0, 10)] * unit.nanometer)
        path = folder / f"{name}.pdb"
        with open(path, "w") as f:
            app.PDBFile.writeFile(top, x * unit.angstrom, f, keepIds=True)
        out[name] = path
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/eo_adk"))
    ap.add_argument("--particles", type=int, default=1000)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--inner-steps", type=int, default=5)
    ap.add_argument("--step-size", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--md-steps", type=int, default=400)
    ap.add_argument("--k", type=float, default=1e5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)

    import cryojax_eo as cxeo
    from cryojax_eo.commands._run_ensemble_optimization import run_ensemble_optimization_with_md
    from cryojax_eo.dataset import simulate_relion_dataset
    from cryojax_eo.internal import DatasetSimulatorConfig, EnsOptMDConfig

    out = args.out
    pdbs = prepare_pdbs(out / "inputs")
    project = out / "relion"
    star = project / "particles.star"
    t0 = time.perf_counter()
    if not star.exists():
        sim = DatasetSimulatorConfig(
            number_of_images=args.particles,
            pixel_size=1.2,
            box_size=128,
            voltage_in_kilovolts=300.0,
            defocus_in_angstroms=[10000.0, 20000.0],
            noise_snr=0.1,
            rng_seed=0,
            atomic_models_params={
                "path_to_atomic_models": [str(pdbs["open"]), str(pdbs["closed"])],
                "atomic_models_probabilities": [0.7, 0.3],
                "atom_selection": "not element H",
            },
            path_to_relion_project=project,
            path_to_starfile=star,
            images_per_file=args.particles,
            batch_size_for_generation=100,
            overwrite=True,
        )
        simulate_relion_dataset(sim)
    t_sim = time.perf_counter() - t0
    print(f"simulated {args.particles} particles in {t_sim:.1f} s")

    cfg = EnsOptMDConfig(
        path_to_atomic_models=[str(pdbs["closed"]), str(pdbs["closed"])],
        path_to_output=out / "run",
        atom_selection="not element H",
        data_params={"path_to_starfile": str(star), "path_to_relion_project": str(project)},
        projector_params={
            "n_steps": args.md_steps,
            "bias_constant_in_kjpermol": float(args.k),
            "platform": "CPU",
            "platform_properties": {"Threads": str(args.threads)},
        },
        likelihood_optimizer_params={
            "n_steps": args.inner_steps,
            "step_size": args.step_size,
            "batch_size": args.batch_size,
        },
        alignment_params={"path_to_prealigned_atomic_model": str(pdbs["closed"])},
        n_steps=args.iterations,
        rng_seed=0,
    )
    (out / "run").mkdir(parents=True, exist_ok=True)

    timings: dict[str, list[float]] = {"likelihood": [], "projection": [], "iteration_end": []}

    def timed(cls, name):
        orig = cls.__call__

        def wrapper(self, *a, **kw):
            t = time.perf_counter()
            res = orig(self, *a, **kw)
            timings[name].append(time.perf_counter() - t)
            if name == "projection":
                timings["iteration_end"].append(time.perf_counter())
            return res

        cls.__call__ = wrapper

    timed(cxeo.IterativeEnsembleLikelihoodOptimizer, "likelihood")
    timed(cxeo.EnsembleSteeredMDSimulator, "projection")
    t0 = time.perf_counter()
    _, weights = run_ensemble_optimization_with_md(cfg)
    total = time.perf_counter() - t0
    ends = np.asarray(timings["iteration_end"])
    per_it = np.diff(ends) if len(ends) > 1 else np.asarray([np.nan])
    lik = np.asarray(timings["likelihood"])
    proj = np.asarray(timings["projection"])
    rec = {
        "iterations": args.iterations,
        "seconds_per_iteration": float(np.mean(per_it)),
        "seconds_likelihood": float(np.mean(lik[1:])) if len(lik) > 1 else float(lik[0]),
        "seconds_projection": float(np.mean(proj[1:])) if len(proj) > 1 else float(proj[0]),
        "first_likelihood_seconds": float(lik[0]),
        "first_projection_seconds": float(proj[0]),
        "total_seconds_incl_init_and_final_weights": total,
        "ms_per_image_walker": float(
            1000 * np.mean(lik[1:]) / (args.inner_steps * args.batch_size * 2)
        )
        if len(lik) > 1
        else None,
        "final_weights": np.asarray(weights).tolist(),
        "threads": args.threads,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    print(json.dumps(rec, indent=2))
    (out / "summary.json").write_text(json.dumps(rec, indent=2) + "\n")
    return rec


if __name__ == "__main__":
    main()
