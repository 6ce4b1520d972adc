"""Real-space masks."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool

from cryoensemble.errors import check_positive


def circular_mask(n: int, radius_px: float | None = None) -> Bool[Array, "n n"]:
    """Boolean disc of an n x n image, centred at pixel (n // 2, n // 2).

    Arguments:
        n: image side in pixels.
        radius_px: radius in pixels (a pixel is inside when its centre is at distance <= radius);
            default ``n // 2``.

    Returns:
        (n, n) booleans; ``.astype(dtype)`` gives a 0/1 weight.
    """
    r = n // 2 if radius_px is None else check_positive("mask radius (pixels)", radius_px)
    c = jnp.arange(n) - n // 2
    return (c[:, None] ** 2 + c[None, :] ** 2) <= r**2
