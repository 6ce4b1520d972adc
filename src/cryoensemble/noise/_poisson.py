"""Shot noise: Poisson-distributed electron counts from a dose, in the weak-phase approximation.

A contrast image c (dimensionless) is the CTF-filtered projected potential times the interaction
constant, with RELION's CTF sign: ``c = imaging.phase_contrast(apply_ctf(V_proj), voltage)`` (the
image model's contrast step). The physical intensity of the micrograph is then I = 1 - 2 c
(protein dark, as recorded), so a pixel of side p (Angstrom) receives on average D (1 - 2 c)
electrons with D = dose (e/A^2) * p^2, clipped at >= 0. The returned particles are
contrast-inverted and normalised like RELION's extracted particles (protein bright):

    image = -(counts - D) / (2 D),   E[image] = c,   Var[image] = (1 - 2 c) / (4 D).
"""

from __future__ import annotations

import typing

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, xlogy
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Shaped

from cryoensemble.errors import check_positive
from cryoensemble.noise._base import AbstractNoiseModel, check_positive_if_concrete

__all__ = ["PoissonNoise", "expected_counts", "poisson_images"]


def expected_counts(
    contrast_images: Float[ArrayLike, "*b n n"], dose_per_A2: float, pixel_size: float
) -> Float[Array, "*b n n"]:
    """Mean electron count per pixel, dose * pixel_size^2 * (1 - 2 c), clipped at >= 0.

    Arguments:
        contrast_images: (..., n, n) phase contrast c (dimensionless).
        dose_per_A2: electrons per square Angstrom.
        pixel_size: Angstrom.
    """
    d = dose_per_A2 * pixel_size**2
    return jnp.maximum(d * (1.0 - 2.0 * jnp.asarray(contrast_images)), 0.0)


def poisson_images(
    key: PRNGKeyArray,
    contrast_images: Float[ArrayLike, "*b n n"],
    dose_per_A2: float,
    pixel_size: float,
) -> Float[Array, "*b n n"]:
    """Shot-noise particle images (dimensionless, protein bright) whose expectation is ``c``.

    Draws Poisson counts with mean :func:`expected_counts` and returns -(counts - D) / (2 D),
    D = dose * p^2.

    Arguments:
        key: a JAX random key.
        contrast_images: (..., n, n) phase contrast c (dimensionless).
        dose_per_A2: electrons per square Angstrom, > 0.
        pixel_size: Angstrom, > 0.
    """
    check_positive_if_concrete("dose (e/A^2)", dose_per_A2)
    check_positive_if_concrete("pixel size (Angstrom)", pixel_size)
    c = jnp.asarray(contrast_images)
    dtype = c.dtype if jnp.issubdtype(c.dtype, jnp.floating) else jnp.float32
    d = dose_per_A2 * pixel_size**2
    lam = expected_counts(c, dose_per_A2, pixel_size).astype(dtype)
    counts = jax.random.poisson(key, lam, dtype=jnp.int32).astype(dtype)
    return -(counts - d) / (2.0 * d)


@typing.final
class PoissonNoise(AbstractNoiseModel):
    """Shot noise of an electron ``dose`` on phase-contrast images (final; see the module
    docstring). Images are contrast images: apply :func:`cryoensemble.imaging.phase_contrast`
    (which holds the voltage) to projected potentials first.

    Arguments:
        dose: electrons per square Angstrom, > 0.
        pixel_size: Angstrom, > 0.
    """

    dose: float = eqx.field(static=True)
    pixel_size: float = eqx.field(static=True)

    def __check_init__(self):
        check_positive("dose (e/A^2)", self.dose)
        check_positive("pixel size (Angstrom)", self.pixel_size)

    def sample(
        self, key: PRNGKeyArray, clean_images: Float[ArrayLike, "*b n n"]
    ) -> Float[Array, "*b n n"]:
        """Shot-noise images around the contrast ``clean_images`` (see :func:`poisson_images`).

        Arguments:
            key: a JAX random key.
            clean_images: (..., n, n) phase contrast c (dimensionless).
        """
        return poisson_images(key, clean_images, self.dose, self.pixel_size)

    def log_likelihood(
        self,
        images: Float[ArrayLike, "*b n n"],
        predicted: Float[ArrayLike, "*#b n n"],
        mask: Shaped[ArrayLike, "n n"] | None = None,
    ) -> Float[Array, "*b"]:
        """Poisson log-probability of the counts D (1 - 2 image) given the expected counts of
        ``predicted``, summed over the pixels inside ``mask``, per image.

        Arguments:
            images: (..., n, n) shot-noise images (as returned by :meth:`sample`).
            predicted: (..., n, n) phase contrast c (dimensionless).
            mask: (n, n) 0/1 weights; None: all pixels.
        """
        images = jnp.asarray(images)
        d = self.dose * self.pixel_size**2
        counts = d * (1.0 - 2.0 * images)
        lam = expected_counts(jnp.asarray(predicted, images.dtype), self.dose, self.pixel_size)
        logp = xlogy(counts, lam) - lam - gammaln(counts + 1.0)
        m = jnp.ones(images.shape[-2:], images.dtype) if mask is None else jnp.asarray(mask)
        return jnp.sum(m * logp, axis=(-2, -1))
