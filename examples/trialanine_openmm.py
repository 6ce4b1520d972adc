"""Tri-alanine with the OpenMM prior: two walkers recover two conformations and their weights.

The acceptance experiment of the OpenMM projector. Particles of tri-alanine (bundled
``trialanine/ala_model_0.pdb`` and ``ala_model_1.pdb``, weights 0.7 / 0.3; 128 x 128 pixels at
0.2 A, 300 kV, defocus 100-500 A, SNR 0.1, known poses, heavy atoms). ``ala_model_1`` is first
superposed on ``ala_model_0`` (= ``ref_model.pdb``, the run's reference; least squares on the
heavy atoms, as a consensus refinement would place both states) and both are centred on the
reference's centre of mass. Walkers start from ``initial_model_0`` / ``initial_model_1``; after the
likelihood steps of each iteration every walker continues its own amber14 Langevin trajectory
(300 K, 2 fs, HBond constraints, vacuum) with the bias 0.5 k RMSD^2 towards the moved heavy atoms
(:class:`cryoensemble.ensemble.OpenMMProjector`).

    python examples/trialanine_openmm.py --out tri_out [--particles 5000] [--iterations 30]

Acceptance: final weights within 0.05 of 0.7 / 0.3 and each walker's heavy-atom RMSD to its
target lower than at the start. Prints the RMSD of each walker to both states per iteration, the
weights with 90 % intervals and the seconds per iteration (likelihood+gradient / MD / alignment);
writes OUT/summary.json and the outputs of ``cryoensemble optimize`` in OUT/run.
Needs OpenMM (``pip install 'cryoensemble[md]'``).
"""

from __future__ import annotations

from cryoensemble.parallel import configure_host_devices

configure_host_devices()  # every CPU core a JAX device (before JAX starts)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "src" / "cryoensemble" / "data" / "trialanine"


def make_inputs(folder: Path) -> dict[str, Path]:
    """state0.pdb (= ala_model_0) and state1.pdb (ala_model_1 superposed on it) in ``folder``."""
    from cryoensemble.pose import superpose_model
    from cryoensemble.structure import read_structure, write_pdb

    folder.mkdir(parents=True, exist_ok=True)
    s0 = read_structure(DATA / "ala_model_0.pdb")
    s1 = read_structure(DATA / "ala_model_1.pdb")
    moved, _ = superpose_model(s1, s0, "heavy")
    paths = {"state0": folder / "state0.pdb", "state1": folder / "state1.pdb"}
    write_pdb(s0, paths["state0"])
    write_pdb(moved, paths["state1"])
    return paths


def simulate(folder: Path, paths: dict[str, Path], args):
    from cryoensemble.workflows.simulate import load_config
    from cryoensemble.workflows.simulate import run as simulate_run

    cfg = load_config(
        structures=[paths["state0"], paths["state1"]],
        weights=[0.7, 0.3],
        n_particles=args.particles,
        box_size=args.box,
        pixel_size=args.pixel,
        voltage=300.0,
        defocus_min=100.0,
        defocus_max=500.0,
        astigmatism_max=0.0,
        snr=args.snr,
        selection="heavy",
        center="first",
        seed=args.seed,
        gallery=False,
    )
    return simulate_run(cfg, folder, overwrite=True)


