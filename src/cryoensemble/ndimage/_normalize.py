"""RELION-style normalisation of particle images: the background (the pixels outside a circle)
brought to mean 0 and standard deviation 1, image by image (``relion_preprocess --norm``)."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from cryoensemble.errors import InputError
from cryoensemble.ndimage._masks import circular_mask

__all__ = ["background_statistics", "normalize_background"]


def background_statistics(
    images: Float[ArrayLike, "*b n n"], radius_px: float
) -> tuple[Float[Array, "*b"], Float[Array, "*b"]]:
    """Mean and standard deviation (population, ddof 0) of each image's background: the pixels at
    a distance > ``radius_px`` from the centre pixel (n // 2, n // 2).

    Arguments:
        images: (..., n, n) images.
        radius_px: radius of the excluded disc in pixels (> 0).

    Returns:
        ``(mean, std)``, each with the leading shape of ``images``, in image units.

    Raises:
        InputError: fewer than 2 background pixels.
    """
    images = jnp.asarray(images)
    n = images.shape[-1]
    background = (~circular_mask(n, radius_px)).astype(images.dtype)
    count = jnp.sum(background)
    if int(count) < 2:
        raise InputError(
            f"no background outside a radius of {radius_px:g} px in a {n} x {n} image: "
            "use a smaller radius"
        )
    mean = jnp.sum(images * background, axis=(-2, -1)) / count
    dev = (images - mean[..., None, None]) * background
    return mean, jnp.sqrt(jnp.sum(dev**2, axis=(-2, -1)) / count)


def normalize_background(
    images: Float[ArrayLike, "*b n n"],
    radius_px: float,
    reference: Float[ArrayLike, "*b n n"] | None = None,
) -> Float[Array, "*b n n"]:
    """Each image shifted and scaled so that its background (outside ``radius_px``) has mean 0
    and standard deviation 1, as RELION's preprocessing does (``--norm --bg_radius``).

    An image whose background is constant (standard deviation 0) is only shifted.

    Arguments:
        images: (..., n, n) images.
        radius_px: radius in pixels of the disc (the particle) left out of the statistics.
        reference: images whose background statistics set the shift and scale (default
            ``images``), e.g. the noisy images when their noise-free versions are mapped alike.
    """
    images = jnp.asarray(images)
    mean, std = background_statistics(images if reference is None else reference, radius_px)
    std = jnp.where(std > 0, std, jnp.ones_like(std))
    return (images - mean[..., None, None]) / std[..., None, None]
