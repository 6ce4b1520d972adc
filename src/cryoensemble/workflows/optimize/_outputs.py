"""The final outputs of an optimisation run: walkers and trajectories (PDB), weights (as
``reweight`` writes them), the history (JSON, CSV) and its plots.

The run's folder already holds the checkpoint and the log, so the outputs are first written into a
hidden temporary folder inside it and then renamed into place one by one: a crash leaves either
the previous file or the new one, never a partial file.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cryoensemble.structure import AtomicModel, write_multimodel_pdb, write_pdb
from cryoensemble.workflows.optimize._optimizer import OptimizeResult
from cryoensemble.workflows.optimize._plots import plot_history
from cryoensemble.workflows.reweight import write_outputs

__all__ = ["summary_lines", "write_history", "write_run_outputs"]

_PER_WALKER = [
    "batch_weights",
    "batch_weights_mean",
    "grad_rms",
    "step_rms",
    "projection_rms",
    "alignment_rmsd",
    "moved_rms",
]
_PER_ITERATION = [
    "blur_b_factor",
    "seconds",
    "seconds_likelihood",
    "seconds_projection",
    "seconds_alignment",
]


def write_history(history: Sequence[dict], folder, gt_names: Sequence[str] = ()) -> None:
    """history.json (every record) and history.csv (one row per iteration and walker).

    Arguments:
        history: the optimizer's per-iteration records.
        folder: where the files go.
        gt_names: the ground-truth states' names (one ``rmsd_<name>`` column each, A).
    """
    folder = Path(folder)
    (folder / "history.json").write_text(json.dumps(list(history), indent=1) + "\n")
    head = ["iteration", "walker", "loss", "batch_weight", "batch_weight_mean"]
    head += _PER_WALKER[2:] + _PER_ITERATION + [f"rmsd_{n}" for n in gt_names]
    with open(folder / "history.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(head)
        for h in history:
            for m in range(len(h["batch_weights"])):
                row = [h["iteration"], m, h["loss"]] + [h[k][m] for k in _PER_WALKER]
                row += [h[k] for k in _PER_ITERATION]
                row += list(h.get("rmsd", [[]] * (m + 1))[m])
                wr.writerow(row)


def _move_into(src: Path, dst_folder: Path) -> None:
    for p in sorted(src.iterdir()):
        os.replace(p, dst_folder / p.name)


def write_run_outputs(
    result: OptimizeResult,
    out: str | Path,
    template: AtomicModel,
    offset: np.ndarray,
    *,
    ground_truth_names: Sequence[str] = (),
    meta: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Final outputs in ``out``, each written to a temporary file and renamed.

    walker_<m>.pdb, walkers_traj_<m>.pdb, weights.json/.csv (+ likelihood matrix, posterior
    samples, weights_posterior.png, assignments.png, as ``reweight`` writes them),
    history.json/.csv, loss.png, weights.png, rmsd.png. PDB coordinates are in the reference
    model's file frame (the centre removed for the likelihood is added back).

    Arguments:
        result: the optimizer's result.
        out: the run's folder.
        template: the model giving the atoms of the PDB files (the first walker).
        offset: (3,) A added to every position (the centre removed from the inputs).
        ground_truth_names: the ground-truth states' names (RMSD columns and plot).
        meta: more fields of the weights' metadata (particles, selection, ...).
    """
    out = Path(out)
    tmp = Path(tempfile.mkdtemp(prefix=".outputs.tmp-", dir=out))
    try:
        for m, pos in enumerate(result.positions):
            write_pdb(template, tmp / f"walker_{m}.pdb", pos + offset)
            frames = [f[m] + offset for f in result.trajectory]
            write_multimodel_pdb(template, frames, tmp / f"walkers_traj_{m}.pdb")
        final = None
        if result.reweight is not None:
            rw = result.reweight
            rw.structures = [str(out / f"walker_{m}.pdb") for m in range(len(rw.names))]
            rw.meta.update({"iterations": len(result.history), **(meta or {})})
            write_outputs(rw, tmp, plots=True)
            if (tmp / "weights.png").exists():
                (tmp / "weights.png").rename(tmp / "weights_posterior.png")
            final = rw.summary["mean"]
        write_history(result.history, tmp, ground_truth_names)
        plot_history(result.history, tmp, ground_truth_names, result.names, final)
        if (tmp / "weights_history.png").exists():
            (tmp / "weights_history.png").rename(tmp / "weights.png")
        _move_into(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {p.name: p for p in out.iterdir()}


def summary_lines(result: OptimizeResult) -> list[str]:
    """The run's summary for a terminal: each walker's final weight with its interval and its
    RMSD (A) to every ground-truth state.

    Arguments:
        result: the optimizer's result.
    """
    lines = []
    if result.reweight is not None:
        s = result.reweight.summary
        for m, name in enumerate(result.names):
            lines.append(
                f"{name}: weight {s['mean'][m]:.4f} [{s['lower'][m]:.4f}, {s['upper'][m]:.4f}]"
            )
    for m, row in enumerate(result.history[-1].get("rmsd", []) if result.history else []):
        lines.append(f"{result.names[m]}: RMSD (A) " + " ".join(f"{v:.2f}" for v in row))
    return lines
