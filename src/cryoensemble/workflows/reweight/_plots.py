"""The reweight plots: weights with their intervals, and the assignment probabilities.

Figures are drawn with matplotlib's object API (``matplotlib.figure.Figure``, Agg canvas): no
global pyplot state and no display needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cryoensemble.inference import responsibilities
from cryoensemble.workflows.reweight._reweight import ReweightResult

__all__ = ["plot_assignments", "plot_weights"]


def plot_weights(result: ReweightResult, path: Path) -> Path:
    """Bar chart of the posterior mean weights with their credible intervals and the MAP.

    Arguments:
        result: the reweighting.
        path: the PNG file written.
    """
    s = result.summary
    m = len(result.names)
    x = np.arange(m)
    fig = Figure(figsize=(max(4.0, 0.6 * m + 2), 3.5))
    ax = fig.add_subplot()
    err = np.vstack([s["mean"] - s["lower"], s["upper"] - s["mean"]])
    ax.bar(x, s["mean"], yerr=np.maximum(err, 0), capsize=4, color="tab:blue", alpha=0.8)
    ax.plot(x, result.map_weights, "k_", markersize=14, label="MAP")
    ax.set_xticks(x, result.names, rotation=45 if m > 4 else 0, ha="right" if m > 4 else "center")
    ax.set_ylabel("weight")
    ax.set_title(f"posterior mean, {int(round(100 * s['credible_level']))}% interval")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_assignments(result: ReweightResult, path: Path) -> Path:
    """Histogram (log scale) of each particle's largest posterior assignment probability.

    Arguments:
        result: the reweighting.
        path: the PNG file written.
    """
    m = len(result.names)
    r = np.asarray(responsibilities(result.L, result.summary["mean"]))
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    ax.hist(r.max(axis=1), bins=np.linspace(1.0 / m, 1.0, 41), color="tab:orange")
    ax.set_xlabel("max posterior assignment probability")
    ax.set_ylabel("particles")
    ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
