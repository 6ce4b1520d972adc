"""Amorphous-ice background: a stationary Gaussian random field whose radial power spectrum is the
one measured for vitreous ice.

Spectrum (Parkhurst et al. 2024, "Computational models of amorphous ice for accurate simulation
of cryo-EM images of biological samples", Ultramicroscopy 256:113882), k in 1/Angstrom:

    P(k) = a1 exp(-k^2 / (2 s1^2)) + a2 exp(-(k - m)^2 / (2 s2^2)),
    a1 = 0.199, a2 = 0.801, s1 = 0.731 1/A, s2 = 0.081 1/A, m = 1 / 2.88 1/A,

a broad low-frequency term and the peak of the water structure factor at 2.88 A. The field is a
projected potential: in an image it passes through the CTF like the particle does, before the
detector's white noise is added (see ``docs/simulate.md``).

Normalisation follows :mod:`cryoensemble.noise._gaussian`: PSD(k) = E |F[field](k)|^2 / n^2 on
the rfft grid, so the per-pixel variance is the mean of the PSD over the full (n, n) grid. The
spectrum is sampled on the image's frequency grid only: with pixels coarser than about 1.4 A the
2.88 A peak lies beyond Nyquist and the field keeps only the part of the spectrum below it.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from cryoensemble.errors import check_positive
from cryoensemble.ndimage import frequency_radius
from cryoensemble.noise._gaussian import ColoredGaussianNoise

__all__ = ["ICE_SPECTRUM", "ice_power_spectrum", "ice_psd", "sample_ice"]

#: Parameters of the ice spectrum (Parkhurst et al. 2024): weights a1, a2 (dimensionless),
#: widths s1, s2 and peak position m (1/Angstrom).
ICE_SPECTRUM = {"a1": 0.199, "a2": 0.801, "s1": 0.731, "s2": 0.081, "m": 1.0 / 2.88}


def ice_power_spectrum(k: Float[ArrayLike, "*s"]) -> Float[Array, "*s"]:
    """The radial power spectrum of amorphous ice, P(k) (dimensionless, P(0) ~ 0.2, peak ~ 0.8
    at k = 1/2.88 1/A); see the module docstring for the formula and its source.

    Arguments:
        k: spatial frequencies in 1/Angstrom (any shape).
    """
    p = ICE_SPECTRUM
    k = jnp.asarray(k)
    low = p["a1"] * jnp.exp(-(k**2) / (2 * p["s1"] ** 2))
    peak = p["a2"] * jnp.exp(-((k - p["m"]) ** 2) / (2 * p["s2"] ** 2))
    return low + peak


def ice_psd(n: int, pixel_size: float, std: float = 1.0, rfft: bool = True) -> Float[Array, "n m"]:
    """The ice spectrum on the FFT grid, scaled so that the field has per-pixel standard
    deviation ``std``: on the rfft grid (n, n // 2 + 1), the ``psd`` of a
    :class:`~cryoensemble.noise.ColoredGaussianNoise`.

    Arguments:
        n: image side in pixels.
        pixel_size: Angstrom per pixel.
        std: per-pixel standard deviation of the field, in image units (> 0).
        rfft: the rfft layout (n, n // 2 + 1) (default), else the full FFT layout (n, n).
    """
    check_positive("pixel size", pixel_size)
    check_positive("ice standard deviation", std)
    # the per-pixel variance is the mean of the PSD over the full grid (Parseval)
    variance = jnp.mean(ice_power_spectrum(frequency_radius(n, pixel_size, rfft=False)))
    shape = ice_power_spectrum(frequency_radius(n, pixel_size, rfft=rfft))
    return (shape * (float(std) ** 2 / variance)).astype(jnp.float32)


def sample_ice(
    key: PRNGKeyArray, shape: tuple[int, int, int], pixel_size: float, std: float = 1.0
) -> Float[Array, "b n n"]:
    """Independent ice fields of per-pixel standard deviation ``std`` (see :func:`ice_psd`).

    Arguments:
        key: a JAX random key.
        shape: ``(b, n, n)``: b fields of n x n pixels.
        pixel_size: Angstrom per pixel.
        std: per-pixel standard deviation, in image units (> 0).

    Returns:
        (b, n, n) float32 fields of mean zero.
    """
    b, n, _ = shape
    model = ColoredGaussianNoise(ice_psd(n, pixel_size, std))
    return model.sample(key, jnp.zeros((b, n, n), jnp.float32))
