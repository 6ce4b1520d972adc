"""Noise power spectrum (PSD) estimation from the particles' background, for whitening.

Normalisation: PSD(k) = E |F[noise](k)|^2 / n_pix, with F the unnormalised DFT, so white noise of
standard deviation sigma has PSD(k) = sigma^2 at every k and whitening by 1/sqrt(PSD) gives unit
variance white noise.

Estimate: each image's background b = (y - mean_bg(y)) * (1 - m), m the disc of radius
``mask_radius_px`` (the particle), has E |F[b]|^2 = (PSD * |F[1 - m]|^2)(k) / n_pix, which for a
slowly varying PSD is PSD(k) * sum(1 - m). We therefore average |F[b]|^2 / sum(1 - m) over the
images and over rings of equal |k| (integer radius in Fourier pixels), and spread the radial profile
back onto the 2-D rfft grid. The DC ring, removed by the mean subtraction, takes the value of ring 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from cryoensemble.errors import InputError

__all__ = ["estimate_psd", "estimate_psd_from_dataset", "radial_index", "white_psd"]


def radial_index(n: int) -> np.ndarray:
    """Integer ring index round(|k| in Fourier pixels) on the (n, n // 2 + 1) rfft grid."""
    ky = np.fft.fftfreq(n) * n
    kx = np.fft.rfftfreq(n) * n
    return np.rint(np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)).astype(np.int32)


def white_psd(n: int, sigma: float = 1.0) -> Float[Array, "n n//2+1"]:
    """The PSD of white noise of standard deviation ``sigma``."""
    return jnp.full((n, n // 2 + 1), float(sigma) ** 2, jnp.float32)


@jax.jit
def _power_sums(images, background):
    nb = jnp.sum(background)
    mean = jnp.sum(images * background, axis=(-2, -1), keepdims=True) / nb
    ft = jnp.fft.rfft2((images - mean) * background)
    return jnp.sum(jnp.abs(ft) ** 2, axis=0)


def _circle(n: int, radius_px: float) -> np.ndarray:
    c = np.arange(n) - n // 2
    return (c[:, None] ** 2 + c[None, :] ** 2) <= radius_px**2


def _radial_profile(power2d: np.ndarray, n: int) -> np.ndarray:
    idx = radial_index(n)
    sums = np.bincount(idx.ravel(), weights=power2d.ravel())
    counts = np.bincount(idx.ravel())
    prof = sums / np.maximum(counts, 1)
    if prof.size > 1:
        prof[0] = prof[1]
    return prof


def estimate_psd(
    images: Float[Array, "b n n"], mask_radius_px: float | None = None
) -> Float[Array, "n n//2+1"]:
    """Radially averaged noise PSD (rfft grid) from the background of ``images`` outside the
    disc of radius ``mask_radius_px`` pixels (default 0.8 of n // 2) centred at pixel n // 2."""
    images = jnp.asarray(images, jnp.float32)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or images.shape[0] == 0:
        raise InputError(f"PSD estimation needs images of shape (b, n, n), got {images.shape}")
    n = images.shape[-1]
    r = 0.8 * (n // 2) if mask_radius_px is None else float(mask_radius_px)
    bg = ~_circle(n, r)
    if bg.sum() < 0.05 * n * n:
        raise InputError(
            f"the background outside a mask of radius {r:g} px holds only {int(bg.sum())} of "
            f"{n * n} pixels: too few to estimate the noise spectrum; use a smaller mask radius"
        )
    power = np.asarray(_power_sums(images, jnp.asarray(bg, jnp.float32)), np.float64)
    power /= images.shape[0] * bg.sum()
    prof = _radial_profile(power, n)
    psd = prof[radial_index(n)]
    floor = 1e-6 * max(float(prof.max()), np.finfo(np.float32).tiny)
    return jnp.asarray(np.maximum(psd, floor), jnp.float32)


def estimate_psd_from_dataset(
    dataset,
    mask_radius_px: float | None = None,
    n_sample: int = 2000,
    batch_size: int = 256,
    seed: int = 0,
) -> Float[Array, "n n//2+1"]:
    """:func:`estimate_psd` from a random sample of up to ``n_sample`` particles of a
    :class:`~cryoensemble.io.ParticleDataset`, read ``batch_size`` at a time."""
    n_total = len(dataset)
    if n_total == 0:
        raise InputError(f"{dataset.star_path}: no particles to estimate the noise spectrum from")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n_total, size=min(n_sample, n_total), replace=False))
    n = dataset.box_size
    r = 0.8 * (n // 2) if mask_radius_px is None else float(mask_radius_px)
    bg = jnp.asarray(~_circle(n, r), jnp.float32)
    if float(bg.sum()) < 0.05 * n * n:
        raise InputError(
            f"mask radius {r:g} px leaves too little background to estimate the noise spectrum"
        )
    total = np.zeros((n, n // 2 + 1))
    for start in range(0, len(idx), batch_size):
        images = dataset.read_images(idx[start : start + batch_size])
        total += np.asarray(_power_sums(jnp.asarray(images), bg), np.float64)
    total /= len(idx) * float(bg.sum())
    prof = _radial_profile(total, n)
    psd = prof[radial_index(n)]
    floor = 1e-6 * max(float(prof.max()), np.finfo(np.float32).tiny)
    return jnp.asarray(np.maximum(psd, floor), jnp.float32)
