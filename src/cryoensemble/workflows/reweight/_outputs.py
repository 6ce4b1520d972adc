"""The files of a reweighting: weights.json, weights.csv, the likelihood matrix, the posterior
samples and the plots."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from cryoensemble.io import save_likelihood_matrix, to_jsonable
from cryoensemble.workflows.reweight._plots import plot_assignments, plot_weights
from cryoensemble.workflows.reweight._reweight import ReweightResult

__all__ = ["summary_lines", "write_outputs"]


def _write_csv(result: ReweightResult, path: Path) -> Path:
    s = result.summary
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["index", "name", "structure", "weight", "lower", "upper", "map", "std"])
        for i, name in enumerate(result.names):
            values = (
                s["mean"][i],
                s["lower"][i],
                s["upper"][i],
                result.map_weights[i],
                s["std"][i],
            )
            wr.writerow([i, name, result.structures[i], *(f"{v:.6g}" for v in values)])
    return path


def write_outputs(
    result: ReweightResult, folder: str | os.PathLike, plots: bool = True
) -> dict[str, Path]:
    """Write a reweighting into ``folder`` (which must exist).

    Files: weights.json (weights with credible intervals, in the order of the structures),
    weights.csv, likelihood_matrix.npy (+ particle_indices.npy, likelihood_matrix.json),
    posterior_samples.npy and, with ``plots``, weights.png and assignments.png.

    Arguments:
        result: the reweighting.
        folder: the output folder.
        plots: write the PNG plots.

    Returns:
        The paths written, by kind.
    """
    folder = Path(folder)
    paths = {"json": folder / "weights.json", "csv": folder / "weights.csv"}
    paths["json"].write_text(json.dumps(result.to_json(), indent=2, default=to_jsonable) + "\n")
    _write_csv(result, paths["csv"])
    meta = {"names": result.names, "structures": result.structures, **result.meta}
    paths["L"] = save_likelihood_matrix(folder, result.L, result.indices, meta)
    paths["samples"] = folder / "posterior_samples.npy"
    np.save(paths["samples"], result.samples.astype(np.float32))
    if plots:
        paths["weights_png"] = plot_weights(result, folder / "weights.png")
        paths["assignments_png"] = plot_assignments(result, folder / "assignments.png")
    return paths


def _reason(meta: dict) -> str:
    return str(meta.get("likelihood_reason", "requested"))


def summary_lines(result: ReweightResult) -> list[str]:
    """One line per structure (weight, interval, MAP), the likelihood used and why, and the
    held-out check, for a terminal.

    Arguments:
        result: the reweighting.
    """
    s = result.summary
    lines = [
        f"{name}: {s['mean'][i]:.4f} [{s['lower'][i]:.4f}, {s['upper'][i]:.4f}] "
        f"(MAP {result.map_weights[i]:.4f})"
        for i, name in enumerate(result.names)
    ]
    if "likelihood" in result.meta:
        lines.append(f"likelihood: {result.meta['likelihood']} ({_reason(result.meta)})")
    if result.heldout is not None:
        h = result.heldout
        lines.append(
            f"held-out check: gain over uniform weights per particle {h['train_gain']:.4g} "
            f"(train) vs {h['validation_gain']:.4g} (validation)"
        )
    return lines
