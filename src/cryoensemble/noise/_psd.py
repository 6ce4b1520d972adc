"""Noise power spectrum (PSD) estimation from the particles' background, for whitening.

Normalisation: PSD(k) = E |F[noise](k)|^2 / n_pix, with F the unnormalised DFT, so white noise of
standard deviation sigma has PSD(k) = sigma^2 at every k and whitening by 1/sqrt(PSD) gives unit
variance white noise (see :class:`~cryoensemble.noise.ColoredGaussianNoise`).

Estimate: each image's background b = (y - mean_bg(y)) * (1 - m), m the disc of radius
``mask_radius_px`` (the particle), has E |F[b]|^2 = (PSD * |F[1 - m]|^2)(k) / n_pix, which for a
slowly varying PSD is PSD(k) * sum(1 - m). We therefore average |F[b]|^2 / sum(1 - m) over the
images and over rings of equal |k| (integer radius in Fourier pixels,
:func:`cryoensemble.ndimage.radial_average`), and spread the radial profile back onto the 2-D
rfft grid. The DC ring, removed by the mean subtraction, takes the value of ring 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from cryoensemble.errors import InputError
from cryoensemble.ndimage import circular_mask, radial_average, radial_index, radial_to_grid

__all__ = ["estimate_psd", "estimate_psd_from_dataset", "white_psd"]


def white_psd(n: int, sigma: float = 1.0) -> Float[Array, "n m"]:
    """The PSD (n, n // 2 + 1) of white noise of standard deviation ``sigma``.

    Arguments:
        n: image side in pixels.
        sigma: standard deviation in image units.
    """
    return jnp.full((n, n // 2 + 1), float(sigma) ** 2, jnp.float32)


@jax.jit
def _power_sums(images, background):
    nb = jnp.sum(background)
    mean = jnp.sum(images * background, axis=(-2, -1), keepdims=True) / nb
    ft = jnp.fft.rfft2((images - mean) * background)
    return jnp.sum(jnp.abs(ft) ** 2, axis=0)


def _background(n: int, mask_radius_px: float | None) -> Array:
    """0/1 float32 weights outside the particle disc (default radius 0.8 n // 2)."""
    r = 0.8 * (n // 2) if mask_radius_px is None else float(mask_radius_px)
    bg = ~circular_mask(n, r)
    if int(bg.sum()) < 0.05 * n * n:
        raise InputError(
            f"the background outside a mask of radius {r:g} px holds only {int(bg.sum())} of "
            f"{n * n} pixels: too few to estimate the noise spectrum; use a smaller mask radius"
        )
    return bg.astype(jnp.float32)


def _psd_from_power(power: Array, n: int) -> Float[Array, "n m"]:
    """Ring-average a mean background power (rfft grid) and spread it back onto the grid."""
    n_rings = int(radial_index(n).max()) + 1
    prof = radial_average(power, n_rings=n_rings)
    prof = prof.at[0].set(prof[1])
    floor = 1e-6 * jnp.maximum(jnp.max(prof), jnp.finfo(jnp.float32).tiny)
    return jnp.maximum(radial_to_grid(prof, n), floor).astype(jnp.float32)


def estimate_psd(
    images: Float[ArrayLike, "*b n n"], mask_radius_px: float | None = None
) -> Float[Array, "n m"]:
    """Radially averaged noise PSD (rfft grid) from the background of ``images``.

    Arguments:
        images: (b, n, n) (or one (n, n)) particle images.
        mask_radius_px: radius in pixels of the disc centred at pixel n // 2 that is excluded
            (the particle); default 0.8 of n // 2.

    Returns:
        (n, n // 2 + 1) PSD in image units squared.
    """
    images = jnp.asarray(images, jnp.float32)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or images.shape[0] == 0:
        raise InputError(f"PSD estimation needs images of shape (b, n, n), got {images.shape}")
    n = images.shape[-1]
    bg = _background(n, mask_radius_px)
    power = _power_sums(images, bg) / (images.shape[0] * jnp.sum(bg))
    return _psd_from_power(power, n)


def estimate_psd_from_dataset(
    dataset,
    mask_radius_px: float | None = None,
    n_sample: int = 2000,
    batch_size: int = 256,
    seed: int = 0,
) -> Float[Array, "n m"]:
    """:func:`estimate_psd` from a random sample of particles, read a batch at a time.

    Arguments:
        dataset: a :class:`~cryoensemble.io.ParticleDataset` (``box_size``, ``len()``,
            ``read_images(indices)``).
        mask_radius_px: particle disc radius in pixels (default 0.8 of n // 2).
        n_sample: particles used at most.
        batch_size: particles read at once.
        seed: seed of the random sample.
    """
    n_total = len(dataset)
    if n_total == 0:
        raise InputError(f"{dataset.star_path}: no particles to estimate the noise spectrum from")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n_total, size=min(n_sample, n_total), replace=False))
    n = dataset.box_size
    bg = _background(n, mask_radius_px)
    total = jnp.zeros((n, n // 2 + 1), jnp.float32)
    for start in range(0, len(idx), batch_size):
        images = dataset.read_images(idx[start : start + batch_size])
        total = total + _power_sums(jnp.asarray(images), bg)
    return _psd_from_power(total / (len(idx) * jnp.sum(bg)), n)
