"""The contrast step of the image model: projected potential (V A) -> phase contrast.

In the weak-phase approximation an electron wave crossing a projected potential V_proj (V A)
picks up the phase sigma_e(voltage) V_proj (radians), with sigma_e the interaction constant of
:func:`cryoensemble.scattering.interaction_constant`. This is the one place where images are
multiplied by sigma_e; the noise models act on its output.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Real

from cryoensemble.scattering import interaction_constant

__all__ = ["phase_contrast"]


def phase_contrast(
    images: Float[ArrayLike, "*b n n"], voltage_kv: Real[ArrayLike, "*#b"]
) -> Float[Array, "*b n n"]:
    """Dimensionless phase contrast sigma_e(voltage) x image.

    Arguments:
        images: (..., n, n) projected potentials in V A (CTF-filtered or not).
        voltage_kv: accelerating voltage in kV, a scalar or one per image (the leading shape of
            ``images``).

    Returns:
        (..., n, n) phase contrast (radians, dimensionless), in the dtype of ``images``.
    """
    images = jnp.asarray(images)
    sigma_e = jnp.asarray(interaction_constant(voltage_kv), images.dtype)
    return images * sigma_e.reshape(sigma_e.shape + (1, 1))