def optimize_config(paths, star, args) -> dict:
    return {
        "walkers": [str(DATA / "initial_model_0.pdb"), str(DATA / "initial_model_1.pdb")],
        "particles": str(star),
        "reference": str(DATA / "ref_model.pdb"),
        "ground_truth": [str(paths["state0"]), str(paths["state1"])],
        "selection": "heavy",
        "rmsd_selection": "heavy",
        "iterations": args.iterations,
        "inner_steps": args.inner_steps,
        "batch_size": args.batch_size,
        "step_size": args.step_size,
        "downsample": args.downsample,
        "seed": args.seed,
        "progress": not args.quiet,
        "projector": {
            "kind": "openmm",
            "openmm": {
                "options": {
                    "n_steps": args.md_steps,
                    "k": args.k,
                    "solvent": args.solvent,
                    "selection": "heavy",
                }
            },
        },
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("trialanine_out"))
    ap.add_argument("--particles", type=int, default=5000)
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--pixel", type=float, default=0.2)
    ap.add_argument("--snr", type=float, default=0.1)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--inner-steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--step-size", type=float, default=0.5)
    ap.add_argument("--downsample", type=int, default=1)
    ap.add_argument("--md-steps", type=int, default=400)
    ap.add_argument("--k", type=float, default=1e5, help="bias constant, kJ/mol/nm^2")
    ap.add_argument("--solvent", default="vacuum", choices=["vacuum", "obc2"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)

    from cryoensemble.workflows import optimize
    from cryoensemble.workflows._progress import progress_meter

    out = args.out
    paths = make_inputs(out / "inputs")
    sim = out / "simulation"
    t0 = time.perf_counter()
    if not (sim / "particles.star").exists():
        counts = simulate(sim, paths, args).particles_per_structure
    else:
        import starfile

        df = starfile.read(sim / "particles.star")["particles"]
        counts = np.bincount(df["cryoensembleStructureIndex"], minlength=2).tolist()
    frac = [c / sum(counts) for c in counts]
    print(
        f"simulated {sum(counts)} particles ({args.box} x {args.box} at {args.pixel} A, SNR "
        f"{args.snr}): state0 {counts[0]}, state1 {counts[1]} (fractions {frac[0]:.3f} / "
        f"{frac[1]:.3f}) in {time.perf_counter() - t0:.1f} s"
    )
    cfg = optimize.load_optimize_config(**optimize_config(paths, sim / "particles.star", args))
    t0 = time.perf_counter()
    result = optimize.run(
        cfg,
        out / "run",
        resume=args.resume,
        overwrite=not args.resume,
        progress=progress_meter(not args.quiet),
    )
    total = time.perf_counter() - t0
    hist = result.history

    # heavy-atom RMSD of each walker to its own target, at the start (after the initial energy
    # minimisation and alignment: trajectory frame 0) and at the end
    from cryoensemble.pose import superposed_rmsd
    from cryoensemble.structure import read_structure

    targets = [read_structure(paths[f"state{m}"]) for m in range(2)]
    heavy = targets[0].atomic_numbers > 1

    def rmsd_to(frame, m, k):
        return superposed_rmsd(frame[m][heavy], targets[k].positions[heavy])

    end_all = [[rmsd_to(result.positions, m, k) for k in range(2)] for m in range(2)]
    # each walker's target: the state it ends on (walkers are exchangeable; from these starts
    # the reference run pairs initial_model_0 with ala_model_1 and initial_model_1 with
    # ala_model_0)
    swap = end_all[0][1] + end_all[1][0] < end_all[0][0] + end_all[1][1]
    target_of = [1, 0] if swap else [0, 1]
    start = [rmsd_to(result.trajectory[0], m, target_of[m]) for m in range(2)]
    end = [end_all[m][target_of[m]] for m in range(2)]

    print(
        "\niteration  RMSD w0->s0  w0->s1  w1->s0  w1->s1  batch weights  "
        "s/it (lik+grad / MD / align)"
    )
    for h in hist:
        r = np.asarray(h["rmsd"])
        print(
            f"{h['iteration']:9d}  {r[0, 0]:10.2f}  {r[0, 1]:6.2f}  {r[1, 0]:6.2f}  "
            f"{r[1, 1]:6.2f}  [{h['batch_weights'][0]:.2f} {h['batch_weights'][1]:.2f}]  "
            f"{h['seconds']:.2f} ({h['seconds_likelihood']:.2f} / {h['seconds_projection']:.2f}"
            f" / {h['seconds_alignment']:.3f})"
        )
    s = result.reweight.summary
    w = np.asarray(s["mean"], np.float64)
    w_state = np.zeros(2)
    w_state[target_of] = w  # weight of each state = weight of the walker on it
    steady = hist[1:] if len(hist) > 1 else hist
    rec = {
        "particles": int(sum(counts)),
        "fractions": frac,
        "iterations": len(hist),
        "weights": w.tolist(),
        "lower": np.asarray(s["lower"]).tolist(),
        "upper": np.asarray(s["upper"]).tolist(),
        "walker_target": target_of,
        "state_weights": w_state.tolist(),
        "weights_ok": bool(abs(w_state[0] - 0.7) <= 0.05 and abs(w_state[1] - 0.3) <= 0.05),
        "rmsd_start": start,
        "rmsd_end": end,
        "rmsd_ok": bool(all(e < s0 for e, s0 in zip(end, start, strict=True))),
        "seconds_per_iteration": float(np.mean([h["seconds"] for h in steady])),
        "seconds_likelihood": float(np.mean([h["seconds_likelihood"] for h in steady])),
        "seconds_projection": float(np.mean([h["seconds_projection"] for h in steady])),
        "seconds_alignment": float(np.mean([h["seconds_alignment"] for h in steady])),
        "first_iteration_seconds": float(hist[0]["seconds"]),
        "total_seconds": total,
        "settings": vars(args) | {"out": str(args.out)},
    }
    for m in range(2):
        print(
            f"walker {m}: heavy-atom RMSD to state{target_of[m]} {start[m]:.2f} -> {end[m]:.2f} A"
        )
    print(
        f"walker weights {np.round(w, 4).tolist()} (90 % intervals "
        f"{np.round(rec['lower'], 3).tolist()} - {np.round(rec['upper'], 3).tolist()}); "
        f"state weights {np.round(w_state, 4).tolist()}; realised fractions "
        f"{np.round(frac, 3).tolist()}; within 0.05 of 0.7/0.3: "
        f"{rec['weights_ok']}"
    )
    print(
        f"{rec['seconds_per_iteration']:.2f} s per outer iteration (likelihood+gradient "
        f"{rec['seconds_likelihood']:.2f}, MD {rec['seconds_projection']:.2f}, alignment "
        f"{rec['seconds_alignment']:.3f}); first iteration {rec['first_iteration_seconds']:.1f}"
        f" s; total {total:.1f} s"
    )
    (out / "summary.json").write_text(json.dumps(rec, indent=2) + "\n")
    print(f"outputs in {out / 'run'}")
    return rec


if __name__ == "__main__":
    main()
