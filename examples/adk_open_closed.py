"""Adenylate kinase: recover the open state from particles, starting both walkers from closed.

Particles of open / closed ADK (bundled adk_open.pdb, adk_closed.pdb) with weights 0.7 / 0.3,
128 x 128 pixels at 1.2 A, SNR 0.1, CTF, known poses. The open structure is first superposed on
the closed one (least squares on the heavy atoms, as a consensus refinement would place both
states) and both are centred on the closed state's centre of mass (``center: first``). Two
walkers start from the closed state; the elastic-network Langevin projector keeps them physical.

    python examples/adk_open_closed.py --out adk_out [--particles 1000] [--iterations 40]

prints the Calpha RMSD of each walker to the open and closed states per iteration, the weights
with their 90 % intervals and the seconds per iteration split into likelihood+gradient,
projection and alignment; the outputs of ``cryoensemble optimize`` are in OUT/run.
``--reduced`` runs the fast version used by the tests (64 x 64 at 2.4 A, 400 particles).
"""

from __future__ import annotations

from cryoensemble.parallel import configure_host_devices

configure_host_devices()  # every CPU core a JAX device (before JAX starts)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "src" / "cryoensemble" / "data"


def make_inputs(folder: Path) -> dict[str, Path]:
    """closed.pdb and open_aligned.pdb (open superposed on closed, heavy atoms) in ``folder``."""
    from cryoensemble.pose import superpose_model
    from cryoensemble.structure import read_structure, write_pdb

    folder.mkdir(parents=True, exist_ok=True)
    closed = read_structure(DATA / "adk_closed.pdb")
    opened = read_structure(DATA / "adk_open.pdb")
    moved, _ = superpose_model(opened, closed, "heavy")
    paths = {"closed": folder / "closed.pdb", "open": folder / "open_aligned.pdb"}
    write_pdb(closed, paths["closed"])
    write_pdb(moved, paths["open"])
    return paths


def simulate(
    folder: Path,
    paths: dict[str, Path],
    n_particles: int,
    box: int,
    pixel: float,
    snr: float,
    seed: int,
):
    from cryoensemble.workflows.simulate import load_config
    from cryoensemble.workflows.simulate import run as simulate_run

    cfg = load_config(
        structures=[paths["closed"], paths["open"]],
        weights=[0.3, 0.7],
        n_particles=n_particles,
        box_size=box,
        pixel_size=pixel,
        snr=snr,
        center="first",
        seed=seed,
        gallery=False,
    )
    summary = simulate_run(cfg, folder, overwrite=True)
    return summary


