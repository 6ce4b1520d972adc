"""Gaussian noise: white (optionally at a prescribed signal-to-noise ratio) and coloured.

SNR definition: SNR = var(clean image inside a circular mask) / sigma^2, where the mask is the
disc of radius ``mask_radius_px`` pixels centred at pixel (n // 2, n // 2) (distance from the
centre <= the radius, :func:`cryoensemble.ndimage.circular_mask`) and sigma is the standard
deviation of the white noise added to every pixel. Images are arrays [..., y, x]; sigma is in the
units of the images (e.g. V A for projected potentials).

Coloured noise has the power spectrum PSD(k) = E |F[noise](k)|^2 / n^2 (F the unnormalised DFT)
on the rfft grid (n, n // 2 + 1): white noise of standard deviation sigma has PSD = sigma^2, and
whitening divides the transform by sqrt(PSD) (see :mod:`cryoensemble.noise._psd`).
"""

from __future__ import annotations

import typing

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Shaped

from cryoensemble.errors import InputError
from cryoensemble.ndimage import circular_mask
from cryoensemble.noise._base import AbstractGaussianNoise, check_positive_if_concrete

__all__ = [
    "ColoredGaussianNoise",
    "WhiteGaussianNoise",
    "add_gaussian_noise",
    "signal_variance",
    "snr_noise_sigma",
]


def signal_variance(
    clean_images: Float[ArrayLike, "b n n"], mask_radius_px: float | None = None
) -> Float[Array, " b"]:
    """Per-image variance of the pixels inside the circular mask (units of the image, squared).

    Arguments:
        clean_images: (b, n, n) noiseless images.
        mask_radius_px: mask radius in pixels (default n // 2).
    """
    clean_images = jnp.asarray(clean_images)
    n = clean_images.shape[-1]
    mask = circular_mask(n, mask_radius_px)
    count = jnp.sum(mask)
    mean = jnp.sum(clean_images * mask, axis=(-2, -1)) / count
    dev = (clean_images - mean[..., None, None]) * mask
    return jnp.sum(dev**2, axis=(-2, -1)) / count


def snr_noise_sigma(
    clean_images: Float[ArrayLike, "*b n n"],
    snr: float,
    mask_radius_px: float | None = None,
    per_image: bool = False,
) -> Float[Array, " b"]:
    """Noise standard deviation (image units) that gives the signal-to-noise ratio ``snr``.

    SNR = var(signal inside the mask) / sigma^2 (see the module docstring). With ``per_image``
    False (the default) the signal variance is averaged over the batch and every image gets the
    same sigma, as in real data where all particles share one noise level; with ``per_image`` True
    each image gets its own sigma so that each has exactly the requested SNR.

    Arguments:
        clean_images: (b, n, n) (or one (n, n)) noiseless images.
        snr: the signal-to-noise ratio, > 0.
        mask_radius_px: mask radius in pixels (default n // 2).
        per_image: one sigma per image instead of one for the batch.

    Returns:
        (b,) standard deviations in the units of the images.
    """
    snr = check_positive_if_concrete("SNR", snr)
    if mask_radius_px is not None:
        check_positive_if_concrete("mask radius (pixels)", mask_radius_px)
    clean_images = jnp.asarray(clean_images)
    if clean_images.ndim == 2:
        clean_images = clean_images[None]
    if clean_images.ndim != 3:
        raise InputError(f"clean images must have shape (b, n, n), got {clean_images.shape}")
    var = signal_variance(clean_images, mask_radius_px)
    if not per_image:
        var = jnp.broadcast_to(jnp.mean(var), var.shape)
    return jnp.sqrt(var / snr).astype(clean_images.dtype)


def _per_image(value: Array, ndim: int) -> Array:
    """A scalar or per-image (leading shape) value, broadcastable against (..., n, n) images."""
    return value.reshape(value.shape + (1,) * (ndim - value.ndim))


def add_gaussian_noise(
    key: PRNGKeyArray, clean: Float[ArrayLike, "*b n n"], sigma: float | Float[ArrayLike, "*#b"]
) -> Float[Array, "*b n n"]:
    """``clean`` plus white Gaussian noise of standard deviation ``sigma`` (image units).

    Arguments:
        key: a JAX random key.
        clean: (..., n, n) noiseless images.
        sigma: a scalar or one value per image (the leading shape of ``clean``).
    """
    clean = jnp.asarray(clean)
    sigma = _per_image(jnp.asarray(sigma, clean.dtype), clean.ndim)
    return clean + sigma * jax.random.normal(key, clean.shape, clean.dtype)


def _mask_like(images: Array, mask) -> Array:
    if mask is None:
        return jnp.ones(images.shape[-2:], images.dtype)
    return jnp.asarray(mask, images.dtype)


def _gaussian_log_likelihood(residual: Array, sigma: Array, mask) -> Array:
    """log N(residual | 0, sigma^2 I) over the pixels inside ``mask``, per image."""
    m = _mask_like(residual, mask)
    sigma = _per_image(jnp.asarray(sigma, residual.dtype), residual.ndim - 2)
    n_pix = jnp.sum(m)
    chi2 = jnp.sum(m * residual**2, axis=(-2, -1))
    return -0.5 * chi2 / sigma**2 - 0.5 * n_pix * jnp.log(2 * jnp.pi * sigma**2)


def _as_float_array(x) -> Array:
    return jnp.asarray(x, jnp.result_type(float))


