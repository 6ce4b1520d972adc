"""Applying the CTF to real-space images, with zero-padding against wrap-around."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from cryoensemble.ndimage import frequency_grid
from cryoensemble.optics._ctf import CTFParams, ctf


def padded_size(n: int, pad_factor: float) -> int:
    """The padded box size: round(n * pad_factor), made even and at least n.

    Arguments:
        n: box side in pixels.
        pad_factor: padding factor (>= 1).
    """
    m = max(n, int(round(n * pad_factor)))
    return m + (m % 2)


def apply_ctf(
    image: Float[ArrayLike, "n n"], params: CTFParams, pixel_size: float, pad_factor: float = 2.0
) -> Float[Array, "n n"]:
    """Convolve ``image`` with the point-spread function of the CTF (RELION sign).

    The image is zero-padded to ``padded_size(n, pad_factor)`` before the Fourier transform so
    that the delocalised fringes of the CTF do not wrap around, then cropped back to n x n.
    Multiplication by a real, point-symmetric transfer function preserves the image's centre.

    Arguments:
        image: (n, n) image (e.g. a projected potential in V A).
        params: the CTF parameters of this image (scalar fields).
        pixel_size: Angstrom.
        pad_factor: zero-padding factor (>= 1).
    """
    image = jnp.asarray(image)
    n = image.shape[-1]
    m = padded_size(n, pad_factor)
    o = m // 2 - n // 2
    pad = (o, m - n - o)
    # Separable 1-D transforms that skip the all-zero padding rows on the way in and the cropped
    # rows on the way out, each along the contiguous axis: the same result as
    # rfft2 -> multiply -> irfft2 -> crop at about half the cost.
    rows = jnp.fft.rfft(jnp.pad(image, ((0, 0), pad)), axis=-1)  # (n, m//2+1)
    cols = jnp.fft.fft(jnp.pad(rows.T, ((0, 0), pad)), axis=-1)  # (m//2+1, m): [kx, ky]
    kx, ky = frequency_grid(m, pixel_size, rfft=True, dtype=image.dtype)
    cols = jnp.fft.ifft(cols * ctf(params, kx.T, ky.T), axis=-1)[:, o : o + n]
    return jnp.fft.irfft(cols.T, n=m, axis=-1)[:, o : o + n].astype(image.dtype)
