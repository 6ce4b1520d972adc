"""The noise-model interface: draw noisy images and score images against noiseless predictions.

Imitates Equinox's abstract/final pattern: :class:`AbstractNoiseModel` declares the methods, the
final classes (:class:`~cryoensemble.noise.WhiteGaussianNoise`,
:class:`~cryoensemble.noise.ColoredGaussianNoise`, :class:`~cryoensemble.noise.PoissonNoise`)
implement them and are not subclassed. Noise models act on the output of the image model's
contrast step (:func:`cryoensemble.imaging.phase_contrast`) or on projected potentials, in
whatever units the caller uses consistently.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Shaped

from cryoensemble.errors import check_positive

__all__ = ["AbstractGaussianNoise", "AbstractNoiseModel"]


def check_positive_if_concrete(name: str, value):
    """Validate ``value`` > 0 when it is concrete (traced values under jit are not checked)."""
    if isinstance(value, jax.core.Tracer):
        return value
    return check_positive(name, value)


class AbstractNoiseModel(eqx.Module):
    """A noise model: :meth:`sample` noisy images, :meth:`log_likelihood` of observed images."""

    @abc.abstractmethod
    def sample(
        self, key: PRNGKeyArray, clean_images: Float[ArrayLike, "*b n n"]
    ) -> Float[Array, "*b n n"]:
        """Noisy images drawn around ``clean_images``.

        Arguments:
            key: a JAX random key.
            clean_images: (..., n, n) noiseless images (the expectation of the result).
        """

    @abc.abstractmethod
    def log_likelihood(
        self,
        images: Float[ArrayLike, "*b n n"],
        predicted: Float[ArrayLike, "*#b n n"],
        mask: Shaped[ArrayLike, "n n"] | None = None,
    ) -> Float[Array, "*b"]:
        """log p(images | predicted), one value per image, over the pixels inside ``mask``.

        Arguments:
            images: (..., n, n) observed images.
            predicted: (..., n, n) noiseless model images, in the units of ``images``.
            mask: (n, n) 0/1 weights (e.g. ``ndimage.circular_mask(n, r)``); None: all pixels.
        """


class AbstractGaussianNoise(AbstractNoiseModel):
    """Additive Gaussian noise with a known covariance, which :meth:`whiten` makes the identity."""

    @abc.abstractmethod
    def whiten(self, images: Float[ArrayLike, "*b n n"]) -> Float[Array, "*b n n"]:
        """Images transformed so that this noise becomes white noise of unit variance.

        Arguments:
            images: (..., n, n) images, in the units of the noise.
        """
