"""Radial (ring) averages of 2-D Fourier-space quantities."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int


def radial_index(n: int, rfft: bool = True) -> Int[np.ndarray, "n m"]:
    """Ring index (rounded |k| in Fourier pixels) of each coefficient of an n x n image.

    Arguments:
        n: image side in pixels.
        rfft: the ``jnp.fft.rfft2`` layout (n, n // 2 + 1); else the full FFT layout (n, n).
            Both have the zero frequency at index 0.

    Returns:
        integer array; rings run 0 .. about n / sqrt(2); ring n // 2 is Nyquist.
    """
    ky = np.fft.fftfreq(n) * n
    kx = np.fft.rfftfreq(n) * n if rfft else ky
    return np.rint(np.hypot(ky[:, None], kx[None, :])).astype(np.int64)


def radial_average(
    values: Float[ArrayLike, "*b n m"], rfft: bool = True, n_rings: int | None = None
) -> Float[Array, "*b r"]:
    """Mean over rings of equal |k| of FFT-layout values, rings 0 .. n_rings - 1.

    Arguments:
        values: (..., n, n // 2 + 1) for ``rfft`` (default), else (..., n, n), zero frequency at
            index 0 (``numpy.fft.ifftshift`` a centred array first).
        rfft: layout of ``values``.
        n_rings: rings returned, default n // 2 + 1 (up to Nyquist); rings without any
            coefficient average to 0.

    Returns:
        (..., n_rings) ring means; ring r is the spatial frequency r / (n * pixel_size).
    """
    values = jnp.asarray(values)
    n = values.shape[-2]
    n_rings = n // 2 + 1 if n_rings is None else n_rings
    idx = radial_index(n, rfft).reshape(-1)
    keep = idx < n_rings
    # Sum per ring with a segment sum over the flattened grid (memory O(n^2), not O(n^2 rings)).
    v = values.reshape(values.shape[:-2] + (-1,))[..., keep]
    sums = jax.ops.segment_sum(jnp.moveaxis(v, -1, 0), idx[keep], num_segments=n_rings)
    counts = np.bincount(idx[keep], minlength=n_rings)
    return jnp.moveaxis(sums, 0, -1) / jnp.asarray(np.maximum(counts, 1), values.dtype)


def radial_to_grid(
    profile: Float[ArrayLike, "*b r"], n: int, rfft: bool = True
) -> Float[Array, "*b n m"]:
    """Spread a radial profile back onto the FFT grid, the inverse of :func:`radial_average` for
    radially symmetric arrays.

    Arguments:
        profile: (..., r) values per ring (ring i at |k| = i Fourier pixels); rings beyond the
            profile take its last value.
        n: image side in pixels.
        rfft: the ``jnp.fft.rfft2`` layout (n, n // 2 + 1) (default), else (n, n).
    """
    profile = jnp.asarray(profile)
    idx = np.minimum(radial_index(n, rfft), profile.shape[-1] - 1)
    return profile[..., idx]


def radial_power_spectrum(images: Float[ArrayLike, "*b n n"]) -> Float[Array, " r"]:
    """Ring-averaged power |FFT|^2 / n^2 of images (..., n, n), averaged over all leading axes.

    Normalised so that white noise of variance s^2 has a flat spectrum s^2. Ring r is the spatial
    frequency r / (n * pixel_size), r = 0 .. n // 2.

    Arguments:
        images: (..., n, n) real images.

    Returns:
        (n // 2 + 1,) power per ring, in image units squared.
    """
    x = jnp.asarray(images)
    n = x.shape[-1]
    power = jnp.abs(jnp.fft.rfft2(x)) ** 2 / (n * n)
    power = power.reshape((-1,) + power.shape[-2:]).mean(axis=0)
    return radial_average(power)
