"""Figures of simulated datasets: a particle gallery and the radially averaged power spectrum.

Figures are drawn with matplotlib's object API (``matplotlib.figure.Figure``, Agg canvas): no
global pyplot state and no display needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["radial_average", "radial_ctf2", "radial_power_spectrum", "save_gallery"]


def radial_average(values: np.ndarray, pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Average of a centred-FFT-layout 2-D array (n, n) over rings of integer radius.

    ``values`` in ``numpy.fft.fftshift`` layout (zero frequency at n // 2). Returns the spatial
    frequency of each ring in 1/A (0 .. Nyquist) and the ring averages.
    """
    v = np.asarray(values, dtype=np.float64)
    n = v.shape[-1]
    c = np.arange(n) - n // 2
    r = np.rint(np.sqrt(c[:, None] ** 2 + c[None, :] ** 2)).astype(np.int64)
    n_rings = n // 2 + 1
    keep = r < n_rings
    sums = np.bincount(r[keep], weights=v[keep], minlength=n_rings)
    counts = np.bincount(r[keep], minlength=n_rings)
    return np.arange(n_rings) / (n * pixel_size), sums / np.maximum(counts, 1)


def radial_power_spectrum(images: np.ndarray, pixel_size: float):
    """Radially averaged power spectrum |FFT|^2 of one image (n, n) or the mean over (b, n, n)."""
    a = np.asarray(images, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    power = np.mean(np.abs(np.fft.fftshift(np.fft.fft2(a), axes=(-2, -1))) ** 2, axis=0)
    return radial_average(power, pixel_size)


def radial_ctf2(ctf_params, n: int, pixel_size: float, samples: int = 1000, azimuths: int = 36):
    """CTF^2 (RELION convention) of one particle averaged over azimuths, finely sampled in |k|.

    Returns ``samples`` frequencies from 0 to Nyquist of an n-pixel image (1/A) and the mean of
    CTF^2 over ``azimuths`` directions (astigmatism included).
    """
    import jax
    import jax.numpy as jnp

    from cryoensemble.optics import ctf

    k = np.linspace(0.0, 0.5 / pixel_size, samples)
    phi = np.linspace(0.0, np.pi, azimuths, endpoint=False)
    kx = jnp.asarray(k[None, :] * np.cos(phi)[:, None], jnp.float32)
    ky = jnp.asarray(k[None, :] * np.sin(phi)[:, None], jnp.float32)
    values = np.asarray(jax.jit(ctf)(ctf_params, kx, ky), dtype=np.float64) ** 2
    del n
    return k, values.mean(axis=0)


def save_gallery(
    path,
    clean: np.ndarray,
    noisy: np.ndarray,
    pixel_size: float,
    ctf_params=None,
    title: str = "",
) -> Path:
    """Write a PNG with up to 8 clean and 8 noisy particles and the power spectrum of the first.

    The bottom panel shows the radially averaged power spectra (log scale) of the first clean
    and noisy particles and, if ``ctf_params`` (that particle's ``CTFParams``) is given, the
    radially averaged CTF^2 on a second axis: its zeros line up with the minima of the spectrum.
    """
    from matplotlib.figure import Figure

    path = Path(path)
    clean = np.asarray(clean)
    noisy = np.asarray(noisy)
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
    ax = fig.add_subplot(grid[2, :])
    freq, ps_clean = radial_power_spectrum(clean[0], pixel_size)
    _, ps_noisy = radial_power_spectrum(noisy[0], pixel_size)
    tiny = 1e-30
    ax.semilogy(freq[1:], np.maximum(ps_clean[1:], tiny), label="clean, particle 1", color="C0")
    ax.semilogy(freq[1:], np.maximum(ps_noisy[1:], tiny), label="noisy, particle 1", color="C1")
    ax.set_xlabel("spatial frequency (1/A)")
    ax.set_ylabel("radially averaged power")
    handles, labels = ax.get_legend_handles_labels()
    if ctf_params is not None:
        f2, c2 = radial_ctf2(ctf_params, clean.shape[-1], pixel_size)
        ax2 = ax.twinx()
        (line,) = ax2.plot(f2[1:], c2[1:], color="C2", lw=1, alpha=0.8, label="CTF^2, particle 1")
        ax2.set_ylabel("CTF^2")
        ax2.set_ylim(0, 1.05)
        handles.append(line)
        labels.append(line.get_label())
    ax.legend(handles, labels, loc="upper right")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=80)
    return path
