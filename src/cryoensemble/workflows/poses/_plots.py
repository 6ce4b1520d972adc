"""The pose-search plots: viewing directions and angular errors.

Figures are drawn with matplotlib's object API (``matplotlib.figure.Figure``, Agg canvas): no
global pyplot state and no display needed.
"""

from __future__ import annotations

import os

import numpy as np
from jaxtyping import ArrayLike, Float
from matplotlib.figure import Figure

__all__ = ["plot_angular_distribution", "plot_angular_error"]


def plot_angular_distribution(euler: Float[ArrayLike, "n 3"], path: str | os.PathLike) -> None:
    """Hammer-projection histogram of the viewing directions (rot = longitude, 90 - tilt =
    latitude), in equal-area bins.

    Arguments:
        euler: (n, 3) (rot, tilt, psi) in degrees.
        path: the PNG file written.
    """
    e = np.asarray(euler, np.float64)
    lon = np.deg2rad((e[:, 0] + 180.0) % 360.0 - 180.0)
    lat = np.deg2rad(90.0 - e[:, 1])
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot(111, projection="hammer")
    lon_edges = np.linspace(-np.pi, np.pi, 37)
    z_edges = np.linspace(-1, 1, 19)  # equal-area bands in sin(latitude)
    h, _, _ = np.histogram2d(lon, np.sin(lat), bins=[lon_edges, z_edges])
    lo, la = np.meshgrid(lon_edges, np.arcsin(z_edges), indexing="ij")
    mesh = ax.pcolormesh(lo, la, h, cmap="viridis", shading="flat")
    fig.colorbar(mesh, ax=ax, shrink=0.7, label="particles per equal-area bin")
    ax.grid(True, alpha=0.4)
    ax.set_title(f"viewing directions ({len(e)} particles): rot (longitude), 90 - tilt", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_angular_error(
    errors: Float[ArrayLike, " n"], resolution: float, path: str | os.PathLike
) -> None:
    """Histogram of angular errors with the median and the final grid spacing.

    Arguments:
        errors: (n,) angular errors in degrees.
        resolution: the final grid spacing in degrees.
        path: the PNG file written.
    """
    err = np.asarray(errors, np.float64)
    fig = Figure(figsize=(6, 3.6))
    ax = fig.add_subplot()
    top = max(float(np.percentile(err, 99)) * 1.1, 2 * resolution)
    ax.hist(np.clip(err, 0, top), bins=60, range=(0, top), color="tab:blue", alpha=0.8)
    med = float(np.median(err))
    ax.axvline(med, color="k", ls="--", label=f"median {med:.2f} deg")
    ax.axvline(resolution, color="tab:red", ls=":", label=f"final grid spacing {resolution:g} deg")
    ax.set_xlabel("angular error (degrees; clipped at the right edge)")
    ax.set_ylabel("particles")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
