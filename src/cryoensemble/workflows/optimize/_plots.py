"""Plots of an ensemble optimisation's history: loss, weights and RMSD to the true states."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_history"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_history(
    history: Sequence[dict],
    folder,
    ground_truth_names: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    final_weights: Sequence[float] | None = None,
) -> dict[str, Path]:
    """Write loss.png, weights.png and (with ground truth) rmsd.png into ``folder``.

    loss: the batch loss J per outer iteration (mean over the inner steps); weights: the batch
    weights of the last inner step per walker (dashed: ``final_weights`` on all particles);
    rmsd: the RMSD (A) of every walker to every true state per iteration.
    """
    plt = _plt()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    if not history:
        return out
    it = np.array([h["iteration"] for h in history])
    m = len(history[0]["batch_weights"])
    names = list(names or [f"walker_{i}" for i in range(m)])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(it, [h["loss"] for h in history], "o-", ms=3)
    ax.set_xlabel("outer iteration")
    ax.set_ylabel("batch loss J (nats / particle)")
    fig.tight_layout()
    out["loss_png"] = folder / "loss.png"
    fig.savefig(out["loss_png"], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
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
    fig.tight_layout()
    out["weights_png"] = folder / "weights_history.png"
    fig.savefig(out["weights_png"], dpi=120)
    plt.close(fig)

    if "rmsd" in history[0]:
        r = np.array([h["rmsd"] for h in history])  # (T, M, G)
        g = r.shape[2]
        gnames = list(ground_truth_names or [f"state_{k}" for k in range(g)])
        styles = ["-", "--", ":", "-."]
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for i in range(m):
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
        fig.tight_layout()
        out["rmsd_png"] = folder / "rmsd.png"
        fig.savefig(out["rmsd_png"], dpi=120)
        plt.close(fig)
    return out
