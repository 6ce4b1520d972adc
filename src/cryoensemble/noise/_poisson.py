"""Shot noise: Poisson-distributed electron counts from a dose, in the weak-phase approximation.

A contrast image c (dimensionless) is the CTF-filtered projected potential times the interaction
constant, with RELION's CTF sign: ``c = interaction_constant(voltage) * apply_ctf(V_proj)``
(see :func:`contrast_from_potential`). The physical intensity of the micrograph is then
I = 1 - 2 c (protein dark, as recorded), so a pixel of side p (Angstrom) receives on average
D (1 - 2 c) electrons with D = dose (e/A^2) * p^2, clipped at >= 0. The returned particles are
contrast-inverted and normalised like RELION's extracted particles (protein bright):

    image = -(counts - D) / (2 D),   E[image] = c,   Var[image] = (1 - 2 c) / (4 D).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from cryoensemble.errors import check_positive
from cryoensemble.scattering._constants import interaction_constant


def _check_positive(name: str, value):
    """Validate ``value`` > 0 when it is concrete (traced values under jit are not checked)."""
    if isinstance(value, jax.core.Tracer):
        return value
    return check_positive(name, value)


def contrast_from_potential(
    projected_potential: Float[Array, "*b n n"], voltage_kv: float
) -> Float[Array, "*b n n"]:
    """Dimensionless phase contrast sigma_e(voltage) * image, for an image in V A and kV.

    Apply it to the CTF-filtered projected potential to get the ``c`` of :func:`poisson_images`.
    """
    image = jnp.asarray(projected_potential)
    return (interaction_constant(voltage_kv) * image).astype(image.dtype)


def expected_counts(
    contrast_images: Float[Array, "*b n n"], dose_per_A2: float, pixel_size: float
) -> Float[Array, "*b n n"]:
    """Mean electron count per pixel, dose * pixel_size^2 * (1 - 2 c), clipped at >= 0."""
    d = dose_per_A2 * pixel_size**2
    return jnp.maximum(d * (1.0 - 2.0 * jnp.asarray(contrast_images)), 0.0)


def poisson_images(
    key: jax.Array,
    contrast_images: Float[Array, "*b n n"],
    dose_per_A2: float,
    pixel_size: float,
) -> Float[Array, "*b n n"]:
    """Shot-noise particle images (dimensionless, protein bright) whose expectation is ``c``.

    ``dose_per_A2`` in electrons per square Angstrom, ``pixel_size`` in Angstrom. Draws Poisson
    counts with mean :func:`expected_counts` and returns -(counts - D) / (2 D), D = dose * p^2.
    """
    _check_positive("dose (e/A^2)", dose_per_A2)
    _check_positive("pixel size (Angstrom)", pixel_size)
    c = jnp.asarray(contrast_images)
    dtype = c.dtype if jnp.issubdtype(c.dtype, jnp.floating) else jnp.float32
    d = dose_per_A2 * pixel_size**2
    lam = expected_counts(c, dose_per_A2, pixel_size).astype(dtype)
    counts = jax.random.poisson(key, lam, dtype=jnp.int32).astype(dtype)
    return -(counts - d) / (2.0 * d)