@typing.final
class WhiteGaussianNoise(AbstractGaussianNoise):
    """White Gaussian noise of standard deviation ``sigma`` (final).

        log p(y | x) = -sum m (y - x)^2 / (2 sigma^2) - (N / 2) log(2 pi sigma^2),  N = sum m.

    Arguments:
        sigma: standard deviation in image units, > 0; a scalar or one value per image (b,).
    """

    sigma: Float[Array, "*b"] = eqx.field(converter=_as_float_array)

    def __check_init__(self):
        if not isinstance(self.sigma, jax.core.Tracer) and not bool(jnp.all(self.sigma > 0)):
            raise InputError(f"noise sigma must be > 0, got {self.sigma}")

    def sample(
        self, key: PRNGKeyArray, clean_images: Float[ArrayLike, "*b n n"]
    ) -> Float[Array, "*b n n"]:
        """``clean_images`` plus white noise (see :func:`add_gaussian_noise`).

        Arguments:
            key: a JAX random key.
            clean_images: (..., n, n) noiseless images.
        """
        return add_gaussian_noise(key, clean_images, self.sigma)

    def whiten(self, images: Float[ArrayLike, "*b n n"]) -> Float[Array, "*b n n"]:
        """images / sigma.

        Arguments:
            images: (..., n, n) images in the units of sigma.
        """
        images = jnp.asarray(images)
        return images / _per_image(jnp.asarray(self.sigma, images.dtype), images.ndim)

    def log_likelihood(
        self,
        images: Float[ArrayLike, "*b n n"],
        predicted: Float[ArrayLike, "*#b n n"],
        mask: Shaped[ArrayLike, "n n"] | None = None,
    ) -> Float[Array, "*b"]:
        """log N(images | predicted, sigma^2 I) over the pixels inside ``mask``, per image.

        Arguments:
            images: (..., n, n) observed images.
            predicted: (..., n, n) noiseless model images.
            mask: (n, n) 0/1 weights; None: all pixels.
        """
        images = jnp.asarray(images)
        residual = images - jnp.asarray(predicted, images.dtype)
        return _gaussian_log_likelihood(residual, self.sigma, mask)


@typing.final
class ColoredGaussianNoise(AbstractGaussianNoise):
    """Stationary coloured Gaussian noise with power spectrum ``psd`` (final).

    :meth:`whiten` is y_w = F^-1[F(y) / sqrt(PSD)]; :meth:`log_likelihood` is the unit-variance
    white likelihood of the whitened residual over the pixels inside the mask,

        log p(y | x) = -sum m (y_w - x_w)^2 / 2 - (N / 2) log(2 pi),

    which leaves out the Jacobian of the whitening, -(1/2) sum_k log PSD(k): a constant that is
    the same for every model image (so a flat PSD sigma^2 gives the white likelihood plus
    N log sigma).

    Arguments:
        psd: (n, n // 2 + 1) noise power spectrum on the rfft grid, in image units squared
            (white noise of standard deviation sigma has PSD = sigma^2; see
            :func:`~cryoensemble.noise.estimate_psd`).
    """

    psd: Float[Array, "n m"] = eqx.field(converter=_as_float_array)

    def __check_init__(self):
        if self.psd.ndim != 2 or self.psd.shape[1] != self.psd.shape[0] // 2 + 1:
            raise InputError(
                f"noise PSD must be on the rfft grid (n, n // 2 + 1), got shape {self.psd.shape}"
            )

    def _check(self, images: Array) -> None:
        n = self.psd.shape[0]
        if images.shape[-2:] != (n, n):
            raise InputError(
                f"noise PSD shape {tuple(self.psd.shape)} does not match images of "
                f"{images.shape[-2]} x {images.shape[-1]} pixels"
            )

    def sample(
        self, key: PRNGKeyArray, clean_images: Float[ArrayLike, "*b n n"]
    ) -> Float[Array, "*b n n"]:
        """``clean_images`` plus noise of power spectrum ``psd``: white unit noise filtered by
        sqrt(PSD).

        Arguments:
            key: a JAX random key.
            clean_images: (..., n, n) noiseless images.
        """
        clean = jnp.asarray(clean_images)
        self._check(clean)
        n = clean.shape[-1]
        white = jax.random.normal(key, clean.shape, clean.dtype)
        filt = jnp.sqrt(self.psd).astype(clean.dtype)
        return clean + jnp.fft.irfft2(jnp.fft.rfft2(white) * filt, s=(n, n)).astype(clean.dtype)

    def whiten(self, images: Float[ArrayLike, "*b n n"]) -> Float[Array, "*b n n"]:
        """F^-1[F(images) / sqrt(PSD)].

        Arguments:
            images: (..., n, n) images in the units of sqrt(PSD).
        """
        images = jnp.asarray(images)
        self._check(images)
        n = images.shape[-1]
        ft = jnp.fft.rfft2(images) * jnp.asarray(1.0 / jnp.sqrt(self.psd), images.dtype)
        return jnp.fft.irfft2(ft, s=(n, n)).astype(images.dtype)

    def log_likelihood(
        self,
        images: Float[ArrayLike, "*b n n"],
        predicted: Float[ArrayLike, "*#b n n"],
        mask: Shaped[ArrayLike, "n n"] | None = None,
    ) -> Float[Array, "*b"]:
        """The white unit-variance likelihood of the whitened residual (see the class
        docstring), per image.

        Arguments:
            images: (..., n, n) observed images.
            predicted: (..., n, n) noiseless model images.
            mask: (n, n) 0/1 weights applied after whitening; None: all pixels.
        """
        images = jnp.asarray(images)
        # Whitening is linear: one transform of the residual instead of one per image.
        residual = self.whiten(images - jnp.asarray(predicted, images.dtype))
        return _gaussian_log_likelihood(residual, jnp.ones((), images.dtype), mask)
