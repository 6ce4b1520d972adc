"""The gallery of a simulated dataset: example particles and the radially averaged power spectrum
with the CTF^2 overlay.

Figures are drawn with matplotlib's object API (``matplotlib.figure.Figure``, Agg canvas): no
global pyplot state and no display needed.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float
from matplotlib.figure import Figure

from cryoensemble.ndimage import radial_power_spectrum
from cryoensemble.optics import CTFParams, ctf

__all__ = ["radial_ctf2", "save_gallery"]


def radial_ctf2(
    ctf_params: CTFParams, pixel_size: float, samples: int = 1000, azimuths: int = 36
) -> tuple[Float[np.ndarray, " s"], Float[np.ndarray, " s"]]:
    """CTF^2 (RELION convention) of one particle averaged over azimuths, finely sampled in |k|.

    Arguments:
        ctf_params: the particle's CTF (scalar fields).
        pixel_size: Angstrom per pixel (sets Nyquist).
        samples: number of frequencies from 0 to Nyquist.
        azimuths: directions averaged (astigmatism included).

    Returns:
        the frequencies (1/Angstrom) and the mean of CTF^2 over the directions.
    """
    k = np.linspace(0.0, 0.5 / pixel_size, samples)
    phi = np.linspace(0.0, np.pi, azimuths, endpoint=False)
    kx = jnp.asarray(k[None, :] * np.cos(phi)[:, None], jnp.float32)
    ky = jnp.asarray(k[None, :] * np.sin(phi)[:, None], jnp.float32)
    values = np.asarray(jax.jit(ctf)(ctf_params, kx, ky), dtype=np.float64) ** 2
    return k, values.mean(axis=0)


def _power_panel(ax, clean: np.ndarray, noisy: np.ndarray, pixel_size, ctf_params):
    n = clean.shape[-1]
    freq = np.arange(n // 2 + 1) / (n * pixel_size)
    tiny = 1e-30
    for images, label, color in ((clean, "clean", "C0"), (noisy, "noisy", "C1")):
        ps = np.asarray(radial_power_spectrum(jnp.asarray(images[0])), np.float64)
        ax.semilogy(freq[1:], np.maximum(ps[1:], tiny), label=f"{label}, particle 1", color=color)
    ax.set_xlabel("spatial frequency (1/A)")
    ax.set_ylabel("radially averaged power")
    handles, labels = ax.get_legend_handles_labels()
    if ctf_params is not None:
        f2, c2 = radial_ctf2(ctf_params, pixel_size)
        ax2 = ax.twinx()
        (line,) = ax2.plot(f2[1:], c2[1:], color="C2", lw=1, alpha=0.8, label="CTF^2, particle 1")
        ax2.set_ylabel("CTF^2")
        ax2.set_ylim(0, 1.05)
        handles.append(line)
        labels.append(line.get_label())
    ax.legend(handles, labels, loc="upper right")


def save_gallery(
    path: str | Path,
    clean: Float[ArrayLike, "b n n"],
    noisy: Float[ArrayLike, "b n n"],
    pixel_size: float,
    ctf_params: CTFParams | None = None,
    title: str = "",
) -> Path:
    """Write a PNG with up to 8 clean and 8 noisy particles and the power spectrum of the first.

    The bottom panel shows the radially averaged power spectra (log scale) of the first clean
    and noisy particles and, if ``ctf_params`` is given, the radially averaged CTF^2 on a second
    axis: its zeros line up with the minima of the spectrum.

    Arguments:
        path: the PNG file.
        clean: (b, n, n) noise-free particles.
        noisy: (b, n, n) the same particles with noise.
        pixel_size: Angstrom per pixel.
        ctf_params: the first particle's CTF, or None (no CTF applied).
        title: figure title.
    """
    path = Path(path)
    clean, noisy = np.asarray(clean), np.asarray(noisy)
    k = min(8, len(clean))
    fig = Figure(figsize=(2 * k, 7.5), layout="constrained")
    grid = fig.add_gridspec(3, k, height_ratios=[1, 1, 1.4])
    for row, (images, label) in enumerate(((clean, "clean"), (noisy, "noisy"))):
        for j in range(k):
            ax = fig.add_subplot(grid[row, j])
            ax.imshow(images[j], cmap="gray", origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label)
    _power_panel(fig.add_subplot(grid[2, :]), clean, noisy, pixel_size, ctf_params)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=80)
    return path
