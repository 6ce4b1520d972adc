"""White Gaussian noise at a prescribed signal-to-noise ratio.

Definition: SNR = var(clean image inside a circular mask) / sigma^2, where the mask is the disc of
radius ``mask_radius_px`` pixels centred at pixel (n // 2, n // 2) (distance from the centre <= the
radius) and sigma is the standard deviation of the white noise added to every pixel. Images are
arrays [..., y, x]; sigma is in the units of the images (e.g. V A for projected potentials).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from cryoensemble.errors import InputError, check_positive


def _check_positive(name: str, value):
    """Validate ``value`` > 0 when it is concrete (traced values under jit are not checked)."""
    if isinstance(value, jax.core.Tracer):
        return value
    return check_positive(name, value)


def circular_mask(n: int, radius_px: float | None = None) -> Float[Array, "n n"]:
    """Boolean disc of radius ``radius_px`` (pixels; default n // 2) centred at pixel n // 2."""
    r = n // 2 if radius_px is None else radius_px
    c = jnp.arange(n) - n // 2
    return (c[:, None] ** 2 + c[None, :] ** 2) <= r**2


def signal_variance(
    clean_images: Float[Array, "b n n"], mask_radius_px: float | None = None
) -> Float[Array, " b"]:
    """Per-image variance of the pixels inside the circular mask (units of the image, squared)."""
    n = clean_images.shape[-1]
    mask = circular_mask(n, mask_radius_px)
    count = jnp.sum(mask)
    mean = jnp.sum(clean_images * mask, axis=(-2, -1)) / count
    dev = (clean_images - mean[..., None, None]) * mask
    return jnp.sum(dev**2, axis=(-2, -1)) / count


def snr_noise_sigma(
    clean_images: Float[Array, "b n n"],
    snr: float,
    mask_radius_px: float | None = None,
    per_image: bool = False,
) -> Float[Array, " b"]:
    """Noise standard deviation (image units) that gives the signal-to-noise ratio ``snr``.

    SNR = var(signal inside the mask) / sigma^2 (see the module docstring). With ``per_image``
    False (the default) the signal variance is averaged over the batch and every image gets the same
    sigma, as in real data where all particles share one noise level; with ``per_image`` True each
    image gets its own sigma so that each has exactly the requested SNR. Returns shape (b,).
    """
    snr = _check_positive("SNR", snr)
    if mask_radius_px is not None:
        _check_positive("mask radius (pixels)", mask_radius_px)
    clean_images = jnp.asarray(clean_images)
    if clean_images.ndim == 2:
        clean_images = clean_images[None]
    if clean_images.ndim != 3:
        raise InputError(f"clean images must have shape (b, n, n), got {clean_images.shape}")
    var = signal_variance(clean_images, mask_radius_px)
    if not per_image:
        var = jnp.broadcast_to(jnp.mean(var), var.shape)
    return jnp.sqrt(var / snr).astype(clean_images.dtype)


def add_gaussian_noise(
    key: jax.Array, clean: Float[Array, "*b n n"], sigma: float | Float[Array, "*b"]
) -> Float[Array, "*b n n"]:
    """``clean`` plus white Gaussian noise of standard deviation ``sigma`` (image units).

    ``sigma`` is a scalar or has the leading (batch) shape of ``clean``: one value per image.
    """
    clean = jnp.asarray(clean)
    sigma = jnp.asarray(sigma, clean.dtype)
    sigma = sigma.reshape(sigma.shape + (1,) * (clean.ndim - sigma.ndim))
    return clean + sigma * jax.random.normal(key, clean.shape, clean.dtype)
