"""Applying the CTF to real-space images, with zero-padding against wrap-around."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from .ctf import CTFParams, ctf, frequency_grid


def padded_size(n: int, pad_factor: float) -> int:
    """The padded box size: round(n * pad_factor), made even and at least n."""
    m = max(n, int(round(n * pad_factor)))
    return m + (m % 2)


def apply_ctf(
    image: Float[Array, "n n"], params: CTFParams, pixel_size: float, pad_factor: float = 2.0
) -> Float[Array, "n n"]:
    """Convolve ``image`` with the point-spread function of the CTF (RELION sign).

    The image is zero-padded to ``padded_size(n, pad_factor)`` before the Fourier transform so
    that the delocalised fringes of the CTF do not wrap around, then cropped back to n x n.
    Multiplication by a real, point-symmetric transfer function preserves the image's centre.
    """
    n = image.shape[-1]
    m = padded_size(n, pad_factor)
    o = m // 2 - n // 2
    padded = jnp.zeros((m, m), image.dtype).at[o : o + n, o : o + n].set(image)
    kx, ky = frequency_grid(m, pixel_size, rfft=True, dtype=image.dtype)
    ft = jnp.fft.rfft2(padded) * ctf(params, kx, ky)
    return jnp.fft.irfft2(ft, s=(m, m))[o : o + n, o : o + n].astype(image.dtype)
