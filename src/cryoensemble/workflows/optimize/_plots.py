"""Plots of an ensemble optimisation's history: loss, weights and RMSD to the true states.

Figures are drawn with matplotlib's object API (``matplotlib.figure.Figure``, Agg canvas): no
global pyplot state and no display needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["plot_history"]


def _figure(size: tuple[float, float]) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_history(
    history: Sequence[dict],
    folder: str | Path,
    ground_truth_names: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    final_weights: Sequence[float] | np.ndarray | None = None,
) -> dict[str, Path]:
    """Write loss.png, weights_history.png and (with ground truth) rmsd.png into ``folder``.

    loss: the batch loss J (nats per particle) per outer iteration (mean over the inner steps);
    weights: the batch weights of the last inner step per walker (dashed: ``final_weights`` on
    all particles); rmsd: the RMSD (A) of every walker to every true state per iteration.

    Arguments:
        history: the optimizer's per-iteration records.
        folder: where the figures go.
        ground_truth_names: a name per true state (default state_<k>).
        names: a name per walker (default walker_<m>).
        final_weights: (M,) the final weights on all particles, or None.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    if not history:
        return out
    it = np.array([h["iteration"] for h in history])
    m = len(history[0]["batch_weights"])
    names = list(names or [f"walker_{i}" for i in range(m)])
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]

    fig, ax = _figure((5, 3.5))
    ax.plot(it, [h["loss"] for h in history], "o-", ms=3)
    ax.set_xlabel("outer iteration")
    ax.set_ylabel("batch loss J (nats / particle)")
    out["loss_png"] = _save(fig, folder / "loss.png")

    fig, ax = _figure((5, 3.5))
    w = np.array([h["batch_weights"] for h in history])
    for i in range(m):
        c = colors[i % len(colors)]
        ax.plot(it, w[:, i], "o-", ms=3, color=c, label=names[i])
        if final_weights is not None:
            ax.axhline(final_weights[i], color=c, ls="--", lw=1)
    ax.set_xlabel("outer iteration")
    ax.set_ylabel("batch weight")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="best", fontsize=8)
    out["weights_png"] = _save(fig, folder / "weights_history.png")

    if "rmsd" in history[0]:
        out["rmsd_png"] = _plot_rmsd(history, it, names, ground_truth_names, colors, folder)
    return out


def _plot_rmsd(history, it, names, ground_truth_names, colors, folder: Path) -> Path:
    r = np.array([h["rmsd"] for h in history])  # (T, M, G)
    g = r.shape[2]
    gnames = list(ground_truth_names or [f"state_{k}" for k in range(g)])
    styles = ["-", "--", ":", "-."]
    fig, ax = _figure((5.5, 3.8))
    for i in range(len(names)):
        for k in range(g):
            ax.plot(
                it,
                r[:, i, k],
                styles[k % 4],
                color=colors[i % len(colors)],
                label=f"{names[i]} vs {gnames[k]}",
            )
    ax.set_xlabel("outer iteration")
    ax.set_ylabel("RMSD (A)")
    ax.legend(loc="best", fontsize=7)
    return _save(fig, folder / "rmsd.png")