def optimize_config(paths, star, args) -> dict:
    return {
        "walkers": [str(paths["closed"]), str(paths["closed"])],
        "particles": str(star),
        "reference": str(paths["closed"]),
        "ground_truth": [str(paths["open"]), str(paths["closed"])],
        "selection": args.selection,
        "iterations": args.iterations,
        "inner_steps": args.inner_steps,
        "batch_size": args.batch_size,
        "step_size": args.step_size,
        "optimizer": args.optimizer,
        "learning_rate": args.learning_rate,
        "downsample": args.downsample,
        "downsample_iterations": args.downsample_iterations,
        "blur_b_factor": args.blur,
        "blur_iterations": args.blur_iterations if args.blur > 0 else 0,
        "seed": args.seed,
        "progress": not args.quiet,
        "projector": {
            "kind": args.projector,
            "openmm": {"options": {"n_steps": args.md_steps, "k": args.md_k}},
            "langevin": {
                "n_steps": args.langevin_steps,
                "step": args.langevin_h,
                "k_target": args.k_target,
                "elastic": {
                    "local_cutoff": args.local_cutoff,
                    "sequence_separation": args.sequence_separation,
                },
            },
        },
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("adk_out"))
    ap.add_argument("--particles", type=int, default=1000)
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--pixel", type=float, default=1.2)
    ap.add_argument("--snr", type=float, default=0.1)
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--inner-steps", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--step-size", type=float, default=0.5)
    ap.add_argument("--optimizer", default="normalized")
    ap.add_argument("--learning-rate", type=float, default=0.1)
    ap.add_argument(
        "--downsample",
        type=int,
        default=2,
        help="likelihood phase on images Fourier-cropped by this factor",
    )
    ap.add_argument(
        "--downsample-iterations",
        type=int,
        default=None,
        help="downsampled for the first N iterations, then full size (default all)",
    )
    ap.add_argument("--blur", type=float, default=0.0)
    ap.add_argument("--blur-iterations", type=int, default=20)
    ap.add_argument("--selection", default="heavy")
    ap.add_argument("--projector", choices=["langevin", "openmm"], default="langevin")
    ap.add_argument("--md-steps", type=int, default=400, help="OpenMM steps per projection")
    ap.add_argument("--md-k", type=float, default=1e5, help="OpenMM RMSD bias, kJ/mol/nm^2")
    ap.add_argument("--langevin-steps", type=int, default=100)
    ap.add_argument("--langevin-h", type=float, default=2e-3)
    ap.add_argument("--k-target", type=float, default=20.0)
    ap.add_argument("--local-cutoff", type=float, default=7.0)
    ap.add_argument("--sequence-separation", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reduced", action="store_true", help="64 x 64 at 2.4 A, 400 particles")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    if args.reduced:
        args.box, args.pixel, args.particles = 64, 2.4, min(args.particles, 400)
        args.downsample = 1

    from cryoensemble.workflows import optimize
    from cryoensemble.workflows._progress import progress_meter

    out = args.out
    paths = make_inputs(out / "inputs")
    sim = out / "simulation"
    t0 = time.perf_counter()
    if not (sim / "particles.star").exists():
        summary = simulate(sim, paths, args.particles, args.box, args.pixel, args.snr, args.seed)
        counts = summary.particles_per_structure
    else:
        import starfile

        df = starfile.read(sim / "particles.star")["particles"]
        counts = np.bincount(df["cryoensembleStructureIndex"], minlength=2).tolist()
    frac_open = counts[1] / sum(counts)
    print(
        f"simulated {sum(counts)} particles ({args.box} x {args.box} at {args.pixel} A, SNR "
        f"{args.snr}): closed {counts[0]}, open {counts[1]} (open fraction {frac_open:.3f}) in "
        f"{time.perf_counter() - t0:.1f} s"
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
    print(
        "\niteration  RMSD walker0->open  walker0->closed  walker1->open  walker1->closed  "
        "batch weights  s/it (lik+grad / proj / align)"
    )
    for h in hist:
        r = np.asarray(h["rmsd"])
        print(
            f"{h['iteration']:9d}  {r[0, 0]:17.2f}  {r[0, 1]:15.2f}  {r[1, 0]:13.2f}  "
            f"{r[1, 1]:15.2f}  [{h['batch_weights'][0]:.2f} {h['batch_weights'][1]:.2f}]  "
            f"{h['seconds']:.2f} ({h['seconds_likelihood']:.2f} / {h['seconds_projection']:.2f}"
            f" / {h['seconds_alignment']:.2f})"
        )
    r = np.asarray(hist[-1]["rmsd"])
    opener = int(np.argmin(r[:, 0]))
    s = result.reweight.summary
    steady = hist[1:] if len(hist) > 1 else hist
    out_rec = {
        "open_fraction": frac_open,
        "opening_walker": opener,
        "final_rmsd_open": float(r[opener, 0]),
        "final_rmsd_other_closed": float(r[1 - opener, 1]),
        "rmsd_curve_open": [float(np.min(np.asarray(h["rmsd"])[:, 0])) for h in hist],
        "weights": s["mean"].tolist(),
        "lower": s["lower"].tolist(),
        "upper": s["upper"].tolist(),
        "weight_open": float(s["mean"][opener]),
        "seconds_per_iteration": float(np.mean([h["seconds"] for h in steady])),
        "seconds_likelihood": float(np.mean([h["seconds_likelihood"] for h in steady])),
        "seconds_projection": float(np.mean([h["seconds_projection"] for h in steady])),
        "seconds_alignment": float(np.mean([h["seconds_alignment"] for h in steady])),
        "first_iteration_seconds": float(hist[0]["seconds"]),
        "total_seconds": total,
        "first_iteration_below_2A": next(
            (h["iteration"] for h in hist if np.min(np.asarray(h["rmsd"])[:, 0]) <= 2.0), None
        ),
    }
    print(
        f"\nwalker {opener} opened: Calpha RMSD to open {out_rec['final_rmsd_open']:.2f} A "
        f"(start {hist[0]['rmsd'][opener][0]:.2f} after iteration 1); the other walker is at "
        f"{out_rec['final_rmsd_other_closed']:.2f} A from closed"
    )
    print(
        f"weights {np.round(s['mean'], 4).tolist()} (90 % intervals "
        f"{np.round(s['lower'], 3).tolist()} - {np.round(s['upper'], 3).tolist()}); "
        f"realised open fraction {frac_open:.3f}"
    )
    print(
        f"{out_rec['seconds_per_iteration']:.2f} s per outer iteration (likelihood+gradient "
        f"{out_rec['seconds_likelihood']:.2f}, projection {out_rec['seconds_projection']:.2f}, "
        f"alignment {out_rec['seconds_alignment']:.3f}); first iteration (with compilation) "
        f"{out_rec['first_iteration_seconds']:.1f} s; total {total:.1f} s"
    )
    (out / "summary.json").write_text(json.dumps(out_rec, indent=2) + "\n")
    print(f"outputs in {out / 'run'}")
    return out_rec


if __name__ == "__main__":
    main()
